"""The word-math task's error model: where a wrong_operation, arithmetic_slip or misread_number can sit
in a worked solution, and how a teacher (or the correction matrix) writes exactly that error. It
builds on the task (`tasks/word_math.py`), which does not know it: the registry pairs the two
(`tasks.TASKS`, `tasks.make_error_model`).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from fractions import Fraction

from selfcorrect.tasks.base import Problem, SiteErrorModel, error_type, split_error_type
from selfcorrect.tasks.word_math import (
    ALTERNATIVE_OPS,
    APPLY,
    SYMBOL,
    WordMathTask,
    chain_values,
    problem_chain,
    replace_step,
)

TEACHER_MODELS = ("random_digit", "wrong_operation", "mixed", "base_like")
INJECTABLE = ("wrong_operation", "arithmetic_slip", "misread_number")  # one error at one site
SLIPS = (-10, -1, 1, 10)


class WordMathErrorModel(SiteErrorModel):
    """Where each writable error can sit in a worked solution, and how a teacher writes exactly
    that error (`SiteErrorModel.write` is the teacher).

    A worked solution is one equation per operation, "Final Answer: <total>" last. A *site* is
    the position of the error type: operation i for ``wrong_operation@i`` (done as another of
    +, -, ×, ÷, so a total may turn negative or a terminating decimal) and ``arithmetic_slip@i``
    (equation i's result off by ±1 or ±10, never below 0, carried on from there); quantity q_i
    for ``misread_number@i`` (q_i read as its digits reversed, ±1 or ±10, and used throughout).
    Only attempts that the task's verifier reads back as exactly that error type are written. A site's *signature*
    is its error type, so `base_like` matches the kinds and positions where the base errs.

    Teacher error models (`arm.error_model`): ``random_digit`` (one digit of the final answer
    changed, the equations left right: the far end of the dial), ``wrong_operation`` (one kind),
    ``mixed`` (each injectable kind equally often, at a random site), ``base_like`` (the base's
    own first-attempt error types, in proportion).
    """

    teacher_models = TEACHER_MODELS
    kinds = INJECTABLE
    task: WordMathTask

    def __init__(self, task: WordMathTask):
        super().__init__(task)
        self._written: dict[str, dict[str, list[str]]] = {}

    # --- sites and injections ------------------------------------------------------------------
    def correct_attempt(self, problem: Problem) -> str:
        start, steps = problem_chain(problem)
        return self._worked(problem, start, steps)

    def sites(self, problem: Problem, kind: str) -> list[int]:
        if kind not in self.kinds:
            raise ValueError(f"unknown error kind {kind!r}; injectable kinds: {self.kinds}")
        return sorted(site for k, site in map(split_error_type, self._attempts(problem)) if k == kind)

    def inject(self, problem: Problem, kind: str, site: int | None, rng: random.Random | None = None) -> str:
        """A worked solution with exactly one `kind` error at `site`; which one (which other
        operation, slip or misreading) is drawn from `rng`, or fixed by (problem, kind, site)."""
        options = self._attempts(problem).get(error_type(kind, site))
        if not options:
            raise ValueError(f"no {kind!r} site at {site!r} in {problem.id}; its sites: {self.sites(problem, kind)}")
        return (rng or random.Random(f"word_math:{problem.id}:{kind}@{site}")).choice(options)

    def signature(self, problem: Problem, kind: str, site: int | None) -> str:
        return error_type(kind, site)

    # --- the teacher's hook for cell random_digit ----------------------------------------------
    def random_digit(self, problem: Problem, rng: random.Random) -> str:
        """One digit of the final answer changed, the equations left right."""
        right = self.correct_attempt(problem)
        head, answer = right.rsplit(" ", 1)
        i = rng.randrange(len(answer))
        digits = [d for d in "0123456789" if d != answer[i] and not (i == 0 and d == "0" and len(answer) > 1)]
        return f"{head} {answer[:i]}{rng.choice(digits)}{answer[i + 1:]}"

    # --- internals -----------------------------------------------------------------------------
    def _attempts(self, problem: Problem) -> dict[str, list[str]]:
        """Every one-error worked solution of the problem, by the error type it reads as."""
        if problem.id not in self._written:
            start, steps = problem_chain(problem)
            drafts: list[tuple[str, str | None]] = []
            for i, (op, n) in enumerate(steps, 1):
                drafts += [(f"wrong_operation@{i}", self._worked(problem, start, replace_step(steps, i, alt, n)))
                           for alt in ALTERNATIVE_OPS if alt != op]
                drafts += [(f"arithmetic_slip@{i}", self._worked(problem, start, steps, slip=(i, d)))
                           for d in SLIPS if chain_values(start, steps)[i - 1] + d >= 0]
            drafts += [("misread_number@0", self._worked(problem, m, steps)) for m in misreadings(start)]
            for i, (op, n) in enumerate(steps, 1):
                drafts += [(f"misread_number@{i}", self._worked(problem, start, replace_step(steps, i, op, m))) for m in misreadings(n)]
            written: dict[str, list[str]] = {}
            for reads_as, text in drafts:
                if text is not None and self._reads_as(problem, text) == reads_as:
                    written.setdefault(reads_as, []).append(text)
            self._written[problem.id] = written
        return self._written[problem.id]

    def _reads_as(self, problem: Problem, text: str) -> str | None:
        """The verifier's error type of a worked solution (its answer is its last line's number;
        math-verify itself is checked on these in the tests)."""
        answer = Fraction(text.rsplit(" ", 1)[1])
        return None if str(answer) == problem.answer else self.task.classify(problem, text, answer)

    def _worked(self, problem: Problem, start: int, steps: Sequence[tuple[str, int]], slip: tuple[int, int] | None = None) -> str | None:
        """A worked solution of the chain (start, steps); `slip=(i, d)` adds d to the result of
        equation i and carries the wrong total on. None if a running total has no finite decimal
        form (a teacher does not write those)."""
        lines = [f"{problem.meta['name']} starts with {start} {problem.meta['items']}."]
        total = _decimal(Fraction(start))
        for i, (op, n) in enumerate(steps, 1):
            result = _decimal(APPLY[op](Fraction(total), Fraction(n)) + (slip[1] if slip and slip[0] == i else 0))
            if result is None:
                return None
            lines.append(f"{total} {SYMBOL[op]} {n} = {result}")
            total = result
        lines.append(f"Final Answer: {total}")
        return "\n".join(lines)


def _decimal(x: Fraction) -> str | None:
    """x written as an integer or a terminating decimal; None if it has no finite form."""
    d = x.denominator
    for p in (2, 5):
        while d % p == 0:
            d //= p
    return None if d != 1 else (str(x.numerator) if x.denominator == 1 else repr(float(x)))


def misreadings(q: int) -> list[int]:
    """Numbers a reader might take q for: its digits reversed, q ± 1, q ± 10 (positive, not q)."""
    out = {int(str(q)[::-1]), q + 1, q - 1, q + 10, q - 10}
    return sorted(m for m in out if m > 0 and m != q)
