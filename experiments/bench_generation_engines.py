"""Generation engines on the same prompts in one process: HF `generate` (left-padded batch, dynamic
cache), transformers' continuous batching (`model.generate_batch`, paged cache) and vLLM
(`selfcorrect.models.vllm_engine`), for SmolLM2-135M-Instruct (the converted fp32 checkpoint).

    .venv/bin/python experiments/bench_generation_engines.py                  # 64 chain_sum prompts, 128 new tokens
    .venv/bin/python experiments/bench_generation_engines.py --n 16 --max-new-tokens 32 --engines hf,vllm

Prompts: reasoning-gym problems rendered with the tokenizer's chat template. For each engine and
decoding (greedy, T = 1): generated tokens/s (generated tokens, EOS included, over the wall time of
the whole call, its prefill included) and that rate as a % of the prefill rate, measured
separately as one forward pass over the prompts (full logits: the same work per token as a decode
step); for greedy, how many prompts get exactly HF `generate`'s tokens. Then vLLM's weight sync
time (a full push of the HF model's weights, and the skip when nothing changed), and the split of
vLLM's greedy decode rate: the same prompts with every row decoding to the cap (EOS ignored, so all
64 rows stay alive for every step) against the natural run, whose rows end at different steps
(`occupancy`: generated tokens / (rows x the longest row's tokens), the mean share of rows alive per
decode step). Prints a table
and one JSON line (also appended to --json-out if given); asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")  # before vLLM is imported

import torch  # noqa: E402
from bench_util import emit, with_make_malloc  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DIR = ROOT / ".cache/selfcorrect/gguf_models/57b3aba411c1e779"
TARGET_PCT_OF_PREFILL = 60  # issue 30: decode at >= 60 % of the prefill rate at batch 64


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-dir", default=str(DEFAULT_DIR), help="an HF checkpoint directory with its tokenizer")
    ap.add_argument("--dataset", default="chain_sum", help="a reasoning-gym dataset (chain_sum, leg_counting, ...)")
    ap.add_argument("--n", type=int, default=64, help="prompts")
    ap.add_argument("--batch", type=int, default=64, help="prompts per HF `generate` call")
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--engines", default="hf,cb,vllm", help="comma-separated subset of hf, cb, vllm, vllm_compiled")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json-out", default=None)
    return ap.parse_args()


def chat_prompts(tok, dataset: str, n: int, seed: int) -> list[list[int]]:
    import reasoning_gym

    data = reasoning_gym.create_dataset(dataset, size=n, seed=seed)
    return [tok.apply_chat_template([{"role": "user", "content": e["question"]}], add_generation_prompt=True,
                                    tokenize=True, return_dict=False) for e in data]


def cut(row: list[int], eos: int) -> list[int]:
    return row[: row.index(eos) + 1] if eos in row else row


@torch.no_grad()
def prefill_rate(model, tok, prompts) -> dict:
    """One forward pass over all prompts (left-padded, full logits), after a small warm-up."""
    batch = tok.pad({"input_ids": prompts}, return_tensors="pt")
    model(**{k: v[:2] for k, v in batch.items()})
    t0 = time.perf_counter()
    model(**batch)
    dt = time.perf_counter() - t0
    real = int(batch["attention_mask"].sum())
    return {"prefill_s": round(dt, 2), "prompt_tokens": real, "padded_tokens": int(batch["attention_mask"].numel()),
            "prefill_tok_s": round(real / dt, 1)}


@torch.no_grad()
def hf_generate(model, tok, prompts, temperature: float, new: int, batch_size: int, seed: int) -> list[list[int]]:
    eos = tok.eos_token_id
    kw = dict(max_new_tokens=new, eos_token_id=eos, pad_token_id=tok.pad_token_id)
    kw.update(do_sample=False) if temperature == 0 else kw.update(do_sample=True, temperature=temperature, top_p=1.0, top_k=0)
    out: list[list[int]] = []
    torch.manual_seed(seed)
    for s in range(0, len(prompts), batch_size):
        batch = tok.pad({"input_ids": prompts[s : s + batch_size]}, return_tensors="pt")
        rows = model.generate(**batch, **kw)[:, batch["input_ids"].shape[1] :].tolist()
        out += [cut(r, eos) for r in rows]
    return out


@torch.no_grad()
def cb_generate(model, tok, prompts, temperature: float, new: int, seed: int) -> list[list[int]]:
    from transformers import ContinuousBatchingConfig

    eos = tok.eos_token_id
    kw = dict(max_new_tokens=new, eos_token_id=eos, pad_token_id=tok.pad_token_id)
    kw.update(do_sample=False) if temperature == 0 else kw.update(do_sample=True, temperature=temperature, top_p=1.0, top_k=0)
    torch.manual_seed(seed)
    res = model.generate_batch(inputs=prompts, generation_config=GenerationConfig(**kw),
                               continuous_batching_config=ContinuousBatchingConfig(seed=seed), warmup=False)
    outs = list(res.values())
    if len(outs) != len(prompts) or any(o.error for o in outs):
        raise RuntimeError(f"generate_batch returned {len(outs)} results; errors: {[o.error for o in outs if o.error][:2]}")
    return [cut(list(o.generated_tokens), eos) for o in outs]


def occupancy(ids: list[list[int]]) -> float:
    """The mean share of rows alive per decode step: generated tokens / (rows x the longest row)."""
    longest = max((len(r) for r in ids), default=0)
    return round(sum(map(len, ids)) / (len(ids) * longest), 3) if longest else 0.0


def full_batch_decode(engine, prompts, new: int) -> list[list[int]]:
    """vLLM greedy with every row decoding `new` tokens (EOS ignored, no stop): each decode step runs
    at the full batch, the rate the target names ("at batch 64"). Log-probs kept, as the engine asks."""
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt

    params = SamplingParams(temperature=0.0, max_tokens=new, ignore_eos=True, logprobs=0, skip_special_tokens=False)
    out = engine.llm.generate([TokensPrompt(prompt_token_ids=list(p)) for p in prompts], params, use_tqdm=False)
    return [list(o.outputs[0].token_ids) for o in out]


def timed(fn, *a, **kw):
    t0 = time.perf_counter()
    out = fn(*a, **kw)
    return out, time.perf_counter() - t0


def row(name, decoding, ids, dt, prefill, eos, ref=None) -> dict:
    toks = sum(len(r) for r in ids)
    r = {"engine": name, "decoding": decoding, "s": round(dt, 2), "generated_tokens": toks,
         "tok_s": round(toks / dt, 1), "pct_of_prefill": round(100 * toks / dt / prefill, 1),
         "rows_ending_in_eos": sum(bool(x) and x[-1] == eos for x in ids)}
    if ref is not None:
        r["same_as_hf_greedy"] = f"{sum(a == b for a, b in zip(ids, ref))}/{len(ref)}"
    return r


def vllm_rows(name: str, args, model, prompts, new: int, eos: int, pre: dict, ref, facts: dict) -> list[dict]:
    """vLLM (`vllm`: eager, the engine's default; `vllm_compiled`: torch.compile'd, enforce_eager=False) at greedy
    and T = 1, and greedy with every row decoding to the cap (the full-batch split); the first also measures the
    weight sync."""
    import gc

    from selfcorrect.models.vllm_engine import VLLMEngine

    compiled = name == "vllm_compiled"
    (engine, dt) = timed(VLLMEngine, args.model_dir, threads=args.threads, max_model_len=2048, kv_cache_gib=2,
                         enforce_eager=not compiled)
    facts[f"{name}_startup_s"] = round(dt, 1)
    if not compiled:
        facts["vllm_sync_first_s"] = round(engine.sync(model), 2)
        with torch.no_grad():
            next(model.parameters()).add_(0.0)  # bumps a version counter: the next sync pushes again
        facts["vllm_sync_s"] = round(engine.sync(model), 2)
        facts["vllm_sync_unchanged_s"] = round(engine.sync(model), 4)
        print(f"vLLM start-up {facts['vllm_startup_s']} s; sync {facts['vllm_sync_first_s']} s first, "
              f"{facts['vllm_sync_s']} s again, {facts['vllm_sync_unchanged_s']} s when unchanged", flush=True)
    else:
        print(f"vLLM (compiled) start-up {facts[f'{name}_startup_s']} s", flush=True)
    engine.generate(prompts[:2], temperature=0.0, top_p=1.0, max_new_tokens=4, eos_ids=[eos])  # warm-up
    rows = []
    for temp, decoding in ((0.0, "greedy"), (1.0, "T=1")):
        out, dt = timed(engine.generate, prompts, temperature=temp, top_p=1.0, max_new_tokens=new, eos_ids=[eos], seed=args.seed)
        ids = [c.ids for c in out]
        rows.append(row(name, decoding, ids, dt, pre["prefill_tok_s"], eos, ref if temp == 0 else None))
        rows[-1]["occupancy"] = occupancy(ids)
        print(rows[-1], flush=True)
    ids, dt = timed(full_batch_decode, engine, prompts, new)
    rows.append(row(f"{name}_all_rows_to_cap", "greedy", ids, dt, pre["prefill_tok_s"], eos))
    rows[-1]["occupancy"] = occupancy(ids)
    print(rows[-1], flush=True)
    del engine
    gc.collect()
    return rows


def main() -> None:
    with_make_malloc()
    args = parse_args()
    torch.set_num_threads(args.threads)
    engines = set(args.engines.split(","))
    tok = AutoTokenizer.from_pretrained(args.model_dir, padding_side="left")
    model = AutoModelForCausalLM.from_pretrained(args.model_dir, dtype=torch.float32).eval()
    prompts = chat_prompts(tok, args.dataset, args.n, args.seed)
    eos = tok.eos_token_id
    new = args.max_new_tokens
    facts = {"model_dir": args.model_dir, "dataset": args.dataset, "n": len(prompts), "batch": args.batch,
             "max_new_tokens": new, "threads": args.threads, "torch": torch.__version__,
             "mean_prompt_tokens": round(sum(map(len, prompts)) / len(prompts), 1), "cpu": platform.processor() or platform.machine(),
             "glibc_tunables": os.environ.get("GLIBC_TUNABLES", ""), "loadavg_start": round(os.getloadavg()[0], 2)}
    pre = prefill_rate(model, tok, prompts)
    facts.update(pre)
    print(f"{len(prompts)} {args.dataset} prompts, mean {facts['mean_prompt_tokens']} tokens; "
          f"prefill (one forward, full logits): {pre['prefill_tok_s']} tok/s ({pre['prompt_tokens']} tokens in {pre['prefill_s']} s)",
          flush=True)
    rows, notes = [], []
    ref = None
    hf_generate(model, tok, prompts[:2], 0.0, 4, args.batch, args.seed)  # warm-up

    if engines & {"hf", "cb", "vllm", "vllm_compiled"}:
        ids, dt = timed(hf_generate, model, tok, prompts, 0.0, new, args.batch, args.seed)
        ref = ids
        if "hf" in engines:
            rows.append(row("hf_generate", "greedy", ids, dt, pre["prefill_tok_s"], eos, ref))
            print(rows[-1], flush=True)
            ids, dt = timed(hf_generate, model, tok, prompts, 1.0, new, args.batch, args.seed)
            rows.append(row("hf_generate", "T=1", ids, dt, pre["prefill_tok_s"], eos))
            print(rows[-1], flush=True)

    if "cb" in engines:
        if not hasattr(model, "generate_batch"):
            notes.append("transformers has no generate_batch")
        else:
            try:
                for temp, name in ((0.0, "greedy"), (1.0, "T=1")):
                    ids, dt = timed(cb_generate, model, tok, prompts, temp, new, args.seed)
                    rows.append(row("hf_generate_batch", name, ids, dt, pre["prefill_tok_s"], eos, ref if temp == 0 else None))
                    print(rows[-1], flush=True)
            except Exception as e:  # noqa: BLE001 - a bench reports what does not run
                notes.append(f"generate_batch failed on CPU: {type(e).__name__}: {str(e)[:300]}")
                print(notes[-1], flush=True)

    for name in ("vllm", "vllm_compiled"):
        if name in engines:
            rows += vllm_rows(name, args, model, prompts, new, eos, pre, ref, facts)

    print()
    print(f"{'engine':<20} {'decoding':<7} {'s':>7} {'tokens':>7} {'tok/s':>7} {'% prefill':>9} {'occupancy':>9}  same as HF greedy")
    for r in rows:
        print(f"{r['engine']:<20} {r['decoding']:<7} {r['s']:>7} {r['generated_tokens']:>7} {r['tok_s']:>7} "
              f"{r['pct_of_prefill']:>8}% {r.get('occupancy', ''):>9}  {r.get('same_as_hf_greedy', '')}")
    greedy = [r for r in rows if r["decoding"] == "greedy"]
    hf = next((r for r in greedy if r["engine"] == "hf_generate"), None)
    if hf:
        for r in greedy:
            print(f"{r['engine']}: {r['tok_s'] / hf['tok_s']:.2f}x hf_generate's greedy rate")
    for full in (r for r in greedy if r["engine"].endswith("_all_rows_to_cap")):
        facts[f"{full['engine']}_pct_of_prefill"] = full["pct_of_prefill"]
        met = "met" if full["pct_of_prefill"] >= TARGET_PCT_OF_PREFILL else "MISSED"
        print(f"split: {full['engine'].removesuffix('_all_rows_to_cap')} decode with all {len(prompts)} rows alive every step: "
              f"{full['pct_of_prefill']} % of the prefill rate (target {TARGET_PCT_OF_PREFILL} %: {met} at full batch)")
    greedy = [r for r in greedy if not r["engine"].endswith("_all_rows_to_cap")]  # not the same tokens: not a candidate engine
    exact = [r for r in greedy if r["engine"] == "hf_generate" or
             r.get("same_as_hf_greedy", "").split("/")[0] == r.get("same_as_hf_greedy", "/").split("/")[1]]
    if exact:
        best = max(exact, key=lambda r: r["tok_s"])
        facts["fastest_exact_engine"] = best["engine"]
        print(f"fastest engine that reproduces the greedy tokens: {best['engine']} (model.engine default for real models: vllm)")
        met = best["pct_of_prefill"] >= TARGET_PCT_OF_PREFILL
        facts["target_decode_pct_of_prefill"] = {"target": TARGET_PCT_OF_PREFILL, "measured": best["pct_of_prefill"], "met": met}
        print(f"target: decode >= {TARGET_PCT_OF_PREFILL} % of the prefill rate at batch {args.batch}: "
              f"{best['pct_of_prefill']} % -> {'met' if met else 'MISSED'}")
    for n in notes:
        print("note:", n)
    print(f"load average (1 min) {facts['loadavg_start']} at start, {os.getloadavg()[0]:.2f} at end, on {os.cpu_count()} CPUs")
    emit("generation_engines", facts, rows, args.json_out, notes=notes)


if __name__ == "__main__":
    main()
