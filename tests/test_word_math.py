"""The generated word-problem task: generator, seeded draws, splits, the math-verify checker, the
error taxonomy on hand-made attempts, and the teacher's error model."""

from __future__ import annotations

import random

import pytest

from selfcorrect.tasks import make_error_model, make_task
from selfcorrect.tasks.word_math import REVISION_BEHAVIOURS, STEP_TEMPLATES, WORKED_EXAMPLE, WordMathTask, equations, skeleton

from conftest import compose_config


@pytest.fixture(scope="module")
def task() -> WordMathTask:
    return WordMathTask(n_steps=2, max_number=20, operations=("add", "sub", "mul"))


# --- generator -------------------------------------------------------------------------------------
def test_problems_follow_the_knobs_and_their_answers_are_the_chain(task):
    problems = task.problems("train", 300, seed=0)
    assert len({p.id for p in problems}) == 300
    ops_seen = set()
    for p in problems:
        start, steps = p.meta["start"], p.meta["steps"]
        assert len(steps) == 2 and 2 <= start <= 20
        total = start
        for op, n in steps:
            ops_seen.add(op)
            assert 2 <= n <= (5 if op == "mul" else 20)
            total = {"add": total + n, "sub": total - n, "mul": total * n}[op]
            assert total >= 1
        assert p.answer == str(total) and p.meta["values"][-1] == total
        assert p.id.startswith(skeleton(start, steps) + "#")
        assert f"has {start} {p.meta['items']}." in p.prompt and p.prompt.endswith("have now?")
    assert ops_seen == {"add", "sub", "mul"}


def test_one_step_addition_only():
    t = WordMathTask(n_steps=1, max_number=10, operations=["add"])
    for p in t.problems("test", 50, seed=3):
        (op, n), = p.meta["steps"]
        assert op == "add" and int(p.answer) == p.meta["start"] + n <= 20


def test_draws_are_reproducible_and_depend_on_the_seed(task):
    a = task.problems("test", 40, seed=7)
    b = WordMathTask(n_steps=2, max_number=20, operations=("add", "sub", "mul")).problems("test", 40, seed=7)
    assert [(p.id, p.prompt, p.answer) for p in a] == [(p.id, p.prompt, p.answer) for p in b]
    assert [p.id for p in task.problems("test", 40, seed=8)] != [p.id for p in a]
    # a different difficulty is a different stream
    assert [p.id for p in WordMathTask(n_steps=2, max_number=30, operations=("add", "sub", "mul")).problems("test", 40, seed=7)] != [p.id for p in a]


def test_splits_never_share_a_skeleton(task):
    skeletons = {}
    for split, n in (("train", 400), ("val", 100), ("test", 200)):
        ps = task.problems(split, n, seed=0)
        assert all(task.split_of(p.id) == split for p in ps)
        skeletons[split] = {p.id.split("#")[0] for p in ps}
    assert not skeletons["train"] & skeletons["test"]
    assert not skeletons["train"] & skeletons["val"]
    assert not skeletons["val"] & skeletons["test"]


def test_the_configured_default_has_at_least_200_test_facts_and_disjoint_splits():
    """Issue 24: the default difficulty (conf/task/word_math.yaml) holds >= 200 distinct test
    skeletons, every skeleton is in exactly one split, and 200 test problems are 200 distinct facts."""
    t = make_task(compose_config(["task=word_math", "tracking.mode=disabled"]).task)
    every = t.skeletons()
    by_split = {split: t.skeletons(split) for split in ("train", "val", "test")}
    assert len(by_split["test"]) >= 200 and len(by_split["val"]) >= 100
    # exactly the counts of experiments/word_math_difficulty.md (setting ES, round two)
    assert [len(by_split[s]) for s in ("train", "val", "test")] == [257, 107, 224]
    assert sorted(sum(by_split.values(), [])) == every  # a partition: disjoint, nothing left out
    assert all(t.split_of(k) == split for split, keys in by_split.items() for k in keys)
    problems = t.problems("test", 200, seed=1234)
    assert len({p.id.split("#")[0] for p in problems}) == 200
    assert {p.id.split("#")[0] for p in problems} <= set(by_split["test"])
    # deterministic: a fresh task object draws the same problems, in the same words
    again = make_task(compose_config(["task=word_math", "tracking.mode=disabled"]).task).problems("test", 200, seed=1234)
    assert [(p.id, p.prompt, p.answer) for p in again] == [(p.id, p.prompt, p.answer) for p in problems]


def test_the_worked_example_is_a_train_fact_in_the_verifiers_format():
    """Round two of experiments/word_math_difficulty.md: the default's user prompt holds one solved
    problem (WORKED_EXAMPLE) between the instruction and the problem; its fact 23+4 is a train fact
    (never a val or test one), its solution is right by the task's own verifier and in the error
    model's worked form; without the knob the prompt is round one's, word for word."""
    cfg = compose_config(["task=word_math", "tracking.mode=disabled"]).task
    t = make_task(cfg)
    assert t.worked_example == WORKED_EXAMPLE
    assert t.split_of("23+4") == "train"
    example = t.make_problem(23, [("add", 4)])
    head, solution = WORKED_EXAMPLE.split("\nExample solution:\n")
    # the generator's wording: start sentence, one of its add templates, its question
    assert head == "Example problem:\nTom has 23 pencils. " + STEP_TEMPLATES["add"][2].format(he="he", n=4, items="pencils") + (
        " How many pencils does Tom have now?")
    verdict = t.verify(example, solution)
    assert verdict.correct and verdict.well_formed and verdict.answer == "27"
    worked = make_error_model(t).correct_attempt(example)  # "<name> starts with 23 <items>.\n23 + 4 = 27\nFinal Answer: 27"
    assert solution == worked.replace(example.meta["name"], "Tom").replace(example.meta["items"], "pencils")
    p = t.problems("test", 1, seed=0)[0]
    prompt = t.user_prompt(p)
    assert prompt == f"{t.instruction}\n\n{WORKED_EXAMPLE}\n\nProblem:\n{p.prompt}"
    assert prompt.index(WORKED_EXAMPLE) < prompt.index(p.prompt)
    for none in ("", None):
        plain = WordMathTask(**{**{k: v for k, v in dict(cfg).items() if k != "name"}, "worked_example": none})
        assert plain.user_prompt(p) == f"{t.instruction}\n\nProblem:\n{p.prompt}"
    with pytest.raises(ValueError, match="worked_example must be a string"):
        WordMathTask(worked_example=3)


def test_skeletons_are_the_generators_support():
    """The old default (1 step, numbers <= 10, +/-) had 117 facts, 18 of them in test (issue 24's
    complaint); `skeletons` counts them, and every drawn problem is one of them."""
    old = WordMathTask(n_steps=1, max_number=10, operations=("add", "sub"))
    assert len(old.skeletons()) == 117
    assert [len(old.skeletons(s)) for s in ("train", "val", "test")] == [89, 10, 18]
    t = WordMathTask(n_steps=2, max_number=12, max_operand=5, operations=("add", "sub", "mul"))
    every = set(t.skeletons())
    drawn = {p.id.split("#")[0] for split in ("train", "test") for p in t.problems(split, 300, seed=0)}
    assert drawn <= every
    with pytest.raises(ValueError, match="too many to list"):
        WordMathTask(n_steps=4, max_number=1000).skeletons()


def test_max_operand_bounds_the_step_numbers_only():
    t = WordMathTask(n_steps=1, max_number=99, max_operand=5, operations=("add", "sub"))
    ps = t.problems("train", 200, seed=0)
    assert all(2 <= n <= 5 for p in ps for _, n in p.meta["steps"])
    assert max(p.meta["start"] for p in ps) > 50
    # no skeleton repeats while the split has unused ones
    assert len({p.id.split("#")[0] for p in ps}) == 200
    # a split smaller than n: its skeletons come back in other words
    small = WordMathTask(n_steps=1, max_number=6, operations=("add",))
    n_test = len(small.skeletons("test"))
    ps = small.problems("test", n_test + 5, seed=0)
    assert len({p.id for p in ps}) == n_test + 5 and len({p.id.split("#")[0] for p in ps}) == n_test


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"max_operand": 1}, "max_operand must be an integer in 2..1000"),
        ({"n_steps": 0}, "n_steps must be an integer in 1..4, got 0"),
        ({"max_number": 2}, "max_number must be an integer in 3..1000, got 2"),
        ({"operations": ["add", "pow"]}, r"operations must be distinct names .* got \['add', 'pow'\]"),
        ({"split_fractions": {"train": 0.9, "test": 0.2}}, "must sum to 1"),
        ({"prompt_template": "no slot"}, "must contain"),
    ],
)
def test_bad_settings_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        WordMathTask(**kwargs)


def test_asking_for_more_problems_than_exist_is_an_error():
    t = WordMathTask(n_steps=1, max_number=3, operations=["add"])  # skeletons 2+2 .. 3+3
    with pytest.raises(ValueError, match="cannot draw n=5000 distinct 'test' problems"):
        t.problems("test", 5000, seed=0)
    with pytest.raises(ValueError, match="unknown or empty split 'dev'"):
        t.problems("dev", 5, seed=0)


def test_registered_and_composed_from_its_config():
    cfg = compose_config(["task=word_math", "tracking.mode=disabled"])
    t = make_task(cfg.task)
    assert isinstance(t, WordMathTask) and t.name == "word_math"
    assert cfg.eval.max_new_tokens >= 96  # a worked solution does not fit the arithmetic default of 32
    assert "Final Answer" in t.user_prompt(t.problems("test", 1, seed=0)[0])
    assert "might be an error in the solution above" in t.revise_instruction


# --- verifier ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def chain() -> tuple[WordMathTask, object]:
    """9 + 6 - 4: running totals 15, 11."""
    t = WordMathTask(n_steps=2, max_number=20, operations=("add", "sub", "mul"))
    return t, t.make_problem(9, [("add", 6), ("sub", 4)])


@pytest.mark.parametrize(
    "attempt, correct, well_formed",
    [
        ("9 + 6 = 15\n15 - 4 = 11\nFinal Answer: 11", True, True),
        ("Final Answer: Mia has 11 apples.", True, True),
        ("Final Answer: The final answer is $11$. I hope it is correct.", True, True),
        ("final answer: 11.0", True, True),
        ("So she has 9 + 6 - 4 = 11 now. The answer is 11.", True, False),  # no Final Answer line
        ("Final Answer: 12", False, True),
        ("Final Answer: 11\nFinal Answer: 12", False, True),  # the last one counts
    ],
)
def test_math_verify_checks_the_final_answer(chain, attempt, correct, well_formed):
    t, p = chain
    v = t.verify(p, attempt)
    assert (v.correct, v.well_formed) == (correct, well_formed)
    assert (v.error_type is None) == correct


@pytest.mark.parametrize(
    "attempt, error_type",
    [
        ("I do not know.", "no_answer"),
        ("Final Answer: eleven", "no_answer"),
        ("9 + 6 = 16\n16 - 4 = 12\nFinal Answer: 12", "arithmetic_slip@1"),
        ("9 + 6 = 15\n15 - 4 = 10\nFinal Answer: 10", "arithmetic_slip@2"),
        ("9 + 6 - 4 = 12\nFinal Answer: 12", "arithmetic_slip@1"),  # a chained left side
        ("9 + 6 = 15\n15 - 4 = 11\n11 + 1 = 13\nFinal Answer: 13", "arithmetic_slip@2"),  # past the chain: its last operation
        ("9 + 6 = 15\n15 + 4 = 19\nFinal Answer: 19", "wrong_operation@2"),
        ("9 - 6 = 3\n3 - 4 = -1\nFinal Answer: -1", "wrong_operation@1"),
        ("Final Answer: 6", "copied_number@1"),
        ("Final Answer: 9", "copied_number@0"),
        ("9 + 6 = 15\nFinal Answer: 15", "stopped_early@1"),
        ("9 - 4 = 5\nFinal Answer: 5", "skipped_step@1"),
        ("9 + 8 = 17\n17 - 4 = 13\nFinal Answer: 13", "misread_number@1"),
        ("Final Answer: 100", "wrong_answer"),
    ],
)
def test_error_taxonomy_on_hand_made_attempts(chain, attempt, error_type):
    t, p = chain
    v = t.verify(p, attempt)
    assert not v.correct
    assert v.error_type == error_type
    assert v.error_kind == error_type.split("@")[0]


def test_misread_needs_the_number_written_somewhere(chain):
    """13 = 9 + 8 - 4, but with no 8 in the attempt (and none in the story) it is unexplained."""
    t, p = chain
    assert t.verify(p, "Final Answer: 13").error_type == "wrong_answer"


def test_equations_are_read_with_their_operators():
    assert equations("Step 1: 3 x 4 = 12, then 12 ÷ 3 = 4 and 2 * 5 = 11.") == [(12, 12), (4, 4), (10, 11)]
    # a run-on chain "a + b = c + d = e": the middle one is not an equation with a number on the right
    assert equations("7 + 5 = 12 + 3 = 15") == [(15, 15)]
    assert equations("Mia has 7 apples = no equation") == []


# --- the error model (teacher traces, correction matrix) -------------------------------------------------
def test_the_error_model_injects_exactly_the_error_it_names_at_each_site(task):
    errors = make_error_model(task)
    assert errors.kinds == ("wrong_operation", "arithmetic_slip", "misread_number")
    for p in task.problems("train", 40, seed=1):
        right = errors.correct_attempt(p)
        v = task.verify(p, right)  # through math-verify, not the error model's own reading
        assert v.correct and v.well_formed and all(lhs == rhs for lhs, rhs in equations(right))
        assert errors.error_site(p, right) is None
        for kind in errors.kinds:
            sites = errors.sites(p, kind)
            assert sites, (p.id, kind)
            for site in sites:
                y = errors.inject(p, kind, site)
                assert y == errors.inject(p, kind, site)  # fixed by (problem, kind, site)
                assert task.verify(p, y).error_type == f"{kind}@{site}", (p.id, y)
                assert errors.error_site(p, y) == (kind, site)
                assert y.splitlines()[0] == right.splitlines()[0] or (kind, site) == ("misread_number", 0)


def test_every_wrong_operation_or_slip_the_verifier_names_can_be_injected(chain):
    """The correction matrix injects the base's own first error where it erred: every site the
    verifier gives these kinds must be one the error model can write (negative and decimal totals
    included)."""
    t, p = chain  # 9 + 6 - 4
    errors = make_error_model(t)
    for attempt, site in [("9 - 6 = 3\n3 - 4 = -1\nFinal Answer: -1", ("wrong_operation", 1)),
                          ("9 + 6 = 15\n15 ÷ 4 = 3.75\nFinal Answer: 3.75", ("wrong_operation", 2)),
                          ("9 + 6 = 15\n15 - 4 = 11\n11 - 4 = 8\n8 + 1 = 10\nFinal Answer: 10", ("arithmetic_slip", 2))]:
        assert errors.error_site(p, attempt) == site
        assert site[1] in errors.sites(p, site[0])
        assert t.verify(p, errors.inject(p, *site)).error_type == "@".join(map(str, site))


def test_injections_on_a_known_chain(chain):
    t, p = chain  # 9 + 6 - 4
    errors = make_error_model(t)
    assert errors.correct_attempt(p) == "Ava starts with 9 cookies.\n9 + 6 = 15\n15 - 4 = 11\nFinal Answer: 11".replace(
        "Ava", p.meta["name"]).replace("cookies", p.meta["items"])
    assert errors.sites(p, "wrong_operation") == [1, 2] and errors.sites(p, "misread_number") == [0, 1, 2]
    y = errors.inject(p, "arithmetic_slip", 2, random.Random(0))
    assert y.splitlines()[1:3] == ["9 + 6 = 15", y.splitlines()[2]] and y.splitlines()[2] in {
        "15 - 4 = 1", "15 - 4 = 10", "15 - 4 = 12", "15 - 4 = 21"}
    with pytest.raises(ValueError, match="no 'wrong_operation' site at 3"):
        errors.inject(p, "wrong_operation", 3)
    with pytest.raises(ValueError, match="unknown error kind 'typo'"):
        errors.sites(p, "typo")


def test_teacher_cells_and_traces_follow_the_error_model(task):
    from selfcorrect.training.offline.traces import error_histogram, teacher_traces

    errors = make_error_model(task)
    assert errors.teacher_cells("mixed") == {k: 1.0 for k in errors.kinds}
    assert errors.teacher_cells("base_like", {"wrong_operation@1": 3, "copied_number@0": 5, "no_answer": 2}) == {"wrong_operation@1": 3.0}
    with pytest.raises(ValueError, match="unknown arm.error_model 'carry_drop' for word_math"):
        errors.teacher_cells("carry_drop")
    with pytest.raises(ValueError, match="can be written"):
        errors.teacher_cells("base_like", {"copied_number@0": 5})
    pool = task.problems("train", 200, seed=0)
    for model in ("mixed", "wrong_operation"):
        traces = teacher_traces(errors, pool, errors.teacher_cells(model), 300, random.Random(0))
        hist = error_histogram(task, [t["problem"] for t in traces], [t["y1"] for t in traces])
        assert sum(hist.values()) == 300 and set(hist) == ({"wrong_operation"} if model == "wrong_operation" else set(errors.kinds))
        if model == "mixed":
            assert min(hist.values()) > 70  # about 100 each
        assert all(task.verify(t["problem"], t["y2"]).correct for t in traces)
    site_cells = errors.teacher_cells("base_like", {"misread_number@2": 1, "arithmetic_slip@1": 1})
    traces = teacher_traces(errors, pool, site_cells, 100, random.Random(1))
    assert set(errors.site_histogram([t["problem"] for t in traces], [t["y1"] for t in traces])) == {"misread_number@2", "arithmetic_slip@1"}


def test_random_digit_changes_one_digit_of_the_final_answer_only(task):
    errors = make_error_model(task)
    rng = random.Random(0)
    for p in task.problems("train", 50, seed=2):
        right, y = errors.correct_attempt(p), errors.write(p, "random_digit", rng)
        assert not task.verify(p, y).correct
        assert y.splitlines()[:-1] == right.splitlines()[:-1]
        answer = y.splitlines()[-1].split(": ")[1]
        assert len(answer) == len(p.answer) and sum(a != b for a, b in zip(answer, p.answer)) == 1 and answer[0] != "0"


# --- how the second attempt revised the first ---------------------------------------------------
@pytest.mark.parametrize(
    "y1, y2, behaviour",
    [
        # 9 + 6 - 4 = 11
        ("9 + 6 = 15\n15 - 4 = 11\nFinal Answer: 11", "9 + 6 = 15\n15 - 4 = 11\n\nFinal Answer:  11 ", "repeat"),
        ("9 + 6 = 16\n16 - 4 = 12\nFinal Answer: 12", "I am not sure.", "malformed"),
        ("9 + 6 = 16\n16 - 4 = 12\nFinal Answer: 12", "Final Answer: twelve", "malformed"),
        ("9 + 6 = 15\n15 - 4 = 11\nFinal Answer: 11", "She has 9 + 6 - 4 = 11 apples.\nFinal Answer: 11.0", "same_answer_rewritten"),
        ("9 + 6 = 15\n15 - 4 = 11\nSo she has 11 apples.", "Mia had 9, got 6 (15) and gave 4: 11 left.", "same_answer_rewritten"),
        ("9 + 6 = 15\n15 - 4 = 10\nFinal Answer: 10", "9 + 6 = 15\n15 - 4 = 10\nFinal Answer: 11", "answer_only_changed"),
        ("9 + 6 = 15\n15 - 4 = 10\nSo she has 10 apples.", "9 + 6 = 15\n15 - 4 = 10\nSo she has 11 apples.", "answer_only_changed"),
        ("Final Answer: 6", "Final Answer: 11", "answer_only_changed"),
        ("9 + 6 = 15\nFinal Answer: 15", "9 + 6 = 15\n15 - 4 = 11\nFinal Answer: 11", "rewrite"),
        ("I do not know.", "9 + 6 - 4 = 11\nFinal Answer: 11", "rewrite"),
    ],
)
def test_revision_behaviour_on_hand_made_pairs(chain, y1, y2, behaviour):
    t, p = chain
    assert t.revision_behaviour(p, y1, y2) == behaviour
    assert behaviour in t.revision_behaviours == REVISION_BEHAVIOURS


def test_revision_behaviour_never_raises_and_is_deterministic(chain):
    t, p = chain
    garbage = ["", "\x00\x01", "Final Answer:", "Final Answer: $\\frac{", "1/0 = ", "9" * 400, None, 12, "= = =", "Final Answer: 1e999"]
    for y1 in garbage:
        for y2 in garbage:
            label = t.revision_behaviour(p, y1, y2)
            assert label in REVISION_BEHAVIOURS and label == t.revision_behaviour(p, y1, y2)
    assert t.revision_behaviour(p, "Final Answer: 11", None) == "malformed"
