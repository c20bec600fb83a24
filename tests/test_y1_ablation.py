"""The first-attempt ablation: a policy that fixes what it reads loses its gain on a swapped y1; a second
solver that ignores y1 keeps it."""

from __future__ import annotations

import pytest

from fake_policy import FakePolicy
from selfcorrect.evaluation.y1_ablation import CONDITIONS, ablation_line, derangement, summarize_y1_ablation, y1_ablation
from selfcorrect.models.policy import Sampling
from selfcorrect.tasks import make_error_model
from selfcorrect.tasks.arithmetic import ArithmeticTask

TASK = ArithmeticTask()
ERRORS = make_error_model(TASK)
GREEDY = Sampling(0.0, 64)


def wrong(p) -> str:
    return f"no answer for {p.id}"  # the policy's own wrong first attempt on p (not well formed: wrong)


def run(revise, n=12, base=True):
    problems = TASK.problems("test", n, seed=0)
    policy = FakePolicy(TASK, first=wrong, revise=revise)
    own_first = [wrong(p) for p in problems]
    own_second = [revise(p, y1) for p, y1 in zip(problems, own_first)]
    base_first = [ERRORS.correct_attempt(p) for p in problems] if base else None
    return y1_ablation(policy, TASK, problems, own_first, own_second, base_first, GREEDY, seed=3, n_problems=n)


def test_a_corrector_loses_its_gain_on_a_swapped_first_attempt():
    def corrector(p, y1):  # fixes its own attempt on p, copies anything else
        return ERRORS.correct_attempt(p) if y1 == wrong(p) else y1

    summary, records = run(corrector)
    assert summary["own"]["acc_t2"] == 1.0 and summary["own"]["fix_rate"] == 1.0
    assert summary["swapped"]["acc_t2"] == 0.0 and summary["drop_swapped"] == 1.0
    assert summary["base"]["acc_t2"] == 1.0 and summary["base"]["break_rate"] == 0.0  # the base's y1 is right here: kept
    assert summary["none"]["acc_t2"] == 0.0 and summary["none"]["break_rate"] is None
    assert summarize_y1_ablation(records) == summary  # the records recompute the summary
    assert {r["condition"] for r in records} == set(CONDITIONS) and len(records) == 4 * 12
    assert all(r["y1_from"] != i for i, r in enumerate(r for r in records if r["condition"] == "swapped"))
    assert ablation_line(summary).endswith("own − swapped +1.000")


def test_a_second_solver_keeps_its_gain_whatever_it_is_shown():
    summary, _ = run(lambda p, y1: ERRORS.correct_attempt(p), base=False)
    assert summary["own"]["acc_t2"] == summary["swapped"]["acc_t2"] == summary["none"]["acc_t2"] == 1.0
    assert summary["drop_swapped"] == 0.0 and "base" not in summary


def test_the_derangement_moves_every_problem_and_is_seeded():
    for n in (2, 3, 17):
        partner = derangement(n, seed=5)
        assert sorted(partner) == list(range(n)) and all(partner[i] != i for i in range(n))
    assert derangement(17, 5) == derangement(17, 5) != derangement(17, 6)
    with pytest.raises(ValueError, match="at least 2 problems, got 1"):
        derangement(1, 0)


def test_bad_sizes_are_named():
    problems = TASK.problems("test", 3, seed=0)
    policy = FakePolicy(TASK, first=wrong, revise=lambda p, y1: y1)
    with pytest.raises(ValueError, match="n_problems must be a positive integer, got 0"):
        y1_ablation(policy, TASK, problems, ["a"] * 3, ["b"] * 3, None, GREEDY, seed=0, n_problems=0)
    with pytest.raises(ValueError, match="2 own first, 3 own second"):
        y1_ablation(policy, TASK, problems, ["a"] * 2, ["b"] * 3, None, GREEDY, seed=0, n_problems=3)


def test_the_one_policy_runs_every_condition_with_an_empty_first_attempt_too():
    from conftest import random_char_policy

    policy = random_char_policy(TASK)
    problems = TASK.problems("test", 4, seed=0)
    episodes = policy.two_turn(problems, Sampling(0.0, 8), seed=0)
    summary, records = y1_ablation(policy, TASK, problems, [e.y1 for e in episodes], [e.y2 for e in episodes],
                                   [ERRORS.correct_attempt(p) for p in problems], Sampling(0.0, 8), seed=0, n_problems=4)
    assert [summary[c]["n"] for c in CONDITIONS] == [4, 4, 4, 4]
    # the own condition's second attempts, regenerated from its first attempts, are the evaluation's
    again = policy.two_turn(problems, Sampling(0.0, 8), seed=0, first_attempts=[e.y1 for e in episodes])
    assert [e.y2 for e in again] == [e.y2 for e in episodes]


def test_the_table_reads_which_arms_read_y1_over_seeds():
    from types import SimpleNamespace

    import pandas as pd

    from selfcorrect.analysis.y1_ablation import y1_ablation_markdown, y1_ablation_table

    def run(label, seed, t1, own, swapped):
        return {"label": label, "seed": seed, "y1_ablation/own/shown_right": t1, "y1_ablation/own/acc_t2": own,
                "y1_ablation/swapped/acc_t2": swapped, "y1_ablation/none/acc_t2": swapped}

    rows = [run("score", s, 0.5, 0.6 + 0.01 * s, 0.5) for s in range(3)]            # gains only with its own y1
    rows += [run("star_plus", s, 0.5, 0.6 + 0.01 * s, 0.6 + 0.01 * s) for s in range(3)]  # gains whatever it is shown
    rows += [run("base", s, 0.5, 0.5 + 0.01 * (s - 1), 0.5) for s in range(3)]       # no gain either way
    sweep = SimpleNamespace(runs=pd.DataFrame(rows), labels=["base", "star_plus", "score"])
    table = y1_ablation_table(sweep).set_index("label")
    assert table.loc["score", "reading"] == "reads y1" and table.loc["star_plus", "reading"] == "second solver"
    assert table.loc["base", "reading"] == "not separated"
    assert abs(table.loc["score", "drop"] - 0.11) < 1e-12 and table.loc["score", "seeds"] == 3
    assert "| reads y1 |" in y1_ablation_markdown(table.reset_index())
    assert y1_ablation_table(SimpleNamespace(runs=pd.DataFrame([{"label": "base", "seed": 0}]), labels=["base"])).empty
