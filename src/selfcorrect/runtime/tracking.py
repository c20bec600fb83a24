"""Experiment tracking: wandb (offline by default: no account, no network) plus local files.

Whatever the wandb mode, every logged row also goes to ``history.jsonl`` in the run directory,
so results never depend on wandb being reachable.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from selfcorrect.runtime.records import append_jsonl, scalars

WANDB_MODES = ("offline", "online", "disabled")


class Tracker:
    def __init__(self, cfg: Mapping, run_dir: Path, config: dict, name: str, group: str, tags: Sequence[str]):
        if cfg["mode"] not in WANDB_MODES:
            raise ValueError(f"tracking.mode must be one of {WANDB_MODES}, got {cfg['mode']!r}")
        self.history = Path(run_dir) / "history.jsonl"
        self.run = None
        if cfg["mode"] != "disabled":
            os.environ.setdefault("WANDB_SILENT", "true")
            import wandb

            self.run = wandb.init(
                project=cfg["project"], entity=cfg.get("entity"), mode=cfg["mode"], dir=str(run_dir),
                config=config, name=name, group=group, tags=list(tags), reinit="create_new",
            )

    @property
    def wandb_dir(self) -> str | None:
        return None if self.run is None else str(Path(self.run.dir).parent)

    def log(self, metrics: Mapping, step: int | None = None, prefix: str = "") -> None:
        row = scalars(metrics, prefix)
        append_jsonl(self.history, {"step": step, **row})
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
            self.run.summary.update(scalars(metrics))

    def finish(self, exit_code: int = 0) -> None:
        if self.run is not None:
            self.run.finish(exit_code=exit_code)
            self.run = None
