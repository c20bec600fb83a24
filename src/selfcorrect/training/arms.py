"""Arms: each is a `conf/arm/<name>.yaml`, which names its training function (`selfcorrect.training.catalog`):
the offline family's in `training/offline/arms.py`, the RL family's in `training/rl/arms.py`, the base
arm's (`train_base`, no training) here.

A training function takes an `ArmContext` and returns the policy its own rule keeps (the paper's:
RL the best training reward, SFT the last step), naming that step in `ctx.paper_choice`. It starts
from `ctx.new_policy()` (a fresh copy of the base), evaluates on validation problems during
training with `ctx.evaluate` (every `eval.monitor_every` steps: the candidate checkpoints of the
one checkpoint rule, `selfcorrect.training.selection`), and may add to `ctx.offline` the fixed first
attempts it trained on, so that the final evaluation's mismatch probe compares them with the
policy's own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from selfcorrect.evaluation.evaluate import OfflineAttempts, evaluate_policy
from selfcorrect.models.policy import Policy, Sampling
from selfcorrect.runtime import timing
from selfcorrect.runtime.tracking import Tracker
from selfcorrect.tasks.base import Task
from selfcorrect.training import catalog
from selfcorrect.training.budget import Budget
from selfcorrect.training.offline.config import OfflineConfig
from selfcorrect.training.rl.config import RLConfig
from selfcorrect.training.selection import Candidates


@dataclass(frozen=True)
class ArmSpec:
    """The `arm` block: what `catalog` reads (name, family, training function), the resolved settings
    (trace cache keys and RL resume fingerprints hash them) and its family's typed settings."""
    name: str
    family: str                     # none | offline | rl
    train: str                      # "module:function"
    settings: dict                  # the arm block as plain values
    offline: OfflineConfig | None = None
    rl: RLConfig | None = None

    @classmethod
    def from_cfg(cls, arm: dict, family: str, budget: Budget) -> "ArmSpec":
        """The arm's settings, its family's checked against the shared budget."""
        return cls(name=arm["name"], family=family, train=arm["train"], settings=arm,
                   offline=OfflineConfig.from_cfg(arm, budget) if family == "offline" else None,
                   rl=RLConfig.from_cfg(arm, budget) if family == "rl" else None)


@dataclass
class ArmContext:
    spec: "RunSpec"  # noqa: F821 (selfcorrect.config.RunSpec: the run's parsed specs)
    task: Task
    base: Policy  # frozen: the reference policy for KL terms and the source of offline attempts
    base_path: str | Path
    run_dir: Path
    tracker: Tracker
    cache_dir: Path = Path(".cache/selfcorrect")  # the artifact cache (base models, traces, base first attempts)
    offline: list[OfflineAttempts] = field(default_factory=list)
    # merged into the final metrics.json under "arm/" (budgets, dataset sizes, ...)
    extra_metrics: dict = field(default_factory=dict)
    # error-kind histogram of the first attempts an arm trained on; the final evaluation
    # reports its total-variation distance to the trained policy's own t1 errors
    offline_error_hist: dict | None = None
    # what the arm spent of the shared budget (`Budget.spent`); written to metrics.json as `budget`
    budget_spent: dict | None = None
    # the checkpoint the arm's own (the paper's) rule kept: {"rule": ..., "step": ...} (selection.py)
    paper_choice: dict | None = None

    @property
    def seed(self) -> int:
        return self.spec.seed

    @property
    def candidates(self) -> Candidates:
        """The candidate checkpoints of the one checkpoint rule (`selfcorrect.training.selection`)."""
        return Candidates(self.run_dir)

    def new_policy(self) -> Policy:
        """A fresh, trainable copy of the base policy (with a fresh LoRA adapter when `model.lora` is on)."""
        from selfcorrect.models.loading import open_policy

        return open_policy(self.base_path, self.task, self.spec.model, adapter_seed=self.seed)

    def evaluate(self, policy: Policy, step: int, split: str = "val", offline: list[OfflineAttempts] | None = None) -> dict:
        """Greedy two-turn metrics on `eval.n_monitor` held-out problems, plus the mismatch probe
        on `offline` (default: every set in `ctx.offline`), logged under `split/`. On validation
        at a step > 0 the policy becomes a candidate checkpoint (`selection.Candidates`)."""
        with timing.stage("monitoring"):
            ev = self.spec.eval
            problems = self.task.problems(split, ev.n_monitor, seed=ev.problem_seed)
            sampling = Sampling(0.0, ev.max_new_tokens)
            if offline is None:  # the probe's own sets every `eval.probe_every` steps (and at the start and end)
                due = step % ev.probe_every == 0 or step == self.spec.budget.gradient_steps
                offline = self.offline if due else []
            metrics = evaluate_policy(policy, problems, sampling, seed=self.seed, offline=offline).metrics
            self.tracker.log(metrics, step=step, prefix=f"{split}/")
        if split == "val" and step > 0:
            with timing.stage("checkpoints"):
                self.candidates.add(step, metrics, policy.model)
        return metrics

    def record_budget(self, spent: dict) -> None:
        self.budget_spent = spent

    def restore_snapshots(self, step: int) -> None:
        """On (re)start at `step`: forget the candidate checkpoints measured after `step` (the
        resumed run measures them again, identically)."""
        self.candidates.forget_after(step)


def get_arm(name: str) -> Callable[[ArmContext], Policy]:
    """The training function `conf/arm/<name>.yaml` names (`selfcorrect.training.catalog`)."""
    return catalog.arm(name).trainer()


def train_base(ctx: ArmContext) -> Policy:
    """`arm=base`: no training; the base model is evaluated as it is."""
    return ctx.base
