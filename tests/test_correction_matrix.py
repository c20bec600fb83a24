"""The correction matrix: controlled first attempts (correct, or one injected error of each kind
at the base's own error site or at a random site) and the keep / fix rates of the revisions."""

import pytest

from fake_policy import FakePolicy
from selfcorrect.evaluation.correction_matrix import SITES, correction_matrix, matrix_first_attempts, matrix_line, summarize_matrix
from selfcorrect.models.policy import Sampling
from selfcorrect.tasks import make_error_model
from selfcorrect.tasks.arithmetic import ArithmeticTask
from selfcorrect.tasks.arithmetic_errors import INJECTABLE

TASK = ArithmeticTask()
ERRORS = make_error_model(TASK)
PROBLEMS = TASK.problems("test", 200, seed=0)
# a "base" that drops the carry where it can and writes the rest right
BASE_FIRST = [ERRORS.inject(p, "carry_drop", ERRORS.sites(p, "carry_drop")[-1]) if ERRORS.sites(p, "carry_drop") else TASK.write(p)
              for p in PROBLEMS]


def test_controlled_first_attempts_keep_the_problem_and_carry_exactly_the_injected_error():
    rows = matrix_first_attempts(ERRORS, PROBLEMS, BASE_FIRST, seed=7)
    by_problem = {p.id: p for p in PROBLEMS}
    assert [r["id"] for r in rows if r["row"] == "correct"] == [p.id for p in PROBLEMS]
    for r in rows:
        p = by_problem[r["id"]]
        if r["row"] == "correct":
            assert r["y1"] == TASK.write(p) and TASK.verify(p, r["y1"]).correct
            continue
        assert ERRORS.error_site(p, r["y1"]) == (r["row"], r["column"])  # one bug of that kind, at that site
        assert r["column"] in ERRORS.sites(p, r["row"])
    base = [r for r in rows if r["site"] == "base"]
    # base sites: exactly where the base's own first attempt erred, and only with its kind
    assert {(r["id"], r["row"], r["column"]) for r in base} == {
        (p.id, *ERRORS.error_site(p, y)) for p, y in zip(PROBLEMS, BASE_FIRST) if ERRORS.error_site(p, y)}
    # random sites: every kind with a site on the problem, spread over the valid columns
    for kind in INJECTABLE:
        random_rows = [r for r in rows if r["row"] == kind and r["site"] == "random"]
        assert len(random_rows) == sum(bool(ERRORS.sites(p, kind)) for p in PROBLEMS)
        if kind in ("operand_copy", "sum_slip"):
            assert {r["column"] for r in random_rows} == {0, 1, 2}


def test_random_sites_depend_on_the_seed_and_problem_only():
    rows = matrix_first_attempts(ERRORS, PROBLEMS, BASE_FIRST, seed=7)
    again = matrix_first_attempts(ERRORS, PROBLEMS[::-1], BASE_FIRST[::-1], seed=7)
    key = lambda rs: sorted((r["id"], r["row"], r["site"], r["y1"]) for r in rs)  # noqa: E731
    assert key(rows) == key(again)
    other = matrix_first_attempts(ERRORS, PROBLEMS, BASE_FIRST, seed=8)
    assert key(rows) != key(other)


def test_rates_follow_a_policy_that_fixes_only_carry_drops_and_breaks_nothing():
    def revise(p, y1):
        site = ERRORS.error_site(p, y1)
        return TASK.write(p) if site and site[0] == "carry_drop" else y1

    policy = FakePolicy(TASK, first=None, revise=revise)
    summary, records = correction_matrix(policy, TASK, PROBLEMS, BASE_FIRST, Sampling(), seed=7, n_problems=150)
    assert summary["n_problems"] == summary["n_keep"] == 150 and summary["keep_rate"] == 1.0
    assert policy.calls == [{"n": len(records), "offline": True}]  # one batched call, first attempts given
    for kind in INJECTABLE:
        for site in SITES:
            n = summary["n"][kind][site]
            assert n == sum(r["row"] == kind and r["site"] == site for r in records)
            if n:
                assert summary["fix_rate"][kind][site] == (1.0 if kind == "carry_drop" else 0.0)
            else:
                assert summary["fix_rate"][kind][site] is None
    assert summary["n"]["carry_drop"]["base"] > 0 and summary["n"]["sum_slip"]["base"] == 0  # the base only drops carries
    assert summarize_matrix(records) == summary  # recomputable from the records
    line = matrix_line(summary)
    assert "150 problems] keep=1.00" in line and f"carry_drop 1.00 (n={summary['n']['carry_drop']['base']})" in line
    assert "sum_slip – / 0.00" in line


def test_a_policy_that_rewrites_every_answer_wrong_keeps_nothing():
    policy = FakePolicy(TASK, first=None, revise=lambda p, y1: ERRORS.inject(p, "final_copy", None))
    summary, _ = correction_matrix(policy, TASK, PROBLEMS, BASE_FIRST, Sampling(), seed=7, n_problems=1000)
    assert summary["n_problems"] == len(PROBLEMS)  # fewer problems than asked: all of them
    assert summary["keep_rate"] == 0.0 and all(v in (0.0, None) for k in summary["fix_rate"].values() for v in k.values())


def test_tasks_without_an_error_model_are_skipped_and_bad_sizes_are_named():
    class Other:
        name = "humaneval"

    summary, records = correction_matrix(FakePolicy(None, None, None), Other(), [], [], Sampling(), seed=0, n_problems=10)
    assert records == [] and "'humaneval' has no error model" in summary["skipped"]
    with pytest.raises(ValueError, match="n_problems must be a positive integer, got 0"):
        correction_matrix(FakePolicy(TASK, None, None), TASK, PROBLEMS, BASE_FIRST, Sampling(), seed=0, n_problems=0)
    with pytest.raises(ValueError, match="3 base and 0 own first attempts for 200 problems"):
        matrix_first_attempts(ERRORS, PROBLEMS, BASE_FIRST[:3], seed=0)


def test_own_sites_are_where_the_policy_itself_erred():
    """The `own` rows inject each kind where the policy's own first attempt erred with it (issue 22:
    base and own error sites compared on first attempts of one form)."""
    own_first = [ERRORS.inject(p, "sum_slip", ERRORS.sites(p, "sum_slip")[0]) if i % 3 == 0 else TASK.write(p)
                 for i, p in enumerate(PROBLEMS)]
    rows = matrix_first_attempts(ERRORS, PROBLEMS, BASE_FIRST, seed=7, own_first=own_first)
    own = [r for r in rows if r["site"] == "own"]
    assert {(r["id"], r["row"], r["column"]) for r in own} == {
        (p.id, *ERRORS.error_site(p, y)) for p, y in zip(PROBLEMS, own_first) if ERRORS.error_site(p, y)}
    assert {r["row"] for r in own} == {"sum_slip"} and len(own) == len(PROBLEMS[::3])
    without = matrix_first_attempts(ERRORS, PROBLEMS, BASE_FIRST, seed=7)
    assert [r for r in rows if r["site"] != "own"] == without  # the other rows are unchanged
    policy = FakePolicy(TASK, first=None, revise=lambda p, y1: TASK.write(p))
    summary, _ = correction_matrix(policy, TASK, PROBLEMS, BASE_FIRST, Sampling(), seed=7, n_problems=150,
                                   own_first_attempts=own_first)
    assert summary["n"]["sum_slip"]["own"] == 50 and summary["fix_rate"]["sum_slip"]["own"] == 1.0
    assert "base / own / random" in matrix_line(summary)
