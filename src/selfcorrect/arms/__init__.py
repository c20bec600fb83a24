"""Arms: each is a `conf/arm/<name>.yaml` whose `name` picks a training function here.

A training function takes an `ArmContext` and returns the trained `Policy`. It starts from
`ctx.new_policy()` (a fresh copy of the base), may evaluate on held-out problems during
training with `ctx.evaluate`, and may add to `ctx.offline` the fixed first attempts it trained
on, so that the final evaluation's mismatch probe compares them with the policy's own.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import DictConfig

from selfcorrect import timing
from selfcorrect.evaluate import OfflineAttempts, evaluate_policy, write_json
from selfcorrect.policy import Policy, Sampling
from selfcorrect.tasks.base import Task
from selfcorrect.tracking import Tracker

# arm name -> "module:function"; imported on first use
ARMS: dict[str, str] = {
    "base": "selfcorrect.arms.base:train",
    "sft_teacher": "selfcorrect.arms.sft_arms:train_sft_teacher",
    "sft_self": "selfcorrect.arms.sft_arms:train_pair_sft",
    "sft_self_plus": "selfcorrect.arms.sft_arms:train_pair_sft",
    "star": "selfcorrect.arms.sft_arms:train_star",
    "star_plus": "selfcorrect.arms.sft_arms:train_star",
    "score": "selfcorrect.arms.rl_arms:train",
    "score_no_stage1": "selfcorrect.arms.rl_arms:train",
    "score_no_shaping": "selfcorrect.arms.rl_arms:train",
    "rl_single_turn": "selfcorrect.arms.rl_arms:train",
    "rl_multi_turn_naive": "selfcorrect.arms.rl_arms:train",
    "rl_multi_turn_sum": "selfcorrect.arms.rl_arms:train",
    "score_shaping_control": "selfcorrect.arms.rl_arms:train",
}


@dataclass
class ArmContext:
    cfg: DictConfig
    task: Task
    base: Policy  # frozen: the reference policy for KL terms and the source of offline attempts
    base_path: str | Path
    run_dir: Path
    tracker: Tracker
    offline: list[OfflineAttempts] = field(default_factory=list)
    # merged into the final metrics.json under "arm/" (budgets, dataset sizes, ...)
    extra_metrics: dict = field(default_factory=dict)
    # error-kind histogram of the first attempts an arm trained on; the final evaluation
    # reports its total-variation distance to the trained policy's own t1 errors
    offline_error_hist: dict | None = None
    # what the arm spent of the shared budget (`Budget.spent`); written to metrics.json as `budget`
    budget_spent: dict | None = None
    _base_val_acc_t1: float | None = field(default=None, repr=False)

    @property
    def seed(self) -> int:
        return int(self.cfg.seed)

    def new_policy(self) -> Policy:
        """A fresh, trainable copy of the base policy."""
        from selfcorrect.models import open_policy

        return open_policy(self.base_path, self.task, self.cfg.model)

    def evaluate(self, policy: Policy, step: int, split: str = "val", offline: list[OfflineAttempts] | None = None) -> dict:
        """Greedy two-turn metrics on `eval.n_monitor` held-out problems, plus the mismatch probe
        on `offline` (default: every set in `ctx.offline`), logged under `split/`."""
        with timing.stage("monitoring"):
            problems = self.task.problems(split, self.cfg.eval.n_monitor, seed=self.cfg.eval.problem_seed)
            sampling = Sampling(0.0, self.cfg.eval.max_new_tokens)
            offline = self.offline if offline is None else offline
            metrics = evaluate_policy(policy, problems, sampling, seed=self.seed, offline=offline).metrics
            self.tracker.log(metrics, step=step, prefix=f"{split}/")
            if split == "val" and step > 0:
                self._track_matched_t1(policy, step, metrics["acc_t1"], problems, sampling)
        return metrics

    def record_budget(self, spent: dict) -> None:
        self.budget_spent = spent

    # --- the checkpoint at matched Acc@t1 -----------------------------------------------------
    # Δ is bounded by 1 − Acc@t1, so next to the final Δ we report Δ (on the test problems) of the
    # arm's own checkpoint whose *validation* Acc@t1 is closest to the base's: among the policies
    # evaluated during training (step > 0), the first with the smallest |Acc@t1 − base Acc@t1|.
    @property
    def matched_dir(self) -> Path:
        return self.run_dir / "checkpoints"

    def matched_t1(self) -> dict | None:
        """{step, val_acc_t1, base_val_acc_t1, distance, weights} of the kept checkpoint, if any."""
        info = self.matched_dir / "matched_t1.json"
        return {**json.loads(info.read_text()), "weights": str(self.matched_dir / "matched_t1.pt")} if info.exists() else None

    def restore_snapshots(self, step: int) -> None:
        """On (re)start at `step`: forget a matched-Acc@t1 checkpoint chosen after `step` (the
        resumed run will choose again, identically)."""
        info = self.matched_t1()
        if info is not None and info["step"] > step:
            for name in ("matched_t1.json", "matched_t1.pt"):
                (self.matched_dir / name).unlink(missing_ok=True)

    def _track_matched_t1(self, policy: Policy, step: int, acc_t1: float, problems, sampling) -> None:
        from selfcorrect.rl.checkpoint import save_weights

        if self._base_val_acc_t1 is None:
            self._base_val_acc_t1 = evaluate_policy(self.base, problems, sampling, seed=self.seed).metrics["acc_t1"]
        distance = abs(acc_t1 - self._base_val_acc_t1)
        best = self.matched_t1()
        if best is None or distance < best["distance"]:
            with timing.stage("checkpoints"):
                save_weights(self.matched_dir / "matched_t1.pt", policy.model)
            info = {"step": step, "val_acc_t1": acc_t1, "base_val_acc_t1": self._base_val_acc_t1, "distance": distance}
            write_json(self.matched_dir / "matched_t1.json", info)


def get_arm(name: str) -> Callable[[ArmContext], Policy]:
    if name not in ARMS:
        raise ValueError(f"unknown arm {name!r}; known arms: {sorted(ARMS)}")
    module, attr = ARMS[name].split(":")
    return getattr(importlib.import_module(module), attr)
