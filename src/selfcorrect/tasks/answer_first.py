"""The second embedded testbed: n-digit addition written *answer first, working after*.

An attempt for 4357+2468 reads ``6825>78015 56112 34108 42006``: the answer, then ``>`` and the
column scratchpad of `tasks/arithmetic.py` (one group per column, units first: the two operand
digits, the carry in, the two-digit column total). Only the answer is graded.

Why a second look can help here, for an intrinsic reason: the answer is written before any
working exists, so its digit in column k needs the carry into k, which arrives through every
column below k whose digits sum to 9 (a *carry chain*). Written on the spot, a carry is guessed
from the column just below (`one_step_answer`: carry into k = [a_{k-1} + b_{k-1} >= 10]); that
guess is wrong exactly where a carry travels through a 9-sum column. The working written after the
answer is local (each group needs only the previous group's carry), so it is right even when the
answer is not, and a second attempt can *read* the first attempt's working: its column totals
spell the right answer (`read_answer`). Problems are drawn with many 9-sum columns (`chain_rate`).

Error taxonomy of a wrong answer (the lowest column whose answer digit is wrong; column n is the
leading carry digit):

- ``carry_lookahead@k``  the digit misses a carry that reaches column k through a carry chain,
                         as the one-step guess writes it
- ``digit_slip@k``       any other wrong digit
- ``length``             more digits than a sum of two n-digit numbers has
- ``malformed``          not ``<answer>><working>``

The base model's pretraining attempts (`pretraining_attempts`, its corpus profile in
`conf/task/answer_first.yaml`) are written here too; the teacher error models and the correction
matrix use the task's error model (`tasks/answer_first_errors.py`, which builds on this module and
is paired with the task in `tasks.TASKS`).
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping

from selfcorrect.tasks.arithmetic import SPLIT_BUCKETS, addition_problem, attempt_groups, bucket_split
from selfcorrect.tasks.base import Problem, PretrainingSampler, Task, Verdict, check_split

ERROR_KINDS = ("carry_lookahead", "digit_slip", "length", "malformed")
ATTEMPT_RE = re.compile(r"^(\d+)>(\d{5}(?: \d{5})*)$")
# how a second attempt revised the first (`AnswerFirstTask.revision_behaviour`), in the order they are checked
REVISION_BEHAVIOURS = ("malformed", "repeat", "read_off_working", "reanswer", "rewrite_working")


class AnswerFirstTask(Task):
    """n-digit addition, answer first and working after; split by a stable hash of the problem."""

    name = "answer_first"
    revision_behaviours = REVISION_BEHAVIOURS

    def __init__(self, n_digits: int = 4, chain_rate: float = 0.3, revise_instruction: str = "[revise]", eval_seed: int = 1234):
        if not 2 <= int(n_digits) <= 6:
            raise ValueError(f"n_digits must be between 2 and 6, got {n_digits!r}")
        if not 0.0 <= float(chain_rate) <= 1.0:
            raise ValueError(f"chain_rate must be in [0, 1], got {chain_rate!r}")
        self.n_digits = int(n_digits)
        self.chain_rate = float(chain_rate)
        self.revise_instruction = revise_instruction
        self.eval_seed = int(eval_seed)

    def build_spec(self) -> dict:
        """What of the task determines a base model pretrained on it (`tiny_model`)."""
        return {"name": self.name, "n_digits": self.n_digits, "chain_rate": self.chain_rate,
                "revise_instruction": self.revise_instruction}

    # --- problems -------------------------------------------------------------------------------
    def make_problem(self, a: int, b: int) -> Problem:
        return addition_problem(a, b, self.n_digits)

    split_of = staticmethod(bucket_split)  # the arithmetic task's splits

    def draw_operands(self, rng: random.Random) -> tuple[int, int]:
        """Two n-digit operands; each column's digits sum to 9 with probability about `chain_rate`
        (b's digit is set to 9 - a's), otherwise both digits are uniform (no leading zero)."""
        a_digits, b_digits = [], []
        for k in range(self.n_digits):
            lead = k == self.n_digits - 1
            a = rng.randint(1 if lead else 0, 9)
            b = 9 - a if rng.random() < self.chain_rate else rng.randint(0, 9)
            if lead and b == 0:
                b = rng.randint(1, 9)
            a_digits.append(a)
            b_digits.append(b)
        return (int("".join(map(str, reversed(a_digits)))), int("".join(map(str, reversed(b_digits)))))

    def problems(self, split: str, n: int, seed: int) -> list[Problem]:
        """`n` distinct problems of `split`, drawn reproducibly from `seed`."""
        check_split(split)
        lo, hi = SPLIT_BUCKETS[split]
        available = (9 * 10 ** (self.n_digits - 1)) ** 2 * (hi - lo) // 1000
        if not 0 < n <= available // 4:
            raise ValueError(f"cannot draw n={n} problems from split {split!r} (about {available} exist)")
        rng = random.Random(f"answer_first:{self.n_digits}:{self.chain_rate}:{split}:{seed}")
        seen: dict[str, Problem] = {}
        for _ in range(200 * n):
            a, b = self.draw_operands(rng)
            pid = f"{a}+{b}"
            if pid not in seen and self.split_of(pid) == split:
                seen[pid] = self.make_problem(a, b)
                if len(seen) == n:
                    return list(seen.values())
        raise ValueError(f"only {len(seen)} distinct {split!r} problems found for n={n} (chain_rate={self.chain_rate})")

    def user_prompt(self, problem: Problem) -> str:
        return problem.prompt

    # --- the procedure --------------------------------------------------------------------------
    def digits(self, problem: Problem) -> list[tuple[int, int]]:
        a, b = str(problem.meta["a"]), str(problem.meta["b"])
        return [(int(a[-1 - k]), int(b[-1 - k])) for k in range(self.n_digits)]

    def carries(self, problem: Problem) -> list[int]:
        """The true carry into each column 0..n (column n: the leading carry digit)."""
        out, carry = [0], 0
        for a, b in self.digits(problem):
            carry = (a + b + carry) // 10
            out.append(carry)
        return out

    def guessed_carries(self, problem: Problem) -> list[int]:
        """The one-step guess of the carry into each column 0..n: [a_{k-1} + b_{k-1} >= 10]."""
        return [0] + [int(a + b >= 10) for a, b in self.digits(problem)]

    def lookahead_sites(self, problem: Problem) -> list[int]:
        """Columns whose carry arrives through a carry chain (where the one-step guess is wrong)."""
        return [k for k, (c, g) in enumerate(zip(self.carries(problem), self.guessed_carries(problem))) if c != g]

    def answer_with_carries(self, problem: Problem, carries: list[int]) -> str:
        digits = [str((a + b + c) % 10) for (a, b), c in zip(self.digits(problem), carries)]
        return str(int(str(carries[self.n_digits]) + "".join(reversed(digits))))

    def one_step_answer(self, problem: Problem) -> str:
        """The answer written on the spot, each carry guessed from the column below alone."""
        return self.answer_with_carries(problem, self.guessed_carries(problem))

    def working(self, problem: Problem, slip: int | None = None) -> str:
        """The column scratchpad; `slip=j` writes column j's total one too low (one too high when
        it is 0) and goes on consistently from there."""
        groups, carry = [], 0
        for k, (a, b) in enumerate(self.digits(problem)):
            total = a + b + carry
            if k == slip:
                total = total - 1 if total > 0 else 1
            groups.append(f"{a}{b}{carry}{total:02d}")
            carry = total // 10
        return " ".join(groups)

    @staticmethod
    def read_answer(working: str) -> str:
        """The answer the working spells: the last column's carry out, then the column totals'
        units digits from the highest column down."""
        groups = working.split(" ")
        return str(int(str(int(groups[-1][3:]) // 10) + "".join(g[4] for g in reversed(groups))))

    @staticmethod
    def write(answer: str, working: str) -> str:
        return f"{answer}>{working}"

    # --- the base model's pretraining attempts ------------------------------------------------------
    def pretraining_sampler(self, pre: Mapping) -> PretrainingSampler:
        """What draws one trace's attempts for the tiny base model's corpus (`pretraining_attempts`)."""
        return lambda problem, n_attempts, rng: self.pretraining_attempts(problem, n_attempts, pre, rng)

    def pretraining_attempts(self, problem: Problem, n_attempts: int, pre: Mapping, rng: random.Random) -> list[str]:
        """One trace's attempts for the tiny base model's corpus (profiles `pre["turn1"]`, `pre["turn2"]`).

        Every attempt writes its answer on the spot (`one_step_answer`; with probability `lookahead`
        the true answer instead), a random digit of it slips with probability `answer_slip`, and the
        working after it is right except for a slip at a random column with probability
        `working_slip`. A later attempt, with probability `read_prob`, instead reads its answer off
        the previous attempt's working (a skill the corpus shows rarely, so the base holds it but
        does not deploy it); `miscopy_inner_zero` is the probability that a later attempt written
        on the spot swaps its last two digits when the answer has an inner zero (the base's
        systematic second-turn slip, so that a second attempt breaks more than it fixes)."""
        attempts: list[str] = []
        for t in range(n_attempts):
            prof = pre["turn1"] if t == 0 else pre["turn2"]
            if t > 0 and rng.random() < prof["read_prob"]:
                answer = self.read_answer(attempts[-1].split(">")[1])
            else:
                answer = problem.answer if rng.random() < prof["lookahead"] else self.one_step_answer(problem)
                if rng.random() < prof["answer_slip"]:
                    answer = slip_digit(answer, rng)
                elif t > 0 and "0" in answer[1:-1] and rng.random() < prof["miscopy_inner_zero"]:
                    answer = _swap_last_two(answer)
            slip = rng.randrange(self.n_digits) if rng.random() < prof["working_slip"] else None
            attempts.append(self.write(answer, self.working(problem, slip)))
        return attempts

    # --- verifying -----------------------------------------------------------------------------
    def working_answer(self, problem: Problem, attempt: str) -> str | None:
        """The answer the attempt's working spells (`read_answer`), whatever its answer says; None
        without working. A wrong attempt whose working spells the right answer is *readable*."""
        m = ATTEMPT_RE.match(attempt.strip())
        return None if m is None else self.read_answer(m.group(2))

    def revision_behaviour(self, problem: Problem, y1: str, y2: str) -> str:
        """How the second attempt y2 revised the first y1, one of `REVISION_BEHAVIOURS`, the first
        that holds in this order ("kept" and "changed" compare the strings; pure string work, never
        raises):

        - ``malformed``         y2 is not ``<answer>><working>`` (the verifier's `well_formed`)
        - ``repeat``            y2 is y1
        - ``read_off_working``  answer changed to the one y1's working spells (`read_answer`), whatever y2's working
        - ``reanswer``          answer changed to anything else (written on the spot again), whatever y2's working;
                                also every well-formed y2 after a malformed y1 (no working to read)
        - ``rewrite_working``   answer kept, working changed

        The answer is written before the working, so y2's answer can come from y1's working or be
        written on the spot, never from y2's own working: the answer's source decides the label, and
        the working after it only separates ``rewrite_working`` from ``repeat``.
        """
        m2 = attempt_groups(ATTEMPT_RE, y2)
        if m2 is None:
            return "malformed"
        m1 = attempt_groups(ATTEMPT_RE, y1)
        if m1 is None:
            return "reanswer"
        (a1, w1), (a2, w2) = m1, m2
        if (a1, w1) == (a2, w2):
            return "repeat"
        if a1 == a2:
            return "rewrite_working"
        return "read_off_working" if (a2.lstrip("0") or "0") == self.read_answer(w1) else "reanswer"

    def verify(self, problem: Problem, completion: str) -> Verdict:
        m = ATTEMPT_RE.match(completion.strip())
        if m is None:
            return Verdict(False, False, None, "malformed")
        answer = m.group(1)
        correct = answer.lstrip("0") == problem.answer
        return Verdict(correct, True, answer, None if correct else self.classify(problem, answer))

    def classify(self, problem: Problem, answer: str) -> str:
        """The error type of a wrong answer (see the module docstring)."""
        value = answer.lstrip("0") or "0"
        if len(value) > self.n_digits + 1:
            return "length"
        written, true = value.zfill(self.n_digits + 1)[::-1], problem.answer.zfill(self.n_digits + 1)[::-1]
        k = next(i for i, (w, t) in enumerate(zip(written, true)) if w != t)
        guess = self.one_step_answer(problem).zfill(self.n_digits + 1)[::-1]
        if k in self.lookahead_sites(problem) and written[k] == guess[k]:
            return f"carry_lookahead@{k}"
        return f"digit_slip@{k}"


def slip_digit(answer: str, rng: random.Random) -> str:
    """One digit of the answer written as another digit (never a leading zero)."""
    i = rng.randrange(len(answer))
    choices = [d for d in "0123456789" if d != answer[i] and not (i == 0 and d == "0")]
    return answer[:i] + rng.choice(choices) + answer[i + 1 :]


def _swap_last_two(answer: str) -> str:
    return answer[:-2] + answer[-1] + answer[-2] if answer[-1] != answer[-2] else answer
