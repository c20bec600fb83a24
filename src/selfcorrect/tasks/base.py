"""What every task gives the harness: problems, a verifier, prompts and the revise instruction."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Protocol

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Problem:
    """One problem x with its reference answer y*; `meta` holds task-specific fields."""

    id: str
    prompt: str
    answer: str
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class Verdict:
    """The verifier's judgement of one attempt. `error_type` is None when correct.

    `correct` is the only thing that enters accuracy; `well_formed` is reported separately
    and never mixed into it.
    """

    correct: bool
    well_formed: bool
    answer: str | None
    error_type: str | None = None

    @property
    def error_kind(self) -> str | None:
        """The error type without its position, e.g. 'carry_drop' for 'carry_drop@2'."""
        return None if self.error_type is None else self.error_type.split("@")[0]


class Task(Protocol):
    name: str
    revise_instruction: str

    def problems(self, split: str, n: int, seed: int) -> list[Problem]: ...

    def user_prompt(self, problem: Problem) -> str: ...

    def verify(self, problem: Problem, completion: str) -> Verdict: ...


def stable_hash(text: str) -> int:
    """A hash that is the same in every process and Python version (unlike hash())."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


def check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")


def base_like_cells(base_sites: dict[str, float] | None, kinds: tuple[str, ...]) -> dict[str, float]:
    """The teacher mixture of error model `base_like`: the base's own first-attempt error sites
    (`kind@site` signatures with their counts) that the teacher can write."""
    if not base_sites:
        raise ValueError("error model 'base_like' needs the base model's first-attempt error sites; it made no errors")
    writable = {c: float(v) for c, v in base_sites.items() if "@" in c and c.split("@")[0] in kinds and v > 0}
    if not writable:
        raise ValueError(f"none of the base model's error sites {sorted(base_sites)} can be written by the teacher ({kinds})")
    return writable
