"""Which checkpoint of a trained arm is evaluated: one rule for every arm, the paper's beside it.

**Candidates** are the policies at the monitoring steps s > 0 (`eval.monitor_every`: 12, 24, ...,
and the last step), the same steps for every arm of both families. At each one the validation
evaluator (`training.arms.validation_evaluator`) measures the policy on the validation problems
and hands it here: its weights go to `checkpoints/candidates/step_XXXXXXX.pt` and its validation
metrics to `checkpoints/candidates.json`.

**Primary rule** (`val_acc_t2`): the candidate with the highest validation Acc@t2, ties to the
later step. **Secondary, the paper's rules**, reported in a table of their own: RL arms the highest
training reward (`best_train_reward`, among `RLConfig.selection_steps()`), offline arms the last
step (SFT has no training reward). The arm's training function returns the policy its paper rule
keeps and names its step (`ArmResult.paper_choice`); the run evaluates the primary choice with
the full protocol and, when it is another step, the paper's choice on the test problems too.

A run resumed at step s forgets the candidates after s (they are measured again, identically).
"""

from __future__ import annotations

from pathlib import Path

import torch

from selfcorrect.runtime.records import atomic_path, read_json, write_json

RULE = "val_acc_t2"
FIELDS = ("acc_t1", "acc_t2", "delta", "delta_i2c", "delta_c2i", "correction_rate_own")


class Candidates:
    """The candidate checkpoints of one run directory."""

    def __init__(self, run_dir: str | Path):
        self.dir = Path(run_dir) / "checkpoints"
        self.index = self.dir / "candidates.json"

    def records(self) -> list[dict]:
        return read_json(self.index) if self.index.exists() else []

    def weights(self, step: int) -> Path:
        return self.dir / "candidates" / f"step_{step:07d}.pt"

    def add(self, step: int, val_metrics: dict, model: torch.nn.Module) -> None:
        """Keep the policy of monitoring step `step` (> 0) with its validation metrics."""
        if step <= 0:
            raise ValueError(f"candidate checkpoints are trained policies (step > 0), got step {step}")
        path = self.weights(step)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            torch.save({k: v.detach().cpu().clone() for k, v in model.state_dict().items()}, tmp)
        rows = [r for r in self.records() if r["step"] != step]
        rows.append({"step": step, **{f"val_{k}": val_metrics.get(k) for k in FIELDS}})
        self._write(sorted(rows, key=lambda r: r["step"]))

    def forget_after(self, step: int) -> None:
        """On a (re)start at `step`: drop the candidates measured after it."""
        keep = [r for r in self.records() if r["step"] <= step]
        for r in self.records():
            if r["step"] > step:
                self.weights(r["step"]).unlink(missing_ok=True)
        if self.index.exists() or keep:
            self._write(keep)

    def best(self) -> dict | None:
        """The primary rule's choice: the highest validation Acc@t2, ties to the later step."""
        rows = self.records()
        return max(rows, key=lambda r: (r["val_acc_t2"], r["step"])) if rows else None

    def load(self, step: int, model: torch.nn.Module) -> None:
        model.load_state_dict(torch.load(self.weights(step), map_location="cpu", weights_only=True))

    def prune(self) -> None:
        """Delete the candidates' weights (the kept policy is saved in the run's `policy/`)."""
        for r in self.records():
            self.weights(r["step"]).unlink(missing_ok=True)
        folder = self.dir / "candidates"
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()

    def _write(self, rows: list[dict]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        write_json(self.index, rows, indent=1)


def choose(candidates: Candidates | None, paper_policy, paper_choice: dict | None, new_policy):
    """(kept policy, the paper's policy when it is another checkpoint else None, metrics.json
    `checkpoint` block) for a trained run, from its result (`ArmResult`: `candidates`, the policy
    its own rule kept and that rule's `paper_choice`); another candidate is loaded into a fresh
    copy of the base from `new_policy` (the policy factory). The base arm (no candidates) keeps the base."""
    best = candidates.best() if candidates is not None else None
    if best is None:  # nothing was trained (the base arm)
        return paper_policy, None, {"rule": "none"}
    if paper_choice is None:
        raise RuntimeError("a trained arm returned no kept checkpoint of its own rule (ArmResult.paper_choice)")
    info = {"rule": RULE, "step": best["step"], **{k: best[k] for k in best if k.startswith("val_")},
            "candidates": [r["step"] for r in candidates.records()],
            "paper": {**paper_choice, **_val_at(candidates, paper_choice["step"])}, "same_as_paper": best["step"] == paper_choice["step"]}
    if best["step"] == paper_choice["step"]:
        return paper_policy, None, info
    kept = new_policy()
    candidates.load(best["step"], kept.model)
    kept.model.eval()
    return kept, paper_policy, info


def _val_at(candidates: Candidates, step: int) -> dict:
    row = next((r for r in candidates.records() if r["step"] == step), None)
    return {} if row is None else {k: v for k, v in row.items() if k.startswith("val_")}
