"""What every task gives the harness: problems, a verifier, prompts and the revise instruction."""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
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
        return error_kind(self.error_type)


def split_error_type(error_type: str) -> tuple[str, int | None]:
    """('carry_drop', 2) for 'carry_drop@2'; (kind, None) for a type without a site."""
    kind, _, site = error_type.partition("@")
    return kind, int(site) if site else None


def error_type(kind: str, site: int | None) -> str:
    """The error type of one error of `kind` at `site` (``carry_drop@1``; ``final_copy`` without a site)."""
    return kind if site is None else f"{kind}@{site}"


def error_kind(error_type) -> str | None:
    """The kind of an error type or signature (`kind@site` → kind); None for a non-string (correct)."""
    return error_type.partition("@")[0] if isinstance(error_type, str) else None


# What the tiny base model's corpus draws one trace's attempts with: (problem, n_attempts, rng) -> attempts.
PretrainingSampler = Callable[[Problem, int, random.Random], list[str]]


class Task(Protocol):
    """What the harness asks of a task. Every task subclasses it, so that it inherits the
    *optional capabilities* below as None ("this task has none") unless it defines them:

    - `working_answer(problem, attempt) -> str | None`: the answer an attempt's working spells,
      whatever its answer says (the probe's readability strata);
    - `pretraining_sampler(pre) -> PretrainingSampler`: what draws the attempts of the tiny base
      model's pretraining corpus on this task from its corpus profile `pre` (`model.pretrain`);
    - `revision_behaviour(problem, y1, y2) -> str`: how the second attempt revised the first, one
      label of the task's `revision_behaviours` (`selfcorrect.evaluation.mechanisms.behaviours`: their shares
      and entropy, on wrong and on right first attempts; a task without it has no behaviour block);
    - `prefix_messages(problem) -> list[dict]`: chat messages put before the problem's user message
      (a system message, worked examples as user / assistant turns; `prompts.conversation`).

    A task's error model is not one of its members: it lives beside the task and is paired with it
    in the registry (`selfcorrect.tasks.TASKS`, `make_error_model`)."""

    name: str
    revise_instruction: str
    working_answer: Callable[[Problem, str], str | None] | None = None
    pretraining_sampler: Callable[[Mapping], PretrainingSampler] | None = None
    revision_behaviour: Callable[[Problem, str, str], str] | None = None
    revision_behaviours: tuple[str, ...] = ()
    prefix_messages: Callable[[Problem], list[dict[str, str]]] | None = None
    stop: tuple[str, ...] = ()  # strings at which an attempt ends (not kept in it); () = only the EOS token

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
    task's verdict (`kind@site`), counting those sites by the model's own `signature`, and the
    teacher that writes a wrong first attempt for a cell (`write`).

    A task's error model (its own module beside the task, paired with it in `tasks.TASKS`) sets
    `kinds` (the error kinds that are one error at one site) and `teacher_models` and defines
    `correct_attempt`, `sites`, `signature` and the two hooks the teacher writes with: `inject`
    (exactly one error of a kind at a site) and `random_digit` (teacher cell ``random_digit``)."""

    kinds: tuple[str, ...] = ()
    teacher_models: tuple[str, ...] = ()
    # the most errors `inject_errors` writes into one attempt (1: only `inject`'s single error)
    max_injected_errors: int = 1

    def __init__(self, task: Task):
        self.task = task

    # --- what each task's error model defines ---------------------------------------------------
    def correct_attempt(self, problem: Problem) -> str:
        raise NotImplementedError

    def sites(self, problem: Problem, kind: str) -> list:
        """Where one error of `kind` can be written on `problem` (a ValueError for a kind not in `kinds`)."""
        raise NotImplementedError

    def signature(self, problem: Problem, kind: str, site: int | None) -> str:
        raise NotImplementedError

    def inject(self, problem: Problem, kind: str, site: int | None, rng: random.Random | None = None) -> str:
        """An attempt with exactly one error of `kind` at `site` that the verifier reads back as
        that error type; where several such errors exist, `rng` draws one (None: a draw fixed by
        problem, kind and site)."""
        raise NotImplementedError

    def random_digit(self, problem: Problem, rng: random.Random) -> str:
        """A wrong attempt for teacher cell ``random_digit``: one digit written wrong, drawn from `rng`."""
        raise NotImplementedError

    def inject_errors(self, problem: Problem, k: int, rng: random.Random) -> str | None:
        """A wrong attempt with `k` errors at `k` distinct sites, kinds and sites drawn from `rng`
        (the self-conditioning measure, `mechanisms.self_conditioning`), or None where `problem` has
        fewer than `k` sites. Here, for k = 1 only (an injectable kind, then one of its sites);
        an error model with `max_injected_errors` > 1 writes several."""
        if not 1 <= k <= self.max_injected_errors:
            raise ValueError(f"{type(self).__name__} writes 1..{self.max_injected_errors} errors into an attempt, got k={k!r}")
        kinds = [kind for kind in self.kinds if self.sites(problem, kind)]
        if not kinds:
            return None
        kind = rng.choice(kinds)
        return self.inject(problem, kind, rng.choice(self.sites(problem, kind)), rng)

    # --- shared ----------------------------------------------------------------------------------
    def error_site(self, problem: Problem, attempt: str) -> tuple[str, int | None] | None:
        """(kind, site) of the first error of a wrong attempt (site None when it has none); None if right."""
        v = self.task.verify(problem, attempt)
        if v.correct:
            return None
        return split_error_type(v.error_type)

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

    def write(self, problem: Problem, cell: str, rng: random.Random) -> str:
        """A wrong first attempt for teacher cell `cell`: ``random_digit`` (the `random_digit`
        hook), a kind at a random valid site, or a kind at a random site with the cell's signature
        (``kind@...``); `inject` writes the error there, `rng` draws the site and then whatever
        `inject` draws."""
        if cell == "random_digit":
            return self.random_digit(problem, rng)
        kind = error_kind(cell)
        if kind not in self.kinds:
            raise ValueError(f"unknown teacher cell {cell!r} for {self.task.name}; kinds: {self.kinds} (+ 'random_digit')")
        sites = self.sites(problem, kind)
        if cell != kind:
            sites = [s for s in sites if self.signature(problem, kind, s) == cell]
        if not sites:
            raise ValueError(f"no site for teacher cell {cell!r} in {problem.id}")
        return self.inject(problem, kind, rng.choice(sites), rng)

    def site_histogram(self, problems: Sequence[Problem], attempts: Sequence[str]) -> dict[str, int]:
        """Counts of the signatures of the first errors of the wrong attempts."""
        sites = (self.error_site(p, y) for p, y in zip(problems, attempts))
        return dict(Counter(self.signature(p, *s) for p, s in zip(problems, sites) if s is not None))


def base_like_cells(base_sites: dict[str, float] | None, kinds: tuple[str, ...]) -> dict[str, float]:
    """The teacher mixture of error model `base_like`: the base's own first-attempt error sites
    (`kind@site` signatures with their counts) that the teacher can write."""
    if not base_sites:
        raise ValueError("error model 'base_like' needs the base model's first-attempt error sites; it made no errors")
    writable = {c: float(v) for c, v in base_sites.items() if "@" in c and error_kind(c) in kinds and v > 0}
    if not writable:
        raise ValueError(f"none of the base model's error sites {sorted(base_sites)} can be written by the teacher ({kinds})")
    return writable
