"""One policy wrapper over any Hugging Face causal LM and its tokenizer.

It builds prompts through the tokenizer's chat template (`prompts.conversation`), generates
first and second attempts in batches (greedy or sampled), scores given completions token by
token (log-probs with a completion mask, for RL), and saves / loads itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig, PreTrainedModel

from selfcorrect.models import gpt2_decoding
from selfcorrect.models.char_tokenizer import CHAT_TEMPLATE, render_chat
from selfcorrect.models.completion import Completion, stop_prefix
from selfcorrect.models.prompts import conversation
from selfcorrect.tasks.base import Problem, Task

DECODERS = ("auto", "generate")  # auto: gpt2_decoding where it reproduces `generate`, else `generate`
ENGINES = ("hf", "vllm")  # hf: transformers (gpt2_decoding / generate) in this process; vllm: `vllm_engine`
COMPUTE_DTYPES = ("float32", "bfloat16")
FINISHES = ("eos", "stop", "length")  # why an attempt ended: its EOS token, a task stop string, max_new_tokens


@dataclass(frozen=True)
class Sampling:
    """Decoding settings; temperature 0 means greedy."""

    temperature: float = 0.0
    max_new_tokens: int = 32
    top_p: float = 1.0

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature!r}")
        if self.max_new_tokens <= 0:
            raise ValueError(f"max_new_tokens must be > 0, got {self.max_new_tokens!r}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p!r}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


@dataclass
class Turn:
    """One attempt: the prompt it answered, the tokens generated (EOS included if emitted), and why
    it ended (`FINISHES`; "" for a first attempt given from outside, e.g. an offline one)."""

    prompt_ids: list[int]
    completion_ids: list[int]
    text: str
    finish: str = ""
    logprobs: list[float] | None = None

    @property
    def truncated(self) -> bool:
        """The attempt hit `max_new_tokens` before its EOS token or a stop string."""
        return self.finish == "length"


@dataclass
class Episode:
    """x → y1 → revise instruction → y2, with every token kept for scoring."""

    problem: Problem
    turns: list[Turn] = field(default_factory=list)

    @property
    def y1(self) -> str:
        return self.turns[0].text

    @property
    def y2(self) -> str:
        return self.turns[1].text


class Policy:
    """`engine="vllm"` generates through one vLLM engine per process (`vllm_engine.shared_engine`,
    started on first use from `source`, the model directory), into which this policy's current
    weights are synced before it generates; scoring (`token_logprobs`) and training always use
    `model`. `compute_dtype="bfloat16"` runs generation and scoring under bf16 autocast while the
    weights stay as loaded (fp32 master weights for training; the trainers get bf16=True).
    `continue_turns=True` (`model.continue_turns`, off by default) decodes a later turn from the batch's KV
    cache instead of re-encoding the conversation (`rollout`): greedy tokens equal up to float rounding."""

    def __init__(self, model: PreTrainedModel, tokenizer, task: Task, batch_size: int = 256, decoder: str = "auto",
                 engine: str = "hf", source: str | Path | None = None, compute_dtype: str = "float32",
                 engine_options: dict | None = None, continue_turns: bool = False):
        if decoder not in DECODERS:
            raise ValueError(f"model.decoder must be one of {DECODERS}, got {decoder!r}")
        if engine not in ENGINES:
            raise ValueError(f"model.engine must be one of {ENGINES}, got {engine!r}")
        if engine == "vllm" and source is None:
            raise ValueError("model.engine=vllm needs the model's directory (Policy.load passes it) to start vLLM from")
        if compute_dtype not in COMPUTE_DTYPES:
            raise ValueError(f"model.compute_dtype must be one of {COMPUTE_DTYPES}, got {compute_dtype!r}")
        if tokenizer.pad_token_id is None:
            raise ValueError("the tokenizer has no pad token; set one (e.g. the EOS token) before wrapping it")
        if getattr(tokenizer, "chat_template", None) is None:
            raise ValueError("the tokenizer has no chat template; the two-turn prompts are built from it")
        self.model, self.tokenizer, self.task = model, tokenizer, task
        self.batch_size = int(batch_size)
        self.decoder = decoder
        self.engine, self.source, self.compute_dtype = engine, source, compute_dtype
        self.engine_options = dict(engine_options or {})
        self.continue_turns = bool(continue_turns)  # later turns decoded from the KV cache (`rollout`)
        self.stop = tuple(getattr(task, "stop", ()) or ())  # the task's stop strings: where an attempt ends
        self._encoded: dict[str, list[int]] = {}  # `encode`'s memory of short, recurring texts
        self.eos_ids = _stop_ids(model, tokenizer)
        cfg = model.config
        self.max_length = getattr(cfg, "n_positions", None) or getattr(cfg, "max_position_embeddings", None) or 10**9

    # --- prompts -------------------------------------------------------------------------------
    def render(self, problem: Problem, attempts: Sequence[str] = ()) -> str:
        """The prompt's text: the chat template applied to `prompts.conversation`, with the
        generation prompt (the embedded models' template is rendered by `char_tokenizer.render_chat`)."""
        messages = conversation(self.task, problem, attempts)
        if getattr(self.tokenizer, "chat_template", None) == CHAT_TEMPLATE:
            return render_chat(messages, self.tokenizer.eos_token)
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def prompts(self, problems: Sequence[Problem], histories: Sequence[Sequence[str]]) -> list[list[int]]:
        """Token ids of each problem's prompt after its earlier attempts (one tokenizer call)."""
        if not problems:
            return []
        texts = [self.render(p, h) for p, h in zip(problems, histories, strict=True)]
        return self.tokenizer(texts, add_special_tokens=False).input_ids

    def prompt_ids(self, problem: Problem, attempts: Sequence[str] = ()) -> list[int]:
        return self.prompts([problem], [attempts])[0]

    def encode(self, text: str) -> list[int]:
        """Token ids of a short text that recurs (e.g. what the template writes after an attempt),
        tokenized once per policy."""
        if text not in self._encoded:
            if len(self._encoded) > 4096:
                self._encoded.clear()
            self._encoded[text] = self.tokenizer(text, add_special_tokens=False).input_ids
        return list(self._encoded[text])

    # --- generation ----------------------------------------------------------------------------
    def generate(self, prompts: Sequence[Sequence[int]], sampling: Sampling, seed: int = 0) -> list[list[int]]:
        """Completion token ids for each prompt (`complete`'s kept tokens)."""
        return [c.ids for c in self.complete(prompts, sampling, seed)]

    def complete(self, prompts: Sequence[Sequence[int]], sampling: Sampling, seed: int = 0) -> list[Completion]:
        """One completion per prompt: generated tokens up to and including the first stop token,
        ending before a task stop string, or `max_new_tokens` of them; seeded per call, leaving the
        global RNG state untouched."""
        if self.engine == "vllm":
            return self._complete_vllm(prompts, sampling, seed)
        with self.autocast():
            return self._complete_hf(prompts, sampling, seed)

    @torch.no_grad()
    def _complete_hf(self, prompts: Sequence[Sequence[int]], sampling: Sampling, seed: int) -> list[Completion]:
        """Batches run through `gpt2_decoding.decode` where it gives `generate`'s tokens (GPT-2
        models, top_p = 1, no stop strings; `decoder="generate"` forces `generate`), else through
        `generate` with the task's stop strings (its own `stop_strings` support)."""
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        out: list[Completion] = [Completion([], "length") for _ in prompts]
        gen_cfg = self._generation_config(sampling)
        was_training = self.model.training
        self.model.eval()
        lean = self.decoder == "auto" and not self.stop and gpt2_decoding.supports(self.model, sampling.top_p)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            for start in range(0, len(order), self.batch_size):
                idx = order[start : start + self.batch_size]
                batch = self._left_padded([prompts[i] for i in idx])
                room = self.max_length - batch["input_ids"].shape[1]
                if room < 1:  # the context is full: nothing can be generated
                    continue
                gen_cfg.max_new_tokens = min(sampling.max_new_tokens, room)
                if lean:
                    new = gpt2_decoding.decode(
                        self.model, batch["input_ids"], batch["attention_mask"], greedy=sampling.greedy,
                        temperature=sampling.temperature, max_new_tokens=gen_cfg.max_new_tokens,
                        eos_ids=self.eos_ids, pad_id=self.tokenizer.pad_token_id,
                    )
                else:
                    extra = {"tokenizer": self.tokenizer} if self.stop else {}
                    new = self.model.generate(**batch, generation_config=gen_cfg, **extra)[:, batch["input_ids"].shape[1] :]
                for row, i in zip(new.tolist(), idx):
                    out[i] = self._finish(row)
        self.model.train(was_training)
        return out

    def _complete_vllm(self, prompts: Sequence[Sequence[int]], sampling: Sampling, seed: int) -> list[Completion]:
        from selfcorrect.models.vllm_engine import shared_engine

        engine = shared_engine(self.source, **self.engine_options)
        engine.sync(self.model)  # a no-op when the weights are those it already has
        room = min(sampling.max_new_tokens, self.max_length - max((len(p) for p in prompts), default=0))
        if room < 1:
            return [Completion([], "length") for _ in prompts]
        return engine.generate(prompts, temperature=sampling.temperature, top_p=sampling.top_p, max_new_tokens=room,
                               stop=self.stop, eos_ids=self.eos_ids, seed=seed)

    def autocast(self):
        """bf16 autocast for generation and scoring when `compute_dtype` is bfloat16 (weights untouched)."""
        return torch.autocast(device_type=self.model.device.type, dtype=torch.bfloat16, enabled=self.compute_dtype == "bfloat16")

    def attempt(self, problems: Sequence[Problem], histories: Sequence[Sequence[str]], sampling: Sampling, seed: int) -> list[Turn]:
        """One more attempt for each problem, given the attempts it already has."""
        prompts = self.prompts(problems, histories)
        return [self.turn(p, c) for p, c in zip(prompts, self.complete(prompts, sampling, seed))]

    def turn(self, prompt_ids: Sequence[int], completion: Completion) -> Turn:
        return Turn(list(prompt_ids), completion.ids, self.decode(completion.ids), completion.finish, completion.logprobs)

    def two_turn(
        self,
        problems: Sequence[Problem],
        sampling: Sampling,
        seed: int = 0,
        first_attempts: Sequence[str] | None = None,
        n_turns: int = 2,
    ) -> list[Episode]:
        """Roll out `n_turns` attempts per problem. With `first_attempts`, turn one is taken
        from them (offline first attempts) instead of being generated."""
        episodes = [Episode(p) for p in problems]
        if first_attempts is not None:
            if len(first_attempts) != len(problems):
                raise ValueError(f"{len(first_attempts)} first attempts for {len(problems)} problems")
            firsts = self.prompts(problems, [()] * len(problems))
            y1_ids = self.tokenizer(list(first_attempts), add_special_tokens=False).input_ids if problems else []
            for ep, prompt, ids, y1 in zip(episodes, firsts, y1_ids, first_attempts):
                ep.turns.append(Turn(prompt, ids, y1))
        elif n_turns > 1 and self.continues(sampling):
            return self.rollout(problems, sampling, seed, n_turns, lambda p, turns: self.prompt_ids(p, [x.text for x in turns]))
        for t in range(len(episodes[0].turns) if episodes else n_turns, n_turns):
            turns = self.attempt(problems, [[x.text for x in ep.turns] for ep in episodes], sampling, seed + 7919 * t)
            for ep, turn in zip(episodes, turns):
                ep.turns.append(turn)
        return episodes

    def continues(self, sampling: Sampling) -> bool:
        """Whether `rollout` continues later turns from the KV cache: `continue_turns` is on and the batch
        decoder is `gpt2_decoding` (transformers engine, GPT-2, top_p = 1, no stop strings)."""
        return (self.continue_turns and self.engine == "hf" and self.decoder == "auto" and not self.stop
                and gpt2_decoding.supports(self.model, sampling.top_p))

    @torch.no_grad()
    def rollout(self, problems: Sequence[Problem], sampling: Sampling, seed: int, n_turns: int,
                next_prompt: Callable[[Problem, list[Turn]], list[int]]) -> list[Episode]:
        """`n_turns` attempts per problem, each later turn decoded from its batch's KV cache (`continues` must
        hold): turn 1 as `attempt` decodes it (same batches, same tokens when greedy), then for every row the
        tokens that `next_prompt(problem, turns so far)` adds after what the cache holds are encoded and the
        next attempt decoded, without re-encoding the conversation. A batch in which a row's next prompt does
        not extend its cached tokens (an attempt that does not round-trip through the tokenizer) or would run
        past the context takes today's path (`attempt`) for its later turns. Sampled tokens are drawn in
        another order than `two_turn`'s (batch by batch, turn after turn), so they are a different draw."""
        if not self.continues(sampling):
            raise ValueError("rollout needs continue_turns and the gpt2_decoding path (see Policy.continues)")
        episodes = [Episode(p) for p in problems]
        prompts = self.prompts(problems, [()] * len(problems))
        order = sorted(range(len(problems)), key=lambda i: len(prompts[i]))
        fresh: list[int] = []  # rows whose later turns take `attempt`
        was_training = self.model.training
        self.model.eval()
        with self.autocast(), torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            for start in range(0, len(order), self.batch_size):
                idx = order[start : start + self.batch_size]
                if not self._rollout_batch([problems[i] for i in idx], [prompts[i] for i in idx],
                                           [episodes[i] for i in idx], sampling, n_turns, next_prompt):
                    fresh += idx
        self.model.train(was_training)
        for t in range(1, n_turns):
            rows = sorted(i for i in fresh if len(episodes[i].turns) == t)
            if rows:
                turns = self.attempt([problems[i] for i in rows], [[x.text for x in episodes[i].turns] for i in rows],
                                     sampling, seed + 7919 * t)
                for i, turn in zip(rows, turns):
                    episodes[i].turns.append(turn)
        return episodes

    def _rollout_batch(self, problems, prompts, episodes, sampling: Sampling, n_turns: int, next_prompt) -> bool:
        """One batch of `rollout`; False when its later turns are left to `attempt`."""
        batch = self._left_padded(prompts)
        n_new = min(sampling.max_new_tokens, self.max_length - batch["input_ids"].shape[1])
        if n_new < 1:  # the context is full (as `_complete_hf`: nothing generated)
            for ep, p in zip(episodes, prompts):
                ep.turns.append(self.turn(p, Completion([], "length")))
            return False
        kw = dict(greedy=sampling.greedy, temperature=sampling.temperature, eos_ids=self.eos_ids,
                  pad_id=self.tokenizer.pad_token_id)
        new, cache = gpt2_decoding.decode(self.model, batch["input_ids"], batch["attention_mask"], max_new_tokens=n_new,
                                          keep_cache=True, **kw)
        held, asked = [list(p) for p in prompts], prompts  # each row's tokens in the cache; the prompts answered
        for t in range(n_turns):
            rows = new.tolist()
            for j, ep in enumerate(episodes):
                done = self._finish(rows[j])
                ep.turns.append(self.turn(asked[j], done))
                held[j] += done.ids[: len(rows[j]) - 1]  # the last drawn token was never fed
            if t == n_turns - 1:
                return True
            asked = [next_prompt(pr, ep.turns) for pr, ep in zip(problems, episodes)]
            if (any(len(x) <= len(h) or x[: len(h)] != h for x, h in zip(asked, held))
                    or max(len(x) for x in asked) + sampling.max_new_tokens > self.max_length):
                return False
            new = gpt2_decoding.continue_decode(self.model, cache, [x[len(h):] for x, h in zip(asked, held)],
                                                max_new_tokens=sampling.max_new_tokens, **kw)
            held = [list(x) for x in asked]
        return True

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=True).strip()

    # --- scoring -------------------------------------------------------------------------------
    def token_logprobs(
        self, prompts: Sequence[Sequence[int]], completions: Sequence[Sequence[int]], temperature: float = 1.0
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """log π_T(completion_t | prompt, completion_<t) for every token, shape [B, T-1], and the
        mask that is 1 exactly on completion tokens, where π_T = softmax(logits / T) is the
        distribution `generate` samples from at temperature T (so T must be the sampling
        temperature for an on-policy gradient). Gradients flow when grad is enabled."""
        if not temperature > 0:
            raise ValueError(f"log-probs need a sampling temperature > 0, got {temperature!r} (greedy decoding has no log-probs)")
        seqs = [list(p) + list(c) for p, c in zip(prompts, completions)]
        width = max(len(s) for s in seqs)
        pad = self.tokenizer.pad_token_id
        ids = torch.full((len(seqs), width), pad, dtype=torch.long)
        attn = torch.zeros_like(ids)
        mask = torch.zeros_like(ids, dtype=torch.float)
        for i, (s, p) in enumerate(zip(seqs, prompts)):
            ids[i, : len(s)] = torch.tensor(s)
            attn[i, : len(s)] = 1
            mask[i, len(p) : len(s)] = 1
        ids, attn = ids.to(self.model.device), attn.to(self.model.device)
        with self.autocast():
            logits = self.model(input_ids=ids, attention_mask=attn).logits[:, :-1].float()
        if temperature != 1.0:
            logits = logits / temperature
        targets = ids[:, 1:]
        logp = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, dim=-1)
        return logp, mask[:, 1:].to(logp.device)

    @torch.no_grad()
    def sequence_logprobs(self, turns: Sequence[Turn], sampled_at: float | None = None) -> list[float]:
        """log π(completion | prompt) of each turn at temperature 1: the sum of its tokens' log-probs
        (the stop token included), in batches of `batch_size`, with the model in eval mode. Turns generated
        greedily or at T = 1 (`sampled_at`) by an engine that returned their log-probs (vLLM, at T = 1 for
        greedy requests) are summed from those, without a forward pass."""
        if sampled_at in (0.0, 1.0) and turns and all(t.logprobs is not None for t in turns):
            return [float(sum(t.logprobs)) for t in turns]
        out: list[float] = []
        was_training = self.model.training
        self.model.eval()
        for start in range(0, len(turns), self.batch_size):
            chunk = turns[start : start + self.batch_size]
            if not any(t.completion_ids for t in chunk):
                out.extend(0.0 for _ in chunk)
                continue
            logp, mask = self.token_logprobs([t.prompt_ids for t in chunk], [t.completion_ids for t in chunk])
            out.extend((logp * mask).sum(-1).double().tolist())
        self.model.train(was_training)
        return out

    # --- persistence ---------------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        self.model.save_pretrained(path)
        self.tokenizer.save_pretrained(path)

    def merged(self) -> "Policy":
        """This policy with a LoRA adapter folded into its weights (`lora.merged`); itself when it has none."""
        from selfcorrect.models.lora import is_adapted, merged

        if not is_adapted(self.model):
            return self
        self.model = merged(self.model)
        return self

    @classmethod
    def load(
        cls, path: str | Path, task: Task, batch_size: int = 256, dtype: str = "float32", device: str = "auto",
        decoder: str = "auto", engine: str = "hf", compute_dtype: str = "float32", engine_options: dict | None = None,
        continue_turns: bool = False,
    ) -> "Policy":
        """`device="auto"` is the GPU when there is one, else the CPU. `dtype` is the weights' dtype
        (float32 for any policy that is trained: `models.check_precision`)."""
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if not hasattr(torch, str(dtype)) or not isinstance(getattr(torch, str(dtype)), torch.dtype):
            raise ValueError(f"model.dtype must name a torch dtype (float32, bfloat16, ...), got {dtype!r}")
        # left padding so batched generation continues each prompt right where it ends
        tokenizer = AutoTokenizer.from_pretrained(path, padding_side="left")
        model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype)).to(device)
        return cls(model, tokenizer, task, batch_size, decoder, engine=engine, source=path, compute_dtype=compute_dtype,
                   engine_options=engine_options, continue_turns=continue_turns)

    # --- internals -----------------------------------------------------------------------------
    def _left_padded(self, prompts: Sequence[Sequence[int]]) -> dict:
        """One batch of prompts, left-padded (generation continues each prompt where it ends), on the model's device."""
        return self.tokenizer.pad({"input_ids": [list(p) for p in prompts]}, padding=True, padding_side="left",
                                  return_tensors="pt").to(self.model.device)

    def _generation_config(self, s: Sampling) -> GenerationConfig:
        kw = dict(
            max_new_tokens=s.max_new_tokens,
            pad_token_id=self.tokenizer.pad_token_id,
            eos_token_id=self.eos_ids,
            do_sample=not s.greedy,
        )
        if self.stop:
            kw["stop_strings"] = list(self.stop)
        if not s.greedy:
            kw.update(temperature=s.temperature, top_p=s.top_p, top_k=0)
        return GenerationConfig(**kw)

    def _finish(self, row: list[int]) -> Completion:
        """A generated row (finished rows are padded) as a `Completion`: cut where a task stop
        string starts (the tokens that carry any of its characters dropped: finish "stop"), else
        after the first stop token ("eos"), else with trailing pads removed ("length")."""
        end = next((j + 1 for j, t in enumerate(row) if t in self.eos_ids), None)
        if self.stop:
            kept = stop_prefix(self.tokenizer, row[: (end - 1) if end else len(row)], self.stop)
            if kept is not None:
                return Completion(kept, "stop")
        if end is not None:
            return Completion(row[:end], "eos")
        pad = self.tokenizer.pad_token_id
        while row and row[-1] == pad and pad not in self.eos_ids:
            row = row[:-1]
        return Completion(row, "length")


def _stop_ids(model, tokenizer) -> list[int]:
    ids = {tokenizer.eos_token_id}
    gen_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids.update(gen_eos if isinstance(gen_eos, list) else [gen_eos])
    return sorted(i for i in ids if i is not None)
