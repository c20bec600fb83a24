"""Experiment tracking: wandb (offline by default: no account, no network) plus local files.

Whatever the wandb mode, every logged row also goes to ``history.jsonl`` in the run directory,
so results never depend on wandb being reachable.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from omegaconf import DictConfig

WANDB_MODES = ("offline", "online", "disabled")


def flatten(metrics: Mapping, prefix: str = "") -> dict[str, float]:
    """Nested metrics → {'a/b': scalar}; lists and None are left out (they go to files)."""
    out = {}
    for k, v in metrics.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten(v, key + "/"))
        elif isinstance(v, bool):
            out[key] = float(v)
        elif isinstance(v, (int, float)) and not (isinstance(v, float) and math.isnan(v)):
            out[key] = v
    return out


class Tracker:
    def __init__(self, cfg: DictConfig, run_dir: Path, config: dict, name: str, group: str, tags: Sequence[str]):
        if cfg.mode not in WANDB_MODES:
            raise ValueError(f"tracking.mode must be one of {WANDB_MODES}, got {cfg.mode!r}")
        self.history = Path(run_dir) / "history.jsonl"
        self.run = None
        if cfg.mode != "disabled":
            os.environ.setdefault("WANDB_SILENT", "true")
            import wandb

            self.run = wandb.init(
                project=cfg.project, entity=cfg.get("entity"), mode=cfg.mode, dir=str(run_dir),
                config=config, name=name, group=group, tags=list(tags), reinit="create_new",
            )

    @property
    def wandb_dir(self) -> str | None:
        return None if self.run is None else str(Path(self.run.dir).parent)

    def log(self, metrics: Mapping, step: int | None = None, prefix: str = "") -> None:
        row = flatten(metrics, prefix)
        with open(self.history, "a") as f:
            f.write(json.dumps({"step": step, **row}) + "\n")
        if self.run is not None:
            self.run.log(row, step=step)

    def table(self, key: str, rows: Sequence[dict], max_rows: int = 200) -> None:
        if self.run is None or not rows:
            return
        import wandb

        cols = list(rows[0])
        self.run.log({key: wandb.Table(columns=cols, data=[[json.dumps(r[c]) if isinstance(r[c], (dict, list)) else r[c] for c in cols] for r in rows[:max_rows]])})

    def summary(self, metrics: Mapping) -> None:
        if self.run is not None:
            self.run.summary.update(flatten(metrics))

    def finish(self, exit_code: int = 0) -> None:
        if self.run is not None:
            self.run.finish(exit_code=exit_code)
            self.run = None
