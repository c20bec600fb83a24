"""task=reasoning_gym (docs/preregistration/2026-12-07_reasoning_gym_task_selection.md): splits by
question hash, deterministic draws, the pre-registered prompt (system message + worked example as
chat turns), the verifier (a "Final Answer:" line, else the last number; the dataset's own scorer,
partial credit wrong), the error model without error kinds, and the selection script's rule."""

from __future__ import annotations

import importlib.util
import json
import random
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from selfcorrect.evaluation.correction_matrix import correction_matrix, matrix_line
from selfcorrect.evaluation.mechanisms.self_conditioning import self_conditioning
from selfcorrect.models.policy import Sampling
from selfcorrect.models.prompts import conversation
from selfcorrect.tasks import make_error_model, make_task
from selfcorrect.tasks.base import Problem
from selfcorrect.tasks.reasoning_gym import MIN_TEST_PROBLEMS, STOP, ReasoningGymTask, extract_answer

from conftest import compose_config
from fake_policy import FakePolicy

ROOT = Path(__file__).resolve().parents[1]
CHAIN_SUM = {"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 2}
# the pre-registration's candidates of the other datasets (first of each)
OTHERS = {
    "leg_counting": {"min_animals": 1, "max_animals": 2, "min_instances": 1, "max_instances": 5},
    "basic_arithmetic": {"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 2, "operators": ["+", "-", "*"],
                         "allow_parentheses": False, "allow_negation": False},
    "letter_counting": {"min_words": 3, "max_words": 5},
    "gcd": {"min_value": 1, "max_value": 50},
}


def small(dataset: str = "chain_sum", knobs: dict | None = None, **kw) -> ReasoningGymTask:
    return ReasoningGymTask(dataset=dataset, knobs=CHAIN_SUM if knobs is None else knobs, pool_size=400, **kw)


@pytest.fixture(scope="module")
def task() -> ReasoningGymTask:
    return small()


# --- problems and splits ---------------------------------------------------------------------------------
def test_splits_are_disjoint_deterministic_and_distinct(task):
    pool = task.pool()
    ids = {s: [p.id for p in pool[s]] for s in ("train", "val", "test")}
    assert all(ids.values()) and sum(map(len, ids.values())) == len(set().union(*map(set, ids.values())))
    questions = [p.prompt for s in pool.values() for p in s]
    assert len(questions) == len(set(questions))  # de-duplicated by question text
    again = small().pool()
    assert {s: [p.id for p in again[s]] for s in ids} == ids
    # a question's split does not depend on the pool: a larger pool keeps every split of the smaller one
    larger = ReasoningGymTask(knobs=CHAIN_SUM, pool_size=800).pool()
    where = {p.id: s for s, ps in larger.items() for p in ps}
    assert all(where[i] == s for s, group in ids.items() for i in group)
    assert task.split_sizes() == {s: len(v) for s, v in ids.items()}


def test_the_default_config_has_at_least_500_distinct_test_problems():
    cfg = compose_config(["task=reasoning_gym"])
    task = make_task(cfg.task)
    assert task.dataset == "chain_sum" and task.knobs == CHAIN_SUM and task.pool_size == 20000
    assert task.split_sizes()["test"] >= MIN_TEST_PROBLEMS


def test_draws_are_deterministic_nested_and_refuse_more_than_the_split_holds(task):
    a, b = task.problems("val", 20, seed=0), task.problems("val", 20, seed=0)
    assert a == b and len({p.id for p in a}) == 20 and task.problems("val", 10, seed=0) == a[:10]
    assert task.problems("val", 20, seed=1) != a
    assert {p.id for p in a} <= {p.id for p in task.pool()["val"]}
    size = task.split_sizes()["test"]
    with pytest.raises(ValueError, match=rf"n={size + 1} problems from split 'test': it holds {size} distinct"):
        task.problems("test", size + 1, seed=0)
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        task.problems("dev", 1, seed=0)


def test_problems_carry_a_stable_id_the_gold_answer_and_a_json_entry(task):
    p = task.problems("test", 1, seed=0)[0]
    assert p.id.startswith("rg:chain_sum:") and p.answer == p.meta["entry"]["answer"]
    assert p.meta["entry"]["question"] == p.prompt
    back = Problem(**json.loads(json.dumps(p.__dict__)))  # survives a file: the verifier reads only meta
    assert task.verify(back, f"Final Answer: {p.answer}").correct


# --- prompts ------------------------------------------------------------------------------------------------
def test_the_conversation_has_system_and_example_turns_then_the_problem_then_attempt_and_revise(task):
    p = task.problems("test", 1, seed=0)[0]
    example = task.pool()["train"][0]
    msgs = conversation(task, p, ["Final Answer: 3"])
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert msgs[0]["content"] == 'Solve the problem. End your reply with the line "Final Answer: <answer>".'
    assert msgs[1]["content"] == example.prompt and msgs[2]["content"] == f"Final Answer: {example.answer}"
    assert msgs[3]["content"] == p.prompt and msgs[4]["content"] == "Final Answer: 3"
    assert msgs[5]["content"] == task.revise_instruction and task.revise_instruction.startswith(
        "There might be an error in the solution above because of lack of understanding of the question. "
        "Please correct the error, if any, and rewrite the solution.")
    assert [m["role"] for m in conversation(small(worked_example=False), p)] == ["system", "user"]
    assert task.stop == STOP == ("\nProblem:", "\nQuestion:", "<|im_start|>")


def test_a_task_without_prefix_messages_keeps_its_conversation():
    arithmetic = make_task(OmegaConf.create({"name": "arithmetic"}))
    p = arithmetic.problems("test", 1, seed=0)[0]
    assert arithmetic.prefix_messages is None and arithmetic.stop == ()
    assert conversation(arithmetic, p, ["y"]) == [{"role": "user", "content": arithmetic.user_prompt(p)},
                                                 {"role": "assistant", "content": "y"},
                                                 {"role": "user", "content": arithmetic.revise_instruction}]


# --- the verifier ---------------------------------------------------------------------------------------------
def test_the_answer_is_the_last_final_answer_line_else_the_last_number():
    assert extract_answer("12 + 5 = 17\nFinal Answer: 17\nok") == "17"
    assert extract_answer("Final Answer: 3\nFinal Answer:  -4 \nmore 9") == "-4"
    assert extract_answer("The result is 2.5, not -3.") == "-3"
    assert extract_answer("so 3-4 gives 7") == "7" and extract_answer("It is -12.") == "-12"
    assert extract_answer("Final Answer:\nthe sum is 8") == "8"  # an empty answer line reads as absent
    assert extract_answer("I do not know.") is None and extract_answer("") is None


def test_the_verdict_uses_the_datasets_scorer_and_partial_credit_is_wrong():
    task = small("leg_counting", OTHERS["leg_counting"])
    p = next(q for q in task.problems("val", 50, seed=0) if len(q.answer) >= 2)
    assert task.verify(p, f"Let me count.\nFinal Answer: {p.answer}") == task.verify(p, f"So {p.answer} legs.")
    assert task.verify(p, f"Final Answer: {p.answer}").correct
    # the Final Answer line's first number is the answer (the amendment): run-on words and a full stop do not
    # turn a right answer wrong, although the exact-match scorer gives such text partial credit only
    assert 0 < task.score(p, f"{p.answer}.") < 1 and 0 < task.score(p, f"{p.answer} legs") < 1
    for tail in (".", " legs", "Simple Steps:", "**"):
        assert task.verify(p, f"**Final answer:** {p.answer}{tail}").correct, tail
    partial = task.verify(p, "Final Answer: many legs")  # no number on the line: the line itself, partial credit = wrong
    assert 0 <= task.score(p, "many legs") < 1 and (partial.correct, partial.well_formed, partial.error_type) == (False, True, "wrong_answer")
    none = task.verify(p, "Many legs!")
    assert (none.correct, none.well_formed, none.answer, none.error_type) == (False, False, None, "no_answer")


@pytest.mark.parametrize("dataset", ["chain_sum", *OTHERS])
def test_right_answers_score_one_and_wrong_ones_do_not(dataset):
    task = small(dataset, CHAIN_SUM if dataset == "chain_sum" else OTHERS[dataset])
    errors = make_error_model(task)
    for i, p in enumerate(task.problems("val", 10, seed=0)):
        assert task.score(p, p.answer) == 1.0 and task.verify(p, errors.correct_attempt(p)).correct
        wrong = errors.random_digit(p, random.Random(i))
        assert wrong != errors.correct_attempt(p) and task.score(p, wrong.split(": ", 1)[1]) < 1.0
        assert task.verify(p, wrong).error_type == "wrong_answer"


def test_chain_sum_accepts_what_its_scorer_tolerates(task):
    p = next(q for q in task.problems("val", 50, seed=0) if not q.answer.startswith("-"))
    assert task.verify(p, f"Final Answer: +{p.answer}.00").correct  # its decimal scorer: sign, trailing zeros


# --- errors ---------------------------------------------------------------------------------------------------
def test_unknown_dataset_and_bad_knobs_are_clear_errors():
    with pytest.raises(ValueError, match="unknown dataset 'chain_summ'"):
        ReasoningGymTask(dataset="chain_summ")
    with pytest.raises(ValueError, match="dataset 'leg_counting' rejects knobs .*min_terms"):
        ReasoningGymTask(dataset="leg_counting", knobs=CHAIN_SUM)
    with pytest.raises(ValueError, match="pool_size must be an integer >= 1, got 0"):
        ReasoningGymTask(pool_size=0)


def test_the_error_model_has_no_kinds_and_one_teacher():
    task = small()
    errors = make_error_model(task)
    p = task.problems("train", 1, seed=0)[0]
    assert errors.kinds == () and errors.teacher_models == ("random_digit",) and errors.cells(p) == {"random_digit"}
    assert errors.correct_attempt(p) == f"Final Answer: {p.answer}"
    assert errors.write(p, "random_digit", random.Random(0)).startswith("Final Answer: ")
    assert errors.inject_errors(p, 1, random.Random(0)) is None
    assert errors.site_histogram([p, p], ["Final Answer: 1000", "nothing"]) == {"wrong_answer": 1, "no_answer": 1}
    with pytest.raises(ValueError, match="unknown arm.error_model 'wrong_operation' for reasoning_gym"):
        errors.teacher_cells("wrong_operation")
    with pytest.raises(ValueError, match="no injectable error kinds"):
        errors.sites(p, "wrong_answer")


def test_random_digit_refuses_an_answer_without_digits():
    errors = make_error_model(small())
    with pytest.raises(ValueError, match="answers admit no digit error.*sft_teacher.*not applicable"):
        errors.random_digit(Problem("rg:x", "q", "abc", {"entry": {"question": "q", "answer": "abc"}}), random.Random(0))


def test_random_digit_writes_no_new_leading_zero():
    errors = make_error_model(small())
    p = Problem("rg:x", "q", "-18", {"entry": {"question": "q", "answer": "-18"}})
    wrong = {errors.random_digit(p, random.Random(s)) for s in range(200)}
    assert "Final Answer: -08" not in wrong and all(not errors.task.verify(p, w).correct for w in wrong)


def test_the_correction_matrix_has_only_its_keep_row_and_self_conditioning_does_not_apply():
    task = small()
    problems = task.problems("test", 4, seed=0)
    policy = FakePolicy(task, first=lambda p: "Final Answer: 0", revise=lambda p, y1: y1)
    summary, records = correction_matrix(policy, task, problems, ["x"] * 4, Sampling(0.0, 8), seed=0, n_problems=4)
    assert [r["row"] for r in records] == ["correct"] * 4 and summary["keep_rate"] == 1.0 and summary["fix_rate"] == {}
    assert "fix rows not applicable" in matrix_line(summary)
    summary, records = self_conditioning(policy, task, problems, Sampling(0.0, 8), seed=0, n_problems=4)
    assert records == [] and summary["skipped"].startswith("not applicable")


# --- config ---------------------------------------------------------------------------------------------------
def test_overrides_replace_the_dataset_and_all_its_knobs():
    cfg = compose_config(["task=reasoning_gym", "task.dataset=leg_counting", "task.knobs={min_animals:1,max_animals:2}",
                          "task.pool_size=300"])
    assert OmegaConf.to_container(cfg.task.knobs) == {"min_animals": 1, "max_animals": 2}
    task = make_task(cfg.task)
    assert task.dataset == "leg_counting" and task.problems("val", 3, seed=0)[0].id.startswith("rg:leg_counting:")
    eval_cfg = compose_config(["task=reasoning_gym"]).eval
    assert (eval_cfg.n_problems, eval_cfg.n_monitor, eval_cfg.max_new_tokens) == (500, 64, 128)
    assert eval_cfg.correction_matrix.n_problems == eval_cfg.self_conditioning.n_problems == 64


# --- the selection script -----------------------------------------------------------------------------------
def selection_module():
    spec = importlib.util.spec_from_file_location("reasoning_gym_selection", ROOT / "experiments" / "reasoning_gym_selection.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_the_selection_candidates_compose_and_the_rule_follows_the_preregistration():
    sel = selection_module()
    assert [c.dataset for c in sel.CANDIDATES] == ["chain_sum"] * 3 + ["leg_counting"] * 2 + ["basic_arithmetic", "letter_counting", "gcd"]
    cfg = sel.compose_candidate(sel.CANDIDATES[5])
    assert OmegaConf.to_container(cfg.task.knobs) == OTHERS["basic_arithmetic"]
    assert "model.engine=vllm" in sel.overrides(sel.CANDIDATES[0], engine="vllm")
    assert not any(o.startswith("model.engine") for o in sel.overrides(sel.CANDIDATES[0], engine=None))

    def row(i, acc, p1, p4, trunc, eligible=True):
        return {"candidate": i, "acc_t1": acc, "pass1": p1, "pass4": p4, "truncation": trunc, "eligible": eligible}

    rows = [row(1, 0.20, 0.2, 0.5, 0.0), row(2, 0.40, 0.3, 0.35, 0.0), row(3, 0.50, 0.3, 0.5, 0.0), row(4, 0.45, 0.3, 0.5, 0.0)]
    assert sel.choose(rows)["candidate"] == 3  # the first in order that passes all three
    rows = [row(1, 0.20, 0.2, 0.5, 0.0), row(2, 0.70, 0.3, 0.5, 0.0), row(3, 0.44, 0.3, 0.32, 0.0), row(4, 0.30, 0.3, 0.5, 0.2)]
    assert sel.choose(rows)["candidate"] == 2  # none passes all: closest to 45 % among those passing gap and truncation
    rows = [row(1, 0.20, 0.2, 0.25, 0.0), row(2, 0.50, 0.3, 0.3, 0.0), row(3, 0.45, 0.3, 0.5, 0.0, eligible=False)]
    assert sel.choose(rows)["candidate"] == 2  # none passes the other two: closest to 45 % overall (eligible only)


def test_truncation_is_the_cap_without_eos_or_stop():
    sel = selection_module()
    from selfcorrect.models.policy import Turn

    assert sel.truncated(Turn([], [5] * 4, "a b c d"), max_new_tokens=4, eos_ids=[0], stop=STOP)
    assert not sel.truncated(Turn([], [5, 5, 5, 0], "a b c"), max_new_tokens=4, eos_ids=[0], stop=STOP)
    assert not sel.truncated(Turn([], [5] * 3, "a b c"), max_new_tokens=4, eos_ids=[0], stop=STOP)
    assert not sel.truncated(Turn([], [5] * 4, "a\nProblem: b"), max_new_tokens=4, eos_ids=[0], stop=STOP)
    assert sel.cut_at_stop("Final Answer: 3\nQuestion: 1+1?\nFinal Answer: 2", STOP) == "Final Answer: 3"


def test_the_constant_answer_check_finds_a_guessing_model():
    sel = selection_module()

    def attempt(gold, said):
        return {"gold": gold, "greedy": {"answer": said}}

    rows = [attempt("1", "1")] * 6 + [attempt("2", "1")] * 3 + [attempt("3", "2")]
    check = sel.constant_answer_check(rows)
    assert check == {"majority_answer": "1", "majority_share": 0.6, "greedy_mode": "1", "greedy_mode_share": 0.9}


def test_round_2_rule_adds_the_constant_answer_criteria_and_has_no_fallback():
    sel = selection_module()
    assert [c.number for c in sel.CANDIDATES_ROUND_2] == [9, 10, 11, 12, 13]
    assert {c.number for c in sel.CANDIDATES}.isdisjoint(c.number for c in sel.CANDIDATES_ROUND_2)
    sel.compose_candidate(sel.CANDIDATES_ROUND_2[-1])  # the knobs compose

    def row(i, acc, majority, mode, eligible=True):
        return {"candidate": i, "acc_t1": acc, "pass1": 0.3, "pass4": 0.5, "truncation": 0.0, "eligible": eligible,
                "majority_share": majority, "greedy_mode_share": mode}

    guessing = row(9, 0.50, 0.45, 0.10)      # in the band, but only 5 points above always giving the majority answer
    constant = row(10, 0.40, 0.05, 0.60)     # one answer on 60 % of the problems
    good = row(11, 0.40, 0.05, 0.20)
    assert sel.choose_round_2([guessing, constant, good])["candidate"] == 11
    none = sel.choose_round_2([guessing, constant, row(11, 0.40, 0.05, 0.20, eligible=False)])
    assert none["candidate"] is None and none["failed"] == {9: ["above_majority"], 10: ["no_constant_answer"], 11: ["eligible"]}
    assert sel.choose([guessing, constant])["candidate"] == 9  # round 1's rule would have taken the guessing one
