"""The per-task correction behaviours (`Task.revision_behaviour`, issue 23 item 1): hand-made pairs
whose label is known (one or more per label per task), garbage that must get a label and never an
exception, and pairs built with the tasks' own procedure and error models over which every declared
label is reached, only declared labels come back, and each label agrees with what the verifier reads."""

import random
from collections import Counter

import pytest

from selfcorrect.tasks import make_error_model
from selfcorrect.tasks.answer_first import AnswerFirstTask
from selfcorrect.tasks.arithmetic import ArithmeticTask

AR = ArithmeticTask(n_digits=3)
AF = AnswerFirstTask(n_digits=3, chain_rate=0.4)


def problem(task, prompt):
    a, b = map(int, prompt.rstrip("=").split("+"))
    return task.make_problem(a, b)


def test_declared_labels():
    assert AR.revision_behaviours == ("malformed", "repeat", "recopy_answer", "answer_only", "working_only",
                                      "patch_column", "rewrite_columns")
    assert AF.revision_behaviours == ("malformed", "repeat", "read_off_working", "reanswer", "rewrite_working")
    for task in (AR, AF):
        assert 4 <= len(task.revision_behaviours) <= 7 and len(set(task.revision_behaviours)) == len(task.revision_behaviours)
        assert callable(type(task).revision_behaviour)


# --- hand-made pairs (most are real first/second attempts of trained models) -----------------------------------
@pytest.mark.parametrize("prompt, y1, y2, label", [
    ("357+468=", "78015 56112 34108>825", "78015 56112 34108>825", "repeat"),
    ("357+468=", "78015 56112 34108>825", " 78015 56112 34108>825\n", "repeat"),          # whitespace is not a change
    ("651+352=", "12003 55010 63110>103", "12003 55010 63110>1003", "recopy_answer"),     # final_copy fixed
    ("357+468=", "78015 56112 34108>0825", "78015 56112 34108>825", "recopy_answer"),     # the same value, re-copied
    ("491+557=", "17008 95014 45110>1048", "17008 95014 45110>1148", "answer_only"),
    ("357+468=", "78015 56112 34108>825", "78015 56112 34108>852", "answer_only"),        # a miscopy written in
    ("791+818=", "18009 91010 78116>1609", "18009 91110 78116>1609", "working_only"),
    ("357+468=", "78015 56112 34108>825", "78015 56112>825", "working_only"),             # column count changed, answer kept
    ("642+999=", "29011 49114 69115>1541", "29011 49114 69116>1641", "patch_column"),     # sum_slip@2 redone
    ("416+167=", "67012 16108 41005>582", "67013 16108 41005>583", "patch_column"),       # units column redone
    ("147+855=", "75012 45110 18110>1002", "70112 45110 18110>102", "patch_column"),      # answer off the working or not
    ("709+488=", "98017 08109 74011>1197", "98017 08110 74112>1207", "rewrite_columns"),  # redone from column 1 on
    ("636+267=", "67012 36009 62008>892", "67013 36110 62109>903", "rewrite_columns"),    # every column redone
    ("357+468=", "78015 56112>82", "78015 56112 34108>825", "rewrite_columns"),           # column count changed
    ("999+999=", "99018 19111899119>1988", "99018 19111 99119>1918", "rewrite_columns"),  # no working in y1 to keep
    ("357+468=", "eight hundred", "78015 56112 34108>825", "rewrite_columns"),
    ("228+781=", "81009 28010 27110>109", "81009 28010 271110>109", "malformed"),
    ("357+468=", "78015 56112 34108>825", "", "malformed"),
    ("357+468=", "junk", "junk", "malformed"),                                             # a repeated malformed y1
])
def test_arithmetic_hand_made_pairs(prompt, y1, y2, label):
    assert AR.revision_behaviour(problem(AR, prompt), y1, y2) == label


@pytest.mark.parametrize("prompt, y1, y2, label", [
    ("786+299=", "1085>69015 89118 72110", "1085>69015 89118 72110", "repeat"),
    ("786+299=", "85>69015 89118 72110", "1085>69015 89118 72110", "read_off_working"),
    ("638+388=", "26>88016 38112 63110", "1026>88016 38112 63110", "read_off_working"),
    ("345+659=", "904>59014 45110 36110", "1004>55014 45110 36110", "read_off_working"),  # read off, then the working slips
    ("627+179=", "707>79015 27110 61108", "805>79016 27110 61108", "read_off_working"),   # a wrong answer read off a slipped working
    ("492+587=", "80>27010 98118 45110", "10>27010 98118 45110", "reanswer"),
    ("310+714=", "1024>04004 11002 37010", "1042>04004 11002 37010", "reanswer"),         # a right answer broken
    ("716+198=", "914>68014 19111 71109", "114>68014 19111 71110", "reanswer"),           # and the working rewritten
    ("786+299=", "85>69015 89118 72110", "1086>69016 89118 72110", "reanswer"),            # what y2's own working spells, not y1's
    ("967+503=", "96se]9016 50106 36009", "966>67016 50106 36009", "reanswer"),            # no working in y1 to read
    ("267+337=", "504>77014 63110 23106", "504>77014 63110 23110", "rewrite_working"),
    ("273+727=", "9>73009 72010 27110", "1009>73009 73 27117110", "malformed"),
    ("786+299=", "1085>69015 89118 72110", "1085", "malformed"),
    ("786+299=", "", "", "malformed"),
])
def test_answer_first_hand_made_pairs(prompt, y1, y2, label):
    assert AF.revision_behaviour(problem(AF, prompt), y1, y2) == label


# --- garbage never raises --------------------------------------------------------------------------------
GARBAGE = ["", " ", "\n", ">", ">>", "1>", ">1", "12345>", ">12345", "1>1234", "12345>1>12345", "abc", "٣>12345",
           "1" * 5000, "12345 >1", "12345  12345>1", "-1>12345", "1>12345 ", "0>00000", "00000>0", None, 17, b"1>12345"]


@pytest.mark.parametrize("task", [AR, AF], ids=["arithmetic", "answer_first"])
def test_garbage_gets_a_label_and_never_raises(task):
    p = task.problems("test", 1, seed=0)[0]
    right = make_error_model(task).correct_attempt(p)
    for g in GARBAGE:
        well_formed = isinstance(g, str) and task.verify(p, g).well_formed  # "1>12345" is an answer-first attempt
        assert (task.revision_behaviour(p, right, g) == "malformed") == (not well_formed)
        assert task.revision_behaviour(p, g, g) in ("malformed", "repeat")
        assert task.revision_behaviour(p, g, right) in task.revision_behaviours
    rng = random.Random(0)
    for _ in range(300):  # random character edits of well-formed attempts
        y = list(right)
        for _ in range(rng.randint(1, 3)):
            i = rng.randrange(len(y) + 1)
            op = rng.choice("ins del sub".split())
            if op == "ins":
                y.insert(i, rng.choice("0123456789 >x"))
            elif i < len(y):
                if op == "del":
                    del y[i]
                else:
                    y[i] = rng.choice("0123456789 >x")
        y = "".join(y)
        for pair in ((right, y), (y, right), (y, y)):
            assert task.revision_behaviour(p, *pair) in task.revision_behaviours


# --- pairs built with the tasks' own procedure and error models ------------------------------------------
def arithmetic_pool(task, p, rng):
    em = make_error_model(task)
    pool = [em.correct_attempt(p)]
    pool += [em.inject(p, kind, site) for kind in em.kinds for site in em.sites(p, kind)]
    pool += [em.random_digit(p, rng) for _ in range(4)]
    slots = task.digit_slots(p)
    for slot, index, value, n_values in rng.sample(slots, 4):
        pool.append(task.write_slip(p, slot, index, (value + 1) % n_values))
    return pool


def answer_first_pool(task, p, rng):
    em = make_error_model(task)
    right = task.working(p)
    pool = [em.correct_attempt(p)]
    pool += [em.inject(p, kind, site) for kind in em.kinds for site in em.sites(p, kind)]
    pool += [em.random_digit(p, rng) for _ in range(3)]
    for j in range(task.n_digits):  # a slip in the working, with the right answer, the one-step answer, the answer it spells
        slipped = task.working(p, slip=j)
        pool += [task.write(a, slipped) for a in (p.answer, task.one_step_answer(p), task.read_answer(slipped))]
    pool.append(task.write(task.one_step_answer(p), right))
    return pool


def parts(task, y):
    """(working groups, answer) of a well-formed attempt, read independently of the classifier."""
    left, _, right = y.strip().partition(">")
    return (left.split(" "), right) if isinstance(task, ArithmeticTask) else (right.split(" "), left)


def check_label(task, p, y1, y2, label):
    """What each label promises, checked with the verifier and `working_answer`."""
    v1, v2 = task.verify(p, y1), task.verify(p, y2)
    assert (label == "malformed") == (not v2.well_formed)
    if not v2.well_formed:
        return
    assert (label == "repeat") == (y1.strip() == y2.strip())
    if not v1.well_formed or label == "repeat":
        return
    (g1, a1), (g2, a2) = parts(task, y1), parts(task, y2)
    assert v2.answer == a2 and v1.answer == a1
    value2, spelled1 = a2.lstrip("0") or "0", task.working_answer(p, y1)
    if isinstance(task, ArithmeticTask):
        expected = {
            "recopy_answer": g1 == g2 and value2 == spelled1,
            "answer_only": g1 == g2 and value2 != spelled1,
            "working_only": g1 != g2 and a1 == a2,
            "patch_column": a1 != a2 and len(g1) == len(g2) and sum(x != y for x, y in zip(g1, g2)) == 1,
        }
        expected["rewrite_columns"] = g1 != g2 and a1 != a2 and not expected["patch_column"]
    else:
        expected = {"read_off_working": a1 != a2 and value2 == spelled1, "reanswer": a1 != a2 and value2 != spelled1,
                    "rewrite_working": a1 == a2 and g1 != g2}
    assert [b for b, holds in expected.items() if holds] == [label], (y1, y2, label)


@pytest.mark.parametrize("task, pool", [(AR, arithmetic_pool), (ArithmeticTask(n_digits=4), arithmetic_pool),
                                        (AF, answer_first_pool), (AnswerFirstTask(n_digits=4), answer_first_pool)],
                         ids=["arithmetic3", "arithmetic4", "answer_first3", "answer_first4"])
def test_generated_pairs_reach_every_label_and_only_declared_ones(task, pool):
    rng = random.Random(0)
    seen = Counter()
    n_pairs = 0
    for p in task.problems("test", 12, seed=1):
        attempts = pool(task, p, rng)
        attempts += ["", attempts[0][:-1] + "x", attempts[0].replace(" ", "", 1)]  # malformed ones
        pairs = [(y1, y2) for y1 in attempts for y2 in attempts]
        for y1, y2 in rng.sample(pairs, min(len(pairs), 40)) + [(attempts[0], attempts[0])]:
            label = task.revision_behaviour(p, y1, y2)
            assert label in task.revision_behaviours
            assert task.revision_behaviour(p, y1, y2) == label  # deterministic
            check_label(task, p, y1, y2, label)
            seen[label] += 1
            n_pairs += 1
    assert n_pairs >= 300
    assert set(seen) == set(task.revision_behaviours), seen


def test_arithmetic_procedure_revisions():
    """Fixing a first attempt with the correct procedure: a final_copy error gets its answer re-copied,
    a bug in the top column is one patched column, a bug whose carry travels rewrites columns."""
    em = make_error_model(AR)
    for p in AR.problems("test", 40, seed=2):
        right = em.correct_attempt(p)
        assert AR.revision_behaviour(p, em.inject(p, "final_copy", None), right) == "recopy_answer"
        assert AR.revision_behaviour(p, right, em.inject(p, "final_copy", None)) == "answer_only"
        top = AR.n_digits - 1
        for kind in ("operand_copy", "sum_slip", *(k for k in ("carry_drop", "carry_error") if top in em.sites(p, k))):
            assert AR.revision_behaviour(p, AR.write(p, {top: kind}), right) == "patch_column"
        for kind in em.kinds[:-1]:
            for site in em.sites(p, kind):
                y1 = em.inject(p, kind, site)
                changed = sum(x != y for x, y in zip(y1.split(">")[0].split(), right.split(">")[0].split()))
                assert AR.revision_behaviour(p, y1, right) == ("patch_column" if changed == 1 else "rewrite_columns")
                # the working fixed, the wrong answer left on its line
                assert AR.revision_behaviour(p, y1, right.split(">")[0] + ">" + y1.split(">")[1]) == "working_only"


def test_answer_first_procedure_revisions():
    """Every injected error keeps the right working, so reading it fixes the answer (read_off_working);
    writing the error in is a reanswer; fixing a slipped working under the same answer is rewrite_working."""
    em = make_error_model(AF)
    for p in AF.problems("test", 40, seed=2):
        right = em.correct_attempt(p)
        for kind in em.kinds:
            for site in em.sites(p, kind):
                y = em.inject(p, kind, site)
                assert AF.revision_behaviour(p, y, right) == "read_off_working"
                assert AF.revision_behaviour(p, right, y) == "reanswer"
        for j in range(AF.n_digits):
            slipped = AF.working(p, slip=j)
            assert AF.revision_behaviour(p, AF.write(p.answer, slipped), right) == "rewrite_working"
            # reading a slipped working reads its wrong answer, whatever the working written after it
            y1 = AF.write(AF.one_step_answer(p), slipped)
            read = AF.read_answer(slipped)
            if read != AF.one_step_answer(p):
                assert AF.revision_behaviour(p, y1, AF.write(read, AF.working(p))) == "read_off_working"
