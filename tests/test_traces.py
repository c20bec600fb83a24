"""Dataset builders of the offline arms on hand-made samples: which traces are kept and paired
(D vs D+), the teacher error models, probe sets and the JSONL cache."""

import random
from collections import Counter

import pytest

from selfcorrect.evaluation.metrics import total_variation
from selfcorrect.tasks import make_error_model
from selfcorrect.tasks.arithmetic import ArithmeticTask
from selfcorrect.tasks.base import Problem
from selfcorrect.training.offline.traces import (
    cached_traces,
    error_histogram,
    error_model_for,
    pair_sft_traces,
    probe_set,
    star_traces,
    teacher_traces,
)

TASK = ArithmeticTask()
P = TASK.make_problem(357, 468)  # 825
Q = TASK.make_problem(111, 222)  # 333
R = TASK.make_problem(500, 400)  # 900


def sample(problem, y1, c1, y2, c2):
    return {"problem": problem, "y1": y1, "y2": y2, "correct1": c1, "correct2": c2}


# P: one i→c, one c→i. Q: only wrong responses. R: c→c.
SAMPLES = [
    sample(P, "p_wrong1", False, "p_right1", True),
    sample(P, "p_right2", True, "p_wrong2", False),
    sample(Q, "q_wrong1", False, "q_wrong2", False),
    sample(R, "r_right1", True, "r_right2", True),
]


def summary(traces):
    return sorted((t["problem"].id, t["y1"], t["correct1"]) for t in traces)


def test_pair_sft_pairs_every_incorrect_response_with_a_correct_one_of_its_problem():
    traces = pair_sft_traces(SAMPLES, random.Random(0))
    # both wrong responses of P (first and second turn); Q has no correct response → no pair; R none wrong
    assert summary(traces) == [("357+468", "p_wrong1", False), ("357+468", "p_wrong2", False)]
    for t in traces:
        assert t["y2"] in {"p_right1", "p_right2"} and t["correct2"] and t["source"] == "pair_i2c"


def test_pair_sft_draws_the_correct_response_from_both_turns():
    drawn = Counter(pair_sft_traces(SAMPLES[:1] + SAMPLES[1:2], random.Random(s))[0]["y2"] for s in range(200))
    assert set(drawn) == {"p_right1", "p_right2"}  # a second-turn and a first-turn response


def test_pair_sft_first_turn_only_drops_second_turn_negatives():
    traces = pair_sft_traces(SAMPLES, random.Random(0), incorrect_from="first")
    assert summary(traces) == [("357+468", "p_wrong1", False)]
    with pytest.raises(ValueError, match="incorrect_from"):
        pair_sft_traces(SAMPLES, random.Random(0), incorrect_from="second")


def test_pair_sft_plus_adds_correct_to_correct_pairs():
    plus = pair_sft_traces(SAMPLES, random.Random(0), plus=True)
    c2c = [t for t in plus if t["correct1"]]
    assert summary(c2c) == [("357+468", "p_right1", True), ("357+468", "p_right2", True),
                            ("500+400", "r_right1", True), ("500+400", "r_right2", True)]
    right = {"357+468": {"p_right1", "p_right2"}, "500+400": {"r_right1", "r_right2"}}
    assert all(t["y2"] in right[t["problem"].id] and t["correct2"] and t["source"] == "pair_c2c" for t in c2c)
    assert summary([t for t in plus if not t["correct1"]]) == summary(pair_sft_traces(SAMPLES, random.Random(0)))


def test_star_keeps_only_traces_that_revise_incorrect_into_correct():
    assert [(t["y1"], t["y2"]) for t in star_traces(SAMPLES)] == [("p_wrong1", "p_right1")]


def test_star_plus_also_keeps_correct_to_correct_but_never_c2i_or_i2i():
    kept = [(t["y1"], t["y2"]) for t in star_traces(SAMPLES, plus=True)]
    assert kept == [("p_wrong1", "p_right1"), ("r_right1", "r_right2")]


# --- teacher traces (the error models themselves: tests/test_arithmetic_errors.py) ---------------
ERRORS = make_error_model(TASK)
PROBLEMS = TASK.problems("train", 200, seed=0)


def test_carry_drop_teacher_writes_attempts_classified_carry_drop_at_a_valid_site():
    traces = teacher_traces(ERRORS, PROBLEMS, ERRORS.teacher_cells("carry_drop"), 100, random.Random(0))
    sites = Counter()
    for t in traces:
        v = TASK.verify(t["problem"], t["y1"])
        assert not v.correct and v.error_kind == "carry_drop"
        k = int(v.error_type.split("@")[1])
        assert k in TASK.bug_sites(t["problem"], "carry_drop")
        sites[k] += 1
        assert t["y2"] == TASK.write(t["problem"]) and TASK.verify(t["problem"], t["y2"]).correct
        assert t["source"] == "teacher_carry_drop"
    assert len(sites) >= 2  # the site is drawn, not always the same column


def test_teacher_traces_follow_the_cell_weights_over_the_cells_the_pool_admits():
    weights = {"sum_slip": 3, "final_copy": 1, "carry_drop@pair=99,carry=0": 5}  # the last cannot exist
    traces = teacher_traces(ERRORS, PROBLEMS, weights, 2000, random.Random(3))
    hist = error_histogram(TASK, [t["problem"] for t in traces], [t["y1"] for t in traces])
    assert total_variation(hist, {"sum_slip": 3, "final_copy": 1}) < 0.04
    with pytest.raises(ValueError, match="admits any of the teacher's cells"):
        teacher_traces(ERRORS, [TASK.make_problem(111, 222)], {"carry_drop": 1}, 5, random.Random(0))


def test_a_task_without_an_error_model_is_a_clear_error():
    class Other:
        name = "humaneval"

    with pytest.raises(ValueError, match="'humaneval' has no error model"):
        error_model_for(Other())
    assert type(error_model_for(TASK)).__name__ == "ArithmeticErrorModel"


# --- probe sets and caching ----------------------------------------------------------------------
def test_probe_set_takes_wrong_first_attempts_on_distinct_problems():
    traces = pair_sft_traces(SAMPLES, random.Random(0), plus=True)
    off = probe_set("train_fixed", traces, 10, random.Random(0))
    assert [p.id for p in off.problems] == ["357+468"]  # one per problem; correct y1 never
    assert off.attempts[0] in {"p_wrong1", "p_wrong2"}
    assert len(probe_set("x", teacher_traces(ERRORS, PROBLEMS, {"sum_slip": 1}, 300, random.Random(0)), 50, random.Random(0)).problems) == 50
    with pytest.raises(ValueError, match="no trace with a wrong first attempt"):
        probe_set("empty", star_traces(SAMPLES[3:], plus=True), 5, random.Random(0))


def test_cached_traces_build_once_and_read_back_identically(tmp_path):
    calls = []

    def build():
        calls.append(1)
        train = star_traces(SAMPLES, plus=True)
        return {"train": train}, {"train_fixed": probe_set("train_fixed", train, 4, random.Random(0))}, {"n": len(train)}

    spec = {"arm": "star", "seed": 0}
    first = cached_traces(tmp_path, spec, build)
    second = cached_traces(tmp_path, spec, build)
    assert len(calls) == 1 and first[3] == second[3]
    assert second[0]["train"] == star_traces(SAMPLES, plus=True)
    assert isinstance(second[0]["train"][0]["problem"], Problem) and second[0]["train"][0]["problem"].meta == {"a": 357, "b": 468}
    assert second[1]["train_fixed"].attempts == ["p_wrong1"] and second[2]["n"] == 2
    cached_traces(tmp_path, {**spec, "seed": 1}, build)
    assert len(calls) == 2  # another spec, another dataset
