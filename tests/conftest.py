"""Shared fixtures: configs composed exactly as the CLI composes them, and a tiny base model
built in seconds (few pretraining steps) in a throwaway cache."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from selfcorrect.paths import CONF_DIR

os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("GLIBC_TUNABLES", "glibc.malloc.mmap_threshold=4294967296:glibc.malloc.trim_threshold=4294967296")

TINY_OVERRIDES = [
    "model.pretrain.steps=20",
    "model.pretrain.batch_size=32",
    "model.pretrain.n_problems=2000",
    "eval.n_problems=48",
    "eval.n_monitor=16",
    "tracking.mode=disabled",
]


def random_char_policy(task, n_layer: int = 1, n_embd: int = 16, batch_size: int = 8):
    """An untrained GPT-2 with the task's character tokenizer, wrapped in the one Policy."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from selfcorrect.models.char_tokenizer import build_char_tokenizer
    from selfcorrect.models.policy import Policy
    from selfcorrect.models.tiny_model import ALPHABET

    torch.manual_seed(0)
    tok = build_char_tokenizer(ALPHABET + task.revise_instruction)
    model = GPT2LMHeadModel(GPT2Config(
        vocab_size=len(tok), n_layer=n_layer, n_head=n_layer, n_embd=n_embd, n_positions=128,
        eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, bos_token_id=tok.eos_token_id,
    ))
    return Policy(model.eval(), tok, task, batch_size=batch_size)


def compose_config(overrides: list[str] = ()):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose("config", overrides=list(overrides))


@pytest.fixture(scope="session")
def tiny_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="session")
def tiny_cfg(tiny_cache):
    """A composed config whose base model builds in a couple of seconds."""
    return compose_config([*TINY_OVERRIDES, f"paths.cache_dir={tiny_cache}"])


@pytest.fixture(scope="session")
def tiny_base(tiny_cfg, tiny_cache):
    """(task, policy, model_dir) for the tiny, briefly pretrained base model."""
    from selfcorrect.models.loading import base_model_path, load_base_policy
    from selfcorrect.tasks import make_task

    task = make_task(tiny_cfg.task)
    return task, load_base_policy(tiny_cfg.model, task, tiny_cache), base_model_path(tiny_cfg.model, task, tiny_cache)


@pytest.fixture
def harness_files(tmp_path):
    """A results file and a directory that hostile sandboxed programs try to overwrite or delete."""
    results = tmp_path / "results"
    results.mkdir()
    (results / "metrics.json").write_text('{"acc_t1": 0.5}')
    os.chmod(tmp_path, 0o755)
    return results


# A plain chat template for character tokenizers (every role, the assistant's turns closed by EOS)
CHAR_CHAT = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}{% if m['role'] == 'assistant' %}{{ eos_token }}{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def save_tiny_llama(out: Path, tok, hidden: int = 32, heads: int = 4, kv_heads: int = 2, positions: int = 512, **config):
    """A randomly initialised Llama (grouped-query attention when kv_heads < heads, RoPE, tied embeddings: the
    architecture of real models such as SmolLM2) for tokenizer `tok` (given the chat template `CHAR_CHAT` when it has
    none), saved with it to `out` as `from_pretrained` reads a real checkpoint."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    if getattr(tok, "chat_template", None) is None:
        tok.chat_template = CHAR_CHAT
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(
        vocab_size=len(tok), hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=2, num_attention_heads=heads,
        num_key_value_heads=kv_heads, max_position_embeddings=positions, tie_word_embeddings=True,
        pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, bos_token_id=tok.eos_token_id, **config))
    model.generation_config.eos_token_id, model.generation_config.pad_token_id = tok.eos_token_id, tok.pad_token_id
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out
