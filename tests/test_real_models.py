"""Real-model code paths: `model.kind=hf` through the real `from_pretrained` on a local directory,
the GGUF conversion step on a tiny Llama, and (with SELFCORRECT_REAL_MODEL_TESTS=1)
SmolLM2-135M-Instruct itself, loaded once per module."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

from selfcorrect.models.char_tokenizer import build_char_tokenizer
from selfcorrect.models.gguf_model import (
    converted_gguf_path,
    gguf_location,
    max_logit_difference,
    plain_copy,
    prepare_tokenizer,
)
from selfcorrect.models.loading import base_model_path, load_base_policy
from selfcorrect.models.policy import Sampling
from selfcorrect.tasks.humaneval.task import HumanEvalTask

from conftest import compose_config

ROOT = Path(__file__).resolve().parents[1]
CHAT = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}{% if m['role'] == 'assistant' %}{{ eos_token }}{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


@pytest.fixture(scope="module")
def tiny_llama_dir(tmp_path_factory) -> Path:
    """A tiny Llama carrying a GGUF-style quantization_config, turned into a plain checkpoint
    by the same function the GGUF conversion uses, and saved with a chat-template tokenizer."""
    tok = build_char_tokenizer("abcdefghijklmnopqrstuvwxyz0123456789 ()[]:=+-*/.,_<>|#")  # the rest maps to <unk>
    tok.chat_template = CHAT
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=2048, tie_word_embeddings=True,
        pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, bos_token_id=tok.eos_token_id,
    )
    tagged = LlamaForCausalLM(cfg).eval()
    tagged.config.quantization_config = {"quant_method": "gguf", "gguf_file": "x.gguf"}
    model = plain_copy(tagged)
    prepare_tokenizer(tok, model)
    out = tmp_path_factory.mktemp("tiny_llama")
    model.save_pretrained(out)
    tok.save_pretrained(out)
    assert max_logit_difference(tagged, AutoModelForCausalLM.from_pretrained(out), tok) == 0.0
    return out


def test_plain_copy_drops_quantization_config_and_keeps_weights(tiny_llama_dir):
    saved = OmegaConf.load(tiny_llama_dir / "config.json")
    assert "quantization_config" not in saved
    assert (tiny_llama_dir / "model.safetensors").exists()


def test_model_hf_loads_a_local_directory_through_from_pretrained(tiny_llama_dir):
    """`model=hf model.name_or_path=<dir>` composed as the CLI composes it, then the one Policy."""
    cfg = compose_config(["model=hf", f"model.name_or_path={tiny_llama_dir}", "task=humaneval", "tracking.mode=disabled"])
    task = HumanEvalTask()
    assert base_model_path(cfg.model, task, "/nonexistent") == str(tiny_llama_dir)
    policy = load_base_policy(cfg.model, task, "/nonexistent")
    assert policy.tokenizer.padding_side == "left"
    problems = task.problems("test", 3, seed=0)
    eps = policy.two_turn(problems, Sampling(0.0, max_new_tokens=6), seed=0)
    assert [len(e.turns) for e in eps] == [2, 2, 2]
    # the second prompt holds the first attempt and the paper's revise instruction
    second = policy.tokenizer.decode(eps[0].turns[1].prompt_ids)
    assert "might be an error in the code above" in second
    first_ids = eps[0].turns[0].prompt_ids
    assert eps[0].turns[1].prompt_ids[: len(first_ids)] == first_ids
    v = task.verify(problems[0], eps[0].y2)
    assert v.correct is False  # an untrained model's six characters pass no HumanEval test
    logp, mask = policy.token_logprobs([eps[0].turns[1].prompt_ids], [eps[0].turns[1].completion_ids])
    assert mask.sum() == len(eps[0].turns[1].completion_ids) and torch.isfinite(logp[mask.bool()]).all()


def test_bad_gguf_locations_are_clear_errors(tmp_path):
    cfg = OmegaConf.create({"gguf": {"package": "no_such_package_xyz", "file": "m.gguf", "path": None}})
    with pytest.raises(FileNotFoundError, match="no_such_package_xyz"):
        gguf_location(cfg)
    cfg = OmegaConf.create({"gguf": {"path": str(tmp_path / "missing.gguf")}})
    with pytest.raises(FileNotFoundError, match="missing.gguf"):
        gguf_location(cfg)


# --- SmolLM2-135M-Instruct itself ---------------------------------------------------------------
def _smollm2_dir() -> Path | None:
    """The converted SmolLM2 directory, only with SELFCORRECT_REAL_MODEL_TESTS=1 (generation on
    2 shared cores takes 10 s to minutes); converted here if the cache does not have it yet."""
    if not os.environ.get("SELFCORRECT_REAL_MODEL_TESTS"):
        return None
    cfg = compose_config(["model=smollm2_135m"]).model
    try:
        gguf_location(cfg)  # not installed: skip
    except FileNotFoundError:
        return None
    cache = Path(os.environ.get("SELFCORRECT_CACHE_DIR", ROOT / ".cache/selfcorrect"))
    return converted_gguf_path(cfg, None, cache)


@pytest.fixture(scope="module")
def smollm2():
    path = _smollm2_dir()
    if path is None:
        pytest.skip("SmolLM2 tests run with SELFCORRECT_REAL_MODEL_TESTS=1 (first run converts the GGUF: 1-3 min)")
    from selfcorrect.models.policy import Policy

    return path, Policy.load(path, HumanEvalTask(), batch_size=4)


def test_smollm2_conversion_is_exact_and_left_padded(smollm2):
    from selfcorrect.runtime.cache import artifact_facts

    path, policy = smollm2
    facts = artifact_facts(path)["facts"]
    assert facts["max_abs_logit_diff"] == 0.0 and 130e6 < facts["params"] < 140e6
    assert policy.tokenizer.padding_side == "left"
    assert policy.tokenizer.convert_ids_to_tokens(policy.eos_ids) == ["<|im_end|>"]


def test_smollm2_two_turn_chat_prompts_and_generation(smollm2):
    _, policy = smollm2
    task = policy.task
    problems = task.problems("test", 2, seed=0)
    eps = policy.two_turn(problems, Sampling(0.0, max_new_tokens=8), seed=0)
    text = policy.tokenizer.decode(eps[0].turns[1].prompt_ids)
    # its own ChatML template: system, user, assistant (turn 1), user (revise), assistant
    assert text.count("<|im_start|>user") == 2 and text.count("<|im_start|>assistant") == 2
    assert text.rstrip().endswith("<|im_start|>assistant")
    assert task.revise_instruction in text
    # batched (left-padded) greedy generation equals one-at-a-time generation
    alone = policy.two_turn(problems[1:], Sampling(0.0, max_new_tokens=8), seed=0)
    assert alone[0].turns[0].completion_ids == eps[1].turns[0].completion_ids


# --- issue 15: the SmolLM2 word-problem experiment, shrunk to a CPU smoke run --------------------
# Two arms (SFT on teacher traces, written by the task's error model, and SCoRe), two gradient
# steps, four test problems; the experiment file itself is composed, only sizes and device change.
WORD_MATH_SMOKE = [
    "experiment=smollm2_word_math", "seed=0", "model.device=cpu", "model.dtype=float32", "model.batch_size=8",
    "threads=1", "tracking.mode=disabled", "budget.episodes=8", "budget.gradient_steps=2", "budget.sequences_per_step=4",
    "eval.n_problems=4", "eval.n_monitor=4", "eval.max_new_tokens=48", "eval.correction_matrix.n_problems=2",
    "hydra.sweep.subdir=${arm.name}_s${seed}",  # the override list is too long for a directory name
]
WORD_MATH_SMOKE_ARMS = {
    "sft_teacher": ["arm.probe.n_train=2", "arm.probe.n_val=2", "arm.probe.val_problems=4"],
    "score": [],
}


def _selfcorrect(args: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_SILENT": "true"}
    return subprocess.run([sys.executable, "-m", "selfcorrect", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)


def test_smollm2_word_math_smoke_two_arms_and_resume(tmp_path):
    """`experiment=smollm2_word_math` on CPU with two arms, two steps and four problems: each run
    completes with the budget it was given, verdicts from the word_math taxonomy, and a re-launch
    into the same sweep directory skips the complete runs."""
    if _smollm2_dir() is None:
        pytest.skip("SmolLM2 tests run with SELFCORRECT_REAL_MODEL_TESTS=1")
    from selfcorrect.tasks.word_math import ERROR_KINDS

    sweep = tmp_path / "sweep"
    for arm, extra in WORD_MATH_SMOKE_ARMS.items():
        proc = _selfcorrect(["-m", *WORD_MATH_SMOKE, f"arm={arm}", *extra, f"hydra.sweep.dir={sweep}"])
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    runs = {arm: sweep / f"{arm}_s0" for arm in WORD_MATH_SMOKE_ARMS}
    for d in runs.values():
        assert json.loads((d / "run.json").read_text())["status"] == "complete"
        m = json.loads((d / "metrics.json").read_text())
        assert m["budget"]["episodes"] == 8 and m["budget"]["gradient_steps"] == 2 and m["budget"]["lr"] == 1e-5
        assert 0.0 <= m["acc_t1"] <= 1.0 and 0.0 <= m["acc_t2"] <= 1.0
        records = [json.loads(line) for line in (d / "generations.jsonl").read_text().splitlines()]
        assert len(records) == 4
        for r in records:
            for key in ("error1", "error2"):
                assert r[key] is None or r[key].split("@")[0] in ERROR_KINDS
    # resumable: a second launch of a complete run is skipped, its metrics left as they were
    before = {d: (d / "metrics.json").stat().st_mtime_ns for d in runs.values()}
    proc = _selfcorrect(["-m", *WORD_MATH_SMOKE, "arm=score", f"hydra.sweep.dir={sweep}"])
    assert proc.returncode == 0 and "already complete" in proc.stdout, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert {d: (d / "metrics.json").stat().st_mtime_ns for d in runs.values()} == before
