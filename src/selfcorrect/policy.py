"""One policy wrapper over any Hugging Face causal LM and its tokenizer.

It builds prompts through the tokenizer's chat template (`prompts.conversation`), generates
first and second attempts in batches (greedy or sampled), scores given completions token by
token (log-probs with a completion mask, for RL), and saves / loads itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig, PreTrainedModel

from selfcorrect import gpt2_decoding
from selfcorrect.char_tokenizer import CHAT_TEMPLATE, render_chat
from selfcorrect.prompts import conversation
from selfcorrect.tasks.base import Problem, Task

DECODERS = ("auto", "generate")  # auto: gpt2_decoding where it reproduces `generate`, else `generate`


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
    """One attempt: the prompt it answered and the tokens generated (EOS included if emitted)."""

    prompt_ids: list[int]
    completion_ids: list[int]
    text: str


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
    def __init__(self, model: PreTrainedModel, tokenizer, task: Task, batch_size: int = 256, decoder: str = "auto"):
        if decoder not in DECODERS:
            raise ValueError(f"model.decoder must be one of {DECODERS}, got {decoder!r}")
        if tokenizer.pad_token_id is None:
            raise ValueError("the tokenizer has no pad token; set one (e.g. the EOS token) before wrapping it")
        if getattr(tokenizer, "chat_template", None) is None:
            raise ValueError("the tokenizer has no chat template; the two-turn prompts are built from it")
        self.model, self.tokenizer, self.task = model, tokenizer, task
        self.batch_size = int(batch_size)
        self.decoder = decoder
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
    @torch.no_grad()
    def generate(self, prompts: Sequence[Sequence[int]], sampling: Sampling, seed: int = 0) -> list[list[int]]:
        """Completion token ids for each prompt: generated tokens up to and including the first
        stop token (or `max_new_tokens` of them). Sampling is seeded per call and leaves the
        global RNG state untouched. Batches run through `gpt2_decoding.decode` where it gives
        `generate`'s tokens (GPT-2 models, top_p = 1; `decoder="generate"` forces `generate`)."""
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        out: list[list[int]] = [[] for _ in prompts]
        gen_cfg = self._generation_config(sampling)
        was_training = self.model.training
        self.model.eval()
        lean = self.decoder == "auto" and gpt2_decoding.supports(self.model, sampling.top_p)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            for start in range(0, len(order), self.batch_size):
                idx = order[start : start + self.batch_size]
                batch = self.tokenizer.pad(
                    {"input_ids": [list(prompts[i]) for i in idx]},
                    padding=True, padding_side="left", return_tensors="pt",
                ).to(self.model.device)
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
                    new = self.model.generate(**batch, generation_config=gen_cfg)[:, batch["input_ids"].shape[1] :]
                for row, i in zip(new.tolist(), idx):
                    out[i] = self._trim(row)
        self.model.train(was_training)
        return out

    def attempt(self, problems: Sequence[Problem], histories: Sequence[Sequence[str]], sampling: Sampling, seed: int) -> list[Turn]:
        """One more attempt for each problem, given the attempts it already has."""
        prompts = self.prompts(problems, histories)
        completions = self.generate(prompts, sampling, seed)
        return [Turn(p, c, self.decode(c)) for p, c in zip(prompts, completions)]

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
        for t in range(len(episodes[0].turns) if episodes else n_turns, n_turns):
            turns = self.attempt(problems, [[x.text for x in ep.turns] for ep in episodes], sampling, seed + 7919 * t)
            for ep, turn in zip(episodes, turns):
                ep.turns.append(turn)
        return episodes

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
        logits = self.model(input_ids=ids, attention_mask=attn).logits[:, :-1].float()
        if temperature != 1.0:
            logits = logits / temperature
        targets = ids[:, 1:]
        logp = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, dim=-1)
        return logp, mask[:, 1:].to(logp.device)

    @torch.no_grad()
    def sequence_logprobs(self, turns: Sequence[Turn]) -> list[float]:
        """log π(completion | prompt) of each turn at temperature 1: the sum of its tokens' log-probs
        (the stop token included), in batches of `batch_size`, with the model in eval mode."""
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

    @classmethod
    def load(
        cls, path: str | Path, task: Task, batch_size: int = 256, dtype: str = "float32", device: str = "auto",
        decoder: str = "auto",
    ) -> "Policy":
        """`device="auto"` is the GPU when there is one, else the CPU."""
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if not hasattr(torch, str(dtype)) or not isinstance(getattr(torch, str(dtype)), torch.dtype):
            raise ValueError(f"model.dtype must name a torch dtype (float32, bfloat16, ...), got {dtype!r}")
        # left padding so batched generation continues each prompt right where it ends
        tokenizer = AutoTokenizer.from_pretrained(path, padding_side="left")
        model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype)).to(device)
        return cls(model, tokenizer, task, batch_size, decoder)

    # --- internals -----------------------------------------------------------------------------
    def _generation_config(self, s: Sampling) -> GenerationConfig:
        kw = dict(
            max_new_tokens=s.max_new_tokens,
            pad_token_id=self.tokenizer.pad_token_id,
            eos_token_id=self.eos_ids,
            do_sample=not s.greedy,
        )
        if not s.greedy:
            kw.update(temperature=s.temperature, top_p=s.top_p, top_k=0)
        return GenerationConfig(**kw)

    def _trim(self, row: list[int]) -> list[int]:
        for j, t in enumerate(row):
            if t in self.eos_ids:
                return row[: j + 1]
        pad = self.tokenizer.pad_token_id
        while row and row[-1] == pad and pad not in self.eos_ids:
            row = row[:-1]
        return row


def _stop_ids(model, tokenizer) -> list[int]:
    ids = {tokenizer.eos_token_id}
    gen_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids.update(gen_eos if isinstance(gen_eos, list) else [gen_eos])
    return sorted(i for i in ids if i is not None)
