"""Update sparsity and overlap of updated sets over a sweep, from the saved weights
(`selfcorrect.evaluation.mechanisms.sparsity` has the definitions).

A trained run keeps its policy in <run>/policy (save_pretrained, safetensors); <run>/run.json
names its base model ("base_model", a from_pretrained directory) and the base's hash
("base_weights_sha256"). Runs without a saved policy (the base arm) are skipped.

  run_rows(sweep)          (a) per run: `sparsity.summary` recomputed from the saved weights, and
                           where the run's metrics.json holds sparsity keys, the largest absolute
                           disagreement with them ("saved_max_abs_diff", None when none saved)
  overlap_rows(sweep, "between")   (b) pairs of runs with different labels on the same base
                           (same base_weights_sha256; by default also the same seed): the overlap
                           of their updated sets at `tol` in each dtype view, against chance
  overlap_rows(sweep, "within")    (c) pairs of runs with the same label on the same base
                           (seeds trained from one base model): the same overlap
  markdown_table(rows, columns)    a plain markdown table of any of these rows

Run labels are `selfcorrect.analysis.labels.run_label` (the arm plus its variant, e.g.
`sft_teacher[error_model=mixed]`), so variants of one arm are different "arms" here.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

from selfcorrect.evaluation.mechanisms import sparsity as sp
from selfcorrect.paths import SHARED_BASE_DIR
from selfcorrect.runtime.records import read_json

OVERLAP_TOL = 1e-5
OVERLAP_COLUMNS = ("label_a", "label_b", "seed_a", "seed_b", "dtype", "tol", "updated_1", "updated_2",
                   "o12", "o12_chance", "o21", "o21_chance", "jaccard", "jaccard_chance", "joint", "joint_chance", "lift")


@dataclass(frozen=True)
class RunWeights:
    name: str
    path: Path
    label: str
    arm: str
    seed: int | None
    base_sha256: str | None
    base_model: Path
    policy: Path


def _label(run_dir: Path, status: dict) -> tuple[str, str, int | None]:
    """(label, arm, seed) from config.yaml when present, else from run.json / the directory name."""
    cfg_path = run_dir / "config.yaml"
    if cfg_path.exists():
        from omegaconf import OmegaConf

        from selfcorrect.analysis.labels import run_label

        cfg = OmegaConf.to_container(OmegaConf.load(cfg_path), resolve=True)
        seed = cfg.get("seed")
        return run_label(run_dir.name, cfg), cfg["arm"]["name"], (int(seed) if seed is not None else None)
    arm = status.get("arm") or run_dir.name
    seed = status.get("seed")
    return arm, arm, (int(seed) if seed is not None else None)


def sweep_runs(sweep_dir: str | Path) -> list[RunWeights]:
    """The sweep's runs that saved a policy and name their base model, in directory-name order, then
    those of its `shared_base/` sub-directory (seeds trained from one base model; named
    `shared_base/<run>`)."""
    sweep_dir = Path(sweep_dir)
    out = []
    shared = sweep_dir / SHARED_BASE_DIR
    dirs = sorted(p for p in sweep_dir.iterdir() if p.is_dir() and not p.name.startswith(".") and p != shared)
    dirs += sorted(p for p in shared.iterdir() if p.is_dir()) if shared.is_dir() else []
    for d in dirs:
        if not (d / "policy").is_dir() or not (d / "run.json").exists():
            continue
        status = read_json(d / "run.json")
        if not status.get("base_model"):
            continue
        label, arm, seed = _label(d, status)
        name = d.name if d.parent == sweep_dir else f"{SHARED_BASE_DIR}/{d.name}"
        out.append(RunWeights(name, d, label, arm, seed, status.get("base_weights_sha256"),
                              Path(status["base_model"]), d / "policy"))
    return out


class _Cache:
    """Loaded states (per path) and masks (per run, dtype, tol), so a sweep loads each once."""

    def __init__(self):
        self.states: dict[Path, dict] = {}
        self.masks: dict[tuple, object] = {}

    def state(self, path: Path) -> dict:
        if path not in self.states:
            self.states[path] = sp.load_state(path)
        return self.states[path]

    def mask(self, run: RunWeights, tol: float, dtype: str):
        key = (run.name, float(tol), dtype)
        if key not in self.masks:
            self.masks[key] = sp.updated_mask(self.state(run.base_model), self.state(run.policy), tol, dtype)
        return self.masks[key]


def _saved_disagreement(saved: dict, recomputed: dict) -> float | None:
    diffs = []
    for k, v in recomputed.items():
        if k in saved and saved[k] is not None and v is not None:
            diffs.append(abs(float(saved[k]) - float(v)))
        elif k in saved and (saved[k] is None) != (v is None):
            diffs.append(math.inf)
    return max(diffs) if diffs else None


def base_sha256(base_model: Path) -> str:
    """The run's own hash of a base model (`selfcorrect.runtime.checkpoint.weights_sha256`, via from_pretrained)."""
    from transformers import AutoModelForCausalLM

    from selfcorrect.runtime.checkpoint import weights_sha256

    return weights_sha256(AutoModelForCausalLM.from_pretrained(str(base_model)))


def run_rows(sweep_dir: str | Path, tolerances: Iterable[float] = sp.TOLERANCES,
             details: dict | None = None, verify_base: bool = False, _cache: _Cache | None = None) -> list[dict]:
    """(a) One row per run with a saved policy: run, label, arm, seed, base_sha256, the
    `sparsity.summary` keys, and saved_max_abs_diff (largest |saved − recomputed| over the sparsity
    keys its metrics.json holds; None when it holds none). Pass a dict as `details` to receive
    each run's full `update_sparsity` result (per tensor) under its run name. With verify_base,
    each row also says whether the base model's hash is run.json's ("base_sha_ok")."""
    cache = _cache or _Cache()
    tolerances = tuple(tolerances)
    hashes: dict[Path, str] = {}
    rows = []
    for r in sweep_runs(sweep_dir):
        result = sp.update_sparsity(cache.state(r.base_model), cache.state(r.policy), tolerances)
        summ = sp.summary(result)
        saved = read_json(r.path / "metrics.json") if (r.path / "metrics.json").exists() else {}
        if details is not None:
            details[r.name] = result
        rows.append({"run": r.name, "label": r.label, "arm": r.arm, "seed": r.seed, "base_sha256": r.base_sha256,
                     **summ, "saved_max_abs_diff": _saved_disagreement(saved, summ)})
        if verify_base:
            if r.base_model not in hashes:
                hashes[r.base_model] = base_sha256(r.base_model)
            rows[-1]["base_sha_ok"] = hashes[r.base_model] == r.base_sha256
    return rows


def _pairs(runs: Sequence[RunWeights], kind: str, same_seed: bool, labels: Sequence[str] | None):
    if kind not in ("between", "within"):
        raise ValueError(f"kind must be 'between' or 'within', got {kind!r}")
    if labels is not None:
        order = {lab: i for i, lab in enumerate(labels)}
        runs = sorted((r for r in runs if r.label in order), key=lambda r: (order[r.label], r.name))
    for a, b in combinations(runs, 2):
        if a.base_sha256 is None or a.base_sha256 != b.base_sha256:
            continue
        if kind == "between" and (a.label == b.label or (same_seed and a.seed != b.seed)):
            continue
        if kind == "within" and a.label != b.label:
            continue
        yield a, b


def overlap_rows(sweep_dir: str | Path, kind: str = "between", tol: float = OVERLAP_TOL,
                 dtypes: Sequence[str] = ("bf16", "fp32"), labels: Sequence[str] | None = None,
                 same_seed: bool = True, _cache: _Cache | None = None) -> list[dict]:
    """(b) kind="between": pairs of runs on the same base (same base_weights_sha256) with different
    labels (and, with same_seed, the same seed); (c) kind="within": pairs with the same label on
    the same base. `labels` restricts to those labels, in that order (run a of a pair is the
    earlier label). One row per pair and dtype: run_a, run_b, label_a, label_b, seed_a, seed_b,
    base_sha256, dtype, tol (its key) and the keys of `sparsity.overlap`."""
    cache = _cache or _Cache()
    rows = []
    for a, b in _pairs(sweep_runs(sweep_dir), kind, same_seed, labels):
        for d in dtypes:
            segments = sp.segment_sizes(cache.state(a.base_model), cache.state(a.policy))
            ov = sp.overlap(cache.mask(a, tol, d), cache.mask(b, tol, d), segments)
            rows.append({"run_a": a.name, "run_b": b.name, "label_a": a.label, "label_b": b.label,
                         "seed_a": a.seed, "seed_b": b.seed, "base_sha256": a.base_sha256,
                         "dtype": d, "tol": sp.tol_key(tol), **ov})
    return rows


def _cell(v, digits: int) -> str:
    if v is None:
        return "—"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.{digits}f}"
    return str(v).replace("|", "\\|")


def markdown_table(rows: Sequence[dict], columns: Sequence[str] | None = None, digits: int = 3) -> str:
    """A markdown table of `rows` (the given columns, default all keys of the first row)."""
    if not rows:
        return "(no rows)\n"
    cols = list(columns) if columns is not None else list(rows[0])
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(_cell(r.get(c), digits) for c in cols) + " |")
    return "\n".join(lines) + "\n"


EMBEDDING_NAMES = ("wpe", "wte", "embed")  # what names an embedding tensor (GPT-2's wte/wpe, Llama's embed_tokens)


def unchanged_share_in_embeddings(sweep_dir: str | Path, dtype: str = "fp32", tol: float = 0.0) -> list[dict]:
    """Per run with a sparsity.json (`mechanisms.sparsity.FILE`): of its parameters unchanged at `tol`
    in `dtype`, the share that sit in embedding tensors (`EMBEDDING_NAMES`): where the updates do not
    reach, position rows never used and token rows never seen, or elsewhere."""
    rows = []
    key = sp.tol_key(tol)
    for r in sweep_runs(sweep_dir):
        path = r.path / sp.FILE
        if not path.exists():
            continue
        tensors = read_json(path)["tensors"]
        unchanged = {n: t["unchanged"][dtype][key] * t["numel"] for n, t in tensors.items()}
        total = sum(unchanged.values())
        emb = sum(v for n, v in unchanged.items() if any(e in n for e in EMBEDDING_NAMES))
        rows.append({"run": r.name, "label": r.label, "seed": r.seed, "unchanged": total,
                     "share_in_embeddings": emb / total if total else None})
    return rows
