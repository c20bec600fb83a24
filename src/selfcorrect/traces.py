"""Correction-trace datasets for the offline arms, as the paper builds them (SCoRe §4).

A trace is one (x, y1, y2) tuple: problem x, a first attempt y1, and the second attempt y2 that
SFT trains on after the fixed revise instruction. Builders are pure functions of their inputs
(model samples, problems, a seeded RNG), so their filtering rules can be checked by hand:

- `teacher_traces`    y1 written by a teacher error model, y2 the correct attempt
- `pair_sft_traces`   D_SFT: every incorrect response paired with a random correct response to
                      the same problem from all first- and second-turn samples; D+ adds c→c
- `star_traces`       D_STaR: single sampled traces that revise incorrect → correct; D+ adds c→c

Datasets built from the base model or a teacher are saved as JSONL and cached by a hash of
everything that determines them (`cached_traces`), so a rerun reads them instead of resampling.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from selfcorrect.cache import artifact_facts, cached_artifact
from selfcorrect.evaluate import OfflineAttempts
from selfcorrect.policy import Policy, Sampling
from selfcorrect.tasks.base import Problem, Task

TRACES_VERSION = 1  # bump when a builder changes what a spec builds
TEACHER_ERROR_MODELS = ("random_digit", "carry_drop", "mixed", "base_like")


# --- samples and traces --------------------------------------------------------------------------
def sample_episodes(policy: Policy, problems: Sequence[Problem], per_problem: int, sampling: Sampling, seed: int) -> list[dict]:
    """`per_problem` two-turn episodes for each problem, each with both verdicts."""
    repeated = [p for p in problems for _ in range(per_problem)]
    episodes = policy.two_turn(repeated, sampling, seed=seed)
    task = policy.task
    return [
        {"problem": ep.problem, "y1": ep.y1, "y2": ep.y2,
         "correct1": task.verify(ep.problem, ep.y1).correct, "correct2": task.verify(ep.problem, ep.y2).correct}
        for ep in episodes
    ]


def trace(problem: Problem, y1: str, y2: str, correct1: bool, correct2: bool, source: str) -> dict:
    return {"problem": problem, "y1": y1, "y2": y2, "correct1": correct1, "correct2": correct2, "source": source}


def pair_sft_traces(samples: Sequence[dict], rng: random.Random, plus: bool = False, incorrect_from: str = "all") -> list[dict]:
    """D_SFT (D+_SFT with `plus`): pair each incorrect response with a random correct response to
    the same problem, drawn from all the model's first- and second-turn responses; problems with
    no correct response give no pairs. `incorrect_from` = 'all' pairs incorrect responses of both
    turns, 'first' only first attempts. D+ also pairs every correct response with a random
    correct one (correct → correct)."""
    if incorrect_from not in ("all", "first"):
        raise ValueError(f"incorrect_from must be 'all' or 'first', got {incorrect_from!r}")
    by_problem: dict[str, list[tuple[Problem, str, bool, int]]] = {}
    for s in samples:
        by_problem.setdefault(s["problem"].id, []).append((s["problem"], s["y1"], s["correct1"], 1))
        by_problem[s["problem"].id].append((s["problem"], s["y2"], s["correct2"], 2))
    traces = []
    for responses in by_problem.values():
        correct = [text for _, text, ok, _ in responses if ok]
        if not correct:
            continue
        for problem, text, ok, turn in responses:
            if not ok and (incorrect_from == "all" or turn == 1):
                traces.append(trace(problem, text, rng.choice(correct), False, True, "pair_i2c"))
            elif ok and plus:
                traces.append(trace(problem, text, rng.choice(correct), True, True, "pair_c2c"))
    return traces


def star_traces(samples: Sequence[dict], plus: bool = False) -> list[dict]:
    """D_STaR (D+_STaR with `plus`): the sampled traces whose own second attempt revises an
    incorrect first attempt into a correct one; D+ also keeps correct → correct traces."""
    kept = []
    for s in samples:
        if not s["correct1"] and s["correct2"]:
            kept.append(trace(s["problem"], s["y1"], s["y2"], False, True, "star_i2c"))
        elif plus and s["correct1"] and s["correct2"]:
            kept.append(trace(s["problem"], s["y1"], s["y2"], True, True, "star_c2c"))
    return kept


# --- teacher error models ------------------------------------------------------------------------
class ArithmeticErrorModel:
    """How a teacher writes wrong first attempts for the arithmetic task, with the task's own bug
    operators: a bug kind at a random valid site (`write` / `bug_sites`), or `random_digit`
    (`perturb_random_digit` on the correct attempt, redrawn until the answer is wrong: the
    verifier checks only the answer, so a perturbed scratchpad digit alone is no error)."""

    MAX_TRIES = 100

    def __init__(self, task):
        from selfcorrect.tasks import arithmetic

        self.task, self._arith = task, arithmetic
        self.bug_kinds: tuple[str, ...] = (*arithmetic.COLUMN_BUGS, *arithmetic.FINAL_BUGS)

    def correct_attempt(self, problem: Problem) -> str:
        return self.task.write(problem)

    def can_write(self, problem: Problem, kind: str) -> bool:
        if kind in self._arith.COLUMN_BUGS:
            return bool(self.task.bug_sites(problem, kind))
        if kind in self.bug_kinds or kind == "random_digit":
            return True
        raise ValueError(f"unknown teacher error kind {kind!r}; expected 'random_digit' or one of {self.bug_kinds}")

    def wrong_attempt(self, problem: Problem, kind: str, rng: random.Random) -> str:
        if not self.can_write(problem, kind):
            raise ValueError(f"no site for a {kind!r} error in {problem.id}")
        if kind == "random_digit":
            right = self.correct_attempt(problem)
            for _ in range(self.MAX_TRIES):
                y = self._arith.perturb_random_digit(right, rng)
                if not self.task.verify(problem, y).correct:
                    return y
            raise RuntimeError(f"no answer-changing digit perturbation of {right!r} in {self.MAX_TRIES} tries")
        if kind in self._arith.FINAL_BUGS:
            y = self.task.write(problem, final_bug=kind)
        else:
            y = self.task.write(problem, {rng.choice(self.task.bug_sites(problem, kind)): kind})
        if self.task.verify(problem, y).correct:  # every bug operator changes the answer
            raise AssertionError(f"bug {kind!r} left {problem.id} correct: {y!r}")
        return y


# task name -> error model; the arm reaches task-specific code only through this table
ERROR_MODELS: dict[str, Callable[[Task], ArithmeticErrorModel]] = {"arithmetic": ArithmeticErrorModel}


def error_model_for(task: Task):
    if task.name not in ERROR_MODELS:
        raise ValueError(
            f"task {task.name!r} has no teacher error model, so arm sft_teacher cannot write its first "
            f"attempts; tasks with one: {sorted(ERROR_MODELS)}"
        )
    return ERROR_MODELS[task.name](task)


def teacher_kind_weights(error_model: str, bug_kinds: Sequence[str], base_hist: Mapping[str, float] | None = None) -> dict[str, float]:
    """The error-kind mixture a teacher draws from: the dial from far to near the model's own."""
    if error_model == "random_digit":
        return {"random_digit": 1.0}
    if error_model == "carry_drop":
        return {"carry_drop": 1.0}
    if error_model == "mixed":
        return {k: 1.0 for k in bug_kinds}
    if error_model == "base_like":
        if not base_hist:
            raise ValueError("error model 'base_like' needs the base model's first-attempt error histogram; it made no errors")
        writable = {k: float(v) for k, v in base_hist.items() if k in bug_kinds and v > 0}
        if not writable:
            raise ValueError(f"none of the base model's error kinds {sorted(base_hist)} can be written by the teacher ({bug_kinds})")
        return writable
    raise ValueError(f"unknown arm.error_model {error_model!r}; expected one of {TEACHER_ERROR_MODELS}")


def teacher_traces(errors, problems: Sequence[Problem], weights: Mapping[str, float], n: int, rng: random.Random) -> list[dict]:
    """`n` correction traces: draw an error kind from `weights`, then a problem (from `problems`)
    that admits it, so the kinds follow `weights` exactly in expectation; y1 is the teacher's
    wrong attempt, y2 the correct one."""
    kinds, w = list(weights), [weights[k] for k in weights]
    traces = []
    for _ in range(n):
        kind = rng.choices(kinds, w)[0]
        for _ in range(errors.MAX_TRIES):
            problem = rng.choice(problems)
            if errors.can_write(problem, kind):
                break
        else:
            raise RuntimeError(f"no problem among {len(problems)} admits a {kind!r} error")
        traces.append(trace(problem, errors.wrong_attempt(problem, kind, rng), errors.correct_attempt(problem), False, True, f"teacher_{kind}"))
    return traces


def error_histogram(task: Task, problems: Sequence[Problem], attempts: Sequence[str]) -> dict[str, int]:
    """Counts of error kinds (position dropped) among the wrong attempts."""
    kinds = (task.verify(p, y).error_kind for p, y in zip(problems, attempts))
    return dict(Counter(k for k in kinds if k is not None))


# --- probe sets ----------------------------------------------------------------------------------
def probe_set(label: str, traces: Sequence[dict], n: int, rng: random.Random) -> OfflineAttempts:
    """A fixed set of up to `n` trained-on first attempts for the mismatch probe: the wrong y1 of
    traces on distinct problems (correction rates count only wrong first attempts)."""
    first: dict[str, dict] = {}
    for t in traces:
        if not t["correct1"]:
            first.setdefault(t["problem"].id, t)
    chosen = sorted(first.values(), key=lambda t: t["problem"].id)
    chosen = rng.sample(chosen, min(n, len(chosen)))
    if not chosen:
        raise ValueError(f"probe set {label!r}: no trace with a wrong first attempt to build it from")
    return OfflineAttempts(label, [t["problem"] for t in chosen], [t["y1"] for t in chosen])


# --- persistence and caching ---------------------------------------------------------------------
def _row(t: dict) -> dict:
    p = t["problem"]
    return {**t, "problem": {"id": p.id, "prompt": p.prompt, "answer": p.answer, "meta": p.meta}}


def _unrow(r: dict) -> dict:
    return {**r, "problem": Problem(**r["problem"])}


def save_traces(path: str | Path, traces: Sequence[dict]) -> None:
    with open(path, "w") as f:
        for t in traces:
            f.write(json.dumps(_row(t)) + "\n")


def load_traces(path: str | Path) -> list[dict]:
    with open(path) as f:
        return [_unrow(json.loads(line)) for line in f if line.strip()]


def save_offline(path: str | Path, off: OfflineAttempts) -> None:
    save_traces(path, [{"problem": p, "y1": y} for p, y in zip(off.problems, off.attempts)])


def load_offline(path: str | Path, label: str) -> OfflineAttempts:
    rows = load_traces(path)
    return OfflineAttempts(label, [r["problem"] for r in rows], [r["y1"] for r in rows])


def cached_traces(cache_dir: str | Path, spec: dict, build: Callable[[], tuple[dict[str, list[dict]], dict[str, OfflineAttempts], dict]]):
    """(datasets, probe sets, facts) for `spec`, built once by `build()` and then read from
    ``<cache_dir>/traces/<hash>/`` (one JSONL per dataset and per probe set)."""

    def write(out: Path) -> dict:
        datasets, probes, facts = build()
        for name, rows in datasets.items():
            save_traces(out / f"{name}.jsonl", rows)
        for label, off in probes.items():
            save_offline(out / f"probe_{label}.jsonl", off)
        return {**facts, "datasets": sorted(datasets), "probes": sorted(probes)}

    path = cached_artifact(cache_dir, "traces", {"version": TRACES_VERSION, **spec}, write)
    facts = artifact_facts(path)["facts"]
    datasets = {name: load_traces(path / f"{name}.jsonl") for name in facts["datasets"]}
    probes = {label: load_offline(path / f"probe_{label}.jsonl", label) for label in facts["probes"]}
    return datasets, probes, facts, path
