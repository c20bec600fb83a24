"""The mechanism measures (issue 23) on cases where the answer is known: behaviour shares and
entropy, calibration (Brier, ECE, AUROC), the revise decision, several injected errors and the
self-conditioning summary, and the verdict rules of the pre-registered readings."""

import math
import random

import numpy as np
import pandas as pd
import pytest

from selfcorrect.analysis import mechanisms as mech
from selfcorrect.evaluation.mechanisms.behaviours import behaviour_summary, entropy_bits
from selfcorrect.evaluation.mechanisms.calibration import auroc, brier, calibration_summary, ece, revise_summary
from selfcorrect.evaluation.mechanisms.self_conditioning import first_attempts, summarize_self_conditioning
from selfcorrect.evaluation.metrics import summarize
from selfcorrect.tasks import make_error_model
from selfcorrect.tasks.answer_first import AnswerFirstTask
from selfcorrect.tasks.arithmetic import ArithmeticTask


# --- behaviours ------------------------------------------------------------------------------------
def test_one_behaviour_has_zero_entropy_and_a_uniform_mix_has_log2_k():
    assert entropy_bits([1.0, 0.0, 0.0]) == 0.0
    assert entropy_bits([0.25] * 4) == pytest.approx(2.0)
    recs = [{"behaviour": b, "correct1": c} for b, c in [("repeat", True)] * 6 + [("patch", False), ("rewrite", False)] * 2]
    s = behaviour_summary(recs)
    assert s["right_t1"] == {"n": 6, "share": {"patch": 0.0, "repeat": 1.0, "rewrite": 0.0}, "entropy_bits": 0.0,
                             "entropy_mm_bits": 0.0, "dominant": "repeat", "dominant_share": 1.0}
    assert s["wrong_t1"]["entropy_bits"] == pytest.approx(1.0) and s["wrong_t1"]["dominant"] == "patch"  # a tie: label order
    # Miller–Madow: + (K − 1) / (2 n ln 2) with K = 2 labels seen among n = 4
    assert s["wrong_t1"]["entropy_mm_bits"] == pytest.approx(1.0 + 1 / (8 * math.log(2)))
    assert s["all"]["n"] == 10 and s["all"]["share"]["repeat"] == pytest.approx(0.6)


def test_behaviours_need_every_record_labelled_and_known_labels():
    assert behaviour_summary([{"correct1": True}]) is None
    with pytest.raises(ValueError, match="'oops'"):
        behaviour_summary([{"behaviour": "oops", "correct1": True}], labels=["repeat"])


# --- calibration -----------------------------------------------------------------------------------
def test_a_perfectly_calibrated_predictor_has_ece_near_zero_and_a_constant_one_has_auroc_half():
    rng = np.random.default_rng(0)
    q = rng.uniform(0, 1, 20_000)
    c = rng.uniform(0, 1, 20_000) < q  # right with probability q
    assert ece(q.tolist(), c.tolist()) < 0.02
    assert brier(q.tolist(), c.tolist()) == pytest.approx(1 / 6, abs=0.01)  # E[q(1-q)] for uniform q
    assert auroc([0.7] * 10, [True] * 5 + [False] * 5) == 0.5
    assert auroc([0.9, 0.8, 0.2, 0.1], [True, True, False, False]) == 1.0
    assert auroc([0.1, 0.9], [True, False]) == 0.0
    assert auroc([0.5, 0.5, 0.9], [True, False, False]) == pytest.approx(0.25)  # one tie (½), one loss
    assert auroc([0.3], [True]) is None


def test_an_overconfident_predictor_has_ece_equal_to_its_gap():
    q, c = [0.9] * 10, [True] * 6 + [False] * 4
    assert ece(q, c) == pytest.approx(0.3)
    recs = [{"logp1": math.log(0.9), "n_tokens1": 3, "correct1": x} for x in c]
    s = calibration_summary(recs)
    assert s["overconfidence"] == pytest.approx(0.3) and s["mean_confidence"] == pytest.approx(0.9)
    assert s["ece"] == pytest.approx(0.3) and s["auroc"] == 0.5
    assert calibration_summary([{"correct1": True}]) is None
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        ece([1.5], [True])


def test_the_revise_decision_that_acts_exactly_on_wrong_first_attempts_has_auroc_one():
    recs = [{"correct1": False, "answer1": "1", "answer2": "2"}] * 3 + [{"correct1": True, "answer1": "5", "answer2": "5"}] * 7
    s = revise_summary(recs)
    assert (s["p_change_given_wrong"], s["p_change_given_right"], s["auroc"]) == (1.0, 0.0, 1.0)
    always = revise_summary([{**r, "answer2": "x"} for r in recs])
    assert (always["p_change_given_wrong"], always["p_change_given_right"], always["auroc"]) == (1.0, 1.0, 0.5)


def test_summarize_carries_the_mechanism_blocks_only_when_the_records_do():
    base = {"y1": "a", "y2": "a", "correct1": True, "correct2": True, "well_formed1": True, "well_formed2": True,
            "answer1": "1", "answer2": "1", "error1": None, "error2": None, "edit_ratio": 0.0}
    m = summarize([base, {**base, "correct1": False, "error1": "sum_slip@0"}])
    assert "behaviour" not in m and "calibration" not in m and m["revise"]["p_change_given_wrong"] == 0.0
    m = summarize([{**base, "behaviour": "repeat", "logp1": -0.1, "n_tokens1": 2}])
    assert m["behaviour"]["all"]["dominant"] == "repeat" and m["calibration"]["n"] == 1


# --- several injected errors -----------------------------------------------------------------------
@pytest.mark.parametrize("task", [ArithmeticTask(3), AnswerFirstTask(4)], ids=["arithmetic", "answer_first"])
def test_k_injected_errors_write_k_departures_and_a_wrong_attempt(task):
    errors = make_error_model(task)
    problems = task.problems("test", 60, seed=1)
    for p in problems:
        for k in (1, 2, 3):
            y = errors.inject_errors(p, k, random.Random(f"{p.id}:{k}"))
            if y is None:
                continue
            assert not task.verify(p, y).correct, (p.id, k, y)
            right = errors.correct_attempt(p)
            if isinstance(task, ArithmeticTask):  # exactly k local departures from the procedure
                assert _local_errors(task, p, y) == k, (p.id, k, y)
            else:  # the working is right; k answer digits differ
                n = task.n_digits + 1
                wrong = sum(x != z for x, z in zip(right.split(">")[0].zfill(n), y.split(">")[0].zfill(n)))
                assert wrong == k and y.split(">")[1] == right.split(">")[1]
    with pytest.raises(ValueError, match="k=9"):
        errors.inject_errors(problems[0], 9, random.Random(0))


def _local_errors(task, p, y: str) -> int:
    """Steps of an arithmetic attempt that depart from the procedure given the attempt's own earlier
    steps: a miscopied operand digit, a carry in that is not the previous column's carry out, a total
    that is not a + b + carry, an answer line that is not what the columns spell."""
    groups, answer = y.split(">")
    n, carry = 0, 0
    for (da, db), g in zip(task.digits(p), groups.split()):
        a, b, c, total = int(g[0]), int(g[1]), int(g[2]), int(g[3:])
        n += (a != da) + (b != db) + (c != carry) + (total != a + b + c)
        carry = total // 10
    return n + (answer != task.working_answer(p, y))


def test_the_first_arithmetic_bug_site_of_k_errors_is_where_the_verifier_reads_it():
    task = ArithmeticTask(3)
    errors = make_error_model(task)
    p = task.make_problem(357, 468)
    rows = first_attempts(errors, [p], seed=0, max_errors=3)
    assert [r["k"] for r in rows] == [1, 2, 3]
    assert rows == first_attempts(errors, [p], seed=0, max_errors=3)  # the same first attempts for every arm


# --- self-conditioning -----------------------------------------------------------------------------
def test_self_conditioning_summary_on_hand_made_chains():
    recs = [{"id": "a", "k": 1, "correct": [False, True, True]}, {"id": "b", "k": 1, "correct": [False, False, True]},
            {"id": "c", "k": 1, "correct": [False, True, False]}, {"id": "d", "k": 1, "correct": [False, False, False]},
            {"id": "a", "k": 2, "correct": [False, True]}, {"id": "b", "k": 2, "correct": [False, False]}]
    s = summarize_self_conditioning(recs)
    assert s["n"] == {"1": 4, "2": 2} and s["fix_rate"] == {"1": 0.5, "2": 0.5}
    assert s["acc_turn"] == {"2": 0.5, "3": 0.5}
    assert s["fix_given_wrong"] == {"2": 0.5, "3": 0.5}  # turn 3: of b, d (wrong at 2) b is fixed
    assert s["break_given_right"] == {"3": 0.5}  # of a, c (right at 2) c breaks


# --- verdict rules of the readings -----------------------------------------------------------------
def test_directional_and_equivalence_verdicts():
    assert mech.directional(0.2, 0.1, 0.3, +1) == "holds"
    assert mech.directional(-0.2, -0.3, -0.1, +1) == "does not hold"
    assert mech.directional(0.1, -0.1, 0.3, +1) == "not decided"
    assert mech.directional(0.1, 0.95, 0.99, +1, threshold=0.9) == "holds"
    assert mech.directional(-0.2, -0.3, -0.1, -1) == "holds"
    assert mech.equivalence(-0.01, 0.02, 0.05) == "holds"
    assert mech.equivalence(0.06, 0.2, 0.05) == "does not hold"
    assert mech.equivalence(-0.01, 0.2, 0.05) == "not decided"


def _runs(values: dict[str, list[float]], metric: str) -> pd.DataFrame:
    return pd.DataFrame([{"label": lab, "seed": s, metric: v} for lab, vs in values.items() for s, v in enumerate(vs)])


def test_a_paired_reading_pairs_by_seed_and_reports_seeds_needed():
    runs = _runs({"score": [0.5, 0.6, 0.7, 0.8], "sft_self_plus": [0.4, 0.55, 0.55, 0.75]}, "m")
    r = mech.compare_reading(runs, "X", "x", "arithmetic", "score", "sft_self_plus", "m", +1, "> 0")
    assert r.estimate == pytest.approx(np.mean([0.1, 0.05, 0.15, 0.05])) and r.n_seeds == 4 and r.verdict == "holds"
    noisy = _runs({"score": [0.5, 0.6, 0.7], "sft_self_plus": [0.6, 0.5, 0.72]}, "m")
    r = mech.compare_reading(noisy, "X", "x", "arithmetic", "score", "sft_self_plus", "m", +1, "> 0")
    assert r.verdict == "not decided" and (r.seeds_needed is None or r.seeds_needed > 3)


def test_the_data_source_table_averages_a_sources_arms_within_each_seed():
    rows = []
    for s in range(3):
        rows.append({"label": "base", "seed": s, "acc_t1": 0.5, "fix_rate": 0.1, "break_rate": 0.1})
        rows.append({"label": "score", "seed": s, "acc_t1": 0.6, "fix_rate": 0.5 + 0.1 * s, "break_rate": 0.01})
        rows.append({"label": "rl_single_turn", "seed": s, "acc_t1": 0.7, "fix_rate": 0.3 - 0.1 * s, "break_rate": 0.05})
        rows.append({"label": "sft_teacher", "seed": s, "acc_t1": 0.4, "fix_rate": 0.2, "break_rate": 0.2})
    t = mech.data_source_table(pd.DataFrame(rows)).set_index("data")
    assert list(t.index) == ["teacher", "own_online"]  # the catalog's order; base trains on nothing
    assert t.loc["own_online", "fix_rate"] == pytest.approx(0.4)  # (0.5+0.1s + 0.3-0.1s)/2 on every seed
    assert t.loc["own_online", "acc_t1_change"] == pytest.approx(0.15) and t.loc["teacher", "acc_t1_change"] == pytest.approx(-0.1)
    assert t.loc["own_online", "arms"] == "rl_single_turn, score"
    r = mech.ordering_reading(pd.DataFrame(rows), "O1", "answer_first", "fix_rate", ("own_online", "teacher"), "ordered")
    assert r.verdict == "holds" and r.estimate == pytest.approx(0.2)


def test_time_to_collapse_is_the_share_by_a_step_of_the_final_dominant_behaviour():
    curves = pd.DataFrame([{"run": "r", "label": "score", "seed": 0, "step": st, "share/a": a, "share/b": 1 - a}
                           for st, a in [(0, 0.2), (24, 0.72), (96, 0.9)]])
    assert mech.time_to_collapse(curves, "score").tolist() == [pytest.approx(0.8)]


def test_miller_madow_removes_most_of_the_small_sample_bias():
    import random

    from selfcorrect.evaluation.mechanisms.behaviours import stratum_summary

    labels = [f"b{i}" for i in range(7)]
    rng = random.Random(0)
    plug, mm = [], []
    for _ in range(400):  # n = 20 draws from a uniform mix of 7 behaviours (true entropy log2 7)
        s = stratum_summary([rng.choice(labels) for _ in range(20)], labels)
        plug.append(s["entropy_bits"])
        mm.append(s["entropy_mm_bits"])
    truth = math.log2(7)
    bias_plug, bias_mm = sum(plug) / 400 - truth, sum(mm) / 400 - truth
    assert bias_plug < -0.15 and abs(bias_mm) < abs(bias_plug) / 3  # the review's ~0.2-bit bias at n = 20


def test_o1_by_objective_leaves_single_turn_rl_out_of_the_on_policy_group():
    runs = pd.DataFrame([{"label": lab, "seed": s, "fix_rate": v} for s in range(3)
                         for lab, v in (("score", 0.4), ("rl_single_turn", 0.0), ("sft_self_plus", 0.1))])
    assert mech.source_series(runs, "own_online", "fix_rate").tolist() == [0.2] * 3  # data source: both RL arms
    assert mech.source_series(runs, "own_online", "fix_rate", exclude=mech.SINGLE_TURN_OBJECTIVE).tolist() == [0.4] * 3
