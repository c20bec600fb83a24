"""Update sparsity, the update's rank, and the overlap of updated sets (issue 23 item 2; after
Mukherjee et al., "RL finetunes small subnetworks", arXiv 2505.11711, and the bf16 objection of
RL's Razor). Pure functions of state dicts {name: tensor}; nothing here touches a model.

Definitions (θ_b: the weights before training, the run's base model; θ_a: the kept policy):

  Δ           = θ_a − θ_b, element-wise, computed in float32 in one of two dtype views:
                  "fp32"  both as float32                        (the weights as trained)
                  "bf16"  both rounded to bfloat16 first, then the difference in float32
                (a bf16 weight of magnitude |w| cannot move by less than about |w|/256, so an
                update that small is "unchanged" in bf16 but not in fp32: RL's Razor's point
                that the sparsity reported from bf16 checkpoints is partly a rounding artefact)
  unchanged   a parameter with isclose(Δ, 0, atol=tol, rtol=0), i.e. |Δ| <= tol (tol = 0: exactly
              equal; a NaN Δ is never unchanged)
  s(tol)      the unchanged fraction  #unchanged / #parameters  (the paper's "update sparsity";
              RL is reported to update 5-30 % of parameters, i.e. s ≈ 0.7-0.95 in bf16)
  I           the updated set: the indices with |Δ| > tol, over all parameters concatenated in
              sorted-name order (`updated_mask`)
  erank(ΔW)   Roy & Vetterli's effective rank of a 2-D tensor's fp32 update:
                p_k = σ_k / Σ_j σ_j  (σ: singular values),  erank = exp(− Σ_k p_k log p_k)
              (0 log 0 = 0); erank = 1 for a rank-1 update, min(shape) for one with equal singular
              values; erank = 0 when ΔW = 0 (no update). ratio = erank / min(shape); the paper
              finds RL's updates nearly full-rank (ratio near 1). Every 2-D tensor counts as a
              matrix (embeddings too); "mean" is unweighted over matrices, "weighted_mean"
              weights each matrix by its number of entries.
  overlap     one-sided o(I1, I2) = |I1 ∩ I2| / |I1|, its reverse o(I2, I1), Jaccard
              |I1 ∩ I2| / |I1 ∪ I2|, and the joint updated fraction |I1 ∩ I2| / N. Against chance
              (the two sets independent, densities d_i = |I_i| / N = 1 − s_i):
                joint  (1 − s1)(1 − s2),   o(I1, I2)  1 − s2,   o(I2, I1)  1 − s1,
                Jaccard  d1 d2 / (d1 + d2 − d1 d2),   lift = joint / its chance value.
              A ratio whose denominator is 0 is None (JSON null).

Tolerance keys: a tolerance is written as Python's repr of the float, "0" for zero
(`tol_key`: 0 → "0", 1e-6 → "1e-06", 1e-5 → "1e-05", 1e-4 → "0.0001").

Which tensors count: the floating-point tensors of the state dict (integer/bool buffers are
skipped), each parameter once. Tied weights are counted once (`drop_tied`): a tensor is dropped
when it occupies the same memory (same storage, offset, shape and strides) as a tensor earlier in
the state dict's order, or when its name is a known tied alias (`TIED_ALIASES`: "lm_head.weight",
tied to the input embedding) and the state dict also holds that embedding with exactly equal
values (so a genuinely untied lm_head, whose values differ, is kept). The second rule covers state
dicts whose sharing was lost in a copy (e.g. bf16 → fp32); `save_pretrained`'s safetensors omit
the tied head already. The two state dicts must then hold the same names and shapes, or a
ValueError names the offending tensor.

`update_sparsity` returns everything (per tensor as well); `summary` gives the flat scalars for a
run's metrics.json (keys `SUMMARY_KEYS`, under 1 KB); the per-tensor detail (`result["tensors"]`)
is for a separate file the caller writes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from pathlib import Path

import torch

FILE = "sparsity.json"  # a run's per-tensor detail, beside metrics.json
TOLERANCES = (0.0, 1e-6, 1e-5, 1e-4)
DTYPES = ("fp32", "bf16")
# tied alias -> the tensors it is tied to (the first present one is used)
TIED_ALIASES = {
    "lm_head.weight": ("transformer.wte.weight", "model.embed_tokens.weight",
                       "model.decoder.embed_tokens.weight", "embed_tokens.weight", "wte.weight"),
}
PREFIX = "sparsity/"


def tol_key(tol: float) -> str:
    """A tolerance's key: "0" for zero, else Python's repr of the float ("1e-05", "0.0001")."""
    tol = float(tol)
    if tol < 0 or math.isnan(tol):
        raise ValueError(f"a tolerance must be >= 0, got {tol}")
    return "0" if tol == 0 else repr(tol)


def _memory_key(t: torch.Tensor) -> tuple:
    return (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape), tuple(t.stride()), t.dtype)


def drop_tied(state: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """(the state dict with tied duplicates dropped, the dropped names): see the module docstring."""
    kept: dict[str, torch.Tensor] = {}
    dropped: list[str] = []
    seen: set[tuple] = set()
    for name, t in state.items():
        if not isinstance(t, torch.Tensor):
            raise ValueError(f"tensor {name!r}: not a torch.Tensor but {type(t).__name__}")
        key = _memory_key(t) if t.numel() else None
        if key is not None and key in seen:
            dropped.append(name)
            continue
        if key is not None:
            seen.add(key)
        kept[name] = t
    for alias, targets in TIED_ALIASES.items():
        if alias not in kept:
            continue
        target = next((n for n in targets if n in kept), None)
        if target is not None and kept[target].shape == kept[alias].shape and torch.equal(kept[target], kept[alias]):
            del kept[alias]
            dropped.append(alias)
    return kept, dropped


def _aligned(base: Mapping[str, torch.Tensor], new: Mapping[str, torch.Tensor]):
    """(sorted names, base, new, dropped tied names), checked to match, float tensors only."""
    b, dropped_b = drop_tied(base)
    n, dropped_n = drop_tied(new)
    only_b, only_n = sorted(set(b) - set(n)), sorted(set(n) - set(b))
    if only_b:
        raise ValueError(f"tensor {only_b[0]!r} is in the base state dict but not in the new one"
                         + (f" (and {len(only_b) - 1} more)" if len(only_b) > 1 else ""))
    if only_n:
        raise ValueError(f"tensor {only_n[0]!r} is in the new state dict but not in the base one"
                         + (f" (and {len(only_n) - 1} more)" if len(only_n) > 1 else ""))
    names = []
    for name in sorted(b):
        tb, tn = b[name], n[name]
        if tuple(tb.shape) != tuple(tn.shape):
            raise ValueError(f"tensor {name!r}: shape {tuple(tb.shape)} in the base, {tuple(tn.shape)} in the new state dict")
        fb, fn = tb.is_floating_point(), tn.is_floating_point()
        if fb != fn:
            raise ValueError(f"tensor {name!r}: dtype {tb.dtype} in the base, {tn.dtype} in the new state dict")
        if fb:
            names.append(name)
    if not names:
        raise ValueError("no floating-point tensors to compare")
    return names, b, n, sorted(set(dropped_b) | set(dropped_n))


def _view(t: torch.Tensor, dtype: str) -> torch.Tensor:
    """The tensor in a dtype view, on its own device (a GPU run's update is measured on the GPU)."""
    t = t.detach()
    if dtype == "fp32":
        return t.float()
    if dtype == "bf16":
        return t.bfloat16().float()
    raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")


def _abs_delta(tb: torch.Tensor, tn: torch.Tensor, dtype: str) -> torch.Tensor:
    return (_view(tn, dtype) - _view(tb, dtype)).abs()


def effective_rank(delta: torch.Tensor) -> float:
    """Roy & Vetterli (2007): exp of the Shannon entropy of the normalised singular values of a
    2-D tensor (computed in float64); 0.0 for an all-zero matrix."""
    if delta.dim() != 2:
        raise ValueError(f"effective_rank needs a 2-D tensor, got shape {tuple(delta.shape)}")
    s = torch.linalg.svdvals(delta.detach().double())  # on the tensor's device: a 49k × 576 embedding is slow on a CPU
    total = s.sum()
    if not torch.isfinite(total):
        return float("nan")
    if total <= 0:
        return 0.0
    p = s / total
    p = p[p > 0]
    return float(torch.exp(-(p * p.log()).sum()))


def update_sparsity(base: Mapping[str, torch.Tensor], new: Mapping[str, torch.Tensor],
                    tolerances: Iterable[float] = TOLERANCES) -> dict:
    """The unchanged fraction of θ_new − θ_base at each tolerance, in the "fp32" and "bf16" views,
    overall and per tensor, and the effective rank of each 2-D tensor's fp32 update.

    {"tolerances": [tol_key, ...], "n_params": N, "n_tensors": T, "n_matrices": M,
     "dropped_tied": [names],
     "unchanged": {dtype: {tol_key: s}},
     "effective_rank": {"mean", "weighted_mean", "ratio_mean", "ratio_weighted_mean"}  (None if M = 0),
     "tensors": {name: {"numel", "shape", "unchanged": {dtype: {tol_key: s}},
                        "effective_rank", "effective_rank_ratio"  (2-D tensors only)}}}
    """
    tols = [float(t) for t in tolerances]
    keys = [tol_key(t) for t in tols]
    if len(set(keys)) != len(keys):
        raise ValueError(f"repeated tolerances {keys}")
    names, b, n, dropped = _aligned(base, new)
    counts = {d: [0] * len(tols) for d in DTYPES}
    tensors: dict[str, dict] = {}
    ranks: list[tuple[int, float, float]] = []  # (numel, erank, ratio)
    total = 0
    for name in names:
        tb, tn = b[name], n[name]
        numel = tb.numel()
        total += numel
        entry: dict = {"numel": numel, "shape": list(tb.shape), "unchanged": {}}
        for d in DTYPES:
            ad = _abs_delta(tb, tn, d)
            entry["unchanged"][d] = {}
            for i, (tol, key) in enumerate(zip(tols, keys)):
                c = int((ad <= tol).sum())
                counts[d][i] += c
                entry["unchanged"][d][key] = c / numel if numel else None
        if tb.dim() == 2 and numel:
            er = effective_rank(_view(tn, "fp32") - _view(tb, "fp32"))
            ratio = er / min(tb.shape)
            entry["effective_rank"], entry["effective_rank_ratio"] = er, ratio
            ranks.append((numel, er, ratio))
        tensors[name] = entry
    if ranks:
        w = sum(r[0] for r in ranks)
        erank = {"mean": sum(r[1] for r in ranks) / len(ranks),
                 "weighted_mean": sum(r[0] * r[1] for r in ranks) / w,
                 "ratio_mean": sum(r[2] for r in ranks) / len(ranks),
                 "ratio_weighted_mean": sum(r[0] * r[2] for r in ranks) / w}
    else:
        erank = {"mean": None, "weighted_mean": None, "ratio_mean": None, "ratio_weighted_mean": None}
    return {
        "tolerances": keys,
        "n_params": total,
        "n_tensors": len(names),
        "n_matrices": len(ranks),
        "dropped_tied": dropped,
        "unchanged": {d: {k: (counts[d][i] / total if total else None) for i, k in enumerate(keys)} for d in DTYPES},
        "effective_rank": erank,
        "tensors": tensors,
    }


def summary(result: dict) -> dict:
    """The flat scalars of `update_sparsity`'s result for a run's metrics.json:
      sparsity/unchanged/{fp32,bf16}/{tol_key}   the overall unchanged fraction s(tol)
      sparsity/n_params, sparsity/n_matrices
      sparsity/erank/{mean,weighted_mean}, sparsity/erank_ratio/{mean,weighted_mean}
    (14 keys at the default tolerances, about 600 bytes of JSON)."""
    out: dict = {}
    for d in DTYPES:
        for k in result["tolerances"]:
            out[f"{PREFIX}unchanged/{d}/{k}"] = result["unchanged"][d][k]
    out[f"{PREFIX}n_params"] = result["n_params"]
    out[f"{PREFIX}n_matrices"] = result["n_matrices"]
    er = result["effective_rank"]
    out[f"{PREFIX}erank/mean"] = er["mean"]
    out[f"{PREFIX}erank/weighted_mean"] = er["weighted_mean"]
    out[f"{PREFIX}erank_ratio/mean"] = er["ratio_mean"]
    out[f"{PREFIX}erank_ratio/weighted_mean"] = er["ratio_weighted_mean"]
    return out


SUMMARY_KEYS = tuple(summary({"tolerances": [tol_key(t) for t in TOLERANCES], "n_params": 0, "n_matrices": 0,
                              "unchanged": {d: {tol_key(t): None for t in TOLERANCES} for d in DTYPES},
                              "effective_rank": {"mean": None, "weighted_mean": None, "ratio_mean": None,
                                                 "ratio_weighted_mean": None}}))


def updated_mask(base: Mapping[str, torch.Tensor], new: Mapping[str, torch.Tensor], tol: float,
                 dtype: str = "bf16") -> torch.Tensor:
    """The updated set I as a 1-D bool tensor: |Δ| > tol (or Δ NaN) in the `dtype` view, over
    every parameter, tensors concatenated in sorted-name order (tied weights once)."""
    tol = float(tol)
    tol_key(tol)
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    names, b, n, _ = _aligned(base, new)
    return torch.cat([~(_abs_delta(b[k], n[k], dtype) <= tol).reshape(-1) for k in names])


def segment_sizes(base: Mapping[str, torch.Tensor], new: Mapping[str, torch.Tensor]) -> list[int]:
    """The number of parameters of each tensor in `updated_mask`'s order (for a per-tensor chance)."""
    names, b, _, _ = _aligned(base, new)
    return [b[k].numel() for k in names]


def _ratio(a: float, b: float) -> float | None:
    return a / b if b else None


def overlap(mask1: torch.Tensor, mask2: torch.Tensor, segments: list[int] | None = None) -> dict:
    """Overlap of two updated sets (1-D bool masks over the same parameters) against chance:
    {"n", "updated_1", "updated_2" (densities d_i = 1 − s_i), "o12" = o(I1, I2), "o21" = o(I2, I1),
     "jaccard", "joint", and their chance values "o12_chance" (= d2), "o21_chance" (= d1),
     "jaccard_chance", "joint_chance" (= d1 d2), and "lift" = joint / joint_chance}. With `segments`
    (the tensors' sizes, in the masks' order), also the chance within tensors,
    "joint_chance_by_tensor" = Σ_t n_t d1_t d2_t / N, and "lift_by_tensor" = joint / it: a lift
    above 1 there is overlap beyond two runs leaving the same whole tensors (or rows, as a
    position table's unreached rows) alone more or less often."""
    if not isinstance(mask1, torch.Tensor) or not isinstance(mask2, torch.Tensor):
        raise ValueError("overlap needs two torch tensors")
    if mask1.dtype != torch.bool or mask2.dtype != torch.bool:
        raise ValueError(f"overlap needs bool masks, got {mask1.dtype} and {mask2.dtype}")
    if mask1.dim() != 1 or mask2.dim() != 1:
        raise ValueError(f"overlap needs 1-D masks, got shapes {tuple(mask1.shape)} and {tuple(mask2.shape)}")
    if mask1.numel() != mask2.numel():
        raise ValueError(f"masks of different length: {mask1.numel()} and {mask2.numel()} (not the same parameters)")
    n = mask1.numel()
    if n == 0:
        raise ValueError("empty masks")
    k1, k2 = int(mask1.sum()), int(mask2.sum())
    k12 = int((mask1 & mask2).sum())
    union = k1 + k2 - k12
    d1, d2 = k1 / n, k2 / n
    joint, joint_chance = k12 / n, d1 * d2
    return {
        "n": n, "updated_1": d1, "updated_2": d2,
        "o12": _ratio(k12, k1), "o21": _ratio(k12, k2),
        "jaccard": _ratio(k12, union), "joint": joint,
        "o12_chance": d2, "o21_chance": d1,
        "jaccard_chance": _ratio(d1 * d2, d1 + d2 - d1 * d2), "joint_chance": joint_chance,
        "lift": _ratio(joint, joint_chance),
    } | ({} if segments is None else _by_tensor(mask1, mask2, segments, joint))


def _by_tensor(mask1: torch.Tensor, mask2: torch.Tensor, segments: list[int], joint: float) -> dict:
    if sum(segments) != mask1.numel():
        raise ValueError(f"segments cover {sum(segments)} parameters, the masks {mask1.numel()}")
    chance, start = 0.0, 0
    for size in segments:
        a, b = mask1[start:start + size], mask2[start:start + size]
        chance += size * (float(a.float().mean()) * float(b.float().mean())) if size else 0.0
        start += size
    chance /= mask1.numel()
    return {"joint_chance_by_tensor": chance, "lift_by_tensor": _ratio(joint, chance)}


def load_state(path: str | Path) -> dict[str, torch.Tensor]:
    """A saved model's weights as {name: float32 CPU tensor}: `path` is a .safetensors file, a
    directory with model.safetensors (or sharded model-*-of-*.safetensors, as save_pretrained
    writes them), or else anything AutoModelForCausalLM.from_pretrained opens. Non-float
    tensors are kept as they are. Tied weights: safetensors holds them once already; from
    from_pretrained the shared tensors stay shared (drop_tied removes them)."""
    path = Path(path)
    files: list[Path] = []
    if path.is_file() and path.suffix == ".safetensors":
        files = [path]
    elif path.is_dir():
        files = [path / "model.safetensors"] if (path / "model.safetensors").is_file() else sorted(path.glob("model-*-of-*.safetensors"))
    if files:
        from safetensors.torch import load_file

        state: dict[str, torch.Tensor] = {}
        for f in files:
            for k, v in load_file(str(f), device="cpu").items():
                if k in state:
                    raise ValueError(f"tensor {k!r} appears in two safetensors shards under {path}")
                state[k] = v.float() if v.is_floating_point() else v
        return state
    if not path.exists():
        raise FileNotFoundError(f"no model at {path}")
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32)
    # .float() keeps a float32 tensor itself, so tied tensors stay shared (drop_tied sees them)
    return {k: (v.detach().cpu().float() if v.is_floating_point() else v.detach().cpu()) for k, v in model.state_dict().items()}
