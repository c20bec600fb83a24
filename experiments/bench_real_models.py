"""Throughput of the real-model path: two-turn rollouts and one policy-gradient update step for
SmolLM2-135M-Instruct (the converted GGUF), through the same Policy the arms use.

    .venv/bin/python experiments/bench_real_models.py                        # CPU, small numbers
    .venv/bin/python experiments/bench_real_models.py --device cuda --batch 64 --max-new-tokens 256

Prints figures (and one JSON line); it asserts nothing. On CUDA the model runs in bf16; vLLM is
used for an extra rollout figure only if it is installed (`--vllm auto`, the default).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir

from selfcorrect.models import base_model_path
from selfcorrect.policy import Policy, Sampling
from selfcorrect.run import CONF_DIR
from selfcorrect.tasks import make_task

ROOT = Path(__file__).resolve().parents[1]


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--model", default="smollm2_135m", help="a conf/model name (e.g. smollm2_135m, hf)")
    ap.add_argument("--model-override", action="append", default=[], help="extra Hydra overrides, e.g. model.name_or_path=...")
    ap.add_argument("--task", default="humaneval")
    ap.add_argument("--batch", type=int, default=8, help="two-turn episodes generated together")
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--update-batch", type=int, default=4, help="sequences in the update step")
    ap.add_argument("--update-len", type=int, default=256, help="tokens per sequence in the update step")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--vllm", choices=["auto", "off"], default="auto")
    ap.add_argument("--seed", type=int, default=0)
    return ap.parse_args()


def load(args) -> tuple[Policy, str | Path, object]:
    cache = os.environ.get("SELFCORRECT_CACHE_DIR", str(ROOT / ".cache/selfcorrect"))
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("config", overrides=[f"model={args.model}", f"task={args.task}", *args.model_override])
    task = make_task(cfg.task)
    t0 = time.time()
    path = base_model_path(cfg.model, task, cache)
    t_path = time.time() - t0
    dtype = "bfloat16" if args.device == "cuda" else "float32"
    t0 = time.time()
    policy = Policy.load(path, task, batch_size=args.batch, dtype=dtype, device=args.device)
    print(f"model {args.model} from {path}: path {t_path:.1f}s, load {time.time() - t0:.1f}s, {dtype} on {args.device}")
    return policy, path, task


def bench_rollout(policy: Policy, task, args) -> dict:
    problems = task.problems("test", args.batch, seed=args.seed)
    sampling = Sampling(args.temperature, args.max_new_tokens)
    policy.two_turn(problems[:1], Sampling(0.0, 4), seed=args.seed)  # warm-up
    _sync(args)
    t0 = time.time()
    eps = policy.two_turn(problems, sampling, seed=args.seed)
    _sync(args)
    dt = time.time() - t0
    new_tokens = sum(len(t.completion_ids) for e in eps for t in e.turns)
    prompt_tokens = sum(len(t.prompt_ids) for e in eps for t in e.turns)
    return {
        "rollout_s": round(dt, 2),
        "two_turn_samples_per_s": round(len(eps) / dt, 3),
        "generated_tokens_per_s": round(new_tokens / dt, 1),
        "generated_tokens": new_tokens,
        "mean_prompt_tokens_per_turn": round(prompt_tokens / (2 * len(eps)), 1),
        "episodes": eps,
    }


def bench_update(policy: Policy, args) -> dict:
    """One REINFORCE-style step (log-probs of completions × advantages, backward, AdamW) on
    `update_batch` sequences of `update_len` tokens (half prompt, half completion)."""
    g = torch.Generator().manual_seed(args.seed)
    vocab = policy.model.config.vocab_size
    half = args.update_len // 2
    prompts = torch.randint(0, vocab, (args.update_batch, half), generator=g).tolist()
    completions = torch.randint(0, vocab, (args.update_batch, args.update_len - half), generator=g).tolist()
    adv = torch.randn(args.update_batch, generator=g).to(policy.model.device)
    opt = torch.optim.AdamW(policy.model.parameters(), lr=1e-6)
    policy.model.train()
    times = []
    for _ in range(2):  # the first step includes optimizer-state allocation; report both
        _sync(args)
        t0 = time.time()
        logp, mask = policy.token_logprobs(prompts, completions)
        loss = -((logp * mask).sum(-1) * adv).mean() / mask.sum(-1).mean()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        _sync(args)
        times.append(time.time() - t0)
    policy.model.eval()
    out = {"update_first_s": round(times[0], 2), "update_s": round(times[1], 2), "update_tokens": args.update_batch * args.update_len}
    if args.device == "cuda":
        out["peak_gpu_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    return out


def bench_vllm(path, task, args) -> dict | None:
    if args.vllm == "off" or args.device != "cuda" or importlib.util.find_spec("vllm") is None:
        return None
    from vllm import LLM, SamplingParams

    from selfcorrect.prompts import conversation

    llm = LLM(model=str(path), dtype="bfloat16", seed=args.seed, gpu_memory_utilization=0.5)
    params = SamplingParams(temperature=args.temperature, max_tokens=args.max_new_tokens, seed=args.seed)
    problems = task.problems("test", args.batch, seed=args.seed)
    t0 = time.time()
    first = llm.chat([conversation(task, p) for p in problems], params, use_tqdm=False)
    y1 = [o.outputs[0].text for o in first]
    second = llm.chat([conversation(task, p, [a]) for p, a in zip(problems, y1)], params, use_tqdm=False)
    dt = time.time() - t0
    toks = sum(len(o.outputs[0].token_ids) for o in first + second)
    return {"vllm_two_turn_samples_per_s": round(len(problems) / dt, 2), "vllm_generated_tokens_per_s": round(toks / dt, 1)}


def _sync(args) -> None:
    if args.device == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    policy, path, task = load(args)
    roll = bench_rollout(policy, task, args)
    eps = roll.pop("episodes")
    print(
        f"rollout: {args.batch} two-turn episodes × ≤{args.max_new_tokens} new tokens/turn at T={args.temperature}: "
        f"{roll['rollout_s']} s → {roll['two_turn_samples_per_s']} two-turn samples/s, "
        f"{roll['generated_tokens_per_s']} generated tokens/s ({roll['generated_tokens']} tokens, "
        f"prompts ~{roll['mean_prompt_tokens_per_turn']} tokens/turn)"
    )
    correct = sum(task.verify(e.problem, e.y2).correct for e in eps)
    print(f"  (turn-2 correct on these {len(eps)}: {correct})")
    upd = bench_update(policy, args)
    print(f"update: {args.update_batch}×{args.update_len} tokens, first step {upd['update_first_s']} s, next {upd['update_s']} s")
    vl = bench_vllm(path, task, args)
    if vl:
        print(f"vLLM rollout: {vl}")
    print(json.dumps({"device": args.device, "threads": args.threads, "batch": args.batch, "max_new_tokens": args.max_new_tokens,
                      **roll, **upd, **(vl or {})}))


if __name__ == "__main__":
    main()
