"""The arithmetic task's error model: where an error of each kind can sit, what the base's bugs
see at that site, and how a teacher (or the correction matrix) writes exactly that error. It
builds on the task (`tasks/arithmetic.py`), which does not know it: the registry pairs the two
(`tasks.TASKS`, `tasks.make_error_model`).

A *site* of an error kind is the column it sits in (0 = units), or None for `final_copy`
(the answer line). A site's *signature* is what the base model's bugs condition on there
(the features of `tasks/arithmetic.py`): for a column bug the unordered pair of operand digits
and the carry into that column on the correct procedure, ``sum_slip@pair=78,carry=0``; for
`final_copy` whether the answer has an inner zero and a final carry,
``final_copy@inner_zero=1,final_carry=0``. Kinds that are not one bug at one site
(`column_count`, `malformed`) are their own signature and cannot be written.

Teacher error models (`arm.error_model` of arm sft_teacher) are mixtures over *cells*, each of
which `write` can fill on the problems `cells(problem)` lists:

- ``random_digit``: one digit of the correct attempt, drawn uniformly (operand, carry, column
  total or answer digit), is written as another value that digit can take and the attempt goes
  on consistently from there (`ArithmeticTask.write_slip`). Every such slip changes the answer,
  and its kind is where the digit sits: operand_copy and sum_slip about 1/3 each, a carry
  error (carry_drop or carry_error) and final_copy about 1/6 each for 3 digits.
- ``carry_drop``: only carry_drop, at a random column a carry enters.
- ``mixed``: every injectable kind equally often, each at a random valid site.
- ``base_like``: the base's own first-attempt errors as a histogram over signatures; the teacher
  writes each kind at a site with the same signature, in the same proportions (so it matches
  *where* the base errs, not only the kinds).
"""

from __future__ import annotations

import random

from selfcorrect.tasks.arithmetic import COLUMN_BUGS, FINAL_BUGS, FINAL_FEATURES, ArithmeticTask
from selfcorrect.tasks.base import Problem, SiteErrorModel, error_type

TEACHER_MODELS = ("random_digit", "carry_drop", "mixed", "base_like")
INJECTABLE = (*COLUMN_BUGS, *FINAL_BUGS)  # the taxonomy's kinds that are one bug at one site
ALWAYS_DEPARTING = ("operand_copy", "sum_slip")  # column bugs that change a column whatever carry enters it


class ArithmeticErrorModel(SiteErrorModel):
    """Error sites, signatures and one-bug injections for `ArithmeticTask`, and the teacher
    error models built from them (see the module docstring; `SiteErrorModel.write` is the teacher)."""

    teacher_models = TEACHER_MODELS
    kinds = INJECTABLE
    task: ArithmeticTask

    # --- sites and injections ------------------------------------------------------------------
    def correct_attempt(self, problem: Problem) -> str:
        return self.task.write(problem)

    def sites(self, problem: Problem, kind: str) -> list[int | None]:
        """Where one bug of `kind` can be written on the correct procedure."""
        if kind in COLUMN_BUGS:
            return self.task.bug_sites(problem, kind)
        if kind in FINAL_BUGS:
            return [None]
        raise ValueError(f"unknown error kind {kind!r}; injectable kinds: {self.kinds}")

    def inject(self, problem: Problem, kind: str, site: int | None, rng: random.Random | None = None) -> str:
        """The correct procedure with exactly one bug of `kind` at `site` (the operands are kept);
        a bug at a site is one attempt, so there is nothing to draw and `rng` is not used."""
        if site not in self.sites(problem, kind):
            raise ValueError(f"no {kind!r} site at {site!r} in {problem.id}; its sites: {self.sites(problem, kind)}")
        y = self.task.write(problem, final_bug=kind) if kind in FINAL_BUGS else self.task.write(problem, {site: kind})
        got = self.task.verify(problem, y).error_type
        if got != error_type(kind, site):  # every bug operator changes the answer and reads back as itself
            raise AssertionError(f"injecting {error_type(kind, site)} into {problem.id} gave {y!r}, read as {got!r}")
        return y

    @property
    def max_injected_errors(self) -> int:
        return self.task.n_digits + 1  # one bug per column and one on the answer line

    def inject_errors(self, problem: Problem, k: int, rng: random.Random) -> str | None:
        """The procedure with bugs at `k` distinct sites drawn from `rng` among the columns and the
        answer line: a column gets `operand_copy` or `sum_slip` (drawn; the two column bugs that
        change a column whatever carry enters it, so an attempt holds exactly `k` departures where
        a carry bug after an earlier bug could be a no-op), the answer line `final_copy`; the
        procedure goes on consistently after each bug (`ArithmeticTask.write`). Drawn again (up to
        20 times) where the bugs cancel and the answer comes out right (then None)."""
        if not 1 <= k <= self.max_injected_errors:
            raise ValueError(f"an arithmetic attempt holds 1..{self.max_injected_errors} injected errors, got k={k!r}")
        sites: list = [*range(self.task.n_digits), "answer"]
        for _ in range(20):
            chosen = rng.sample(sites, k)
            bugs = {s: rng.choice(ALWAYS_DEPARTING) for s in sorted(c for c in chosen if c != "answer")}
            y = self.task.write(problem, bugs, final_bug="final_copy" if "answer" in chosen else None)
            if not self.task.verify(problem, y).correct:
                return y
        return None

    def signature(self, problem: Problem, kind: str, site: int | None) -> str:
        """What the base's bugs see at this site (see the module docstring)."""
        if kind in FINAL_BUGS:
            ans, n = problem.answer, self.task.n_digits
            return f"{kind}@inner_zero={int(FINAL_FEATURES['inner_zero'](ans, n))},final_carry={int(FINAL_FEATURES['final_carry'](ans, n))}"
        if kind in COLUMN_BUGS:
            a, b = self.task.digits(problem)[site]
            return f"{kind}@pair={min(a, b)}{max(a, b)},carry={self._carries(problem)[site]}"
        return kind

    def _carries(self, problem: Problem) -> list[int]:
        """The carry into each column on the correct procedure."""
        carries, carry = [], 0
        for a, b in self.task.digits(problem):
            carries.append(carry)
            carry = (a + b + carry) // 10
        return carries

    # --- the teacher's hook for cell random_digit ----------------------------------------------
    def random_digit(self, problem: Problem, rng: random.Random) -> str:
        """One digit of the correct attempt, drawn uniformly, written as another value it can take;
        the procedure goes on consistently from there (`ArithmeticTask.write_slip`)."""
        slot, index, value, n_values = rng.choice(self.task.digit_slots(problem))
        y = self.task.write_slip(problem, slot, index, rng.choice([v for v in range(n_values) if v != value]))
        if self.task.verify(problem, y).correct:
            raise AssertionError(f"digit slip {slot}[{index}] left {problem.id} correct: {y!r}")
        return y
