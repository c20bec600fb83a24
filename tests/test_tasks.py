"""Each task is one unit: the registry names it and pairs it with its error model, the task never
imports its error model (no import cycles in the tasks package), the teacher's `write` is the
shared one, every error model injects with one signature, and the optional capabilities of a task
are declared, not probed for."""

from __future__ import annotations

import ast
import importlib
import inspect
import random
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from selfcorrect.evaluation.probe import stratified_probe
from selfcorrect.tasks import TASKS, make_error_model, make_task
import selfcorrect.tasks as tasks_pkg
from selfcorrect.tasks.base import Problem, SiteErrorModel, Task, Verdict, error_type, split_error_type

from conftest import compose_config

TASKS_DIR = Path(tasks_pkg.__file__).parent
WITH_ERROR_MODELS = ("arithmetic", "answer_first", "word_math", "reasoning_gym")


def module_name(path: Path) -> str:
    return "selfcorrect.tasks" if path.stem == "__init__" else f"selfcorrect.tasks.{path.stem}"


def imported_names(path: Path) -> set[str]:
    """Every dotted name that `path` imports anywhere (at the top, or lazily inside a function),
    statically; `from a import b` gives both a and a.b (b may be a submodule)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.update([node.module, *(f"{node.module}.{a.name}" for a in node.names)])
    return out


def import_graph() -> dict[str, set[str]]:
    """selfcorrect.tasks module -> the selfcorrect.tasks modules it imports."""
    graph = {module_name(p): imported_names(p) for p in sorted(TASKS_DIR.glob("*.py"))}
    return {m: {d for d in deps if d in graph and d != m} for m, deps in graph.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node, path):
        state[node] = 1
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                return path[path.index(dep):] + [dep] if dep in path else [node, dep]
            if dep not in state and (cycle := visit(dep, path + [dep])):
                return cycle
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start, [start])):
            return cycle
    return None


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for dep in graph[todo.pop()] - seen:
            seen.add(dep)
            todo.append(dep)
    return seen


# --- one unit per task, no import cycles -------------------------------------------------------------
def test_the_import_graph_sees_lazy_imports_and_the_cycle_finder_finds_cycles(tmp_path):
    lazy = tmp_path / "arithmetic.py"  # the old way: the task imports its error model inside a method
    lazy.write_text("from selfcorrect.tasks.base import Problem\n\nclass T:\n    def error_model(self):\n"
                    "        from selfcorrect.tasks.arithmetic_errors import ArithmeticErrorModel\n")
    assert {"selfcorrect.tasks.base", "selfcorrect.tasks.arithmetic_errors"} <= imported_names(lazy)
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_there_are_no_import_cycles_among_the_task_modules():
    graph = import_graph()
    assert {"selfcorrect.tasks.arithmetic", "selfcorrect.tasks.arithmetic_errors", "selfcorrect.tasks.base"} <= set(graph)
    assert "selfcorrect.tasks.arithmetic" in graph["selfcorrect.tasks.arithmetic_errors"]  # the error model builds on the task
    assert find_cycle(graph) is None, f"import cycle: {' -> '.join(find_cycle(graph))}"


@pytest.mark.parametrize("name", [n for n in TASKS if TASKS[n].error_model])
def test_a_task_module_never_imports_its_error_model(name):
    task_module = TASKS[name].task.split(":")[0]
    errors_module = TASKS[name].error_model.split(":")[0]
    if errors_module != task_module:
        assert errors_module not in reachable(import_graph(), task_module) | {task_module}


@pytest.mark.parametrize("name", ["arithmetic", "answer_first"])  # the tasks whose error model is a module of its own
def test_a_task_runs_with_its_error_model_module_blocked(name):
    """In a fresh interpreter whose import of the error model's module fails, the task still
    builds, draws, verifies and samples its pretraining corpus; only `make_error_model` needs it."""
    errors_module = TASKS[name].error_model.split(":")[0]
    code = f"""
import random, sys
sys.modules[{errors_module!r}] = None  # any import of it raises ImportError
from omegaconf import OmegaConf
from selfcorrect.tasks import make_error_model, make_task
task = make_task(OmegaConf.create({{"name": {name!r}}}))
p = task.problems("test", 5, seed=0)[0]
assert not task.verify(p, "12>3").correct
pre = {{"turn1_rules": [], "turn2_rules": [], "turn1": dict(lookahead=0.0, answer_slip=0.0, working_slip=0.0, read_prob=0.0,
       miscopy_inner_zero=0.0)}}
pre["turn2"] = pre["turn1"]
assert len(task.pretraining_sampler(pre)(p, 2, random.Random(0))) == 2 and task.working_answer(p, "x") is None
try:
    make_error_model(task)
except ImportError:
    print("blocked")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "blocked"


# --- the registry ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", WITH_ERROR_MODELS)
def test_the_registry_pairs_each_task_with_its_error_model(name):
    task = make_task(compose_config([f"task={name}"]).task)
    errors = make_error_model(task)
    module, attr = TASKS[name].error_model.split(":")
    assert type(errors) is getattr(importlib.import_module(module), attr) and errors.task is task
    assert isinstance(errors, SiteErrorModel) and Task in type(task).__mro__


def test_tasks_without_an_error_model_get_none_and_unknown_tasks_are_an_error():
    class Fake:
        def __init__(self, name):
            self.name = name

    assert {n for n, e in TASKS.items() if e.error_model is None} == {"humaneval", "gsm8k", "math"}
    for name in ("humaneval", "gsm8k", "math"):
        assert make_error_model(Fake(name)) is None
    with pytest.raises(ValueError, match="unknown task 'nope'"):
        make_error_model(Fake("nope"))
    with pytest.raises(ValueError, match="unknown task 'nope'"):
        make_task(OmegaConf.create({"name": "nope"}))


# --- one teacher write, one inject signature -----------------------------------------------------------
def error_model_classes():
    out = []
    for name in WITH_ERROR_MODELS:
        module, attr = TASKS[name].error_model.split(":")
        out.append(getattr(importlib.import_module(module), attr))
    return out


def test_every_error_model_uses_the_shared_write_and_injects_with_one_signature():
    base = inspect.signature(SiteErrorModel.inject)
    for cls in error_model_classes():
        assert "write" not in vars(cls) and cls.write is SiteErrorModel.write, cls
        assert "inject" in vars(cls) and "random_digit" in vars(cls), cls
        got = inspect.signature(cls.inject)
        assert [(p.name, p.default, p.kind) for p in got.parameters.values()] == [
            (p.name, p.default, p.kind) for p in base.parameters.values()], cls


class ToyTask(Task):
    """A two-digit toy: an attempt is the answer; error `slip@k` changes digit k."""

    name = "toy"
    revise_instruction = "[revise]"

    def verify(self, problem: Problem, completion: str) -> Verdict:
        if completion == problem.answer:
            return Verdict(True, True, completion)
        k = next((i for i, (a, b) in enumerate(zip(completion, problem.answer)) if a != b), None)
        return Verdict(False, True, completion, "wrong" if k is None else error_type("slip", k))


class ToyErrors(SiteErrorModel):
    kinds = ("slip",)
    teacher_models = ("random_digit", "slip", "mixed", "base_like")

    def __init__(self, task):
        super().__init__(task)
        self.calls = []

    def correct_attempt(self, problem):
        return problem.answer

    def sites(self, problem, kind):
        if kind != "slip":
            raise ValueError(f"unknown error kind {kind!r}")
        return [0, 1]

    def signature(self, problem, kind, site):
        return f"{kind}@{'lead' if site == 0 else 'last'}"

    def inject(self, problem, kind, site, rng=None):
        self.calls.append(("inject", kind, site, rng))
        d = problem.answer[site]
        return problem.answer[:site] + str((int(d) + 1) % 10) + problem.answer[site + 1:]

    def random_digit(self, problem, rng):
        self.calls.append(("random_digit", rng))
        return "00"


def test_the_shared_write_dispatches_cells_to_the_two_hooks():
    errors, p, rng = ToyErrors(ToyTask()), Problem("p", "p", "47"), random.Random(0)
    assert errors.write(p, "random_digit", rng) == "00" and errors.calls[-1] == ("random_digit", rng)
    # a kind: a site drawn from all of its sites with rng.choice, then inject with the same rng
    expected = random.Random(0).choice([0, 1])
    y = errors.write(p, "slip", random.Random(0))
    assert errors.calls[-1][:3] == ("inject", "slip", expected) and errors.error_site(p, y) == ("slip", expected)
    # a signature: only the sites with that signature
    assert {errors.write(p, "slip@last", random.Random(s)) for s in range(10)} == {"48"}
    assert errors.cells(p) == {"random_digit", "slip", "slip@lead", "slip@last"}
    with pytest.raises(ValueError, match="unknown teacher cell 'typo' for toy"):
        errors.write(p, "typo", rng)
    with pytest.raises(ValueError, match="no site for teacher cell 'slip@middle' in p"):
        errors.write(p, "slip@middle", rng)
    assert split_error_type("slip@1") == ("slip", 1) and split_error_type("wrong") == ("wrong", None)
    assert error_type("slip", 1) == "slip@1" and error_type("final_copy", None) == "final_copy"


# --- optional capabilities: declared, None where a task has none ---------------------------------------------
def test_optional_capabilities_are_declared_with_none_for_not_supported():
    from selfcorrect.tasks.answer_first import AnswerFirstTask
    from selfcorrect.tasks.arithmetic import ArithmeticTask
    from selfcorrect.tasks.gsm8k_math import GSM8KTask, MATHTask
    from selfcorrect.tasks.humaneval.task import HumanEvalTask
    from selfcorrect.tasks.reasoning_gym import ReasoningGymTask
    from selfcorrect.tasks.word_math import WordMathTask

    for cls in (ArithmeticTask, AnswerFirstTask):
        assert Task in cls.__mro__ and callable(cls.working_answer) and callable(cls.pretraining_sampler)
    for cls in (WordMathTask, HumanEvalTask, GSM8KTask, MATHTask, ReasoningGymTask):
        assert Task in cls.__mro__ and cls.working_answer is None and cls.pretraining_sampler is None
    for cls in (ArithmeticTask, AnswerFirstTask, WordMathTask, HumanEvalTask, GSM8KTask, MATHTask):
        assert cls.prefix_messages is None and cls.stop == ()
    assert callable(ReasoningGymTask.prefix_messages)
    assert ToyTask().working_answer is None


def test_the_probe_has_no_readability_strata_for_a_task_without_working():
    rec = {"id": "p", "answer": "47", "y1": "40", "own_y1": "41", "offline_correct1": False, "own_correct1": False,
           "error1": "slip@1", "own_error1": "slip@1", "correct2": True, "own_correct2": False}
    strata = stratified_probe([rec], ToyTask())
    assert strata["all"]["n"] == strata["same_error"]["n"] == 1
    assert strata["both_readable"]["n"] == strata["neither_readable"]["n"] == 0
