"""The arithmetic task's error model: sites, signatures, one-bug injections, and teacher error
models whose error-kind (and site) histograms are what their names promise."""

import random
from collections import Counter
from pathlib import Path

import pytest
import yaml

from selfcorrect.evaluation.metrics import total_variation
from selfcorrect.tasks import make_error_model
from selfcorrect.tasks.arithmetic import ArithmeticTask, parse_rules
from selfcorrect.tasks.arithmetic_errors import INJECTABLE, ArithmeticErrorModel
from selfcorrect.training.offline.traces import error_histogram, teacher_traces

TASK = ArithmeticTask()
ERRORS = make_error_model(TASK)
P = TASK.make_problem(357, 468)  # 825: carries into columns 1 and 2
POOL = TASK.problems("train", 1536, seed=0)
BASE_RULES = parse_rules(yaml.safe_load((Path(__file__).resolve().parents[1] / "conf/task/arithmetic.yaml").read_text())["model"]["pretrain"]["turn1_rules"])


def teacher_hists(error_model, n=3000, base_sites=None, seed=0):
    traces = teacher_traces(ERRORS, POOL, ERRORS.teacher_cells(error_model, base_sites), n, random.Random(seed))
    problems, y1 = [t["problem"] for t in traces], [t["y1"] for t in traces]
    for t in traces:
        assert not TASK.verify(t["problem"], t["y1"]).correct and t["y2"] == TASK.write(t["problem"])
    return error_histogram(TASK, problems, y1), ERRORS.site_histogram(problems, y1)


def simulated_base(n=1024, seed=1):
    """First attempts from the base model's own pretraining bug mixture (its turn-1 rules)."""
    problems = TASK.problems("train", n, seed=seed)
    rng = random.Random(seed)
    return problems, [TASK.sample(p, BASE_RULES, rng) for p in problems]


def test_the_registry_pairs_the_task_with_its_error_model():
    assert isinstance(ERRORS, ArithmeticErrorModel) and ERRORS.task is TASK
    assert ERRORS.kinds == INJECTABLE == ("operand_copy", "carry_drop", "carry_error", "sum_slip", "final_copy")


def test_injection_writes_exactly_one_error_of_the_kind_at_the_site():
    assert ERRORS.sites(P, "carry_drop") == [1, 2] and ERRORS.sites(P, "carry_error") == [0]
    assert ERRORS.sites(P, "sum_slip") == [0, 1, 2] and ERRORS.sites(P, "final_copy") == [None]
    for kind in INJECTABLE:
        for site in ERRORS.sites(P, kind):
            y = ERRORS.inject(P, kind, site)
            assert y.split(">")[0].split(" ")[0][1] == "8"  # the other operand is left alone
            assert ERRORS.error_site(P, y) == (kind, site)
    assert ERRORS.inject(P, "carry_drop", 1) == "78015 56011 34108>815"
    with pytest.raises(ValueError, match="no 'carry_error' site at 2"):
        ERRORS.inject(P, "carry_error", 2)
    with pytest.raises(ValueError, match="unknown error kind 'typo'"):
        ERRORS.sites(P, "typo")
    assert ERRORS.error_site(P, TASK.write(P)) is None


def test_signatures_name_what_the_base_bugs_fire_on():
    assert ERRORS.signature(P, "sum_slip", 0) == "sum_slip@pair=78,carry=0"
    assert ERRORS.signature(P, "carry_drop", 2) == "carry_drop@pair=34,carry=1"
    assert ERRORS.signature(TASK.make_problem(501, 702), "final_copy", None) == "final_copy@inner_zero=1,final_carry=1"
    assert ERRORS.signature(P, "malformed", None) == "malformed"
    assert ERRORS.site_histogram([P, P, P], ["78014 56112 34108>824", TASK.write(P), "oops"]) == {
        "sum_slip@pair=78,carry=0": 1, "malformed": 1}


def test_random_digit_spreads_over_kinds_in_proportion_to_where_the_digits_are():
    kinds, _ = teacher_hists("random_digit")
    assert set(kinds) == set(INJECTABLE)  # every kind its name promises, not only final_copy
    n = sum(kinds.values())
    assert kinds["final_copy"] / n < 0.3
    # expected: a uniformly drawn digit of the correct attempt, classified by the slot it sits in
    slot_kind = {"a": "operand_copy", "b": "operand_copy", "tens": "sum_slip", "units": "sum_slip", "answer": "final_copy"}
    expected = Counter()
    for p in POOL:
        slots = TASK.digit_slots(p)
        for slot, _, value, _ in slots:
            kind = slot_kind.get(slot) or ("carry_drop" if value == 1 else "carry_error")
            expected[kind] += 1 / len(slots)
    assert total_variation(kinds, expected) < 0.04


def test_carry_drop_teacher_writes_only_carry_drops_at_several_columns():
    kinds, sites = teacher_hists("carry_drop", n=500)
    assert kinds == {"carry_drop": 500}
    assert len({s.split("@")[0] for s in sites}) == 1 and len(sites) > 10


def test_mixed_teacher_is_uniform_over_the_kinds():
    kinds, _ = teacher_hists("mixed")
    assert set(kinds) == set(INJECTABLE)
    assert total_variation(kinds, {k: 1 for k in INJECTABLE}) < 0.05


def test_base_like_teacher_matches_where_the_base_errs_and_mixed_does_not():
    problems, y1 = simulated_base()
    base_sites = ERRORS.site_histogram(problems, y1)
    base_kinds = error_histogram(TASK, problems, y1)
    like_kinds, like_sites = teacher_hists("base_like", base_sites=base_sites)
    _, mixed_sites = teacher_hists("mixed")
    _, digit_sites = teacher_hists("random_digit")
    assert total_variation(like_sites, base_sites) < 0.1
    assert total_variation(like_kinds, base_kinds) < 0.05
    assert total_variation(mixed_sites, base_sites) > 0.6 and total_variation(digit_sites, base_sites) > 0.6


def test_teacher_cells_reject_unknown_models_and_unwritable_histograms():
    with pytest.raises(ValueError, match="'gaussian'"):
        ERRORS.teacher_cells("gaussian")
    with pytest.raises(ValueError, match="base_like"):
        ERRORS.teacher_cells("base_like", {})
    with pytest.raises(ValueError, match="can be written by the teacher"):
        ERRORS.teacher_cells("base_like", {"malformed": 3, "column_count": 1})
    assert ERRORS.teacher_cells("base_like", {"malformed": 3, "sum_slip@pair=78,carry=0": 2}) == {"sum_slip@pair=78,carry=0": 2.0}


def test_a_cell_the_problem_has_no_site_for_is_an_error():
    no_carry = TASK.make_problem(111, 222)
    assert "carry_drop" not in ERRORS.cells(no_carry)
    with pytest.raises(ValueError, match="no site for teacher cell 'carry_drop'"):
        ERRORS.write(no_carry, "carry_drop", random.Random(0))
    with pytest.raises(ValueError, match="no site for teacher cell 'sum_slip@pair=78,carry=0'"):
        ERRORS.write(no_carry, "sum_slip@pair=78,carry=0", random.Random(0))
