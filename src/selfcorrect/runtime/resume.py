"""Run directories across restarts: what a run re-launched into its own directory does.

A sweep maps every job to the directory named by its overrides, so re-running a sweep into the
same directory re-launches each job into the directory it had before. `prepare` reads what is
there and decides:

  fresh       no run.json                                   → start, as any new run
  complete    metrics.json and run.json status "complete"   → skip; return the saved metrics
  incomplete  anything else (killed: "running"; "failed")   → start again in the same directory

An incomplete run keeps only what lets it resume: `checkpoints/` (the RL trainer restores
model, optimizer and RNG states from the latest one and trims `history.jsonl` to it), the
`history.jsonl` and `wandb/` runs of the attempts those checkpoints came from, and what Hydra
wrote (`.hydra/`, `*.log`). Every partial result (generations, probes, policy, metrics) is
deleted, so nothing half-written can look complete. Arms without checkpoints (base, SFT) thus
rerun from scratch; each run is seeded, so the rerun reproduces the uninterrupted one.

A complete run is skipped only if it was made with the same configuration (up to the keys in
`RUNTIME_KEYS`, which do not change results); otherwise the re-launch stops with the differing
keys named, so one sweep never mixes results of two configurations. An incomplete run whose
saved configuration differs starts over from scratch (its checkpoints are deleted too).
"""

from __future__ import annotations

import os
import shutil
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from omegaconf import OmegaConf

from selfcorrect.runtime.checkpoint import latest
from selfcorrect.runtime.records import plain, read_json

# top-level config keys that say where and how fast a run goes (or which runs a sweep holds), not what it computes
RUNTIME_KEYS = ("paths", "threads", "tracking", "seeds", "first_seed", "sweep_arms", "lr_grid", "tune_seeds")
# kept when an incomplete run restarts: Hydra's files always; the resumable state only with checkpoints
HYDRA_FILES = (".hydra",)
RESUME_STATE = ("checkpoints", "history.jsonl", "wandb")


@dataclass
class Prepared:
    state: str             # "fresh" | "complete" | "incomplete"
    status: dict           # run.json as it was ({} for a fresh dir)
    metrics: dict | None   # the saved metrics of a complete run
    resumable: bool        # an incomplete run restarting from its checkpoints


def prepare(run_dir: Path, cfg: Mapping) -> Prepared:
    """Classify `run_dir` and, for an incomplete run, clear its partial outputs (see module doc);
    `cfg` is the run's resolved configuration (`RunSpec.resolved`)."""
    run_dir = Path(run_dir)
    status_path = run_dir / "run.json"
    if not status_path.exists():
        return Prepared("fresh", {}, None, False)
    status = read_json(status_path)
    diff = config_diff(run_dir / "config.yaml", cfg)
    if status.get("status") == "complete" and (run_dir / "metrics.json").exists():
        if diff:
            raise ValueError(
                f"{run_dir} holds a complete run made with a different configuration "
                f"({'; '.join(diff)}); re-launch into a new directory (e.g. a new SWEEP_DIR) "
                "or delete that run to redo it"
            )
        return Prepared("complete", status, read_json(run_dir / "metrics.json"), False)
    resumable = not diff and _has_checkpoint(run_dir / "checkpoints")
    if diff and _has_checkpoint(run_dir / "checkpoints"):
        print(f"[restart] {run_dir}: configuration changed ({'; '.join(diff)}); discarding its checkpoints", flush=True)
    keep = set(HYDRA_FILES) | (set(RESUME_STATE) if resumable else set())
    for path in run_dir.iterdir():
        if path.name in keep or path.suffix == ".log" or path.name == "run.json":
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    return Prepared("incomplete", status, None, resumable)


def start_status(cfg: Mapping, prepared: Prepared) -> dict:
    """run.json for a run that is starting: counts the launches into this directory and keeps
    a short record of how each earlier one ended."""
    previous = prepared.status
    earlier = [*previous.get("earlier", []), _ended(previous)] if previous else []
    return {
        "status": "running", "arm": cfg["arm"]["name"], "seed": cfg["seed"],
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"), "starts": len(earlier) + 1,
        "resumed": prepared.resumable, "host": socket.gethostname(), "pid": os.getpid(),
        **({"earlier": earlier} if earlier else {}),
    }


def config_diff(saved: Path, cfg: Mapping) -> list[str]:
    """'key: saved → now' for every leaf that differs, outside RUNTIME_KEYS ([] when equal;
    a missing saved config counts as a difference)."""
    if not saved.exists():
        return [f"{saved.name} missing"]
    old = _leaves(OmegaConf.to_container(OmegaConf.load(saved)))  # saved resolved already
    new = _leaves(plain(cfg))
    keys = sorted(k for k in old.keys() | new.keys() if k.split(".")[0] not in RUNTIME_KEYS and old.get(k, _ABSENT) != new.get(k, _ABSENT))
    return [f"{k}: {old.get(k, '<absent>')!r} → {new.get(k, '<absent>')!r}" for k in keys]


_ABSENT = object()


def _leaves(tree, prefix: str = "") -> dict:
    if isinstance(tree, dict):
        out = {}
        for k, v in tree.items():
            out.update(_leaves(v, f"{prefix}{k}."))
        return out if out or not prefix else {prefix[:-1]: tree}
    return {prefix[:-1]: tree}


def _has_checkpoint(ckpt_dir: Path) -> bool:
    return latest(ckpt_dir) is not None


def _ended(status: dict) -> dict:
    ended = status.get("status")
    return {
        "started": status.get("started"),
        # a run.json still saying "running" belongs to a process that was killed
        "status": "killed" if ended == "running" else ended,
        **({"error": status["error"]} if status.get("error") else {}),
        **({"code": {k: status["code"].get(k) for k in ("commit", "dirty")}} if status.get("code") else {}),
    }
