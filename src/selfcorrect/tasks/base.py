"""What every task gives the harness: problems, a verifier, prompts and the revise instruction."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Mapping, Sequence
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


class SiteErrorModel:
    """What every task's error model shares: reading where a wrong attempt first errs from the
    task's verdict (`kind@site`) and counting those sites by the model's own `signature`.
    Subclasses set `self.task` and `kinds` and define `sites(problem, kind)` and
    `signature(problem, kind, site)`."""

    task: Task
    kinds: tuple[str, ...] = ()
    teacher_models: tuple[str, ...] = ()

    def sites(self, problem: Problem, kind: str) -> list:
        raise NotImplementedError

    def signature(self, problem: Problem, kind: str, site: int | None) -> str:
        raise NotImplementedError

    def error_site(self, problem: Problem, attempt: str) -> tuple[str, int | None] | None:
        """(kind, site) of the first error of a wrong attempt (site None when it has none); None if right."""
        v = self.task.verify(problem, attempt)
        if v.correct:
            return None
        kind, _, site = v.error_type.partition("@")
        return kind, int(site) if site else None

    def teacher_cells(self, error_model: str, base_sites: Mapping[str, float] | None = None) -> dict[str, float]:
        """The mixture over cells that teacher `error_model` draws from: ``mixed`` every injectable
        kind equally, ``base_like`` the base's own first-attempt error sites that the teacher can
        write (`site_histogram` of the base), any other of `teacher_models` that one cell alone."""
        if error_model == "mixed":
            return {k: 1.0 for k in self.kinds}
        if error_model == "base_like":
            return base_like_cells(base_sites, self.kinds)
        if error_model in self.teacher_models:
            return {error_model: 1.0}
        raise ValueError(f"unknown arm.error_model {error_model!r} for {self.task.name}; expected one of {self.teacher_models}")

    def cells(self, problem: Problem) -> set[str]:
        """Every teacher cell `write` can fill on this problem: ``random_digit``, each kind with a
        site, and each site's signature."""
        out = {"random_digit"}
        for kind in self.kinds:
            sites = self.sites(problem, kind)
            if sites:
                out.add(kind)
                out.update(self.signature(problem, kind, s) for s in sites)
        return out

    def site_histogram(self, problems: Sequence[Problem], attempts: Sequence[str]) -> dict[str, int]:
        """Counts of the signatures of the first errors of the wrong attempts."""
        sites = (self.error_site(p, y) for p, y in zip(problems, attempts))
        return dict(Counter(self.signature(p, *s) for p, s in zip(problems, sites) if s is not None))


def base_like_cells(base_sites: dict[str, float] | None, kinds: tuple[str, ...]) -> dict[str, float]:
    """The teacher mixture of error model `base_like`: the base's own first-attempt error sites
    (`kind@site` signatures with their counts) that the teacher can write."""
    if not base_sites:
        raise ValueError("error model 'base_like' needs the base model's first-attempt error sites; it made no errors")
    writable = {c: float(v) for c, v in base_sites.items() if "@" in c and c.split("@")[0] in kinds and v > 0}
    if not writable:
        raise ValueError(f"none of the base model's error sites {sorted(base_sites)} can be written by the teacher ({kinds})")
    return writable
