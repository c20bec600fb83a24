"""The mismatch probe compares offline and own correction rates on the same problems."""

import pytest

from fake_policy import FakePolicy
from selfcorrect.evaluation.evaluate import OfflineAttempts, evaluate_policy
from selfcorrect.evaluation.probe import probe_metrics, probe_record
from selfcorrect.models.policy import Sampling
from selfcorrect.tasks import make_error_model
from selfcorrect.tasks.arithmetic import ArithmeticTask

TASK = ArithmeticTask()
ERRORS = make_error_model(TASK)


def row(offline1, offline2, own1, own2, i=0):
    return {"id": f"p{i}", "offline_correct1": offline1, "correct2": offline2, "own_correct1": own1, "own_correct2": own2}


def test_matched_rates_are_over_the_problems_where_both_first_attempts_are_wrong():
    # offline wrong on p0..p3, own wrong on p2..p5: the same problems are p2, p3
    rows = [row(False, True, True, True, 0), row(False, True, True, True, 1), row(False, False, False, False, 2),
            row(False, True, False, False, 3), row(True, True, False, True, 4), row(True, True, False, True, 5)]
    m = probe_metrics(rows)
    assert m["n_matched"] == 2
    assert m["correction_rate_offline_matched"] == pytest.approx(1 / 2)
    assert m["correction_rate_own_matched"] == 0
    assert m["mismatch_gap_matched"] == pytest.approx(1 / 2)
    # unrestricted (secondary): over different problems
    assert m["correction_rate_offline"] == pytest.approx(3 / 4) and m["correction_rate_own"] == pytest.approx(2 / 4)
    assert m["mismatch_gap"] == pytest.approx(1 / 4)
    assert (m["n_wrong_offline"], m["n_wrong_own"], m["n"]) == (4, 4, 6)
    none = probe_metrics([row(False, True, True, True), row(True, True, False, False)])
    assert none["n_matched"] == 0 and none["correction_rate_offline_matched"] is None and none["mismatch_gap_matched"] is None


def test_a_probe_record_pairs_episodes_of_the_same_problem_only():
    with pytest.raises(ValueError, match="'p1' paired with the own episode of 'p2'"):
        probe_record({"id": "p1", "correct1": False}, {"id": "p2", "y1": "", "y2": "", "correct1": True, "correct2": True})


def hard_column(p):
    """A column a carry enters whose digits sum to 9 (the base's carry_drop feature), or None."""
    return next((k for k in ERRORS.sites(p, "carry_drop") if sum(TASK.digits(p)[k]) == 9), None)


def test_selection_bias_is_removed_by_matching_the_problems():
    """A policy that fixes any error on easy problems and none on hard ones, whose own errors fall
    only on the hard ones, while the offline errors fall everywhere: unrestricted, the offline rate
    is high and the own rate 0 (a large 'gap'); on the same problems both are 0."""
    def first(p):
        k = hard_column(p)
        return TASK.write(p) if k is None else ERRORS.inject(p, "carry_drop", k)

    def revise(p, y1):
        return y1 if hard_column(p) is not None else TASK.write(p)

    policy = FakePolicy(TASK, first, revise)
    problems = TASK.problems("test", 300, seed=0)
    others = TASK.problems("val", 200, seed=0)
    offline = [OfflineAttempts(label, ps, [ERRORS.inject(p, "sum_slip", 0) for p in ps]) for label, ps in (("test", problems), ("val", others))]
    result = evaluate_policy(policy, problems, Sampling(), offline=offline)
    for label, ps in (("test", problems), ("val", others)):
        m = result.metrics[f"probe/{label}"]
        hard = sum(hard_column(p) is not None for p in ps)
        assert 0 < hard < len(ps) and m["n_matched"] == m["n_wrong_own"] == hard
        assert m["correction_rate_offline"] == pytest.approx(1 - hard / len(ps)) and m["correction_rate_own"] == 0
        assert m["correction_rate_offline_matched"] == 0 and m["correction_rate_own_matched"] == 0
        assert m["mismatch_gap_matched"] == 0 and m["mismatch_gap"] > 0.5
        rows = result.probe_records[label]
        assert [r["id"] for r in rows] == [p.id for p in ps]
        assert all(r["own_y1"] == first(p) and r["own_correct1"] == (hard_column(p) is None) for r, p in zip(rows, ps))
        assert probe_metrics(rows) == m  # recomputable from the saved records alone
    # the own episodes on the test problems are the evaluation's; only the val set needs its own roll-out
    assert [c["offline"] for c in policy.calls] == [False, True, False, True]
