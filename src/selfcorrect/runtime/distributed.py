"""One run over several processes (`accelerate launch --multi_gpu --num_processes N -m selfcorrect`):
which process writes, and how the processes agree. With one process every function is a no-op.

The main process (rank 0) owns the run directory: it prepares it, writes run.json, config.yaml,
history.jsonl, checkpoints and metrics.json, and runs the evaluations. Every process samples its
share of each step's episodes and takes part in the update (GRPOTrainer's DDP); the others stop
after training.
"""

from __future__ import annotations

import os

import torch


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def is_main() -> bool:
    return rank() == 0


def init() -> None:
    """Join the process group the launcher set up (the Trainer's Accelerator reuses it)."""
    if world_size() > 1:
        from accelerate import PartialState

        PartialState(cpu=not torch.cuda.is_available())


def broadcast(obj):
    """The main process's `obj`, on every process."""
    if world_size() == 1:
        return obj
    box = [obj]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


def barrier() -> None:
    if world_size() > 1:
        torch.distributed.barrier()


def mean_over_processes(row: dict) -> dict:
    """Every numeric value averaged over the processes (equal shares: the mean over all episodes)."""
    if world_size() == 1:
        return row
    keys = sorted(k for k, v in row.items() if isinstance(v, (int, float)) and not isinstance(v, bool))
    t = torch.tensor([float(row[k]) for k in keys], dtype=torch.float64)
    torch.distributed.all_reduce(t)
    mean = {k: v / world_size() for k, v in zip(keys, t.tolist())}
    return {**row, **{k: int(v) if isinstance(row[k], int) and v.is_integer() else v for k, v in mean.items()}}
