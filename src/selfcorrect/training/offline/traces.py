"""Correction-trace datasets for the offline arms, as the paper builds them (SCoRe §4).

A trace is one (x, y1, y2) tuple: problem x, a first attempt y1, and the second attempt y2 that
SFT trains on after the fixed revise instruction. Builders are pure functions of their inputs
(model samples, problems, a seeded RNG), so their filtering rules can be checked by hand:

- `teacher_traces`    y1 written by the task's teacher error model (beside the task, paired with
                      it in `tasks.TASKS`), y2 the correct attempt
- `pair_sft_traces`   D_SFT: every incorrect response paired with a random correct response to
                      the same problem from all first- and second-turn samples; D+ adds c→c
- `star_traces`       D_STaR: single sampled traces that revise incorrect → correct; D+ adds c→c
- `anchor_traces`     turn-1 examples (x → a correct first attempt of the base) for the named
                      `*_anchor` variants

Datasets built from the base model or a teacher are saved as JSONL and cached by a hash of
everything that determines them (`cached_traces`), so a rerun reads them instead of resampling.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from selfcorrect.evaluation.evaluate import OfflineAttempts
from selfcorrect.evaluation.scoring import score_all
from selfcorrect.models.policy import Policy, Sampling
from selfcorrect.runtime.cache import artifact_facts, cached_artifact
from selfcorrect.tasks import make_error_model
from selfcorrect.tasks.base import Problem, Task

TRACES_VERSION = 2  # bump when a builder changes what a spec builds


# --- samples and traces --------------------------------------------------------------------------
def sample_episodes(policy: Policy, problems: Sequence[Problem], per_problem: int, sampling: Sampling, seed: int) -> list[dict]:
    """`per_problem` two-turn episodes for each problem, each with both verdicts."""
    repeated = [p for p in problems for _ in range(per_problem)]
    scored = score_all(policy.task, policy.two_turn(repeated, sampling, seed=seed))
    return [{"problem": s.problem, "y1": s.y1, "y2": s.y2, "correct1": s.v1.correct, "correct2": s.v2.correct} for s in scored]


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


def anchor_traces(samples: Sequence[dict], n: int, rng: random.Random) -> list[dict]:
    """A turn-1 anchor (our named `*_anchor` variants, not the paper's): `n` of the sampled
    episodes' correct first attempts, drawn with replacement, each trained as the *first* attempt
    of its problem (prompt x, target y1; `y1` of the trace is None), so that SFT on corrections
    also holds the first attempt where the base had it right."""
    correct = [s for s in samples if s["correct1"]]
    if n > 0 and not correct:
        raise ValueError(f"no correct first attempt among {len(samples)} samples to anchor turn 1 with")
    return [trace(s["problem"], None, s["y1"], True, True, "anchor_t1") for s in (rng.choice(correct) for _ in range(n))]


# --- teacher traces ------------------------------------------------------------------------------
def error_model_for(task: Task):
    """The task's error model (`tasks.make_error_model`: the one registered beside the task, e.g.
    `tasks/arithmetic_errors.py`); tasks without one cannot have teacher-written errors."""
    errors = make_error_model(task)
    if errors is None:
        raise ValueError(
            f"task {task.name!r} has no error model (none in tasks.TASKS), so arm sft_teacher cannot write "
            "its first attempts; the arithmetic task has one (tasks/arithmetic_errors.py)"
        )
    return errors


def teacher_traces(errors, problems: Sequence[Problem], weights: Mapping[str, float], n: int, rng: random.Random) -> list[dict]:
    """`n` correction traces: draw a cell (an error kind, a site signature, ...) from `weights`,
    then a problem among `problems` on which the error model can write it (`errors.cells`), so
    the cells follow `weights` exactly in expectation over the cells some problem admits (the
    rest are dropped; the teacher's histograms are reported beside the trained model's). y1 is
    the teacher's wrong attempt (`errors.write`), y2 the correct one."""
    admitting: dict[str, list[Problem]] = {}
    for p in problems:
        for cell in errors.cells(p):
            admitting.setdefault(cell, []).append(p)
    usable = {c: float(w) for c, w in weights.items() if w > 0 and c in admitting}
    if not usable:
        raise ValueError(f"no problem among {len(problems)} admits any of the teacher's cells {sorted(weights)}")
    cells, w = list(usable), list(usable.values())
    traces = []
    for _ in range(n):
        cell = rng.choices(cells, w)[0]
        problem = rng.choice(admitting[cell])
        traces.append(trace(problem, errors.write(problem, cell, rng), errors.correct_attempt(problem), False, True, f"teacher_{cell}"))
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
