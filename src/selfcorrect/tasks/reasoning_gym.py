"""Procedural problems from the PyPI library `reasoning-gym`, for pretrained chat models.

What is fixed here is docs/preregistration/2026-12-07_reasoning_gym_task_selection.md:

- Problems: `reasoning_gym.create_dataset(dataset, seed=pool_seed, size=pool_size, **knobs)`, generated
  once per task object, de-duplicated by question text (the first entry of a question is kept), and
  split by a stable hash of the question into train / val / test (`split_fractions`), so a question
  never lies in two splits whatever the seed or the pool size. `split_sizes()` counts each split's
  distinct problems (a candidate needs >= MIN_TEST_PROBLEMS test problems).
- Prompt (the model's own chat template): the system message `system_prompt`; one solved example as
  a user / assistant turn (the first problem of the *train* split, answered "Final Answer: <its
  answer>"; `worked_example`); then the problem, as the dataset words it. These turns come from
  `prefix_messages`, which `prompts.conversation` puts before the problem. The revise instruction is
  the paper's MATH one (its first two sentences verbatim) with our answer form.
- An attempt ends at the end-of-turn token or where a runaway continuation starts (`stop`, not kept
  in the attempt; the policy reads `task.stop`).
- Verifier: the answer is the first line of the text after the attempt's last "Final Answer:",
  stripped (when that line is empty, it is read as absent), else the last number in the attempt
  (an integer or decimal, maybe negative), else none; the attempt is right iff the dataset's own
  `score_answer(answer, entry)` is 1.0 (partial credit counts as wrong). `well_formed` = an answer
  was extracted. Error types: ``no_answer`` (nothing extracted), ``wrong_answer`` (anything else
  wrong); there are no error sites.

The task's error model (`reasoning_gym_errors.ReasoningGymErrorModel`, paired with it in
`tasks.TASKS`) writes "Final Answer: <gold>" and the same with one digit changed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from selfcorrect.tasks.base import Problem, Task, Verdict, stable_hash
from selfcorrect.tasks.splits import check_fractions, draw, hash_split

SYSTEM_PROMPT = 'Solve the problem. End your reply with the line "Final Answer: <answer>".'
# The paper's MATH revise instruction, its first two sentences verbatim; the answer form is ours.
REVISE_INSTRUCTION = (
    "There might be an error in the solution above because of lack of understanding of the question. "
    'Please correct the error, if any, and rewrite the solution. End your reply with the line "Final Answer: <answer>".'
)
STOP = ("\nProblem:", "\nQuestion:", "<|im_start|>")
SPLIT_FRACTIONS = {"train": 0.6, "val": 0.2, "test": 0.2}
MIN_TEST_PROBLEMS = 500  # distinct test problems a dataset setting needs (the pre-registration)

FINAL_ANSWER = "Final Answer:"
NUMBER_RE = re.compile(r"(?<![\d.])-?\d+(?:\.\d+)?")  # an integer or decimal, maybe negative ("3-4" reads 3 and 4)


class ReasoningGymTask(Task):
    """One reasoning-gym dataset at fixed knobs: a seeded pool of problems split by question hash,
    a system message and a worked example as chat turns, and the dataset's own scorer."""

    name = "reasoning_gym"

    def __init__(
        self,
        dataset: str = "chain_sum",
        knobs: Mapping[str, Any] | None = None,
        pool_seed: int = 0,
        pool_size: int = 20000,
        split_fractions: Mapping[str, float] | None = None,
        system_prompt: str = SYSTEM_PROMPT,
        revise_instruction: str = REVISE_INSTRUCTION,
        worked_example: bool = True,
        stop: Sequence[str] = STOP,
    ):
        for key, value, low in (("pool_seed", pool_seed, 0), ("pool_size", pool_size, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"reasoning_gym: {key} must be an integer >= {low}, got {value!r}")
        if not isinstance(worked_example, bool):
            raise ValueError(f"reasoning_gym: worked_example must be true or false, got {worked_example!r}")
        if isinstance(stop, str) or not all(isinstance(s, str) and s for s in stop):
            raise ValueError(f"reasoning_gym: stop must be a list of non-empty strings, got {stop!r}")
        self.dataset, self.knobs = str(dataset), dict(knobs or {})
        self.pool_seed, self.pool_size = pool_seed, pool_size
        self.fractions = check_fractions(split_fractions or SPLIT_FRACTIONS, "reasoning_gym split_fractions")
        self.system_prompt, self.revise_instruction = system_prompt, revise_instruction
        self.worked_example, self.stop = worked_example, tuple(stop)
        self.generator = make_dataset(self.dataset, self.knobs, pool_seed, pool_size)  # its score_answer is the verifier
        self._splits: dict[str, list[Problem]] | None = None

    # --- problems ------------------------------------------------------------------------------
    def pool(self) -> dict[str, list[Problem]]:
        """Every distinct problem of the generator's pool, by split, in the pool's order (built on
        first use and kept: 20,000 entries take well under a second for the arithmetic datasets)."""
        if self._splits is None:
            splits: dict[str, list[Problem]] = {s: [] for s in self.fractions}
            seen: set[str] = set()
            for entry in self.generator:
                question = entry["question"]
                if question in seen:
                    continue
                seen.add(question)
                splits[hash_split(question, self.fractions, salt=self.name)].append(self.make_problem(entry))
            self._splits = splits
        return self._splits

    def make_problem(self, entry: Mapping[str, Any]) -> Problem:
        """The problem of one dataset entry; `meta` is the entry itself as JSON (question, answer,
        metadata: what `score_answer` reads), so a problem survives a round trip through a file."""
        question = entry["question"]
        return Problem(
            id=f"rg:{self.dataset}:{stable_hash(question):016x}",
            prompt=question,
            answer=str(entry["answer"]),
            meta={"entry": json.loads(json.dumps(dict(entry), default=str))},
        )

    def split_sizes(self) -> dict[str, int]:
        """The number of distinct problems in each split."""
        return {split: len(problems) for split, problems in self.pool().items()}

    def problems(self, split: str, n: int, seed: int) -> list[Problem]:
        """`n` distinct problems of `split`, the same for the same seed (a larger n extends a smaller one)."""
        if split not in self.fractions:
            raise ValueError(f"reasoning_gym: unknown split {split!r}; splits: {sorted(self.fractions)}")
        have = self.pool()[split]
        if isinstance(n, bool) or not isinstance(n, int) or not 0 < n <= len(have):
            raise ValueError(
                f"reasoning_gym ({self.dataset}): cannot draw n={n!r} problems from split {split!r}: it holds "
                f"{len(have)} distinct problems (pool_size={self.pool_size}; split sizes {self.split_sizes()})"
            )
        return draw(have, n, seed, label=f"reasoning_gym:{self.dataset}:{split}")

    # --- prompts -------------------------------------------------------------------------------
    def user_prompt(self, problem: Problem) -> str:
        return problem.prompt

    def prefix_messages(self, problem: Problem) -> list[dict[str, str]]:
        """The system message, then the worked example as a user / assistant turn (when enabled)."""
        messages = [{"role": "system", "content": self.system_prompt}]
        if self.worked_example:
            example = self.example_problem()
            messages += [{"role": "user", "content": example.prompt},
                         {"role": "assistant", "content": f"{FINAL_ANSWER} {example.answer}"}]
        return messages

    def example_problem(self) -> Problem:
        """The worked example: the first problem of the train split in the pool's order."""
        train = self.pool().get("train")
        if not train:
            raise ValueError(f"reasoning_gym ({self.dataset}): worked_example needs a train problem, but the train split is empty")
        return train[0]

    # --- verifier ------------------------------------------------------------------------------
    def verify(self, problem: Problem, completion: str) -> Verdict:
        answer = extract_answer(completion)
        if answer is None:
            return Verdict(False, False, None, "no_answer")
        correct = self.score(problem, answer) == 1.0
        return Verdict(correct, True, answer, None if correct else "wrong_answer")

    def score(self, problem: Problem, answer: str) -> float:
        """The dataset's own score of `answer` on `problem` (1.0 right, partial credit below)."""
        return float(self.generator.score_answer(answer, problem.meta["entry"]))


FINAL_ANSWER_RE = re.compile(r"final answer\s*:", re.IGNORECASE)


def extract_answer(completion: str) -> str | None:
    """The answer an attempt gives (the amended pre-registration, 2026-12-07_reasoning_gym_verifier_
    amendment.md): the first line after the attempt's last "Final Answer:" (any case, markdown emphasis
    around it ignored) -- its first number when the line holds one ("42." and "9Simple Steps:" give 42
    and 9), else the line stripped of emphasis and end punctuation; when there is no such non-empty
    line, the last number in the attempt; else None."""
    marks = list(FINAL_ANSWER_RE.finditer(completion))
    if marks:
        line = completion[marks[-1].end():].split("\n", 1)[0].strip().strip("*_` ").rstrip(".")
        if line:
            first = NUMBER_RE.search(line)
            return first.group(0) if first else line
    numbers = NUMBER_RE.findall(completion)
    return numbers[-1] if numbers else None


def make_dataset(dataset: str, knobs: Mapping[str, Any], seed: int, size: int):
    """`reasoning_gym.create_dataset(dataset, seed, size, **knobs)`, with a ValueError that names the
    dataset or the knobs it rejects (reasoning-gym itself raises TypeError / AssertionError)."""
    import reasoning_gym
    from reasoning_gym.factory import DATASETS

    if dataset not in DATASETS:
        raise ValueError(f"reasoning_gym: unknown dataset {dataset!r}; reasoning-gym has {len(DATASETS)}, e.g. {sorted(DATASETS)[:8]}")
    try:
        return reasoning_gym.create_dataset(dataset, seed=seed, size=size, **knobs)
    except (TypeError, AssertionError, ValueError) as e:
        raise ValueError(f"reasoning_gym: dataset {dataset!r} rejects knobs {dict(knobs)!r}: {e}") from e
