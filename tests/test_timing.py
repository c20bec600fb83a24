"""The stage clock (run.json `stages`) and its FLOP accounting (run.json `stage_flops`, the bench's yardstick)."""

from __future__ import annotations

import pytest
import torch

from selfcorrect.runtime import flops, timing


def test_time_goes_to_the_innermost_stage_and_adds_up_to_the_wall():
    clock = timing.StageClock()
    with timing.running(clock):
        with timing.stage("updates"):
            with timing.stage("monitoring"):
                sum(range(200_000))
            with timing.stage("probe", within=("final_eval",)):  # not inside final_eval: charged to updates
                sum(range(200_000))
    split = clock.split()
    assert set(split) == {"updates", "monitoring", "other", "wall"} and clock.flop_split() == {}
    assert abs(split["updates"] + split["monitoring"] + split["other"] - split["wall"]) < 0.02


def test_flops_are_charged_to_the_stage_that_ran_them():
    a, b = torch.randn(16, 32), torch.randn(32, 8)
    clock = timing.StageClock(count_flops=True)
    with timing.running(clock):
        a @ b  # outside every stage: `other`
        with timing.stage("updates"):
            a @ b
            with timing.stage("monitoring"):
                a @ b
                a @ b
    one = 2 * 16 * 32 * 8
    assert clock.flop_split() == {"updates": one, "monitoring": 2 * one, "other": one, "total": 4 * one}
    with timing.running(timing.StageClock()) as quiet:  # a clock that does not count leaves nothing behind
        a @ b
    assert quiet.flop_split() == {}


def test_cpu_attention_is_counted_forward_and_backward():
    b, h, s, d = 2, 4, 10, 16
    q = torch.randn(b, h, s, d, requires_grad=True)
    with flops.counter() as counter:
        out = torch.nn.functional.scaled_dot_product_attention(q, q, q, is_causal=True)
        forward = counter.get_total_flops()
        out.sum().backward()
        backward = counter.get_total_flops() - forward
    assert forward == 2 * (2 * b * h * s * s * d)  # q k^T and the weighted sum of v
    assert backward == 5 * (2 * b * h * s * s * d)  # torch's sdpa backward formula: 2.5x the forward


def test_the_switch_is_0_or_1(monkeypatch):
    monkeypatch.setenv(flops.ENV, "1")
    assert flops.requested()
    monkeypatch.setenv(flops.ENV, "yes")
    with pytest.raises(ValueError, match="SELFCORRECT_COUNT_FLOPS must be 0 or 1, got 'yes'"):
        flops.requested()
