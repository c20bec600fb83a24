"""The embedded testbeds' base model: a tiny GPT-2 pretrained from scratch on a task's traces.

Its pretraining corpus is two-turn traces x → y1 → [revise] → y2 whose attempts the task draws
(`task.pretraining_sampler`, from the corpus profile in `model.pretrain`). On the arithmetic task
both attempts are independent draws from bug mixtures (`turn1_rules`, `turn2_rules`): systematic
errors that depend on problem features, on top of a correct procedure the model also sees. So the
base makes stable, classifiable mistakes, holds a latent correct procedure that training can
surface, and knows the two-turn format without any real skill at self-correction (its second
attempt ignores the first, so Δ ≤ 0 by construction). On the answer-first task
(`tasks/answer_first.py`) a later attempt rarely reads the previous attempt's working: a latent
skill the base holds but does not deploy. Every `three_turn_every`-th batch holds
three-attempt traces (y3 drawn like y2), so that longer revision chains (the inference-scaling
figure) stay inside the positions and format the model has seen.

The build is cached by a hash of everything that determines it and is bit-for-bit
reproducible for a fixed seed (one CPU thread, seeded init and data order).
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Mapping
from pathlib import Path

import torch
from transformers import GPT2Config, GPT2LMHeadModel

from selfcorrect.models.char_tokenizer import build_char_tokenizer, encode_padded
from selfcorrect.models.prompts import conversation
from selfcorrect.runtime.cache import artifact_facts, cached_artifact
from selfcorrect.runtime.records import plain
from selfcorrect.tasks.base import Task

BUILD_VERSION = 3  # bump when the corpus or training code changes what a spec builds (3: wider test split)
ALPHABET = "0123456789+=> "


def base_model_spec(model_cfg: Mapping, task: Task) -> dict:
    """Everything that determines the built weights."""
    return {
        "version": BUILD_VERSION,
        "task": task.build_spec(),
        "architecture": plain(model_cfg["architecture"]),
        "pretrain": plain(model_cfg["pretrain"]),
    }


def build_base_model(model_cfg: Mapping, task: Task, cache_dir: str | Path) -> Path:
    """Path of the cached base model (an HF model + tokenizer directory), built if missing."""
    if task.pretraining_sampler is None:  # `Task`'s optional capability
        raise ValueError(f"model kind 'tiny' is pretrained from scratch on an embedded task (arithmetic, answer_first); "
                         f"task {task.name!r} has no pretraining_sampler")
    spec = base_model_spec(model_cfg, task)
    return cached_artifact(cache_dir, "base_models", spec, lambda out: _pretrain(spec, task, out)) / "model"


def base_model_facts(model_dir: str | Path) -> dict:
    return artifact_facts(Path(model_dir).parent)


def pretraining_texts(task: Task, tokenizer, pre: dict, n: int, rng: random.Random) -> tuple[list[str], list[int]]:
    """`n` traces on train-split problems, and the length of each one's prompt x. Trace i has
    three attempts when its batch (i // batch_size) is a multiple of `three_turn_every` minus
    one (0 = never), otherwise two; the task draws them (`task.pretraining_sampler`)."""
    every = int(pre.get("three_turn_every", 0))
    if every < 0:
        raise ValueError(f"model.pretrain.three_turn_every must be >= 0, got {every}")
    problems = task.problems("train", pre["n_problems"], seed=pre["seed"])
    draw = task.pretraining_sampler(pre)
    texts, prompt_lens = [], []
    templates: dict[int, str] = {}  # render the chat template once per length, then fill it (50x faster)
    for i in range(n):
        p = rng.choice(problems)
        n_attempts = 3 if every and (i // pre["batch_size"]) % every == every - 1 else 2
        attempts = draw(p, n_attempts, rng)
        if n_attempts not in templates:
            templates[n_attempts] = _trace_template(task, tokenizer, n_attempts)
        texts.append(templates[n_attempts].format(p.prompt, *attempts))
        prompt_lens.append(len(p.prompt))
    return texts, prompt_lens


def _trace_template(task: Task, tokenizer, n_attempts: int) -> str:
    """The chat-rendered trace with `{0}` for x and `{1}`… for the attempts."""
    from selfcorrect.tasks.base import Problem

    marks = [f"\x00{i}\x00" for i in range(n_attempts + 1)]
    msgs = conversation(task, Problem(id="x", prompt=marks[0], answer=""), marks[1:-1])
    msgs = msgs + [{"role": "assistant", "content": marks[-1]}]
    text = tokenizer.apply_chat_template(msgs, tokenize=False).replace("{", "{{").replace("}", "}}")
    for i, m in enumerate(marks):
        text = text.replace(m, "{%d}" % i)
    return text


def _pretrain(spec: dict, task: Task, out: Path) -> dict:
    arch, pre = spec["architecture"], spec["pretrain"]
    t0 = time.time()
    threads = torch.get_num_threads()
    torch.set_num_threads(int(pre["threads"]))
    try:
        tokenizer = build_char_tokenizer(ALPHABET + task.revise_instruction)
        rng = random.Random(pre["seed"])
        torch.manual_seed(pre["seed"])
        n_seq = pre["steps"] * pre["batch_size"]
        texts, prompt_lens = pretraining_texts(task, tokenizer, pre, n_seq, rng)
        ids, labels = _tensorize(tokenizer, texts, prompt_lens)
        if ids.shape[1] > arch["n_positions"]:
            raise ValueError(f"traces of {ids.shape[1]} tokens exceed n_positions={arch['n_positions']}")
        config = GPT2Config(
            vocab_size=len(tokenizer), bos_token_id=tokenizer.eos_token_id,
            eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
            resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, **arch,
        )
        model = GPT2LMHeadModel(config)
        losses = _train(model, ids, labels, pre)
        model.generation_config.pad_token_id = tokenizer.pad_token_id
        model.save_pretrained(out / "model")
        tokenizer.save_pretrained(out / "model")
    finally:
        torch.set_num_threads(threads)
    facts = {"wall_s": round(time.time() - t0, 1), "n_params": model.num_parameters(), "final_loss": losses[-1], "loss_curve": losses}
    (out / "pretrain_log.json").write_text(json.dumps(facts))
    return facts


def _tensorize(tokenizer, texts: list[str], prompt_lens: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ids; labels are -100 on the prompt x (random digits) and on padding."""
    ids, lengths = encode_padded(tokenizer, texts)
    ids = torch.from_numpy(ids)
    labels = ids.clone()
    labels[torch.arange(ids.shape[1]).unsqueeze(0) >= torch.from_numpy(lengths).unsqueeze(1)] = -100
    pos = torch.arange(ids.shape[1]).unsqueeze(0)
    labels[pos < torch.tensor(prompt_lens).unsqueeze(1)] = -100  # char tokenizer: 1 token per char
    return ids, labels


def _train(model: GPT2LMHeadModel, ids: torch.Tensor, labels: torch.Tensor, pre: dict) -> list[float]:
    # A plain loop over an in-memory tensor: bit-for-bit reproducible and without a trainer's
    # per-step overhead, which would dominate steps of a few milliseconds.
    opt = torch.optim.AdamW(model.parameters(), lr=pre["lr"], weight_decay=pre["weight_decay"], betas=(0.9, 0.98))
    steps, bs, warmup = pre["steps"], pre["batch_size"], pre["warmup_steps"]
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps))
    )
    model.train()
    every = max(1, steps // 20)  # 20 points on the loss curve
    losses, running = [], 0.0
    for step in range(steps):
        sl = slice(step * bs, (step + 1) * bs)
        # drop the columns that are padding in every row of this batch (causal attention: the
        # loss on real tokens does not depend on padding after them)
        width = int((labels[sl] != -100).any(0).nonzero().max()) + 1
        loss = model(input_ids=ids[sl, :width], labels=labels[sl, :width]).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        running += loss.item()
        if (step + 1) % every == 0:
            losses.append(round(running / every, 4))
            running = 0.0
    model.eval()
    return losses
