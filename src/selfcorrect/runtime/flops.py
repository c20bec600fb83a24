"""Counting a run's floating-point operations, for the FLOP-accounted bench (`make bench`).

`counter()` is torch's own `FlopCounterMode` (matmuls, convolutions, attention; forward and
backward), with the one op it does not know on a CPU added: the attention kernel that
`scaled_dot_product_attention` dispatches to there (`_scaled_dot_product_flash_attention_for_cpu`
and its backward), counted by torch's own formulas for the other attention kernels (the full
s_q x s_k score matrix, causal or not: what those formulas count on a GPU too). Elementwise
work (activations, norms, softmax, the optimizer) is not counted, as FLOP counters do not count
it: the counts are the model's matmul work, comparable with a matmul ceiling.

Counting dispatches every op through Python, so a counted run is slower: the bench counts a run's
FLOPs in one run (`StageClock(count_flops=True)`, run.json `stage_flops`) and times the same
deterministic run without counting.

    SELFCORRECT_COUNT_FLOPS=1 python -m selfcorrect ...   # run.json gains stage_flops
"""

from __future__ import annotations

import functools
import os

import torch
from torch.utils.flop_counter import FlopCounterMode, register_flop_formula, sdpa_backward_flop_count, sdpa_flop_count

ENV = "SELFCORRECT_COUNT_FLOPS"

_aten = torch.ops.aten


@functools.cache
def _registered() -> None:
    """Register the CPU attention kernel's formulas (once: the cache makes later calls no-ops)."""
    fwd = getattr(_aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    bwd = getattr(_aten, "_scaled_dot_product_flash_attention_for_cpu_backward", None)
    if fwd is not None:
        @register_flop_formula(fwd, get_raw=True)
        def _cpu_sdpa(query, key, value, *args, **kwargs) -> int:
            return sdpa_flop_count(query.shape, key.shape, value.shape)

    if bwd is not None:
        @register_flop_formula(bwd, get_raw=True)
        def _cpu_sdpa_backward(grad_out, query, key, value, *args, **kwargs) -> int:
            return sdpa_backward_flop_count(grad_out.shape, query.shape, key.shape, value.shape)


def counter() -> FlopCounterMode:
    """A FLOP counter (enter it as a context manager; `get_total_flops()` reads the running total)."""
    _registered()
    return FlopCounterMode(display=False)


def requested() -> bool:
    """Whether this process counts its run's FLOPs (the bench sets SELFCORRECT_COUNT_FLOPS=1)."""
    value = os.environ.get(ENV, "")
    if value not in ("", "0", "1"):
        raise ValueError(f"{ENV} must be 0 or 1, got {value!r}")
    return value == "1"


def matmul_ceiling(n: int = 512, seconds: float = 1.0, threads: int | None = None) -> float:
    """GFLOP/s of an n x n fp32 matmul on this machine now (the best of repeated timed blocks):
    the ceiling a stage's rate is read against."""
    import time

    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        a, b = torch.randn(n, n), torch.randn(n, n)
        for _ in range(3):
            a @ b  # warm-up
        best, end = 0.0, time.perf_counter() + seconds
        while time.perf_counter() < end:
            t0 = time.perf_counter()
            for _ in range(10):
                a @ b
            best = max(best, 10 * 2 * n**3 / (time.perf_counter() - t0))
        return best / 1e9
    finally:
        torch.set_num_threads(previous)
