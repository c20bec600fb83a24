import random

import pytest

from selfcorrect.tasks.arithmetic import ArithmeticTask, BugRule, parse_rules

TASK = ArithmeticTask()
P = TASK.make_problem(357, 468)  # 357 + 468 = 825
RIGHT = "78015 56112 34108>825"


def test_correct_procedure_and_verdict():
    assert TASK.write(P) == RIGHT
    v = TASK.verify(P, RIGHT)
    assert v.correct and v.well_formed and v.answer == "825" and v.error_type is None
    assert TASK.verify(P, " " + RIGHT + "\n").correct  # surrounding whitespace is not an error


@pytest.mark.parametrize(
    "attempt, error",
    [
        ("78015 56011 34108>815", "carry_drop@1"),   # 5+6 ignores the carry from 7+8
        ("78014 56112 34108>824", "sum_slip@0"),     # 7+8 written as 14
        ("78015 56112 44109>925", "operand_copy@2"), # 3 copied as 4
        ("78116 56112 34108>826", "carry_error@0"),  # a carry into the units column
        ("78015 56112 34108>852", "final_copy"),     # right scratchpad, answer miscopied
        ("78015 56112>82", "column_count"),
        ("eight hundred", "malformed"),
        ("", "malformed"),
    ],
)
def test_error_taxonomy_on_hand_made_wrong_answers(attempt, error):
    v = TASK.verify(P, attempt)
    assert not v.correct
    assert v.error_type == error
    assert v.well_formed == (error != "malformed")


def test_bug_operators_write_what_the_taxonomy_reads():
    assert TASK.write(P, {1: "carry_drop"}) == "78015 56011 34108>815"
    assert TASK.write(P, {0: "sum_slip"}) == "78014 56112 34108>824"
    assert TASK.write(P, final_bug="final_copy") == "78015 56112 34108>852"
    assert TASK.bug_sites(P, "carry_drop") == [1, 2]  # carries enter columns 1 and 2
    assert TASK.bug_sites(P, "carry_error") == [0]


@pytest.mark.parametrize(
    "slot, index, value, attempt, error",
    [
        ("a", 0, 9, "98017 56112 34108>827", "operand_copy@0"),    # 9+8 = 17, the rest follows
        ("carry_in", 0, 1, "78116 56112 34108>826", "carry_error@0"),
        ("carry_in", 2, 0, "78015 56112 34007>725", "carry_drop@2"),
        ("tens", 1, 0, "78015 56102 34007>725", "sum_slip@1"),     # 12 written 02: no carry out
        ("units", 2, 3, "78015 56112 34103>325", "sum_slip@2"),
        ("answer", 0, 9, "78015 56112 34108>925", "final_copy"),
    ],
)
def test_a_digit_slip_goes_on_consistently_from_the_wrong_digit(slot, index, value, attempt, error):
    assert TASK.write_slip(P, slot, index, value) == attempt
    assert TASK.verify(P, attempt).error_type == error


def test_digit_slots_list_every_digit_of_the_correct_attempt_and_bad_slips_are_named():
    slots = TASK.digit_slots(P)
    assert "".join(str(v) for _, _, v, _ in slots) == RIGHT.replace(" ", "").replace(">", "")
    assert {(s, n) for s, _, _, n in slots} == {("a", 10), ("b", 10), ("carry_in", 2), ("tens", 2), ("units", 10), ("answer", 10)}
    for slot, index, value, n in slots:  # every slip to another value changes the answer
        for v in range(n):
            if v != value:
                assert not TASK.verify(P, TASK.write_slip(P, slot, index, v)).correct
    with pytest.raises(ValueError, match="takes values 0..1, got 2"):
        TASK.write_slip(P, "carry_in", 0, 2)
    with pytest.raises(ValueError, match="unknown digit slot 'sign'"):
        TASK.write_slip(P, "sign", 0, 1)
    with pytest.raises(ValueError, match="column 3 is outside"):
        TASK.write_slip(P, "a", 3, 1)


def test_mixture_rules_fire_only_where_their_feature_holds():
    always = parse_rules([{"kind": "sum_slip", "when": "pair:78", "prob": 1.0}])
    assert TASK.sample(P, always, random.Random(0)) == "78014 56112 34108>824"
    other = TASK.make_problem(123, 456)  # no column holds the digits 7 and 8
    assert TASK.verify(other, TASK.sample(other, always, random.Random(0))).correct


@pytest.mark.parametrize(
    "rule, message",
    [
        ({"kind": "typo", "when": "any", "prob": 0.5}, "unknown bug kind 'typo'"),
        ({"kind": "sum_slip", "when": "nowhere", "prob": 0.5}, "unknown feature 'nowhere'"),
        ({"kind": "sum_slip", "when": "pair:7", "prob": 0.5}, "bad pair feature 'pair:7'"),
        ({"kind": "sum_slip", "when": "any", "prob": 1.5}, "1.5"),
    ],
)
def test_bad_rules_are_named(rule, message):
    with pytest.raises(ValueError, match=message):
        BugRule(**rule)


def test_splits_never_overlap_whatever_the_seed():
    ids = {s: set() for s in ("train", "val", "test")}
    for seed in range(3):
        for split in ids:
            problems = TASK.problems(split, 300, seed)
            assert len({p.id for p in problems}) == 300
            assert all(TASK.split_of(p.id) == split for p in problems)
            ids[split] |= {p.id for p in problems}
    assert not ids["train"] & ids["val"] and not ids["train"] & ids["test"] and not ids["val"] & ids["test"]


def test_problems_are_reproducible_and_seed_dependent():
    assert TASK.problems("test", 50, 1) == TASK.problems("test", 50, 1)
    assert TASK.problems("test", 50, 1) != TASK.problems("test", 50, 2)


@pytest.mark.parametrize("split, n, message", [("dev", 5, "unknown split 'dev'"), ("test", 0, "n=0"), ("test", -3, "n=-3"), ("test", 10**7, "n=10000000")])
def test_bad_problem_requests(split, n, message):
    with pytest.raises(ValueError, match=message):
        TASK.problems(split, n, 0)


def test_bad_task_settings():
    with pytest.raises(ValueError, match="n_digits must be between 2 and 6, got 1"):
        ArithmeticTask(n_digits=1)
