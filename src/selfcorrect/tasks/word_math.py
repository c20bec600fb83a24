"""Generated arithmetic word problems for pretrained chat models (issue 15).

A problem is a chain on one quantity: a start q0, then n steps, each an operation on the running
total with one number q_i (i = 1..n), asked as a short story:

    "Mia has 7 apples. Then she buys 5 more apples. Then she gives 3 apples to Leo.
     How many apples does Mia have now?"                     (skeleton 7+5-3, answer 9)

Difficulty knobs: `n_steps` (operations after the start), `max_number` (the start is in
[2, max_number]), `max_operand` (the number of each step is in [2, max_operand]; default
max_number; running totals stay >= 1) and `operations` (a subset of add, sub, mul; mul
multiplies by 2..min(5, max_operand)). Problems come from a seeded generator; the split of a
problem is a stable hash of its *skeleton* (the numbers and operations, not the names), so the
test set never holds a train problem in other words. A draw of n problems repeats no skeleton
while its split has unused ones (`problems`), so n test problems are n distinct facts as long as
the split holds n; `skeletons(split)` lists a split's facts.

The configured default (conf/task/word_math.yaml, issue 24): 1 step, start in [2, 40], add or
subtract 2..9, splits 0.4/0.2/0.4, and a worked example in the user prompt (`worked_example`,
WORKED_EXAMPLE: one solved train problem between the instruction and the problem; empty: none).
It has 588 distinct facts (skeletons): 257 train, 107 val, 224 test (the old default, 1 step with
numbers <= 10 and +/-, had 117: 89 train, 10 val, 18 test). It was chosen on validation problems
by the rules of experiments/word_math_difficulty.md (two rounds); SmolLM2-135M-Instruct is right at
the first attempt on only 13.1 % ± 3.3 % of its validation problems (n=107), below the 30-60 %
band that no candidate with >= 200 test facts reached (with or without the example, it rarely adds
or subtracts a digit correctly once the start is above 20).

Checking. The attempt's answer is the text after its last "Final Answer:" if it has one, else
whatever math-verify extracts from the whole attempt (as for GSM8K); it is compared with the
reference by math-verify. `well_formed` = the attempt has a "Final Answer:" line that parses;
it is reported separately and never enters accuracy.

Error taxonomy of a wrong attempt (the first that applies; positions index the quantities q_i,
or the operations 1..n, or for slips the attempt's own equations, 1-based):

- ``no_answer``            nothing math-verify can read as an answer
- ``arithmetic_slip@j``    the j-th equation the attempt writes ("a + b = c", chains allowed)
                           is false (j > n counts as n: equations written after the chain
                           should have ended belong to its last operation)
- ``wrong_operation@i``    the answer is the chain with operation i replaced by another of
                           +, -, ×, ÷ (exact), everything else right
- ``copied_number@i``      the answer is the number q_i of the story
- ``stopped_early@i``      the answer is the running total after operation i < n
- ``skipped_step@i``       the answer is the chain without operation i (n >= 2)
- ``misread_number@i``     the answer is the chain with q_i replaced by another number that the
                           attempt writes or the story holds
- ``wrong_answer``         none of these explains it

The task's error model, `WordMathErrorModel` in `tasks/word_math_errors.py` (it builds on the task,
which does not know it; the registry pairs the two in `tasks.TASKS`), writes worked solutions with
exactly one wrong_operation, arithmetic_slip or misread_number at a chosen site, for the teacher
traces of the sft_teacher arm and the correction matrix (the interface of `SiteErrorModel`).
"""

from __future__ import annotations

import ast
import operator
import random
import re
from collections.abc import Sequence
from fractions import Fraction

from selfcorrect.tasks.base import Problem, Task, Verdict
from selfcorrect.tasks.splits import check_fractions, hash_split

OPERATIONS = ("add", "sub", "mul")
SYMBOL = {"add": "+", "sub": "-", "mul": "×", "div": "÷"}
APPLY = {
    "add": lambda x, n: x + n,
    "sub": lambda x, n: x - n,
    "mul": lambda x, n: x * n,
    "div": lambda x, n: x / n,
}
ALTERNATIVE_OPS = ("add", "sub", "mul", "div")  # what a wrong operation may be
MAX_MULTIPLIER = 5
ERROR_KINDS = (
    "no_answer", "arithmetic_slip", "wrong_operation", "copied_number", "stopped_early",
    "skipped_step", "misread_number", "wrong_answer",
)

INSTRUCTION = (
    "Solve the math word problem. Think step by step, writing each calculation. On the last line "
    'write the answer as a number in the form "Final Answer: <number>".'
)
# The paper's MATH revise instruction, its first two sentences verbatim; the answer form is ours.
REVISE_INSTRUCTION = (
    "There might be an error in the solution above because of lack of understanding of the question. "
    "Please correct the error, if any, and rewrite the solution. On the last line write the answer as a "
    'number in the form "Final Answer: <number>".'
)
# Where an attempt ends besides the end-of-turn token: SmolLM2 follows its answer with a problem of its own
# ("Problem: ..." after the worked example's format; 91 of 124 attempts ran to the token cap without this).
# The attempt ends where such a continuation starts (the stop string is not kept; Policy reads `task.stop`).
STOP = ("\nProblem:", "\nExample problem:", "\nExample solution:")
PROMPT_TEMPLATE = "{instruction}\n\nProblem:\n{problem}"
# One solved problem in the generator's wording and the verifier's answer form (the error model's
# worked-solution form); `worked_example` puts it between the instruction and the problem (issue 24,
# round two of experiments/word_math_difficulty.md). Its fact 23+4 lies in the train split.
WORKED_EXAMPLE = (
    "Example problem:\nTom has 23 pencils. Then he finds 4 more pencils. How many pencils does Tom have now?\n"
    "Example solution:\nTom starts with 23 pencils.\n23 + 4 = 27\nFinal Answer: 27"
)

NAMES = (("Mia", "she", "her"), ("Leo", "he", "him"), ("Ava", "she", "her"), ("Sam", "he", "him"),
         ("Lily", "she", "her"), ("Ben", "he", "him"), ("Zoe", "she", "her"), ("Max", "he", "him"),
         ("Emma", "she", "her"), ("Noah", "he", "him"), ("Ruby", "she", "her"), ("Omar", "he", "him"))
ITEMS = ("apples", "marbles", "stickers", "pencils", "cookies", "books", "shells", "cards", "coins", "balloons")
STEP_TEMPLATES = {
    "add": ("Then {he} buys {n} more {items}.", "Then {friend} gives {him} {n} more {items}.",
            "Then {he} finds {n} more {items}."),
    "sub": ("Then {he} gives {n} {items} to {friend}.", "Then {he} loses {n} {items}.",
            "Then {he} sells {n} {items}."),
    "mul": ("Then the number of {items} {he} has becomes {n} times as large.",),
}

# how a second attempt revised the first (`WordMathTask.revision_behaviour`), in the order they are checked
REVISION_BEHAVIOURS = ("malformed", "repeat", "same_answer_rewritten", "answer_only_changed", "rewrite")
REPEAT_PATIENCE = 1000  # draws from the split in a row that find no unused skeleton before one may repeat
MAX_ENUMERATED = 2_000_000  # `skeletons` refuses to list more

FINAL_ANSWER_RE = re.compile(r"final\s+answer\s*(?:is)?\s*[:：]?", re.IGNORECASE)
NUMBER = r"\d+(?:\.\d+)?"
EQUATION_RE = re.compile(rf"((?:{NUMBER}\s*[-+*/×x÷]\s*)+{NUMBER})\s*=\s*(-?{NUMBER})(?![\d.]*\s*[-+*/×x÷]\s*\d)")
INTEGER_RE = re.compile(r"(?<![\d.])\d+(?![\d.]*\d)")
WORKING_NUMBER_RE = re.compile(rf"(?<![\d.]){NUMBER}")
BINOPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}


class WordMathTask(Task):
    """Seeded arithmetic word problems; train/val/test split by a stable hash of the skeleton."""

    name = "word_math"
    revision_behaviours = REVISION_BEHAVIOURS

    def __init__(
        self,
        n_steps: int = 1,
        max_number: int = 20,
        operations: Sequence[str] = ("add", "sub"),
        split_fractions: dict | None = None,
        instruction: str = INSTRUCTION,
        revise_instruction: str = REVISE_INSTRUCTION,
        prompt_template: str = PROMPT_TEMPLATE,
        parse_timeout_s: int = 5,
        max_operand: int | None = None,
        worked_example: str | None = None,
        stop: Sequence[str] = STOP,
    ):
        if isinstance(stop, str) or not all(isinstance(x, str) and x for x in stop):
            raise ValueError(f"word_math: stop must be a list of non-empty strings, got {stop!r}")
        self.stop = tuple(stop)
        if isinstance(n_steps, bool) or not isinstance(n_steps, int) or not 1 <= n_steps <= 4:
            raise ValueError(f"word_math: n_steps must be an integer in 1..4, got {n_steps!r}")
        if isinstance(max_number, bool) or not isinstance(max_number, int) or not 3 <= max_number <= 1000:
            raise ValueError(f"word_math: max_number must be an integer in 3..1000, got {max_number!r}")
        if max_operand is None:
            max_operand = max_number
        if isinstance(max_operand, bool) or not isinstance(max_operand, int) or not 2 <= max_operand <= 1000:
            raise ValueError(f"word_math: max_operand must be an integer in 2..1000 (or null: max_number), got {max_operand!r}")
        operations = tuple(operations)
        if not operations or any(op not in OPERATIONS for op in operations) or len(set(operations)) != len(operations):
            raise ValueError(f"word_math: operations must be distinct names from {OPERATIONS}, got {list(operations)!r}")
        if "{problem}" not in prompt_template:
            raise ValueError(f"word_math: prompt_template must contain '{{problem}}', got {prompt_template!r}")
        self.n_steps, self.max_number, self.max_operand, self.operations = n_steps, max_number, max_operand, operations
        self.fractions = check_fractions(split_fractions or {"train": 0.7, "val": 0.1, "test": 0.2}, "word_math split_fractions")
        self.instruction, self.revise_instruction, self.prompt_template = instruction, revise_instruction, prompt_template
        if worked_example is not None and not isinstance(worked_example, str):
            raise ValueError(f"word_math: worked_example must be a string (empty or null: none), got {worked_example!r}")
        self.worked_example = (worked_example or "").strip()
        self.parse_timeout_s = int(parse_timeout_s)
        self._gold: dict[str, list] = {}

    # --- problems ------------------------------------------------------------------------------
    def make_problem(self, start: int, steps: Sequence[tuple[str, int]], surface: int = 0) -> Problem:
        """The problem with skeleton (start, steps), told with surface variant `surface` (names,
        items and sentence templates are drawn from it)."""
        steps = [(str(op), int(n)) for op, n in steps]
        values = chain_values(start, steps)
        if any(v < 1 or v.denominator != 1 for v in values):
            raise ValueError(f"word_math: skeleton {skeleton(start, steps)} has a running total that is not a positive integer: {values}")
        rng = random.Random(f"word_math/surface:{surface}")
        name, he, him = rng.choice(NAMES)
        friend = rng.choice([n for n, _, _ in NAMES if n != name])
        items = rng.choice(ITEMS)
        sentences = [f"{name} has {start} {items}."]
        for op, n in steps:
            sentences.append(rng.choice(STEP_TEMPLATES[op]).format(he=he, him=him, friend=friend, n=n, items=items))
        sentences.append(f"How many {items} does {name} have now?")
        text = " ".join(s[0].upper() + s[1:] for s in sentences)
        return Problem(
            id=f"{skeleton(start, steps)}#{surface}",
            prompt=text,
            answer=str(int(values[-1])),
            meta={"start": start, "steps": steps, "values": [int(v) for v in values], "items": items, "name": name},
        )

    def sample_skeleton(self, rng: random.Random) -> tuple[int, list[tuple[str, int]]]:
        start = rng.randint(2, self.max_number)
        total, steps = start, []
        for _ in range(self.n_steps):
            op = rng.choice(self._feasible(total))
            n = rng.randint(*self._operand_range(op, total))
            steps.append((op, n))
            total = int(APPLY[op](total, n))
        return start, steps

    def _feasible(self, total: int) -> list[str]:
        """The operations a step may take from running total `total`."""
        return [op for op in self.operations if op != "sub" or total >= 3] or ["add"]

    def _operand_range(self, op: str, total: int) -> tuple[int, int]:
        if op == "sub":
            return 2, min(self.max_operand, total - 1)
        if op == "mul":
            return 2, min(MAX_MULTIPLIER, self.max_operand)
        return 2, self.max_operand

    def skeletons(self, split: str | None = None) -> list[str]:
        """Every skeleton the generator can draw (those of `split` if given), sorted; a
        ValueError if there are more than MAX_ENUMERATED."""
        out: list[str] = []

        def walk(text: str, total: int, left: int) -> None:
            if left == 0:
                if split is None or self.split_of(text) == split:
                    out.append(text)
                return
            for op in self._feasible(total):
                lo, hi = self._operand_range(op, total)
                for n in range(lo, hi + 1):
                    walk(f"{text}{SYMBOL[op]}{n}", int(APPLY[op](total, n)), left - 1)

        bound = (self.max_number - 1) * (len(self.operations) * (self.max_operand - 1)) ** self.n_steps
        if bound > MAX_ENUMERATED:
            raise ValueError(f"word_math: up to {bound} skeletons with these knobs; too many to list (max {MAX_ENUMERATED})")
        for start in range(2, self.max_number + 1):
            walk(str(start), start, self.n_steps)
        return sorted(out)

    def split_of(self, problem_id: str) -> str:
        return hash_split(problem_id.split("#")[0], self.fractions, salt=self.name)

    def problems(self, split: str, n: int, seed: int) -> list[Problem]:
        """`n` distinct problems of `split`, drawn reproducibly from `seed`. No skeleton repeats
        until REPEAT_PATIENCE draws in a row from the split find no unused one; from then on a
        skeleton may come back in other words (a distinct problem: another surface)."""
        if split not in self.fractions or self.fractions[split] == 0:
            raise ValueError(f"word_math: unknown or empty split {split!r}; splits: {self.fractions}")
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"word_math: n must be a positive integer, got {n!r}")
        config = f"{self.n_steps}:{self.max_number}:{','.join(self.operations)}"
        if self.max_operand != self.max_number:
            config += f":{self.max_operand}"
        rng = random.Random(f"word_math:{config}:{split}:{seed}")
        seen: dict[str, Problem] = {}
        used: set[str] = set()
        tries = stale = 0
        while len(seen) < n:
            tries += 1
            if tries > 200 * n + 10_000 + 100 * REPEAT_PATIENCE:
                raise ValueError(
                    f"word_math: cannot draw n={n} distinct {split!r} problems with n_steps={self.n_steps}, "
                    f"max_number={self.max_number}, operations={list(self.operations)} (found {len(seen)})"
                )
            start, steps = self.sample_skeleton(rng)
            key = skeleton(start, steps)
            if self.split_of(key) != split:
                continue
            if key in used and stale < REPEAT_PATIENCE:
                stale += 1
                continue
            if key not in used:
                stale = 0
            used.add(key)
            problem = self.make_problem(start, steps, surface=rng.randrange(10**6))
            seen.setdefault(problem.id, problem)
        return list(seen.values())

    def user_prompt(self, problem: Problem) -> str:
        instruction = f"{self.instruction}\n\n{self.worked_example}" if self.worked_example else self.instruction
        return self.prompt_template.format(instruction=instruction, problem=problem.prompt)

    # --- verifier ------------------------------------------------------------------------------
    def gold(self, problem: Problem) -> list:
        from math_verify import parse

        if problem.id not in self._gold:
            self._gold[problem.id] = parse(problem.answer, parsing_timeout=self.parse_timeout_s)
            if not self._gold[problem.id]:
                raise ValueError(f"word_math problem {problem.id!r}: math-verify cannot parse its answer {problem.answer!r}")
        return self._gold[problem.id]

    def read_answer(self, completion: str) -> tuple[list, bool]:
        """math-verify's reading of the attempt's answer, and whether it came from a
        "Final Answer:" line (the last one; the rest of that line)."""
        from math_verify import parse

        marks = list(FINAL_ANSWER_RE.finditer(completion))
        if marks:
            line = completion[marks[-1].end():].split("\n")[0]
            pred = parse(line, parsing_timeout=self.parse_timeout_s)
            if pred:
                return pred, True
        return parse(completion, parsing_timeout=self.parse_timeout_s), False

    def verify(self, problem: Problem, completion: str) -> Verdict:
        from math_verify import verify

        pred, well_formed = self.read_answer(completion)
        if not pred:
            return Verdict(False, False, None, "no_answer")
        correct = bool(verify(self.gold(problem), pred, timeout_seconds=self.parse_timeout_s))
        answer = str(pred[-1])
        return Verdict(correct, well_formed, answer, None if correct else self.classify(problem, completion, pred[0]))

    def classify(self, problem: Problem, completion: str, value) -> str:
        """The error kind of a wrong attempt whose answer math-verify read as `value` (see the
        module docstring for the order)."""
        for j, (lhs, rhs) in enumerate(equations(completion), 1):
            if lhs != rhs:
                return f"arithmetic_slip@{min(j, len(problem.meta['steps']))}"
        try:
            answer = Fraction(str(float(value)))
        except (TypeError, ValueError):
            return "wrong_answer"
        start, steps = problem_chain(problem)
        written = {int(m) for m in INTEGER_RE.findall(completion)}
        for kind, position, alternative in explanations(start, steps, written):
            if alternative == answer:
                return f"{kind}@{position}"
        return "wrong_answer"

    # --- how the second attempt revised the first ------------------------------------------------
    def revision_behaviour(self, problem: Problem, y1: str, y2: str) -> str:
        """How the second attempt y2 revised the first y1, one of `REVISION_BEHAVIOURS`, the first
        that holds in this order. The *answer* of an attempt is the verifier's reading of it
        (`read_answer`: its last "Final Answer:" line, else math-verify on the whole attempt);
        two answers are the same when math-verify finds them equal. Its *working* is the list of
        numbers it writes before that answer: before the last "Final Answer:" mark if the answer
        came from that line, else every number but the last one (the base model often ends with
        "So Mia has 12 apples now." instead of the line). Cheap (no model), deterministic, and it
        never raises: a non-string attempt is read as empty text.

        - ``malformed``              y2 has no answer the verifier can read (its ``no_answer``;
                                     not its `well_formed`, which asks for the "Final Answer:" line)
        - ``repeat``                 y2 is y1, up to whitespace
        - ``same_answer_rewritten``  y2's answer is y1's, the text changed (working or wording)
        - ``answer_only_changed``    y2's answer differs from y1's (or y1 had none) and its working
                                     is y1's, number for number: only the final answer was changed
        - ``rewrite``                answer and working both changed
        """
        y1, y2 = _text(y1), _text(y2)
        try:
            pred2, line2 = self.read_answer(y2)
        except Exception:  # noqa: BLE001 - math-verify on garbage; never raise
            pred2, line2 = [], False
        if not pred2:
            return "malformed"
        if " ".join(y1.split()) == " ".join(y2.split()):
            return "repeat"
        try:
            pred1, line1 = self.read_answer(y1)
        except Exception:  # noqa: BLE001
            pred1, line1 = [], False
        if pred1 and _same_answer(pred1, pred2, self.parse_timeout_s):
            return "same_answer_rewritten"
        return "answer_only_changed" if working_numbers(y1, line1) == working_numbers(y2, line2) else "rewrite"


def _text(y) -> str:
    return y if isinstance(y, str) else ("" if y is None else str(y))


def _same_answer(a: list, b: list, timeout_s: int) -> bool:
    from math_verify import verify

    try:
        return bool(verify(a, b, timeout_seconds=timeout_s))
    except Exception:  # noqa: BLE001 - fall back on the strings math-verify read
        return str(a[-1]).strip() == str(b[-1]).strip()


def working_numbers(text: str, answer_on_line: bool) -> list[Fraction]:
    """The numbers an attempt writes before its answer (`WordMathTask.revision_behaviour`): before
    its last "Final Answer:" mark when the answer came from that line, else all but the last."""
    marks = list(FINAL_ANSWER_RE.finditer(text))
    if answer_on_line and marks:
        return [Fraction(x) for x in WORKING_NUMBER_RE.findall(text[: marks[-1].start()])]
    return [Fraction(x) for x in WORKING_NUMBER_RE.findall(text)][:-1]


# --- the chain and its wrong variants ---------------------------------------------------------------
def skeleton(start: int, steps: Sequence[tuple[str, int]]) -> str:
    return str(start) + "".join(f"{SYMBOL[op]}{n}" for op, n in steps)


def chain_values(start, steps: Sequence[tuple[str, int]]) -> list[Fraction]:
    """Running totals after each operation (exact; division by zero gives no value)."""
    values, total = [], Fraction(start)
    for op, n in steps:
        total = APPLY[op](total, Fraction(n))
        values.append(total)
    return values


def explanations(start: int, steps: Sequence[tuple[str, int]], written: set[int]):
    """(kind, position, value): the answers that each structural error would give, in the
    taxonomy's order; `written` are the integers the attempt writes (misread candidates)."""
    quantities = [start, *(n for _, n in steps)]
    for i, (op, n) in enumerate(steps, 1):
        for alt in ALTERNATIVE_OPS:
            if alt != op:
                yield "wrong_operation", i, chain_values(start, replace_step(steps, i, alt, n))[-1]
    for i, q in enumerate(quantities):
        yield "copied_number", i, Fraction(q)
    values = chain_values(start, steps)
    for i in range(1, len(steps)):
        yield "stopped_early", i, values[i - 1]
    if len(steps) >= 2:
        for i in range(1, len(steps) + 1):
            yield "skipped_step", i, chain_values(start, [*steps[: i - 1], *steps[i:]])[-1]
    for i, q in enumerate(quantities):
        for m in sorted((written | set(quantities)) - {q}):
            if i == 0:
                yield "misread_number", 0, chain_values(m, steps)[-1]
            else:
                yield "misread_number", i, chain_values(start, replace_step(steps, i, steps[i - 1][0], m))[-1]


def equations(text: str) -> list[tuple[Fraction, Fraction]]:
    """(value of the left side, right side) of every "a op b [op c ...] = r" the text writes,
    with × x * ÷ / read as multiplication and division; a left side that divides by zero is
    skipped."""
    out = []
    for m in EQUATION_RE.finditer(text):
        expr = re.sub(r"[×x]", "*", m.group(1)).replace("÷", "/")
        try:
            lhs = _evaluate(ast.parse(expr, mode="eval").body)
        except (ZeroDivisionError, SyntaxError, ValueError):
            continue
        out.append((lhs, Fraction(m.group(2))))
    return out


def _evaluate(node) -> Fraction:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
        return Fraction(str(node.value))
    if isinstance(node, ast.BinOp) and type(node.op) in BINOPS:
        return BINOPS[type(node.op)](_evaluate(node.left), _evaluate(node.right))
    raise ValueError(f"not an arithmetic expression: {ast.dump(node)}")


def problem_chain(problem: Problem) -> tuple[int, list[tuple[str, int]]]:
    return problem.meta["start"], [tuple(s) for s in problem.meta["steps"]]


def replace_step(steps: Sequence[tuple[str, int]], i: int, op: str, n: int) -> list[tuple[str, int]]:
    """The chain with operation i (1-based) replaced by (op, n)."""
    return [*steps[: i - 1], (op, n), *steps[i:]]
