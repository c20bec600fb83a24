"""The answer-first task's error model: where a wrong answer can sit, and how a teacher (or the
correction matrix) writes exactly that error, with the right working after it. It builds on the
task (`tasks/answer_first.py`), which does not know it: the registry pairs the two (`tasks.TASKS`).

A *site* is an answer column k (0 = units, n = the leading carry digit). ``carry_lookahead@k``
can sit only where a carry reaches column k through a carry chain (the digit is written with the
one-step carry guess there, every other digit right); ``digit_slip@k`` at any column, the digit
written one higher or lower (a slip that would read back as a carry_lookahead, or make a leading
zero, is not written). A site's signature is its error type, so `base_like` matches the kinds and
columns where the base errs. Every written attempt keeps the *right* working: a second attempt
that reads it can always fix the answer.

Teacher error models (`arm.error_model`):
- ``random_digit``: one answer digit, drawn uniformly, written as another digit (the far end of
  the dial: errors that have nothing to do with carries);
- ``carry_lookahead``: only carry-lookahead errors, at a random chain column;
- ``mixed``: each injectable kind equally often, at a random site;
- ``base_like``: the base's own first-attempt error types, in proportion.
"""

from __future__ import annotations

import random

from selfcorrect.tasks.answer_first import AnswerFirstTask, slip_digit
from selfcorrect.tasks.base import Problem, SiteErrorModel, error_type

TEACHER_MODELS = ("random_digit", "carry_lookahead", "mixed", "base_like")
INJECTABLE = ("carry_lookahead", "digit_slip")


class AnswerFirstErrorModel(SiteErrorModel):
    """Error sites and one-error injections for `AnswerFirstTask`, and the teacher error models
    built from them (see the module docstring; `SiteErrorModel.write` is the teacher)."""

    teacher_models = TEACHER_MODELS
    kinds = INJECTABLE
    task: AnswerFirstTask

    # --- sites and injections ------------------------------------------------------------------
    def correct_attempt(self, problem: Problem) -> str:
        return self.task.write(problem.answer, self.task.working(problem))

    def sites(self, problem: Problem, kind: str) -> list[int]:
        if kind == "carry_lookahead":
            return self.task.lookahead_sites(problem)
        if kind == "digit_slip":
            return [k for k in range(self.task.n_digits + 1) if self._slips(problem, k)]
        raise ValueError(f"unknown error kind {kind!r}; injectable kinds: {self.kinds}")

    def inject(self, problem: Problem, kind: str, site: int | None, rng: random.Random | None = None) -> str:
        """The right working after an answer with exactly one `kind` error at column `site`; which
        digit slip (one higher or lower) is drawn from `rng`, or fixed by (problem, kind, site)."""
        if site not in self.sites(problem, kind):
            raise ValueError(f"no {kind!r} site at {site!r} in {problem.id}; its sites: {self.sites(problem, kind)}")
        if kind == "carry_lookahead":
            carries = self.task.carries(problem)
            carries[site] = 0
            answer = self.task.answer_with_carries(problem, carries)
        else:
            answer = (rng or random.Random(f"answer_first:{problem.id}:{kind}@{site}")).choice(self._slips(problem, site))
        y = self.task.write(answer, self.task.working(problem))
        got = self.task.verify(problem, y).error_type
        if got != error_type(kind, site):
            raise AssertionError(f"injecting {error_type(kind, site)} into {problem.id} gave {y!r}, read as {got!r}")
        return y

    @property
    def max_injected_errors(self) -> int:
        return self.task.n_digits + 1  # one slip per answer column

    def inject_errors(self, problem: Problem, k: int, rng: random.Random) -> str | None:
        """The right working after an answer with `k` of its columns (drawn from `rng` among the
        columns a digit slip can sit in) each written one higher or lower; None where fewer than
        `k` columns can slip. (With k = 1 this is a `digit_slip`; with more the verifier reads
        the first wrong column.)"""
        if not 1 <= k <= self.max_injected_errors:
            raise ValueError(f"an answer-first attempt holds 1..{self.max_injected_errors} injected errors, got k={k!r}")
        columns = self.sites(problem, "digit_slip")
        if len(columns) < k:
            return None
        n = self.task.n_digits + 1
        digits = list(problem.answer.zfill(n))
        for col in rng.sample(columns, k):
            i = n - 1 - col
            d = int(digits[i])
            digits[i] = str(rng.choice([v for v in (d - 1, d + 1) if 0 <= v <= 9 and not (v == 0 and i == 0)] or [d]))
        answer = "".join(digits).lstrip("0") or "0"
        return None if answer == problem.answer else self.task.write(answer, self.task.working(problem))

    def signature(self, problem: Problem, kind: str, site: int | None) -> str:
        return error_type(kind, site)

    def _slips(self, problem: Problem, k: int) -> list[str]:
        """Answers with column k's digit one higher or lower that read back as digit_slip@k."""
        n = self.task.n_digits + 1
        digits = problem.answer.zfill(n)
        i = n - 1 - k
        out = []
        for d in (int(digits[i]) - 1, int(digits[i]) + 1):
            if 0 <= d <= 9:
                answer = (digits[:i] + str(d) + digits[i + 1 :]).lstrip("0") or "0"
                if len(answer) >= len(problem.answer) and self.task.classify(problem, answer) == f"digit_slip@{k}":
                    out.append(answer)
        return out

    # --- the teacher's hook for cell random_digit ----------------------------------------------
    def random_digit(self, problem: Problem, rng: random.Random) -> str:
        """One answer digit, drawn uniformly, written as another digit; the right working after it."""
        return self.task.write(slip_digit(problem.answer, rng), self.task.working(problem))
