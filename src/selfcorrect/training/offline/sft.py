"""Supervised fine-tuning on correction traces with TRL's SFTTrainer, shared by the offline arms.

Each trace becomes a conversational prompt-completion example: the prompt is the policy's own
two-turn conversation (x, y1, revise instruction) from `prompts.conversation`, the completion
the second attempt y2. TRL renders both through the tokenizer's chat template and trains only
the completion tokens (y2 and the EOS that ends an assistant turn). A callback evaluates the
policy every `eval_every` steps with the validation evaluator the run passes in (`ctx.evaluate`),
which also runs the mismatch probe on the arm's fixed offline first attempts (`probes`). The
optimizer, learning-rate schedule, batch size and step count come from the shared budget
(`selfcorrect.training.budget`), as for the RL arms.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Mapping, Sequence

import datasets
import torch
from datasets import Dataset
from transformers import PrinterCallback, TrainerCallback
from trl import SFTConfig, SFTTrainer

from selfcorrect.evaluation.evaluate import OfflineAttempts
from selfcorrect.models.policy import Policy
from selfcorrect.models.prompts import conversation
from selfcorrect.training.budget import Budget
from selfcorrect.training.offline.config import SFTSettings


def sft_examples(policy: Policy, traces: Sequence[dict]) -> Dataset:
    """Conversational prompt-completion rows: prompt = (x, y1, revise), completion = y2; a turn-1
    anchor trace (`y1` None, `traces.anchor_traces`) has prompt x and completion its target."""
    if not traces:
        raise ValueError("no traces to train on: the dataset builder kept none")
    return Dataset.from_list([
        {
            "prompt": conversation(policy.task, t["problem"], [] if t["y1"] is None else [t["y1"]]),
            "completion": [{"role": "assistant", "content": t["y2"]}],
        }
        for t in traces
    ])


class EvaluateEvery(TrainerCallback):
    """`evaluate(policy, step, probes)` (the validation evaluator) at the start and at every global
    step that is a multiple of `every` or the arm's last step `last` (the candidate checkpoints every
    arm shares, counted over all rounds: `offset` places this round's steps after earlier rounds').
    Train losses go to `tracker`."""

    def __init__(self, evaluate, tracker, policy: Policy, probes: Sequence[OfflineAttempts], every: int, offset: int = 0,
                 at_start: bool = True, last: int | None = None):
        self.evaluate, self.tracker, self.policy, self.probes = evaluate, tracker, policy, probes
        self.every, self.offset, self.at_start, self.last = every, offset, at_start, last
        self.evaluated: list[int] = []
        self.eval_s = 0.0

    def _eval(self, step: int) -> None:
        if self.evaluated and self.evaluated[-1] == step:
            return
        t0 = time.time()
        self.evaluate(self.policy, step, self.probes)
        self.eval_s += time.time() - t0
        self.evaluated.append(step)

    def on_train_begin(self, args, state, control, **kwargs):
        if self.at_start:
            self._eval(self.offset)

    def on_step_end(self, args, state, control, **kwargs):
        step = self.offset + state.global_step
        last = self.last if self.last is not None else self.offset + state.max_steps
        if self.every > 0 and (step % self.every == 0 or step == last):
            self._eval(step)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            self.tracker.log({"loss": logs["loss"], "lr": logs.get("learning_rate")}, step=self.offset + state.global_step, prefix="train/")


def sft_config(budget: Budget, sft_cfg: SFTSettings | Mapping, steps: int, seed: int, output_dir, device: torch.device | str = "cpu", bf16: bool = False) -> SFTConfig:
    """TRL settings: the budget's optimizer, schedule and batch size, prompt-completion loss only,
    on the policy's device, bf16 autocast over fp32 master weights where the policy computes in bf16
    (`model.compute_dtype`; TRL's bf16 default is off here), no checkpoints, no reporting. `sft_cfg.micro_batch`:
    each step's sequences in micro-batches whose gradients accumulate (the loss is normalised over the whole step's
    tokens, so the update is the same)."""
    if steps <= 0:
        raise ValueError(f"SFT needs a positive number of steps, got {steps!r}")
    if not isinstance(sft_cfg, SFTSettings):
        sft_cfg = SFTSettings.from_dict(sft_cfg)
    batch = budget.trainer_args(steps)
    micro = sft_cfg.micro_batch
    if micro:  # a step's sequences forwarded `micro` at a time, their gradients accumulated: the same update, less memory
        if not isinstance(micro, int) or micro <= 0 or budget.sequences_per_step % micro:
            raise ValueError(f"arm.sft.micro_batch={micro!r} must be a positive divisor of budget.sequences_per_step="
                             f"{budget.sequences_per_step}")
        batch.update(per_device_train_batch_size=micro, gradient_accumulation_steps=budget.sequences_per_step // micro)
    return SFTConfig(
        output_dir=str(output_dir),
        **batch,
        logging_steps=sft_cfg.logging_steps,
        seed=int(seed),
        data_seed=int(seed),
        completion_only_loss=True,
        max_length=None,
        packing=False,
        bf16=bool(bf16),
        fp16=False,
        use_cpu=torch.device(device).type == "cpu",
        gradient_checkpointing=False,
        save_strategy="no",
        eval_strategy="no",
        report_to=[],
        disable_tqdm=True,
        dataloader_num_workers=0,
        dataloader_drop_last=True,  # every step trains exactly `sequences_per_step` sequences, as an RL step does
    )


def make_trainer(policy: Policy, traces: Sequence[dict], args: SFTConfig, callbacks: Sequence[TrainerCallback] = ()) -> SFTTrainer:
    logging.getLogger("trl").setLevel(logging.ERROR)
    datasets.disable_progress_bars()  # a few thousand rows map in well under a second
    trainer = SFTTrainer(
        model=policy.model, args=args, train_dataset=sft_examples(policy, traces),
        processing_class=policy.tokenizer, callbacks=list(callbacks),
    )
    trainer.remove_callback(PrinterCallback)  # losses go to the tracker (history.jsonl) instead
    return trainer


def sft_train(ctx, policy: Policy, traces: Sequence[dict], steps: int, seed: int, probes: Sequence[OfflineAttempts],
              offset: int = 0, at_start: bool = True) -> dict:
    """Train `policy` in place for `steps` gradient steps of the budget's batch size on `traces`
    (the arm's `sft` block sets logging and evaluation; the validation evaluator probes `probes`,
    the arm's fixed first attempts); returns facts for the run. Starting afresh (step 0), it forgets
    candidate checkpoints an earlier launch measured."""
    out = ctx.run_dir / "sft_trainer"
    sft_cfg, budget = ctx.spec.arm.offline.sft, ctx.spec.budget
    if not traces:
        raise ValueError("no training traces: the filter kept none of the sampled episodes")
    n_unique = len(traces)
    if n_unique < budget.sequences_per_step:  # a filtered set smaller than one batch is repeated to fill
        traces = list(traces) * -(-budget.sequences_per_step // n_unique)  # it (more epochs over the same traces)
    if at_start and offset == 0:
        ctx.candidates.forget_after(0)
    callback = EvaluateEvery(ctx.evaluate, ctx.tracker, policy, probes, sft_cfg.eval_every, offset, at_start, last=budget.gradient_steps)
    t0 = time.time()
    args = sft_config(budget, sft_cfg, steps, seed, out, policy.model.device, policy.compute_dtype == "bfloat16")
    trainer = make_trainer(policy, traces, args, [callback])
    t_prep = time.time() - t0
    result = trainer.train()
    policy.model.eval()
    shutil.rmtree(out, ignore_errors=True)  # save_strategy="no": nothing in it worth keeping
    n = n_unique
    return {
        "n_examples": n,
        "steps": int(result.global_step),
        "sequences": int(result.global_step) * budget.sequences_per_step,  # full batches only (drop_last)
        "epochs": round(result.global_step * budget.sequences_per_step / n, 3),
        "train_loss": round(float(result.training_loss), 5),
        "prepare_s": round(t_prep, 2),
        "train_s": round(time.time() - t0 - t_prep - callback.eval_s, 2),
        "eval_s": round(callback.eval_s, 2),
        "eval_steps": callback.evaluated,
    }
