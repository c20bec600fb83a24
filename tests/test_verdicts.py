"""The pre-registered primary family (selfcorrect.analysis.verdicts) and the ceiling-free / unconfounded
readings (selfcorrect.analysis.diagnostics) on hand-made cases and on the fixture sweep."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fixture_sweep import make_sweep
from selfcorrect.analysis import diagnostics, verdicts
from selfcorrect.analysis.results import load_sweep
from selfcorrect.evaluation.probe import stratified_probe
from selfcorrect.tasks.answer_first import AnswerFirstTask


@pytest.mark.parametrize("diff, p, prediction, expected", [
    (0.05, 0.01, +1, "holds"), (-0.05, 0.01, +1, "does not hold (the opposite)"), (0.05, 0.2, +1, "not decided"),
    (-0.05, 0.01, -1, "holds"), (0.01, 0.3, 0, "no difference detected"), (0.05, 0.01, 0, "does not hold (a difference)"),
])
def test_verdicts_follow_the_written_rule(diff, p, prediction, expected):
    assert verdicts.verdict(diff, p, prediction) == expected


def test_no_difference_is_equivalence_only_with_a_margin_fixed_in_advance_and_a_passing_tost():
    from selfcorrect.analysis.stats import tost_p

    close = [0.004, -0.003, 0.002, 0.001, -0.002, 0.003, 0.0, -0.001, 0.002, 0.001]  # 10 seeds near 0
    assert verdicts.verdict(0.0007, 0.6, 0, tost=tost_p(close, 0.02), margin=0.02) == "equivalent within ±2 points"
    assert verdicts.verdict(0.0007, 0.6, 0, tost=tost_p(close, 0.001), margin=0.001) == "no difference detected"
    assert verdicts.verdict(0.0007, 0.6, 0) == "no difference detected"  # no margin: never equivalence
    assert verdicts.verdict(0.05, 0.01, 0, tost=0.001, margin=0.1) == "does not hold (a difference)"
    assert verdicts.TEN_SEED_SWEEP.margins == {}  # the 10-seed sweep's pre-registration fixed no margin


def test_every_primary_comparison_has_a_prediction_on_both_testbeds():
    for prereg in verdicts.PREREGISTRATIONS.values():
        for testbed in ("arithmetic", "answer_first"):
            assert set(prereg.predictions[testbed]) == {b for _, b, _ in verdicts.PRIMARY}


def test_a_sweep_is_judged_by_the_preregistration_of_its_seeds_and_a_bad_one_is_refused():
    assert verdicts.for_seeds(range(10, 20)) is verdicts.CONFIRMATORY
    assert verdicts.for_seeds([12, 13]) is verdicts.CONFIRMATORY
    assert verdicts.for_seeds(range(0, 10)) is verdicts.TEN_SEED_SWEEP
    assert verdicts.for_seeds(range(0, 20)) is verdicts.TEN_SEED_SWEEP  # the pooled seeds: a caller names one
    docs = Path(__file__).resolve().parents[1] / "docs" / "preregistration"
    assert all((docs / p.file).exists() for p in verdicts.PREREGISTRATIONS.values())
    preds = dict(verdicts.CONFIRMATORY.predictions["arithmetic"])
    with pytest.raises(ValueError, match="must give each primary arm"):
        verdicts.Preregistration("x", "x.md", range(1), {"arithmetic": {**preds, "base": 2}}, {})
    with pytest.raises(ValueError, match="a margin is a fraction"):
        verdicts.Preregistration("x", "x.md", range(1), {}, {"arithmetic": 2.0})


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    return load_sweep(make_sweep(tmp_path_factory.mktemp("verdicts")), warn=False)


def test_the_primary_table_is_seed_level_and_holm_adjusted(sweep):
    with pytest.raises(ValueError, match="shrinks Holm's family"):  # the fixture lacks some primary arms
        verdicts.primary_table(sweep, "arithmetic")
    assert "rl_single_turn" in verdicts.missing_arms(sweep)
    t = verdicts.primary_table(sweep, "arithmetic", partial=True)
    assert set(t["b"]) == {"base", "rl_multi_turn_naive", "sft_self", verdicts.TEACHER}  # those the fixture has
    for _, r in t.iterrows():
        per = verdicts.per_seed(sweep, r["a"], "delta") - verdicts.per_seed(sweep, r["b"], "delta")
        assert r["per_seed"] == pytest.approx(tuple(per.to_numpy())) and r["diff"] == pytest.approx(per.mean())
        assert r["p_holm"] >= r["p_value"] and r["n_seeds"] == 2
    ordered = t.sort_values("p_value")["p_holm"].to_numpy()
    assert (np.diff(ordered) >= -1e-12).all()  # Holm's adjusted p are monotone in the raw p
    paper = verdicts.primary_table(sweep, "arithmetic", metric_prefix="paper_checkpoint/", partial=True)
    assert len(paper) == len(t)  # the base is its own paper checkpoint
    assert "**" in verdicts.markdown(t, str)
    # 2 seeds: the sign-flip floor is 0.5, so the rule can never reject at Holm's first step
    assert (t["sign_flip_floor"] == 0.5).all() and (t["rule_power_first"].dropna() == 0).all()
    assert "Sign-flip floor: with 2 seeds no p can be below 2/2^2 = 0.5000" in verdicts.markdown(t, str)
    assert "TOST" not in verdicts.markdown(t, str)  # the 10-seed sweep's pre-registration fixed no margin
    # the confirmatory pre-registration's predictions and margin: TOST for its "no difference" predictions only
    c = verdicts.primary_table(sweep, "arithmetic", partial=True, preregistration=verdicts.CONFIRMATORY)
    zero = c["prediction"] == 0
    assert zero.any() and c.loc[zero, "tost_p"].notna().all() and c.loc[~zero, "tost_p"].isna().all()
    assert c.set_index("b")["prediction"].to_dict() == {b: verdicts.CONFIRMATORY.predictions["arithmetic"][b] for b in c["b"]}
    assert "TOST p at the margin" in verdicts.markdown(c, str)


def test_interpolation_along_checkpoints_stays_inside_their_range():
    pts = pd.DataFrame({"step": [0, 12, 24], "acc_t1": [0.6, 0.8, 0.7], "delta": [-0.02, 0.04, 0.10]})
    # sorted by Acc@t1: (0.6, -0.02), (0.7, 0.10), (0.8, 0.04)
    assert diagnostics.at_acc_t1(pts, 0.65) == pytest.approx(0.04)
    assert diagnostics.at_acc_t1(pts, 0.75) == pytest.approx(0.07)
    assert diagnostics.at_acc_t1(pts, 0.8) == pytest.approx(0.04)
    assert math.isnan(diagnostics.at_acc_t1(pts, 0.5)) and math.isnan(diagnostics.at_acc_t1(pts, 0.9))


def test_the_matched_comparison_uses_trained_checkpoints_only(sweep):
    pts = diagnostics.checkpoint_points(sweep)
    assert {"acc_t1", "delta", "fix_rate"} <= set(pts) and (pts["step"] == 0).any()
    # the fixture's val Acc@t1 rises above the step-0 (base) value at every trained checkpoint, so no curve
    # reaches the base's Acc@t1: every seed is missing (the step-0 point itself is never used)
    at_base = diagnostics.matched_comparison(sweep, "score", "sft_self", "delta", pts, target="base")
    assert at_base["n_seeds"] == 0 and at_base["seeds_missing"] == [0, 1] and math.isnan(at_base["diff"])
    c = diagnostics.matched_comparison(sweep, "score", "sft_self", "delta", pts, target="overlap")
    assert c["n_seeds"] == 2
    expected = []
    for seed in (0, 1):
        ga, gb = (pts[(pts["label"] == x) & (pts["seed"] == seed) & (pts["step"] > 0)] for x in ("score", "sft_self"))
        t = (max(ga["acc_t1"].min(), gb["acc_t1"].min()) + min(ga["acc_t1"].max(), gb["acc_t1"].max())) / 2
        expected.append(diagnostics.at_acc_t1(ga, t) - diagnostics.at_acc_t1(gb, t))
    assert c["diff"] == pytest.approx(np.mean(expected))
    with pytest.raises(ValueError, match="target must be"):
        diagnostics.matched_comparison(sweep, "score", "sft_self", target="middle")


def test_the_probe_strata_separate_readable_and_same_error_attempts():
    task = AnswerFirstTask(n_digits=3, chain_rate=0.4)
    p = task.make_problem(357, 468)  # 825; working 78015 56112 34108
    readable = task.write("815", task.working(p))            # answer slip, working spells 825
    unreadable = task.write("815", task.working(p, slip=1))  # the working agrees with a wrong answer

    def rec(y1, own_y1, fixed_offline, fixed_own, own_error=None):
        v1, vo = task.verify(p, y1), task.verify(p, own_y1)
        return {"id": p.id, "prompt": p.prompt, "answer": p.answer, "y1": y1, "error1": v1.error_type, "correct2": fixed_offline,
                "offline_correct1": v1.correct, "own_y1": own_y1, "own_correct1": vo.correct, "own_correct2": fixed_own,
                "own_error1": own_error if own_error is not None else vo.error_type}

    records = [rec(readable, readable, True, False), rec(readable, unreadable, True, False),
               rec(unreadable, unreadable, False, False), rec(task.write(p.answer, task.working(p)), readable, True, True)]
    s = stratified_probe(records, task)
    assert s["all"]["n"] == 3 and s["all"]["gap"] == pytest.approx(2 / 3)  # the 4th: the offline attempt is right
    assert (s["both_readable"]["n"], s["both_readable"]["gap"]) == (1, 1.0)
    assert (s["neither_readable"]["n"], s["neither_readable"]["gap"]) == (1, 0.0)
    assert s["same_error"]["n"] == 3  # the same wrong answer, so the same digit_slip site, in all three
