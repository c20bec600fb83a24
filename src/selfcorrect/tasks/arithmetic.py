"""The embedded default task: n-digit addition written as a column-by-column scratchpad.

An attempt for 357+468 reads ``78015 56112 34108>825``: one 5-character group per column,
units first, holding the two operand digits, the carry in and the two-digit column total,
then ``>`` and the final answer. Every step is checkable, so a wrong attempt can be put in
an error taxonomy (the first step that departs from the correct procedure):

- ``operand_copy@k``  an operand digit of column k copied wrongly
- ``carry_drop@k``    column k ignores the carry coming from column k-1
- ``carry_error@k``   column k takes a carry that does not exist
- ``sum_slip@k``      column k's total is not a + b + carry
- ``final_copy``      the scratchpad is right but the answer line is not
- ``column_count``    wrong number of columns
- ``malformed``       not an attempt in the scratchpad format

The same bug operators write wrong attempts on purpose: the base model's pretraining mixture
(systematic, feature-conditioned bugs; its bug rules in `conf/task/arithmetic.yaml`), the teacher
error models of the SFT arms and the correction matrix (the task's error model,
`tasks/arithmetic_errors.py`, which builds on this module and is paired with the task in
`tasks.TASKS`) use them. `write_slip` writes one scratchpad digit wrong and goes on consistently from there.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from selfcorrect.tasks.base import Problem, PretrainingSampler, Task, Verdict, check_split, stable_hash

COLUMN_BUGS = ("operand_copy", "carry_drop", "carry_error", "sum_slip")
FINAL_BUGS = ("final_copy",)
ERROR_KINDS = (*COLUMN_BUGS, *FINAL_BUGS, "column_count", "malformed")
ATTEMPT_RE = re.compile(r"^(\d{5}(?: \d{5})*)>(\d+)$")
SPLIT_BUCKETS = {"test": (0, 20), "val": (20, 30), "train": (30, 1000)}  # per mille (3 digits: 16,200 test problems)
# the digits of one column group, in the order they are written, and how many values each can take
COLUMN_SLOTS = {"a": 10, "b": 10, "carry_in": 2, "tens": 2, "units": 10}
# how a second attempt revised the first (`ArithmeticTask.revision_behaviour`), in the order they are checked
REVISION_BEHAVIOURS = ("malformed", "repeat", "recopy_answer", "answer_only", "working_only", "patch_column", "rewrite_columns")


@dataclass(frozen=True)
class Column:
    a: int
    b: int
    carry_in: int
    total: int

    def render(self) -> str:
        return f"{self.a}{self.b}{self.carry_in}{self.total:02d}"


# --- features a bug rule can condition on ---------------------------------------------------
# Column features see (a, b, carry_in, k); final features see (answer, n_digits).
COLUMN_FEATURES: dict[str, Callable[[int, int, int, int], bool]] = {
    "any": lambda a, b, c, k: True,
    "carry_in": lambda a, b, c, k: c == 1,
    "carry_into_nine": lambda a, b, c, k: c == 1 and a + b == 9,  # the carry must cascade
    "carry_into_high": lambda a, b, c, k: c == 1 and a + b >= 8,
}
# ...plus "pair:78,69": the column's two operand digits form one of the listed unordered pairs.
FINAL_FEATURES: dict[str, Callable[[str, int], bool]] = {
    "any": lambda ans, n: True,
    "final_carry": lambda ans, n: len(ans) > n,
    "inner_zero": lambda ans, n: "0" in ans[1:-1],
}


@dataclass(frozen=True)
class BugRule:
    """With probability `prob`, apply bug `kind` wherever feature `when` holds."""

    kind: str
    when: str
    prob: float

    def __post_init__(self) -> None:
        if self.kind not in COLUMN_BUGS + FINAL_BUGS:
            raise ValueError(f"unknown bug kind {self.kind!r}; expected one of {COLUMN_BUGS + FINAL_BUGS}")
        features = FINAL_FEATURES if self.kind in FINAL_BUGS else COLUMN_FEATURES
        if self.kind in COLUMN_BUGS and self.when.startswith("pair:"):
            pairs = self.when[5:].split(",")
            if not pairs or any(len(p) != 2 or not p.isdigit() for p in pairs):
                raise ValueError(f"bad pair feature {self.when!r}; write it like 'pair:78,69'")
        elif self.when not in features:
            raise ValueError(f"unknown feature {self.when!r} for bug {self.kind!r}; expected one of {sorted(features)}")
        if not 0.0 <= self.prob <= 1.0:
            raise ValueError(f"bug probability must be in [0, 1], got {self.prob!r} for {self.kind}/{self.when}")


def parse_rules(rules: Sequence) -> tuple[BugRule, ...]:
    """Rules from config: mappings {kind, when, prob} or BugRule objects."""
    return tuple(r if isinstance(r, BugRule) else BugRule(**dict(r)) for r in rules)


class ArithmeticTask(Task):
    """n-digit addition with a column scratchpad; problems are split by a stable hash, so the
    train, val and test problems never overlap, whatever the sampling seed."""

    name = "arithmetic"
    revision_behaviours = REVISION_BEHAVIOURS

    def __init__(self, n_digits: int = 3, revise_instruction: str = "[revise]", eval_seed: int = 1234):
        if not 2 <= int(n_digits) <= 6:
            raise ValueError(f"n_digits must be between 2 and 6, got {n_digits!r}")
        self.n_digits = int(n_digits)
        self.revise_instruction = revise_instruction
        self.eval_seed = int(eval_seed)
        self.low, self.high = 10 ** (self.n_digits - 1), 10**self.n_digits - 1

    def build_spec(self) -> dict:
        """What of the task determines a base model pretrained on it (`tiny_model`)."""
        return {"n_digits": self.n_digits, "revise_instruction": self.revise_instruction}

    # --- problems -------------------------------------------------------------------------------
    def make_problem(self, a: int, b: int) -> Problem:
        return addition_problem(a, b, self.n_digits)

    @staticmethod
    def split_of(problem_id: str) -> str:
        return bucket_split(problem_id)

    def problems(self, split: str, n: int, seed: int) -> list[Problem]:
        """`n` distinct problems of `split`, drawn reproducibly from `seed`."""
        check_split(split)
        lo, hi = SPLIT_BUCKETS[split]
        available = (self.high - self.low + 1) ** 2 * (hi - lo) // 1000
        if not 0 < n <= available // 2:
            raise ValueError(f"cannot draw n={n} problems from split {split!r} (about {available} exist)")
        rng = random.Random(f"arithmetic:{self.n_digits}:{split}:{seed}")
        seen: dict[str, Problem] = {}
        while len(seen) < n:
            a, b = rng.randint(self.low, self.high), rng.randint(self.low, self.high)
            pid = f"{a}+{b}"
            if pid not in seen and self.split_of(pid) == split:
                seen[pid] = self.make_problem(a, b)
        return list(seen.values())

    def user_prompt(self, problem: Problem) -> str:
        return problem.prompt

    # --- writing attempts ----------------------------------------------------------------------
    def digits(self, problem: Problem) -> list[tuple[int, int]]:
        a, b = str(problem.meta["a"]), str(problem.meta["b"])
        return [(int(a[-1 - k]), int(b[-1 - k])) for k in range(self.n_digits)]

    def write(self, problem: Problem, column_bugs: dict[int, str] | None = None, final_bug: str | None = None) -> str:
        """The attempt the procedure writes with the given bugs; after a bug it goes on
        consistently from the state the bug left (so errors propagate as a person's would)."""
        column_bugs = column_bugs or {}
        columns, carry = [], 0
        for k, (a, b) in enumerate(self.digits(problem)):
            columns.append(self._column(a, b, carry, column_bugs.get(k)))
            carry = columns[-1].total // 10
        return self._render(columns, final_bug)

    def digit_slots(self, problem: Problem) -> list[tuple[str, int, int, int]]:
        """Every digit of the correct attempt as (slot, index, value, number of values it can take):
        the column slots of `COLUMN_SLOTS` (index = column) and ("answer", i) for the answer's digits."""
        slots, carry = [], 0
        for k, (a, b) in enumerate(self.digits(problem)):
            total = a + b + carry
            for slot, v in zip(COLUMN_SLOTS, (a, b, carry, total // 10, total % 10)):
                slots.append((slot, k, v, COLUMN_SLOTS[slot]))
            carry = total // 10
        return slots + [("answer", i, int(d), 10) for i, d in enumerate(problem.answer)]

    def write_slip(self, problem: Problem, slot: str, index: int, value: int) -> str:
        """The attempt with one digit written as `value` (a `digit_slots` position), the procedure
        going on consistently from the state that digit leaves: a wrong operand digit or carry
        enters its column's total, a wrong total digit enters the answer digit and the carry out,
        a wrong answer digit is only a miscopy. Every slip to a different value changes the answer."""
        if slot != "answer" and slot not in COLUMN_SLOTS:
            raise ValueError(f"unknown digit slot {slot!r}; expected 'answer' or one of {tuple(COLUMN_SLOTS)}")
        n_values = COLUMN_SLOTS.get(slot, 10)
        if not 0 <= value < n_values:
            raise ValueError(f"digit slot {slot!r} takes values 0..{n_values - 1}, got {value!r}")
        if slot != "answer" and not 0 <= index < self.n_digits:
            raise ValueError(f"column {index!r} is outside 0..{self.n_digits - 1}")
        columns, carry = [], 0
        for k, (a, b) in enumerate(self.digits(problem)):
            here = k == index
            a, b, carry = (value if here and slot == "a" else a, value if here and slot == "b" else b,
                           value if here and slot == "carry_in" else carry)
            total = a + b + carry
            if here and slot == "tens":
                total = 10 * value + total % 10
            elif here and slot == "units":
                total = total - total % 10 + value
            columns.append(Column(a, b, carry, total))
            carry = total // 10
        answer = self._answer(columns)
        if slot == "answer":
            if not 0 <= index < len(answer):
                raise ValueError(f"answer digit {index!r} is outside the answer {answer!r}")
            answer = answer[:index] + str(value) + answer[index + 1 :]
        return " ".join(c.render() for c in columns) + ">" + answer

    def sample(self, problem: Problem, rules: Sequence[BugRule], rng: random.Random) -> str:
        """One attempt drawn from a bug mixture: at each column the first rule whose feature
        holds fires with its probability (features see the procedure's own running state)."""
        col_rules = [r for r in rules if r.kind in COLUMN_BUGS]
        fin_rules = [r for r in rules if r.kind in FINAL_BUGS]
        columns, carry = [], 0
        for k, (a, b) in enumerate(self.digits(problem)):
            bug = None
            for r in col_rules:
                if column_feature(r.when, a, b, carry, k) and _applicable(r.kind, carry):
                    if rng.random() < r.prob:
                        bug = r.kind
                    break
            columns.append(self._column(a, b, carry, bug))
            carry = columns[-1].total // 10
        final_bug = None
        answer = self._answer(columns)
        for r in fin_rules:
            if FINAL_FEATURES[r.when](answer, self.n_digits):
                if rng.random() < r.prob:
                    final_bug = r.kind
                break
        return self._render(columns, final_bug)

    def pretraining_sampler(self, pre: Mapping) -> PretrainingSampler:
        """What draws one trace's attempts for the tiny base model's corpus, `(problem, n_attempts,
        rng) -> attempts`: independent draws from the bug mixtures `pre["turn1_rules"]` (first
        attempt) and `pre["turn2_rules"]` (every later one), parsed once."""
        first, later = parse_rules(pre["turn1_rules"]), parse_rules(pre["turn2_rules"])
        return lambda problem, n_attempts, rng: [self.sample(problem, first if t == 0 else later, rng) for t in range(n_attempts)]

    def bug_sites(self, problem: Problem, kind: str) -> list[int]:
        """Columns where a column bug of `kind` can occur on the correct procedure."""
        if kind not in COLUMN_BUGS:
            raise ValueError(f"{kind!r} is not a column bug; expected one of {COLUMN_BUGS}")
        sites, carry = [], 0
        for k, (a, b) in enumerate(self.digits(problem)):
            if _applicable(kind, carry):
                sites.append(k)
            carry = (a + b + carry) // 10
        return sites

    def _column(self, a: int, b: int, carry: int, bug: str | None) -> Column:
        if bug == "operand_copy":
            a = (a + 1) % 10
        elif bug == "carry_drop":
            carry = 0
        elif bug == "carry_error":
            carry = 1
        total = a + b + carry
        if bug == "sum_slip":
            total = total - 1 if total > 0 else 1
        return Column(a, b, carry, total)

    @staticmethod
    def _answer(columns: list[Column]) -> str:
        digits = "".join(str(c.total % 10) for c in reversed(columns))
        return str(int(str(columns[-1].total // 10) + digits))

    def _render(self, columns: list[Column], final_bug: str | None) -> str:
        answer = self._answer(columns)
        if final_bug == "final_copy":
            answer = _miscopy(answer, self.n_digits)
        return " ".join(c.render() for c in columns) + ">" + answer

    # --- verifying -----------------------------------------------------------------------------
    def working_answer(self, problem: Problem, attempt: str) -> str | None:
        """The answer the attempt's scratchpad spells (the last column's carry out, then the column
        totals' units digits from the highest column down), whatever its answer line says; None for
        an attempt without a scratchpad. A wrong attempt whose working spells the right answer is
        *readable*: a second look at it could fix it (issue 22's probe strata)."""
        m = ATTEMPT_RE.match(attempt.strip())
        if m is None:
            return None
        groups = m.group(1).split(" ")
        return str(int(str(int(groups[-1][3:]) // 10) + "".join(g[4] for g in reversed(groups))))

    def revision_behaviour(self, problem: Problem, y1: str, y2: str) -> str:
        """How the second attempt y2 revised the first y1, one of `REVISION_BEHAVIOURS`, the first
        that holds in this order (*working*: the column groups before ``>``; *answer*: the line
        after it; "kept" and "changed" compare the strings; pure string work, never raises):

        - ``malformed``        y2 is not a well-formed scratchpad attempt (the verifier's `well_formed`)
        - ``repeat``           y2 is y1
        - ``recopy_answer``    working kept, answer changed to the one the kept working spells
        - ``answer_only``      working kept, answer changed to anything else
        - ``working_only``     working changed, answer kept
        - ``patch_column``     exactly one column group changed (the others kept), answer changed
        - ``rewrite_columns``  two or more column groups changed, or the column count, or y1 had no
                               working to keep (malformed y1); answer changed

        The working is written before the answer, so a revision that redoes a column and then copies
        the answer off its own new working is a ``patch_column`` (one column) or ``rewrite_columns``.
        """
        m2 = attempt_groups(ATTEMPT_RE, y2)
        if m2 is None:
            return "malformed"
        m1 = attempt_groups(ATTEMPT_RE, y1)
        if m1 is None:
            return "rewrite_columns"
        (w1, a1), (w2, a2) = m1, m2
        if (w1, a1) == (w2, a2):
            return "repeat"
        if w1 == w2:
            return "recopy_answer" if (a2.lstrip("0") or "0") == self.working_answer(problem, y1) else "answer_only"
        if a1 == a2:
            return "working_only"
        g1, g2 = w1.split(" "), w2.split(" ")
        if len(g1) == len(g2) and sum(x != y for x, y in zip(g1, g2)) == 1:
            return "patch_column"
        return "rewrite_columns"

    def verify(self, problem: Problem, completion: str) -> Verdict:
        text = completion.strip()
        m = ATTEMPT_RE.match(text)
        if m is None:
            return Verdict(False, False, None, "malformed")
        answer = m.group(2)
        correct = answer.lstrip("0") == problem.answer.lstrip("0")
        return Verdict(correct, True, answer, None if correct else self.classify(problem, text))

    def classify(self, problem: Problem, text: str) -> str:
        """The first step of a well-formed, wrong attempt that departs from the procedure."""
        m = ATTEMPT_RE.match(text)
        if m is None:
            return "malformed"
        groups = m.group(1).split(" ")
        if len(groups) != self.n_digits:
            return "column_count"
        columns = [Column(int(g[0]), int(g[1]), int(g[2]), int(g[3:])) for g in groups]
        expected_carry = 0
        for k, (col, (a, b)) in enumerate(zip(columns, self.digits(problem))):
            if (col.a, col.b) != (a, b):
                return f"operand_copy@{k}"
            if col.carry_in != expected_carry:
                return f"{'carry_drop' if expected_carry else 'carry_error'}@{k}"
            if col.total != col.a + col.b + col.carry_in:
                return f"sum_slip@{k}"
            expected_carry = col.total // 10
        if m.group(2).lstrip("0") != self._answer(columns):
            return "final_copy"
        # a consistent scratchpad whose answer is wrong needs a wrong column above; unreachable
        raise AssertionError(f"unclassifiable attempt {text!r} for {problem.id}")


def addition_problem(a: int, b: int, n_digits: int) -> Problem:
    """The problem a + b of two n-digit operands (both embedded testbeds pose these)."""
    for v in (a, b):
        if not 10 ** (n_digits - 1) <= v <= 10**n_digits - 1:
            raise ValueError(f"operand {v} is not a {n_digits}-digit number")
    return Problem(id=f"{a}+{b}", prompt=f"{a}+{b}=", answer=str(a + b), meta={"a": a, "b": b})


def bucket_split(problem_id: str) -> str:
    """The split of a problem id, by a stable hash into the per-mille buckets of SPLIT_BUCKETS."""
    bucket = stable_hash(problem_id) % 1000
    return next(s for s, (lo, hi) in SPLIT_BUCKETS.items() if lo <= bucket < hi)


def column_feature(when: str, a: int, b: int, carry: int, k: int) -> bool:
    if when.startswith("pair:"):
        return any({a, b} == {int(p[0]), int(p[1])} for p in when[5:].split(","))
    return COLUMN_FEATURES[when](a, b, carry, k)


def attempt_groups(pattern: re.Pattern, attempt) -> tuple[str, str] | None:
    """The two groups of a well-formed attempt (whitespace-stripped) matched by `pattern`; None for
    anything else (a malformed attempt, or not a string at all)."""
    m = pattern.match(attempt.strip()) if isinstance(attempt, str) else None
    return None if m is None else (m.group(1), m.group(2))


def _applicable(kind: str, carry: int) -> bool:
    return {"carry_drop": carry == 1, "carry_error": carry == 0}.get(kind, True)


def _miscopy(answer: str, n_digits: int) -> str:
    """A copying slip on the answer line: drop the leading carry digit, else swap the last two
    digits, else change the last digit."""
    if len(answer) > n_digits:
        return answer[1:]
    if len(answer) >= 2 and answer[-1] != answer[-2]:
        return answer[:-2] + answer[-1] + answer[-2]
    return answer[:-1] + str((int(answer[-1]) + 1) % 10)
