"""GSM8K / MATH: loading through `datasets` from local files in the real formats, clear errors on
malformed rows, splits, the paper's prompts, and math-verify checking."""

from pathlib import Path

import pytest

from selfcorrect.models.prompts import conversation
from selfcorrect.tasks.gsm8k_math import (
    PAPER_MATH_INSTRUCTION,
    PAPER_MATH_REVISE_INSTRUCTION,
    GSM8KTask,
    MalformedRow,
    MATHTask,
    last_boxed,
)

FIX = Path(__file__).parent / "fixtures"


def gsm8k(**kw) -> GSM8KTask:
    sources = {"train": {"path": str(FIX / "gsm8k_train.jsonl")}, "test": {"path": str(FIX / "gsm8k_test.jsonl")}}
    return GSM8KTask(sources=sources, **kw)


def math_task(test="math500_test.jsonl", train="math_train.jsonl", **kw) -> MATHTask:
    return MATHTask(sources={"train": {"path": str(FIX / train)}, "test": {"path": str(FIX / test)}}, **kw)


def test_gsm8k_rows_become_problems_with_numeric_answers():
    t = gsm8k()
    test = t.problems("test", 3, seed=0)
    assert {p.answer for p in test} == {"18", "3", "70000"}
    assert all(p.prompt.endswith("?") for p in test)
    # "#### 2,500": thousands separators are dropped from the reference answer
    train_and_val = t.pool("train") + t.pool("val")
    assert sorted(p.answer for p in train_and_val) == sorted(["72", "10", "5", "624", "2500"])


def test_train_and_val_are_disjoint_and_stable_across_instances():
    a, b = gsm8k(val_fraction=0.4), gsm8k(val_fraction=0.4)
    ids = lambda t, s: {p.id for p in t.pool(s)}
    assert ids(a, "train") == ids(b, "train") and ids(a, "val") == ids(b, "val")
    assert not ids(a, "train") & ids(a, "val")
    assert len(ids(a, "train")) + len(ids(a, "val")) == 5


def test_draws_are_seeded_and_bounded():
    t = gsm8k()
    assert [p.id for p in t.problems("test", 3, 1)] == [p.id for p in gsm8k().problems("test", 3, 1)]
    assert t.problems("test", 2, 1) == t.problems("test", 3, 1)[:2]
    with pytest.raises(ValueError, match="n=4.*holds 3"):
        t.problems("test", 4, 0)
    with pytest.raises(ValueError, match="split"):
        t.problems("dev", 1, 0)


@pytest.mark.parametrize(
    "fixture, match",
    [
        ("gsm8k_missing_final.jsonl", r"gsm8k/test/1.*no '#### <number>'"),
        ("gsm8k_missing_question.jsonl", r"gsm8k/test/1.*'question' is missing"),
        ("gsm8k_bad_json.jsonl", r"gsm8k_bad_json.jsonl: line 2 is not valid JSON"),
    ],
)
def test_malformed_gsm8k_rows_are_named(fixture, match):
    t = GSM8KTask(sources={"train": {"path": str(FIX / "gsm8k_train.jsonl")}, "test": {"path": str(FIX / fixture), "split": "test"}})
    with pytest.raises(MalformedRow, match=match):
        t.problems("test", 1, 0)


def test_missing_file_and_bad_config_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        GSM8KTask(sources={"train": {"path": str(tmp_path / "nope.jsonl")}, "test": {"path": str(tmp_path / "nope.jsonl")}}).problems("test", 1, 0)
    with pytest.raises(ValueError, match="sources.test"):
        GSM8KTask(sources={"train": {"path": str(FIX / "gsm8k_train.jsonl")}})
    with pytest.raises(ValueError, match="val_fraction"):
        gsm8k(val_fraction=1.5)


@pytest.mark.parametrize("test_file", ["math500_test.jsonl", "math500_test.parquet"])
def test_math500_rows_load_from_jsonl_and_parquet(test_file):
    t = math_task(test=test_file)
    probs = {p.id: p for p in t.problems("test", 3, 0)}
    assert probs["test/algebra/2584.json"].answer == "\\frac{14}{3}"
    assert probs["test/precalculus/807.json"].meta["subject"] == "Precalculus"


def test_math_train_rows_without_answer_use_the_last_boxed():
    t = math_task(val_fraction=0.0)
    answers = sorted(p.answer for p in t.pool("train"))
    assert answers == sorted(["5", "10", "5\\sqrt{2}", "4"])
    assert t.pool("val") == []


def test_math_row_without_answer_or_boxed_is_named():
    t = math_task(train="math_no_answer.jsonl", val_fraction=0.0)
    with pytest.raises(MalformedRow, match=r"math/train/1.*no 'answer' field and no \\boxed"):
        t.problems("train", 1, 0)


def test_last_boxed_matches_nested_braces():
    assert last_boxed("so $\\boxed{1}$ then $\\boxed{\\frac{a}{b}}$.") == "\\frac{a}{b}"
    assert last_boxed("no box") is None
    assert last_boxed("\\boxed{unclosed") is None


def test_paper_prompts_are_used_verbatim_in_both_turns():
    t = math_task()
    p = t.problems("test", 1, 0)[0]
    msgs = conversation(t, p, ["first attempt"])
    assert msgs[0]["content"].startswith(PAPER_MATH_INSTRUCTION) and msgs[0]["content"].endswith(p.prompt)
    assert msgs[2]["content"] == PAPER_MATH_REVISE_INSTRUCTION
    assert "There might be an error in the solution above" in PAPER_MATH_REVISE_INSTRUCTION
    assert "Final Answer: The final answer is $answer$. I hope it is correct." in PAPER_MATH_INSTRUCTION


def test_math_verify_checks_equivalent_forms_and_rejects_wrong_ones():
    t = math_task()
    p = {q.id: q for q in t.problems("test", 3, 0)}
    frac, polar = p["test/algebra/2584.json"], p["test/precalculus/807.json"]
    good = "... so the sum is 14/3.\nFinal Answer: The final answer is $\\frac{14}{3}$. I hope it is correct."
    assert t.verify(frac, good).correct and t.verify(frac, good).well_formed
    assert t.verify(frac, "Final Answer: The final answer is $\\dfrac{28}{6}$. I hope it is correct.").correct
    assert t.verify(polar, "Final Answer: The final answer is $(3, \\frac{\\pi}{2})$. I hope it is correct.").correct
    wrong = t.verify(frac, "Final Answer: The final answer is $\\frac{13}{3}$. I hope it is correct.")
    assert not wrong.correct and wrong.well_formed and wrong.error_type == "wrong_answer"
    nothing = t.verify(frac, "I am not sure how to do this.")
    assert not nothing.correct and not nothing.well_formed and nothing.error_type == "no_answer"


def test_gsm8k_answers_checked_numerically():
    t = gsm8k()
    p = {q.answer: q for q in t.problems("test", 3, 0)}
    assert t.verify(p["18"], "She makes 9 * 2 = 18 dollars.\nFinal Answer: The final answer is $18$. I hope it is correct.").correct
    assert t.verify(p["70000"], "Final Answer: The final answer is $70,000$. I hope it is correct.").correct
    assert not t.verify(p["18"], "Final Answer: The final answer is $16$. I hope it is correct.").correct
    # the reference must not leak into the prompt the model sees
    assert "####" not in t.user_prompt(p["18"])
