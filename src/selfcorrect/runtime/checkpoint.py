"""Training checkpoints: model + optimizer + RNG states + step, one file each, written atomically.

A run killed mid-training and re-launched into the same run directory resumes from the latest
checkpoint; because every rollout and problem draw is seeded by (seed, step), the resumed run
then matches an uninterrupted one exactly.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import torch

from selfcorrect.runtime.records import atomic_path, write_lines

PATTERN = "step_*.pt"


def path_for(ckpt_dir: Path, step: int) -> Path:
    return Path(ckpt_dir) / f"step_{step:07d}.pt"


def rng_state() -> dict:
    return {"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": np.random.get_state()}


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])


def save(ckpt_dir: Path, step: int, model: torch.nn.Module, optimizer: torch.optim.Optimizer, **extra) -> Path:
    ckpt_dir = Path(ckpt_dir)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    path = path_for(ckpt_dir, step)
    with atomic_path(path) as tmp:
        torch.save({"step": step, "model": model.state_dict(), "optimizer": optimizer.state_dict(), "rng": rng_state(), **extra}, tmp)
    return path


def save_weights(path: Path, model: torch.nn.Module) -> None:
    """The model's weights alone (a kept or selected checkpoint), written atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save(model.state_dict(), tmp)


def weights_sha256(model) -> str:
    """A hash of a model's weights, to tell whether two runs started from the same base."""
    import hashlib

    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def load_weights(path: Path, model: torch.nn.Module) -> None:
    if not Path(path).exists():
        raise FileNotFoundError(f"no saved weights at {path}")
    model.load_state_dict(torch.load(path, weights_only=True))


def prune(ckpt_dir: Path) -> int:
    """Delete the resume states of a run that is complete (its kept policy is in policy/; a real
    model's states are ~1.6 GB each); the number deleted."""
    paths = sorted(Path(ckpt_dir).glob(PATTERN)) if Path(ckpt_dir).is_dir() else []
    for p in paths:
        p.unlink(missing_ok=True)
    return len(paths)


def latest(ckpt_dir: Path) -> Path | None:
    paths = sorted(Path(ckpt_dir).glob(PATTERN)) if Path(ckpt_dir).is_dir() else []
    return paths[-1] if paths else None


def load(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, fingerprint: dict) -> dict:
    """Restore model, optimizer and RNG states in place; returns the checkpoint's other fields.
    Refuses a checkpoint written under a different configuration."""
    state = torch.load(path, weights_only=False)
    if state.get("fingerprint") != fingerprint:
        raise ValueError(
            f"checkpoint {path} was written by a different configuration; resume into a fresh run dir.\n"
            f"checkpoint: {json.dumps(state.get('fingerprint'), sort_keys=True, default=str)}\n"
            f"this run:   {json.dumps(fingerprint, sort_keys=True, default=str)}"
        )
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    set_rng_state(state["rng"])
    return state


def trim_history(history: Path, after_step: int) -> None:
    """Drop rows logged after `after_step`: the part of a killed run that will be redone
    (rows without a step come from a final evaluation that never completed)."""
    if not history.exists():
        return
    keep = [line for line in history.read_text().splitlines() if line.strip() and not _after(json.loads(line).get("step"), after_step)]
    write_lines(history, keep)


def _after(step, after_step: int) -> bool:
    return step is None or step > after_step
