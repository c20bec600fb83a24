"""SCoRe on TRL's GRPOTrainer: the two-turn rollout and per-token, per-turn advantages.

One episode is one GRPOTrainer row: prompt x, completion y1 + revise instruction + y2, with
`env_mask` 1 exactly on the tokens of the turns the stage trains (0 on the instruction, and on
an untrained turn's attempt). The SCoRe math is not here: the per-turn returns come from
`rewards.turn_rewards`, the KL-in-reward (k1) and leave-one-out advantages from
`losses.per_turn_advantages`; this module only places A_{i,1} on y1's tokens and A_{i,2} on y2's.

GRPOTrainer's own KL is off (beta = 0: no reference model of its own). Its "dapo" loss
−Σ coef·A·mask / (masked tokens in the batch), with one update per generation (coef = 1 with
gradient ∇log π), is then exactly `reference.score_loss`: −1/N Σ_i Σ_t A_{i,t} Σ_{y_t} ∇log π.

Hooks used (TRL 1.16): `rollout_func` and its `env_mask` (documented, experimental) and
`_generate_and_score_completions` (private, overridden to swap in our (B, T) advantages before
the generation batch is shuffled, which breaks the prompt groups RLOO needs); hence the TRL pin
in pyproject.toml. The caller's `rollouts_for_step` samples the episodes; `grpo_run` uses
`two_turn_tokens`: `Policy.two_turn` (same seeds), except that y2 is sampled after x + y1 +
instruction token for token, so that every episode is one row; the episodes are `Policy.two_turn`'s
whenever y1 round-trips through its text (all of them for the sweep's tiny base, 10 of 16 for SmolLM2).
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Sequence

import torch
from torch import nn

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

from trl import GRPOConfig, GRPOTrainer  # noqa: E402
from trl.trainer.utils import add_fused_lm_head, pad  # noqa: E402

from selfcorrect.models.policy import Episode, Policy, Sampling, Turn  # noqa: E402
from selfcorrect.tasks.base import Problem  # noqa: E402
from selfcorrect.training.rl.losses import TurnTokens, per_turn_advantages  # noqa: E402
from selfcorrect.training.rl.rewards import kl_weights, trained_turns, training_reward, turn_rewards  # noqa: E402
from selfcorrect.training.rl.rollouts import Rollouts  # noqa: E402

INSTRUCTION, TURN1, TURN2 = 0, 1, 2  # per completion token: which part of the episode it is


def sampler_logprobs(ep: Episode, turn: Sequence[int]) -> list[float] | None:
    """The sampler's log-probs laid over one packed completion (`pack`'s turn codes): turn 1's and
    turn 2's tokens get theirs, the instruction 0 (it is never trained); None when either sampled
    attempt came without them (the transformers engine gives none)."""
    lp1, lp2 = ep.turns[0].logprobs, ep.turns[1].logprobs
    if lp2 is None or (TURN1 in turn and lp1 is None):
        return None
    it1, it2 = iter(lp1 or ()), iter(lp2)
    return [next(it1) if t == TURN1 else next(it2) if t == TURN2 else 0.0 for t in turn]


def pack(p1: Sequence[int], c1: Sequence[int], p2: Sequence[int], c2: Sequence[int]) -> tuple[list[int], list[int], list[int]]:
    """(prompt, completion, turn of each completion token) of one episode. When the turn-2
    prompt continues x + y1 token for token (it is re-rendered from y1's text), the completion is
    y1 + instruction + y2; otherwise (y1 does not round-trip through the tokenizer) the row is
    the turn-2 prompt and y2 alone, and y1 is not trained in this episode."""
    head = list(p1) + list(c1)
    if list(p2[: len(head)]) == head:
        injected = list(p2[len(head):])
        return list(p1), [*c1, *injected, *c2], [TURN1] * len(c1) + [INSTRUCTION] * len(injected) + [TURN2] * len(c2)
    return list(p2), list(c2), [TURN2] * len(c2)


def continued_prompt(policy: Policy, problem: Problem, first: Turn) -> list[int] | None:
    """The turn-2 prompt as x + y1 + instruction *token for token*: the sampled y1 ids followed by
    the tokens the chat template writes after the attempt (its end-of-turn token only once).
    `Policy.two_turn` re-renders y1 from its stripped text instead, which gives the same ids when
    y1 round-trips and other ids when it does not (BPE merges, trailing whitespace, <unk>:
    6 of 16 SmolLM2 episodes); then y1 and y2 cannot share one row. None when the template does
    not render the attempt verbatim after the first-turn prompt."""
    before, after = policy.render(problem), policy.render(problem, [first.text])
    if not after.startswith(before + first.text):
        return None
    injected = policy.encode(after[len(before) + len(first.text):])
    c1 = list(first.completion_ids)
    if c1 and injected and c1[-1] in policy.eos_ids and injected[0] == c1[-1]:
        injected = injected[1:]
    return list(first.prompt_ids) + c1 + injected


def turn2_prompt(policy: Policy, problem: Problem, first: Turn) -> list[int]:
    """The turn-2 prompt of an RL episode: `continued_prompt`, or the re-rendered one where the template
    does not write the attempt verbatim."""
    return continued_prompt(policy, problem, first) or policy.prompt_ids(problem, [first.text])


def two_turn_tokens(policy: Policy, problems: Sequence[Problem], sampling: Sampling, seed: int) -> list[Episode]:
    """`Policy.two_turn` (same seeds, same batches) with y2 sampled after `continued_prompt`, so
    every episode packs into one row; identical episodes whenever y1 round-trips. With the policy's
    `continue_turns` (`Policy.continues`), y2 is decoded from turn 1's KV cache (`Policy.rollout`)."""
    if policy.continues(sampling):
        return policy.rollout(problems, sampling, seed, 2, lambda p, turns: turn2_prompt(policy, p, turns[0]))
    firsts = policy.attempt(problems, [[] for _ in problems], sampling, seed)
    prompts = [turn2_prompt(policy, p, t) for p, t in zip(problems, firsts)]
    seconds = policy.complete(prompts, sampling, seed + 7919)  # Policy.two_turn's turn-2 seed
    return [Episode(p, [t, policy.turn(q, c)]) for p, t, q, c in zip(problems, firsts, prompts, seconds)]


def no_dropout(model: nn.Module) -> None:
    """Sampling runs in eval mode; the Trainer trains in train mode. Zeroing every dropout
    makes the two forwards identical (generation switches to eval mode itself)."""
    for m in model.modules():
        if isinstance(m, nn.Dropout):
            m.p = 0.0
    for key in ("resid_pdrop", "embd_pdrop", "attn_pdrop", "attention_dropout", "hidden_dropout", "dropout"):
        if isinstance(getattr(model.config, key, None), float):
            setattr(model.config, key, 0.0)


def positions_from_mask(model: nn.Module) -> None:
    """GRPOTrainer left-pads prompts and scores them without position ids, so a model with
    absolute positions (GPT-2, our tiny model) would see every shorter prompt shifted; `generate`
    and `Policy.token_logprobs` count positions from the first real token. Give TRL's scoring forward
    (`fused_lm_head=True`) the same position ids; generation is untouched."""
    inner = model.forward

    @functools.wraps(inner)
    def forward(*args, fused_lm_head=False, **kwargs):
        mask = kwargs.get("attention_mask")
        if fused_lm_head and kwargs.get("position_ids") is None and mask is not None:
            kwargs["position_ids"] = (mask.long().cumsum(-1) - 1).clamp(min=0)
        return inner(*args, fused_lm_head=fused_lm_head, **kwargs)

    model.forward = forward


def grpo_args(rl, output_dir: str, steps: int, processes: int = 1, **overrides) -> GRPOConfig:
    """GRPOConfig for one SCoRe episode batch per optimizer step, split evenly over `processes`:
    no KL of its own, one update per generation, the budget's optimizer settings; bf16=True (an
    override) is bf16 autocast over the fp32 master weights (`model.compute_dtype`)."""
    n = rl.prompts_per_step * rl.samples_per_prompt // processes
    # one generation batch per optimizer step, forwarded in `micro` chunks of `rl.micro_batch` rows whose gradients
    # accumulate (the "dapo" normaliser counts the whole generation batch's tokens: the same update)
    if rl.micro_batch and n % rl.micro_batch:
        raise ValueError(f"arm.micro_batch={rl.micro_batch} does not divide the {n} episodes of a step on each process")
    micro = n // rl.micro_batch if rl.micro_batch else 1
    kw = dict(
        output_dir=output_dir, **rl.budget.trainer_args(steps), num_generations=rl.samples_per_prompt,
        gradient_accumulation_steps=micro, steps_per_generation=micro, num_iterations=1, beta=0.0, loss_type="dapo",
        temperature=rl.temperature, max_completion_length=3 * rl.max_new_tokens, mask_truncated_completions=False,
        use_cpu=not torch.cuda.is_available(), bf16=False, gradient_checkpointing=False, report_to=[],
        logging_steps=1, disable_tqdm=True, save_strategy="no", dataloader_num_workers=0, seed=0, remove_unused_columns=False,
    )
    kw["per_device_train_batch_size"] = n // micro
    if rl.use_vllm:  # refused rather than passed on: GRPOTrainer's vLLM engine would load and sit unused
        raise NotImplementedError("arm.use_vllm=true (TRL's vLLM engine): the episodes are sampled by the policy's own "
                                  "engine (rl/grpo_run.py); for vLLM rollouts set model.engine=vllm")
    kw.update(overrides)
    return GRPOConfig(**kw)


class SCoReGRPOTrainer(GRPOTrainer):
    """GRPOTrainer whose rows are two-turn SCoRe episodes and whose advantages are SCoRe's.

    `rollouts_for_step(trainer, step)` returns the `Rollouts` of 0-based optimizer step `step`
    (k contiguous samples per prompt); `stages[step]` is its SCoRe stage; `ref_model` is π_ref.
    A run resumed after `first_step` steps trains steps first_step.. (its Trainer counts from 0).
    """

    def __init__(self, *, rl, ref_model: nn.Module, rollouts_for_step: Callable[["SCoReGRPOTrainer", int], Rollouts],
                 stages: Sequence[str], model: nn.Module, args: GRPOConfig, first_step: int = 0, **kwargs):
        if args.beta != 0.0 or args.num_iterations != 1 or args.loss_type != "dapo":
            raise ValueError("SCoRe's loss is GRPOTrainer's 'dapo' loss with beta=0 and num_iterations=1")
        self.rl, self.stages, self.rollouts_for_step, self.first_step = rl, list(stages), rollouts_for_step, first_step
        self.last_rollouts: Rollouts | None = None
        self.last_stats: dict[str, float] = {}
        self.last_unpacked, self.last_update_tokens, self.last_update_s, self.update_times = 0, 0, 0.0, []
        self._micro_done = 0  # training_step calls so far (micro-batches: gradient_accumulation_steps per optimizer step)
        no_dropout(model)
        super().__init__(model=model, args=args, rollout_func=self._rollout, reward_funcs=[_verifier_reward], **kwargs)
        self.score_ref = ref_model.eval()
        add_fused_lm_head(self.score_ref, temperature=self.temperature)
        for m in (self.model, self.score_ref):
            positions_from_mask(m)

    @property
    def step0(self) -> int:
        """The 0-based optimizer step being taken, counted over the whole run."""
        return self.first_step + self.state.global_step

    @property
    def stage(self) -> str:
        return self.stages[min(self.step0, len(self.stages) - 1)]

    # --- rollout_func: one row per episode ---------------------------------------------------
    def _rollout(self, prompts: list, trainer) -> dict:
        ro = self.rollouts_for_step(self, self.step0)
        if len(ro) != len(prompts):
            raise ValueError(f"{len(ro)} episodes for a generation batch of {len(prompts)} rows")
        trains = trained_turns(self.stage)
        rows = [pack(ep.turns[0].prompt_ids, ep.turns[0].completion_ids, ep.turns[1].prompt_ids, ep.turns[1].completion_ids)
                for ep in ro.episodes]
        self.last_rollouts = ro
        self._turn_ids = [turn for _, _, turn in rows]
        # the sampler's log-probs of the sampled tokens, where the engine gives them (vLLM): they are the
        # policy's own at this step (the engine holds its current weights), so the no-grad forward of the
        # policy that the KL term needs is skipped (`rl.sampler_logprobs`; equal within 1e-4, tested)
        lps = [sampler_logprobs(ep, turn) for ep, turn in zip(ro.episodes, self._turn_ids)] if self.rl.sampler_logprobs else []
        self._sampler_logp = lps if lps and all(lp is not None for lp in lps) else None
        self.last_unpacked = sum(TURN1 not in t for t in self._turn_ids)
        self.last_update_tokens = sum(len(p) + len(c) for p, c, _ in rows)
        env_mask = [[int((t == TURN1 and trains[0]) or (t == TURN2 and trains[1])) for t in turn] for turn in self._turn_ids]
        return {"prompt_ids": [p for p, _, _ in rows], "completion_ids": [c for _, c, _ in rows], "logprobs": None,
                "env_mask": env_mask, "r2": ro.r2.tolist()}

    def training_step(self, model, inputs, num_items_in_batch):
        """The update's time: the optimizer step's forward/backward passes (all its micro-batches) less the
        rollout's sampling, which happens in the first micro-batch's call."""
        first = self._micro_done % self.args.gradient_accumulation_steps == 0
        t0 = time.perf_counter()
        out = super().training_step(model, inputs, num_items_in_batch)
        spent = time.perf_counter() - t0 - (self.last_rollouts.gen_s if first and self.last_rollouts else 0.0)
        self.last_update_s = spent if first else self.last_update_s + spent
        self._micro_done += 1
        if self._micro_done % self.args.gradient_accumulation_steps == 0:
            self.update_times.append(self.last_update_s)
        return out

    def _prepare_inputs(self, generation_batch):
        """With micro-batches (`rl.micro_batch`): the step's rows sorted by length into the micro-batches, each
        trimmed to its own longest prompt and completion, instead of GRPOTrainer's random split that pads every
        micro-batch to the longest row of the step (the summed gradient is the same; the padding is not computed).
        Without micro-batches: GRPOTrainer's own."""
        if not self.model.training or self.args.steps_per_generation == 1:
            return super()._prepare_inputs(generation_batch)
        if self._step % (self.args.steps_per_generation * self.num_iterations) == 0 or self._buffered_inputs is None:
            batch = self._generate_and_score_completions(generation_batch)
            self._buffered_inputs = length_sorted_chunks(batch, self.args.steps_per_generation)
        return self._buffered_inputs[self._step % self.args.steps_per_generation]

    # --- the per-token advantages --------------------------------------------------------------
    def _generate_and_score_completions(self, inputs):
        out = super()._generate_and_score_completions(inputs)
        turn = pad([torch.tensor(t, dtype=torch.long) for t in self._turn_ids], padding_value=-1, padding_side="right")
        turn = turn.to(out["completion_ids"].device)[:, : out["completion_ids"].size(1)]
        if turn.size(1) < out["completion_ids"].size(1):
            turn = nn.functional.pad(turn, (0, out["completion_ids"].size(1) - turn.size(1)), value=-1)
        out["advantages"] = self.score_advantages(out, turn)
        out["turn_ids"] = turn  # travels with the rows through GRPOTrainer's shuffle; the loss ignores it
        return out

    @torch.no_grad()
    def scored_logps(self, model: nn.Module, batch: dict) -> torch.Tensor:
        """(B, C) per-token log-probs of the completions under `model` (no grad). With micro-batches
        (`rl.micro_batch`), in length-sorted chunks of that many rows, each cut to its own longest prompt and
        completion (`length_sorted_chunks`) and laid back into place: the step's padding is not computed."""
        def logps(rows: dict) -> torch.Tensor:
            ids = torch.cat([rows["prompt_ids"], rows["completion_ids"]], 1)
            attn = torch.cat([rows["prompt_mask"], rows["completion_mask"]], 1)
            return self._get_per_token_logps_and_entropies(model, ids, attn, rows["completion_ids"].size(1))[0]

        n_rows, width = batch["prompt_ids"].size(0), batch["completion_ids"].size(1)
        if not self.rl.micro_batch or self.rl.micro_batch >= n_rows:
            return logps(batch)
        keys = ("prompt_ids", "prompt_mask", "completion_ids", "completion_mask")
        chunks = length_sorted_chunks({**{k: batch[k] for k in keys}, "row": torch.arange(n_rows)}, n_rows // self.rl.micro_batch)
        out = batch["completion_mask"].new_zeros((n_rows, width), dtype=torch.float32)
        for c in chunks:
            lp = logps(c)
            out[c["row"].to(out.device), : lp.size(1)] = lp.float()
        return out

    @torch.no_grad()
    def score_advantages(self, batch: dict, turn: torch.Tensor) -> torch.Tensor:
        """(B, T) advantages: A_{i,t} of our SCoRe module on the tokens of turn t, 0 elsewhere."""
        ro, stage, rl = self.last_rollouts, self.stage, self.rl
        width = batch["completion_ids"].size(1)
        if self._sampler_logp is not None:
            logp = pad([torch.tensor(lp, dtype=torch.float32) for lp in self._sampler_logp], padding_value=0.0, padding_side="right")
            logp = nn.functional.pad(logp, (0, max(width - logp.size(1), 0)))[:, :width].to(batch["completion_ids"].device)
        else:
            logp = self.scored_logps(self.model, batch)
        ref_logp = self.scored_logps(self.score_ref, batch)
        returns = turn_rewards(stage, ro.r1, ro.r2, rl.alpha, rl.gamma, rl.turn2_scale)
        masks = [(turn == code).float() * batch["completion_mask"] for code in (TURN1, TURN2)]
        advs, stats = per_turn_advantages([TurnTokens(logp, ref_logp, m) for m in masks], returns,
                                          kl_weights(stage, rl.beta1, rl.beta2), trained_turns(stage), ro.group_size, rl.loss)
        adv = torch.zeros_like(logp)
        for a, m in zip(advs, masks):
            if a is not None:
                adv = adv + a[:, None] * m
        stats.update(return_t1=returns[0].mean().item(), return_t2=returns[1].mean().item(),
                     train_reward=training_reward(stage, ro.r1, ro.r2), sampler_logprobs=float(self._sampler_logp is not None))
        self.last_stats = stats
        return adv


PROMPT_KEYS = ("prompt_ids", "prompt_mask")  # left-padded [B, P]; every other [B, C] tensor is completion-aligned


def length_sorted_chunks(batch: dict, n: int) -> list[dict]:
    """`batch` (GRPOTrainer's scored generation batch: [B, ...] tensors and length-B lists) as `n` chunks of B/n rows,
    rows in order of their real length, each chunk's prompts and completions cut to the chunk's longest (prompts
    are left-padded, completions right-padded); other entries (the token count of the whole batch) are kept."""
    rows = batch["prompt_ids"].size(0)
    if rows % n:
        raise ValueError(f"{rows} rows do not split into {n} micro-batches")
    lengths = batch["prompt_mask"].sum(1) + batch["completion_mask"].sum(1)
    order = torch.argsort(lengths, stable=True)
    width_p, width_c = batch["prompt_ids"].size(1), batch["completion_ids"].size(1)
    chunks = []
    for idx in order.view(n, rows // n):
        keep_p = int(batch["prompt_mask"][idx].sum(1).max())
        keep_c = int(batch["completion_mask"][idx].sum(1).max())
        chunk = {}
        for key, value in batch.items():
            if isinstance(value, torch.Tensor) and value.dim() >= 1 and value.size(0) == rows:
                value = value[idx.to(value.device)]
                if value.dim() >= 2 and key in PROMPT_KEYS and value.size(1) == width_p:
                    value = value[:, width_p - keep_p:]
                elif value.dim() >= 2 and key not in PROMPT_KEYS and value.size(1) == width_c:
                    value = value[:, :keep_c]
            elif isinstance(value, list) and len(value) == rows:
                value = [value[i] for i in idx.tolist()]
            chunk[key] = value
        chunks.append(chunk)
    return chunks


def _verifier_reward(prompts, completions, r2, **kwargs) -> list[float]:
    """Logged by GRPOTrainer as its reward; the advantages it would derive are replaced."""
    return list(r2)
