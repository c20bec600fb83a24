"""Where a run's wall time goes: a stage clock that run.json reports as `stages`.

`run()` starts a `StageClock` and code anywhere below it marks what it is doing with
`with timing.stage("sampling"): ...`. Time always goes to the innermost open stage, so the
stages never double count and add up, with `other` (time in no stage), to the run's wall
time. A stage opened with `within=` counts only when the innermost open stage is one of those
(the mismatch probe is its own stage in the final evaluation, part of `monitoring` during
training). Without a running clock `stage` does nothing.

The stages a run reports (`STAGES`, in order): `base` (build or load the base model), `tracker`
(wandb start), `sampling` (episodes sampled or written for training: SFT datasets, RL
rollouts), `updates` (gradient steps and the trainer around them), `monitoring` (validation
evaluations during training), `checkpoints` (RL resume states and kept weights),
`final_eval` (the test episodes), `confidence` (the policy's log-probability of its test first
attempts, for calibration), `probe` (the mismatch probe's episodes), `base_first` (the
base model's first attempts for probe and matrix), `matrix` (the correction matrix), `y1_ablation` (turn 2 on
another problem's, the base's or no first attempt),
`self_conditioning` (second attempts on several injected errors, and turns 2-4), `sparsity` (the
update's sparsity and effective rank from the weights),
`paper_eval` (the test episodes of the checkpoint the paper's rule keeps, when it is another
one), `write` (records, policy, wandb summary) and `other`.

A clock made with `count_flops=True` (the FLOP-accounted bench: `flops.requested()`) also charges
the floating-point operations counted by `flops.counter()` to the same stages (`flop_split`, run.json
`stage_flops`); counting slows the run, so its times are not the bench's times.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

STAGES = ("base", "tracker", "sampling", "updates", "monitoring", "checkpoints", "final_eval", "confidence", "probe",
          "base_first", "matrix", "y1_ablation", "self_conditioning", "sparsity", "paper_eval", "write", "other")

_active: "StageClock | None" = None


class StageClock:
    def __init__(self, count_flops: bool = False) -> None:
        self.start = self._mark = time.perf_counter()
        self.totals: dict[str, float] = {}
        self._open: list[str] = []
        self.flop_totals: dict[str, int] = {}
        self._flops = None  # the FLOP counter, entered by `running`
        self._flop_mark = 0
        self.count_flops = count_flops

    def _charge(self) -> None:
        now = time.perf_counter()
        name = self._open[-1] if self._open else "other"
        if self._open:
            self.totals[name] = self.totals.get(name, 0.0) + now - self._mark
        self._mark = now
        if self._flops is not None:
            total = self._flops.get_total_flops()
            if total > self._flop_mark:
                self.flop_totals[name] = self.flop_totals.get(name, 0) + total - self._flop_mark
            self._flop_mark = total

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        self._charge()
        self._open.append(name)
        try:
            yield
        finally:
            self._charge()
            self._open.pop()

    @property
    def current(self) -> str | None:
        return self._open[-1] if self._open else None

    def split(self) -> dict[str, float]:
        """Seconds per stage (rounded to 0.01 s), `other` the rest of the wall time, `wall` the total."""
        self._charge()
        wall = time.perf_counter() - self.start
        out = {k: round(self.totals[k], 2) for k in sorted(self.totals, key=_order)}
        out["other"] = round(max(wall - sum(self.totals.values()), 0.0), 2)
        out["wall"] = round(wall, 2)
        return out

    def flop_split(self) -> dict[str, int]:
        """FLOPs per stage (`other`: outside every stage) and `total`; empty unless counting."""
        if not self.count_flops:
            return {}
        self._charge()
        out = {k: self.flop_totals[k] for k in sorted(self.flop_totals, key=_order)}
        out["total"] = sum(self.flop_totals.values())
        return out


@contextmanager
def running(clock: StageClock) -> Iterator[StageClock]:
    """Make `clock` the one that `stage` marks (for the duration of a run); a counting clock's FLOP
    counter is open for as long."""
    global _active
    previous, _active = _active, clock
    try:
        if clock.count_flops:
            from selfcorrect.runtime import flops

            with flops.counter() as counter:
                clock._flops, clock._flop_mark = counter, 0
                try:
                    yield clock
                finally:
                    clock._charge()
                    clock._flops = None
        else:
            yield clock
    finally:
        _active = previous


@contextmanager
def stage(name: str, within: Sequence[str] | None = None) -> Iterator[None]:
    """Charge the time inside to stage `name` of the running clock (if any); with `within`,
    only when the innermost open stage is one of those."""
    clock = _active
    if clock is None or (within is not None and clock.current not in within):
        yield
        return
    with clock.stage(name):
        yield


def _order(name: str) -> tuple[int, str]:
    return (STAGES.index(name) if name in STAGES else len(STAGES), name)
