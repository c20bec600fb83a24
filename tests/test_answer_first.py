"""The answer-first testbed: generator, splits, verifier and taxonomy on hand-made attempts, the
error model, the base's pretraining corpus, and the base build's reproducibility."""

import random
from collections import Counter

import pytest
import torch
from transformers import AutoModelForCausalLM

from selfcorrect.models.tiny_model import build_base_model
from selfcorrect.tasks import make_error_model, make_task
from selfcorrect.tasks.answer_first import AnswerFirstTask

from conftest import TINY_OVERRIDES, compose_config

AF = ["task=answer_first", "model=tiny_gpt2_answer_first"]


@pytest.fixture
def task():
    return AnswerFirstTask(n_digits=3, chain_rate=0.4)


# --- generator and splits ---------------------------------------------------------------------------
def test_problems_are_distinct_reproducible_and_in_their_split(task):
    a = task.problems("val", 300, seed=3)
    assert [p.id for p in a] == [p.id for p in task.problems("val", 300, seed=3)]
    assert len({p.id for p in a}) == 300 and all(task.split_of(p.id) == "val" for p in a)
    assert {p.id for p in task.problems("train", 300, seed=3)}.isdisjoint(p.id for p in a)
    for p in a:
        x, y = p.meta["a"], p.meta["b"]
        assert 100 <= x <= 999 and 100 <= y <= 999 and p.answer == str(x + y) and p.prompt == f"{x}+{y}="


def test_chain_rate_sets_how_often_a_columns_digits_sum_to_nine():
    rng = random.Random(0)
    for rate in (0.0, 0.4, 0.9):
        t = AnswerFirstTask(n_digits=3, chain_rate=rate)
        cols = [int(x) + int(y) for a, b in (t.draw_operands(rng) for _ in range(3000))
                for x, y in zip(str(a)[1:], str(b)[1:])]  # the two lower columns (no leading-digit rule)
        nine = sum(s == 9 for s in cols) / len(cols)
        assert abs(nine - (rate + (1 - rate) * 0.1)) < 0.03, (rate, nine)


def test_bad_settings_and_requests_are_refused(task):
    with pytest.raises(ValueError, match="n_digits"):
        AnswerFirstTask(n_digits=9)
    with pytest.raises(ValueError, match="chain_rate"):
        AnswerFirstTask(chain_rate=1.5)
    with pytest.raises(ValueError, match="split"):
        task.problems("dev", 3, seed=0)
    with pytest.raises(ValueError, match="n=0"):
        task.problems("test", 0, seed=0)
    with pytest.raises(ValueError, match="1000"):
        task.make_problem(1000, 5)


def test_the_loader_builds_it_from_config():
    cfg = compose_config([*TINY_OVERRIDES, *AF])
    t = make_task(cfg.task)
    assert isinstance(t, AnswerFirstTask) and t.n_digits == 3 and t.chain_rate == 0.4


# --- the procedure, the verifier and the taxonomy on hand-made attempts -------------------------------
def test_carry_chains_are_where_the_one_step_guess_is_wrong(task):
    p = task.make_problem(357, 468)  # 7+8=15 carries into 5+6+1=12, carries into 3+4+1=8
    assert task.carries(p) == [0, 1, 1, 0] and task.guessed_carries(p) == [0, 1, 1, 0]
    assert task.lookahead_sites(p) == [] and task.one_step_answer(p) == "825"
    q = task.make_problem(152, 248)  # 2+8=10, then 5+4=9 passes the carry on: 400
    assert task.carries(q) == [0, 1, 1, 0] and task.guessed_carries(q) == [0, 1, 0, 0]
    assert task.lookahead_sites(q) == [2] and task.one_step_answer(q) == "300"
    r = task.make_problem(999, 101)  # 9+1 carries through 9+0 and 9+1 ... = 1100
    assert task.lookahead_sites(r) == [2] and task.one_step_answer(r) == "1000"


def test_working_spells_the_answer_and_a_slip_goes_on_consistently(task):
    q = task.make_problem(152, 248)
    assert task.working(q) == "28010 54110 12104"
    assert task.read_answer(task.working(q)) == "400"
    assert task.working(q, slip=0) == "28009 54009 12003"  # total 10 -> 9: no carry any more
    assert task.read_answer(task.working(q, slip=0)) == "399"


def test_only_the_answer_is_graded_and_wrong_answers_are_classified(task):
    q = task.make_problem(152, 248)
    right = task.working(q)
    assert task.verify(q, f"400>{right}").correct
    assert task.verify(q, f"400>{task.working(q, slip=1)}").correct  # wrong working, right answer
    cases = {
        f"300>{right}": "carry_lookahead@2",  # the one-step guess
        f"401>{right}": "digit_slip@0",
        f"410>{right}": "digit_slip@1",
        f"500>{right}": "digit_slip@2",
        f"1400>{right}": "digit_slip@3",
        f"10400>{right}": "length",
        f"400 {right}": "malformed",
        "400>": "malformed",
        f">{right}": "malformed",
    }
    for attempt, kind in cases.items():
        v = task.verify(q, attempt)
        assert not v.correct and v.error_type == kind, (attempt, v)
        assert v.well_formed == (kind != "malformed")
    # a dropped carry where the one-step guess is right is a slip, not a look-ahead error
    p = task.make_problem(357, 468)
    assert task.verify(p, f"815>{task.working(p)}").error_type == "digit_slip@1"
    assert task.verify(p, f"0825>{task.working(p)}").correct  # a leading zero is not an error


# --- the base's pretraining corpus ----------------------------------------------------------------------
def test_corpus_answers_on_the_spot_and_later_attempts_sometimes_read_the_working(task):
    pre = compose_config([*TINY_OVERRIDES, *AF]).model.pretrain
    rng = random.Random(0)
    problems = [p for p in task.problems("train", 8000, seed=0) if task.lookahead_sites(p)][:1500]
    assert len(problems) == 1500
    first, read = Counter(), 0
    for p in problems:
        y1, y2 = task.pretraining_attempts(p, 2, pre, rng)
        first[task.verify(p, y1).error_kind] += 1
        read += task.verify(p, y2).correct
    # turn 1 never looks ahead (lookahead 0): right only by a slip landing on the right digit
    assert first["carry_lookahead"] > 0.9 * 1500 and first[None] < 0.02 * 1500
    # turn 2 reads the (mostly right) working in read_prob = 10 % of the traces
    assert 0.06 < read / 1500 < 0.14


# --- the error model ------------------------------------------------------------------------------------
def test_injections_read_back_as_the_kind_at_the_site_with_the_right_working(task):
    errors = make_error_model(task)
    for p in task.problems("test", 200, seed=1):
        assert task.verify(p, errors.correct_attempt(p)).correct
        assert errors.sites(p, "carry_lookahead") == task.lookahead_sites(p)
        for kind in errors.kinds:
            for site in errors.sites(p, kind):
                y = errors.inject(p, kind, site)
                assert task.verify(p, y).error_type == f"{kind}@{site}"
                assert task.read_answer(y.split(">")[1]) == p.answer  # a reader can always fix it
        with pytest.raises(ValueError, match="no 'carry_lookahead' site"):
            bad = next(k for k in range(5) if k not in errors.sites(p, "carry_lookahead"))
            errors.inject(p, "carry_lookahead", bad)


def test_teachers_write_what_their_names_say(task):
    errors = make_error_model(task)
    problems = [p for p in task.problems("test", 300, seed=2) if task.lookahead_sites(p)]
    rng = random.Random(0)
    kinds = Counter(task.verify(p, errors.write(p, "carry_lookahead", rng)).error_kind for p in problems)
    assert kinds == Counter({"carry_lookahead": len(problems)})
    kinds = Counter(task.verify(p, errors.write(p, "random_digit", rng)).error_kind for p in problems)
    assert None not in kinds and kinds["digit_slip"] > kinds["carry_lookahead"]
    assert errors.teacher_cells("base_like", {"carry_lookahead@2": 3, "malformed": 1}) == {"carry_lookahead@2": 3.0}
    with pytest.raises(ValueError, match="carry_drop"):
        errors.teacher_cells("carry_drop")


# --- the base build -------------------------------------------------------------------------------------
def test_base_build_is_reproducible_for_a_seed_and_differs_across_seeds(tmp_path):
    task = AnswerFirstTask(n_digits=3, chain_rate=0.4)
    cfg = compose_config([*TINY_OVERRIDES, *AF])
    w = lambda path: AutoModelForCausalLM.from_pretrained(path).state_dict()  # noqa: E731
    a, b = w(build_base_model(cfg.model, task, tmp_path / "a")), w(build_base_model(cfg.model, task, tmp_path / "b"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    c = w(build_base_model(compose_config([*TINY_OVERRIDES, *AF, "seed=1"]).model, task, tmp_path / "a"))
    assert not all(torch.equal(a[k], c[k]) for k in a)
    # a different task setting is a different base (the task's build spec is in the cache key)
    d = build_base_model(cfg.model, AnswerFirstTask(n_digits=3, chain_rate=0.2), tmp_path / "a")
    assert d != build_base_model(cfg.model, task, tmp_path / "a")
