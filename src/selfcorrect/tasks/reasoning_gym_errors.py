"""The error model of `task=reasoning_gym`: a teacher that writes a plausible wrong final answer.

A reasoning-gym attempt is judged by its final answer alone (the dataset's `score_answer`), so
there is no worked procedure in which an error could sit at a site: `kinds` is empty, and the
correction matrix has only its keep row (no fix rows) and self-conditioning does not apply. The
one teacher error model is ``random_digit``: "Final Answer: <gold>" with one digit of the gold
answer changed, re-drawn until the task's verifier judges it wrong. A dataset whose answers hold
no digit (e.g. a word) admits no such error; `random_digit` says so with a ValueError.
"""

from __future__ import annotations

import random

from selfcorrect.tasks.base import Problem, SiteErrorModel, error_type
from selfcorrect.tasks.reasoning_gym import FINAL_ANSWER, ReasoningGymTask

TEACHER_MODELS = ("random_digit",)
MAX_DRAWS = 100  # digit changes tried before giving up on a problem (every one scored right: never seen)


class ReasoningGymErrorModel(SiteErrorModel):
    """Right and one-digit-wrong final answers; no error kinds, so no sites to inject at."""

    kinds = ()
    teacher_models = TEACHER_MODELS
    task: ReasoningGymTask

    def correct_attempt(self, problem: Problem) -> str:
        return f"{FINAL_ANSWER} {problem.answer}"

    def sites(self, problem: Problem, kind: str) -> list:
        raise ValueError(f"unknown error kind {kind!r}: reasoning_gym has no injectable error kinds (an answer has no error sites)")

    def signature(self, problem: Problem, kind: str, site: int | None) -> str:
        return error_type(kind, site)

    def inject(self, problem: Problem, kind: str, site: int | None, rng: random.Random | None = None) -> str:
        raise ValueError(f"cannot inject a {kind!r} error: reasoning_gym has no injectable error kinds (teacher cell 'random_digit' only)")

    def random_digit(self, problem: Problem, rng: random.Random) -> str:
        """"Final Answer: <gold>" with one digit of the gold answer changed (no new leading zero),
        drawn from `rng` until the verifier judges it wrong."""
        gold = problem.answer
        positions = [i for i, c in enumerate(gold) if c.isdigit()]
        if not positions:
            raise ValueError(
                f"reasoning_gym ({self.task.dataset}): the answer {gold!r} of {problem.id} has no digit, so the dataset's "
                "answers admit no digit error: teacher error model 'random_digit' (arm sft_teacher) is not applicable"
            )
        for _ in range(MAX_DRAWS):
            i = rng.choice(positions)
            leading = i == 0 or not gold[i - 1].isdigit()
            followed = i + 1 < len(gold) and gold[i + 1].isdigit()
            digits = [d for d in "0123456789" if d != gold[i] and not (d == "0" and leading and followed)]
            attempt = f"{FINAL_ANSWER} {gold[:i]}{rng.choice(digits)}{gold[i + 1:]}"
            if not self.task.verify(problem, attempt).correct:
                return attempt
        raise ValueError(f"reasoning_gym ({self.task.dataset}): no one-digit change of {gold!r} in {problem.id} is judged wrong")
