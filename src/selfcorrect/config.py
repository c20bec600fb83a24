"""The run's configuration, parsed once: the composed Hydra config in, typed and checked specs out.

`parse(cfg)` is the only reader of the raw `DictConfig` (besides `run.py`, which writes it to
`config.yaml`): it resolves it once, checks every value before any work is done (a bad value fails
with an error naming the key and the value: `eval.n_problems must be a positive integer, got -5`,
`unknown arm 'telepathy'`) and returns a frozen `RunSpec` whose blocks each have one home beside
the code that reads them:

  budget     `training.budget.Budget`           the one budget both families spend
  arm        `training.arms.ArmSpec`            name, family, training function, its settings, and
             `training.offline.config.OfflineConfig` or `training.rl.config.RLConfig` for its family
  eval       `evaluation.spec.EvalSpec`         test problems, monitoring, probe, matrix, self-conditioning
  task       plain dict                         `tasks.make_task` builds the task from it
  model      plain dict                         `models.loading` opens the base and trained policies from it
  tracking   plain dict                         `runtime.tracking.Tracker`

`RunSpec.resolved` is the whole resolved config as plain values: what `config.yaml` holds, what the
tracker records and what a re-launch compares (`runtime.resume`). Cache keys hash the same plain
values as before the specs existed (the trace and base-attempt caches, the RL resume fingerprint).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from selfcorrect.evaluation.spec import EvalSpec, positive_int
from selfcorrect.models.loading import check_precision
from selfcorrect.runtime import distributed
from selfcorrect.training import catalog
from selfcorrect.training.arms import ArmSpec
from selfcorrect.training.budget import Budget


@dataclass(frozen=True)
class RunSpec:
    seed: int
    threads: int          # torch CPU threads
    save_policy: bool     # save the kept policy in the run directory
    cache_dir: Path       # the artifact cache (base models, traces, base first attempts), absolute
    task: dict
    model: dict
    arm: ArmSpec
    budget: Budget
    eval: EvalSpec
    tracking: dict
    resolved: dict        # the whole resolved config (config.yaml, the tracker, resume's comparison)


def parse(cfg: DictConfig) -> RunSpec:
    """Every check before any work, in the order a reader meets the keys; then the specs."""
    tuned = OmegaConf.select(cfg, "tuned_lr")  # before resolving: budget.lr interpolates the arm's entry of the table
    if tuned is not None and OmegaConf.is_interpolation(cfg.budget, "lr") and cfg.arm.lr_key not in tuned:
        raise ValueError(f"no tuned learning rate for arm {cfg.arm.lr_key!r} in conf/tuned_lr/ (this testbed's table "
                         f"has {sorted(tuned)}): run `make tune`, or set budget.lr")
    resolved = OmegaConf.to_container(cfg, resolve=True)
    ev = EvalSpec.from_dict(resolved["eval"])
    positive_int("threads", resolved.get("threads"))
    seed = resolved.get("seed")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    family = catalog.arm(resolved["arm"]["name"]).family  # unknown arm names fail here, before the base model is built
    check_precision(resolved["model"], trained=family != "none")
    budget = Budget.from_cfg(resolved["budget"])
    arm = ArmSpec.from_cfg(resolved["arm"], family, budget)  # its family's settings must fit the budget
    world = distributed.world_size()
    if world > 1 and family != "rl":  # only the RL arms split their work over processes
        raise RuntimeError(
            f"multi-process launch (WORLD_SIZE={world}) is for the RL arms; arm {arm.name!r} runs in one process "
            "(scale out over runs with hydra/launcher=submitit_slurm instead)"
        )
    return RunSpec(
        seed=seed, threads=resolved["threads"], save_policy=bool(resolved.get("save_policy", True)),
        cache_dir=Path(hydra.utils.to_absolute_path(resolved["paths"]["cache_dir"])),
        task=resolved["task"], model=resolved["model"], arm=arm, budget=budget, eval=ev,
        tracking=resolved["tracking"], resolved=resolved,
    )
