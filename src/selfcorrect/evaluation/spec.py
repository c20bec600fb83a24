"""The evaluation settings of a run (`conf/eval/`), typed and checked once (`EvalSpec.from_dict`, called by
`selfcorrect.config.parse`): the test problems, the monitoring cadence on validation problems, greedy
decoding, the mismatch probe's offline source and the correction-matrix, first-attempt-ablation and
self-conditioning blocks.
A bad value fails before any work, naming the key and the value."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

PROBE_SOURCES = ("base", "none")


def positive_int(key: str, v) -> int:
    """`v` when it is an integer > 0, else an error naming `key` and the value."""
    if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
        raise ValueError(f"{key} must be a positive integer, got {v!r}")
    return v


@dataclass(frozen=True)
class MatrixSpec:
    """`eval.correction_matrix`: second attempts on controlled first attempts (the first `n_problems`)."""
    enabled: bool
    n_problems: int


@dataclass(frozen=True)
class Y1AblationSpec:
    """`eval.y1_ablation`: turn 2 shown the own, a swapped, the base's or no first attempt (the first `n_problems`)."""
    enabled: bool
    n_problems: int


@dataclass(frozen=True)
class SelfConditioningSpec:
    """`eval.self_conditioning`: second attempts after k = 1..max_errors injected errors, turns 2..turns."""
    enabled: bool
    n_problems: int
    max_errors: int
    turns: int


@dataclass(frozen=True)
class EvalSpec:
    split: str               # the test split
    n_problems: int          # fixed test problems (the same for every arm and seed)
    problem_seed: int
    n_monitor: int           # validation problems of the evaluations during training
    monitor_every: int | None  # the candidate checkpoints' cadence (the arms read it through their own settings)
    probe_every: int         # the mismatch probe on the arm's own sets: at step 0, every this many steps, at the last
    test: bool               # false: a tuning run stops after training and the checkpoint choice
    temperature: float
    max_new_tokens: int
    probe_source: str        # offline first attempts of the final probe: base | none
    correction_matrix: MatrixSpec | None = None
    self_conditioning: SelfConditioningSpec | None = None
    y1_ablation: Y1AblationSpec | None = None

    @classmethod
    def from_dict(cls, e: Mapping) -> "EvalSpec":
        """The `eval` block (plain values), checked key by key."""
        for key in ("n_problems", "n_monitor", "max_new_tokens"):
            positive_int(f"eval.{key}", e.get(key))
        source = (e.get("probe") or {}).get("source")
        if source not in PROBE_SOURCES:
            raise ValueError(f"eval.probe.source must be 'base' or 'none', got {source!r}")
        matrix, sc, ablation = e.get("correction_matrix"), e.get("self_conditioning"), e.get("y1_ablation")
        if ablation is not None:
            positive_int("eval.y1_ablation.n_problems", ablation.get("n_problems"))
        return cls(
            split=e["split"], n_problems=e["n_problems"], problem_seed=e["problem_seed"], n_monitor=e["n_monitor"],
            monitor_every=e.get("monitor_every"), probe_every=int(e.get("probe_every", e.get("monitor_every", 1))),
            test=bool(e.get("test", True)), temperature=e["temperature"], max_new_tokens=e["max_new_tokens"],
            probe_source=source,
            correction_matrix=MatrixSpec(bool(matrix["enabled"]), matrix["n_problems"]) if matrix is not None else None,
            self_conditioning=SelfConditioningSpec(bool(sc["enabled"]), sc["n_problems"], sc["max_errors"], sc["turns"])
            if sc is not None else None,
            y1_ablation=Y1AblationSpec(bool(ablation["enabled"]), ablation["n_problems"]) if ablation is not None else None,
        )
