"""Load a sweep directory into tidy pandas frames, with the metrics recomputed from generations.

A sweep (`outputs/sweeps/<stamp>/`) holds one run directory per Hydra job (see `run.py`).
`load_sweep` reads every run and

- recomputes every metric from the saved per-problem records with `metrics.summarize` (the
  probe rates with `probe.probe_metrics`, the correction matrix with
  `correction_matrix.summarize_matrix`), flags any disagreement with metrics.json, and uses
  the recomputed values;
- refuses runs that are incomplete (status not `complete`, files missing) with an error naming
  them, unless `allow_incomplete=True`, which lists them in `Sweep.incomplete` instead;
- refuses runs that cannot be compared (different task, base-model or evaluation config, or
  different test problems), naming the run and the differing values.

Frames: `runs` (one row per run: arm, label, seed, every scalar metric), `generations` (one
row per run × test problem), `errors` (run × error kind counts), `history` (long: run × step ×
metric), `incomplete`, `disagreements`. `Sweep.grid(label, metric)` gives the per-problem
values [n_seeds, n_problems] that `stats` resamples.
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import OmegaConf

from selfcorrect.analysis.labels import label_sort_key, run_label
from selfcorrect.analysis.stats import Comparison, Estimate, estimate, paired_bootstrap
from selfcorrect.evaluation import y1_ablation as ablation
from selfcorrect.evaluation.correction_matrix import summarize_matrix
from selfcorrect.evaluation.mechanisms import self_conditioning as conditioning
from selfcorrect.evaluation.metrics import summarize
from selfcorrect.evaluation.probe import probe_metrics
from selfcorrect.paths import REPO
from selfcorrect.runtime.records import flat_keys, read_json, read_jsonl
from selfcorrect.tasks.base import error_kind

# the fields of a run's `budget` block (metrics.json) that must agree across the trained arms of a sweep
# (the learning rate is not among them: every arm has its own, tuned on the same grid by `make tune`)
BUDGET_FIELDS = ("episodes", "gradient_steps", "sequences_per_step", "measurement_samples", "optimizer",
                 "lr_schedule", "warmup_steps", "weight_decay", "max_grad_norm")
TABLE_METRICS = ("acc_t1", "acc_t2", "delta", "delta_i2c", "delta_c2i")
# per-problem quantity whose mean over the test problems is the metric
PER_PROBLEM = {
    "acc_t1": lambda g: g["correct1"].astype(float),
    "acc_t2": lambda g: g["correct2"].astype(float),
    "delta": lambda g: g["correct2"].astype(float) - g["correct1"].astype(float),
    "delta_i2c": lambda g: (~g["correct1"] & g["correct2"]).astype(float),
    "delta_c2i": lambda g: (g["correct1"] & ~g["correct2"]).astype(float),
    "no_edit_rate": lambda g: g["no_edit"].astype(float),
    "answer_change_rate": lambda g: g["answer_changed"].astype(float),
    "edit_ratio_mean": lambda g: g["edit_ratio"].astype(float),
}
# run-level rates whose denominator is not every problem (no per-problem form: seed-level only)
RATE_METRICS = ("fix_rate", "break_rate")
# config that must agree across the runs of one sweep (the model's pretraining seed follows
# the run's seed by design; batch sizes change speed, not results)
IGNORED_CONFIG = {"model.pretrain.seed", "model.batch_size", "eval.n_monitor"}
COMPARED_GROUPS = ("task", "model", "eval")
REQUIRED_FILES = ("run.json", "config.yaml", "generations.jsonl", "metrics.json")
PAPER_FILE = "paper_checkpoint_generations.jsonl"  # optional: the paper's checkpoint, when the one rule kept another
MATRIX_FILE = "correction_matrix.jsonl"  # optional: runs whose task has an error model
TOLERANCE = 1e-9
ADDED_LATER = ("/entropy_mm_bits",)  # metrics the evaluator gained after some saved sweeps were run (2026-12-07)
PAPER_FIELDS = ("acc_t1", "acc_t2", "delta", "delta_i2c", "delta_c2i", "fix_rate", "break_rate")


class SweepError(ValueError):
    """A sweep that cannot be analysed as it is."""


class IncompleteRunError(SweepError):
    pass


class ConfigMismatchError(SweepError):
    pass


@dataclass
class Run:
    """One run directory, read and recomputed."""

    name: str
    path: Path
    config: dict
    status: dict
    saved_metrics: dict
    metrics: dict
    records: list[dict]
    probes: dict[str, list[dict]]
    history: list[dict]

    @property
    def arm(self) -> str:
        return self.config["arm"]["name"]

    @property
    def seed(self) -> int:
        return int(self.config["seed"])

    @property
    def label(self) -> str:
        return run_label(self.name, self.config)


@dataclass
class Sweep:
    path: Path
    runs: pd.DataFrame
    generations: pd.DataFrame
    errors: pd.DataFrame
    history: pd.DataFrame
    incomplete: pd.DataFrame
    disagreements: pd.DataFrame
    problem_ids: list[str]
    run_objects: dict[str, Run] = field(repr=False, default_factory=dict)

    @property
    def labels(self) -> list[str]:
        """Run labels (arm plus variant) in display order."""
        return sorted(self.runs["label"].unique(), key=label_sort_key) if len(self.runs) else []

    @property
    def arms(self) -> list[str]:
        return sorted(self.runs["arm"].unique(), key=lambda a: label_sort_key(a)) if len(self.runs) else []

    def grid(self, label: str, metric: str) -> np.ndarray:
        """Per-problem values of `metric` for every seed of `label`: [n_seeds, n_problems],
        rows by ascending seed, columns in the sweep's test-problem order."""
        if metric not in PER_PROBLEM:
            raise ValueError(f"no per-problem form for metric {metric!r}; known: {sorted(PER_PROBLEM)}")
        g = self.generations[self.generations["label"] == label]
        if g.empty:
            raise ValueError(f"no runs labelled {label!r} in {self.path}; labels: {self.labels}")
        g = g.assign(value=PER_PROBLEM[metric](g))
        table = g.pivot(index="seed", columns="id", values="value").sort_index()
        return table[self.problem_ids].to_numpy()

    def estimate(self, label: str, metric: str, n_boot: int = 10_000, seed: int = 0) -> Estimate:
        return estimate(self.grid(label, metric), n_boot=n_boot, seed=seed)

    def compare(self, label_a: str, label_b: str, metric: str = "delta", n_boot: int = 10_000, seed: int = 0) -> Comparison:
        """Paired bootstrap (problems and seeds) of metric(a) − metric(b)."""
        return paired_bootstrap(self.grid(label_a, metric), self.grid(label_b, metric), n_boot=n_boot, seed=seed)


# --- reading ------------------------------------------------------------------------------------
def default_sweep() -> Path:
    """$SELFCORRECT_SWEEP, else the newest sweep under $SELFCORRECT_OUTPUT_DIR/sweeps (default:
    the repository's outputs/sweeps), wherever the caller runs from (notebooks, CLI)."""
    if os.environ.get("SELFCORRECT_SWEEP"):
        return Path(os.environ["SELFCORRECT_SWEEP"])
    out = os.environ.get("SELFCORRECT_OUTPUT_DIR") or str(REPO / "outputs")
    return newest_sweep(Path(out) / "sweeps")


def newest_sweep(root: str | Path = "outputs/sweeps") -> Path:
    root = Path(root)
    sweeps = sorted((p for p in root.glob("*") if p.is_dir()), key=lambda p: p.name) if root.is_dir() else []
    if not sweeps:
        raise FileNotFoundError(f"no sweep directories under {root}; run `python -m selfcorrect -m ...` first")
    return sweeps[-1]


def run_dirs(sweep_dir: Path) -> list[Path]:
    """Subdirectories that Hydra made for a job (or that hold any run file)."""
    return sorted(
        p for p in sweep_dir.iterdir()
        if p.is_dir() and not p.name.startswith(".")
        and ((p / ".hydra").is_dir() or any((p / f).exists() for f in REQUIRED_FILES))
    )


def why_incomplete(run_dir: Path) -> str | None:
    missing = [f for f in REQUIRED_FILES if not (run_dir / f).exists()]
    if (run_dir / "run.json").exists():
        status = read_json(run_dir / "run.json")
        if status.get("status") != "complete":
            err = f" ({status['error']})" if status.get("error") else ""
            return f"status is {status.get('status')!r}{err}" + (f"; missing {', '.join(missing)}" if missing else "")
    if missing:
        return f"missing {', '.join(missing)}"
    return None


def load_run(run_dir: str | Path) -> Run:
    """Read one complete run and recompute its metrics from its saved records."""
    run_dir = Path(run_dir)
    reason = why_incomplete(run_dir)
    if reason:
        raise IncompleteRunError(f"run {run_dir.name!r} ({run_dir}) is incomplete: {reason}")
    config = OmegaConf.to_container(OmegaConf.load(run_dir / "config.yaml"), resolve=True)
    records = read_jsonl(run_dir / "generations.jsonl")
    if not records:
        raise IncompleteRunError(f"run {run_dir.name!r} ({run_dir}) has an empty generations.jsonl")
    probes = {p.stem[len("probe_"):]: read_jsonl(p) for p in sorted(run_dir.glob("probe_*.jsonl"))}
    history = read_jsonl(run_dir / "history.jsonl") if (run_dir / "history.jsonl").exists() else []
    saved = read_json(run_dir / "metrics.json")
    matrix = read_jsonl(run_dir / MATRIX_FILE) if (run_dir / MATRIX_FILE).exists() else None
    paper = read_jsonl(run_dir / PAPER_FILE) if (run_dir / PAPER_FILE).exists() else None
    chains = read_jsonl(run_dir / conditioning.FILE) if (run_dir / conditioning.FILE).exists() else None
    swaps = read_jsonl(run_dir / ablation.FILE) if (run_dir / ablation.FILE).exists() else None
    return Run(run_dir.name, run_dir, config, read_json(run_dir / "run.json"), saved,
               recompute_metrics(records, probes, saved, matrix, paper, chains, swaps), records, probes, history)


def recompute_metrics(records: list[dict], probes: dict[str, list[dict]], saved: dict,
                      matrix: list[dict] | None = None, paper: list[dict] | None = None,
                      self_conditioning: list[dict] | None = None, y1_ablation: list[dict] | None = None) -> dict:
    """metrics.json as the evaluator would write it, from the saved records: the metrics from
    generations, each probe from its records (`probe.probe_metrics`; they hold the policy's own
    episode on each problem), the correction matrix from its records and the paper's checkpoint
    from its test episodes. What cannot be recomputed from files (arm extras, the TV distance to
    the arm's training errors, the own episodes of an old-format probe on other problems) is taken
    from `saved`. `paper_checkpoint` is filled in from the run's own metrics when the paper's rule
    kept the same checkpoint as the one rule (so the secondary table has every run). The first-attempt
    ablation, when the run has one, from its records too."""
    out = summarize(records)
    by_id = {r["id"]: r for r in records}
    for label, rows in probes.items():
        key = f"probe/{label}"
        if rows and "own_correct1" not in rows[0]:  # old format: own episodes only where they are the test episodes
            if [r["id"] for r in rows] != [r["id"] for r in records]:
                out[key] = saved.get(key, {})
                continue
            rows = [{**r, "own_correct1": by_id[r["id"]]["correct1"], "own_correct2": by_id[r["id"]]["correct2"]} for r in rows]
        out[key] = probe_metrics(rows)
    if matrix is not None:
        out["correction_matrix"] = summarize_matrix(matrix)
    if self_conditioning is not None:
        out["self_conditioning"] = conditioning.summarize_self_conditioning(self_conditioning)
    if y1_ablation is not None:
        out["y1_ablation"] = ablation.summarize_y1_ablation(y1_ablation)
    if paper is not None:  # the paper's checkpoint, evaluated on the same test problems
        m = summarize(paper)
        out["paper_checkpoint"] = {k: m[k] for k in PAPER_FIELDS}
    elif "paper_checkpoint" in saved:  # the paper's rule kept the same checkpoint: the primary's metrics
        out["paper_checkpoint"] = {k: out[k] for k in PAPER_FIELDS}
    for k, v in saved.items():
        if k not in out:
            out[k] = v
    return out


def metric_disagreements(saved: dict, recomputed: dict) -> list[tuple[str, object, object]]:
    """(key, saved, recomputed) for every recomputed metric that metrics.json reports differently (a metric
    added to the evaluator later, `ADDED_LATER`, is not one that an older run's metrics.json lacks)."""
    a, b = _flat(saved), _flat(recomputed)
    out = []
    for k, v in b.items():
        s = a.get(k, "<missing>")
        if s == "<missing>" and k.endswith(ADDED_LATER):
            continue
        if not _same(s, v):
            out.append((k, s, v))
    return out


def load_sweep(sweep_dir: str | Path, allow_incomplete: bool = False, warn: bool = True) -> Sweep:
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise FileNotFoundError(f"sweep directory {sweep_dir} does not exist")
    dirs = run_dirs(sweep_dir)
    if not dirs:
        raise SweepError(f"{sweep_dir} holds no run directories")
    incomplete = [(d.name, str(d), r) for d in dirs if (r := why_incomplete(d))]
    if incomplete and not allow_incomplete:
        listing = "\n".join(f"  - {name}: {reason}" for name, _, reason in incomplete)
        raise IncompleteRunError(
            f"{len(incomplete)} of {len(dirs)} runs in {sweep_dir} are incomplete:\n{listing}\n"
            "Finish or remove them, or pass allow_incomplete=True (--allow-incomplete) to analyse "
            "the complete runs and list these separately."
        )
    bad = {name for name, _, _ in incomplete}
    runs = [load_run(d) for d in dirs if d.name not in bad]
    if not runs:
        raise IncompleteRunError(f"no complete run in {sweep_dir}; incomplete: {[n for n, _, _ in incomplete]}")
    runs.sort(key=lambda r: (label_sort_key(r.label), r.seed))
    check_comparable(runs)
    _check_unique(runs)

    disagreements = [
        {"run": r.name, "metric": k, "saved": s, "recomputed": v}
        for r in runs for k, s, v in metric_disagreements(r.saved_metrics, r.metrics)
    ]
    if disagreements and warn:
        names = sorted({d["run"] for d in disagreements})
        warnings.warn(
            f"metrics.json disagrees with the metrics recomputed from generations in {len(names)} run(s) "
            f"({', '.join(names)}); using the recomputed values (see Sweep.disagreements)",
            stacklevel=2,
        )
    return Sweep(
        path=sweep_dir,
        runs=pd.DataFrame([_run_row(r) for r in runs]),
        generations=pd.concat([_generation_frame(r) for r in runs], ignore_index=True),
        errors=_error_frame(runs),
        history=_history_frame(runs),
        incomplete=pd.DataFrame(incomplete, columns=["run", "path", "reason"]),
        disagreements=pd.DataFrame(disagreements, columns=["run", "metric", "saved", "recomputed"]),
        problem_ids=[r["id"] for r in runs[0].records],
        run_objects={r.name: r for r in runs},
    )


def check_comparable(runs: list[Run]) -> None:
    """Every run must share the task, base-model and evaluation config, and the test problems."""
    ref = runs[0]
    ref_cfg = _compared_config(ref.config)
    ref_ids = [r["id"] for r in ref.records]
    problems = []
    for run in runs[1:]:
        cfg = _compared_config(run.config)
        diffs = [f"{k} = {cfg.get(k, '<unset>')!r} vs {ref_cfg.get(k, '<unset>')!r}"
                 for k in sorted(set(cfg) | set(ref_cfg)) if cfg.get(k, "<unset>") != ref_cfg.get(k, "<unset>")]
        ids = [r["id"] for r in run.records]
        if ids != ref_ids:
            first = next((i for i, (x, y) in enumerate(zip(ids, ref_ids)) if x != y), min(len(ids), len(ref_ids)))
            diffs.append(f"test problems differ ({len(ids)} vs {len(ref_ids)} problems, first difference at position {first})")
        if diffs:
            problems.append(f"  - run {run.name!r} vs {ref.name!r}: " + "; ".join(diffs))
    if problems:
        raise ConfigMismatchError(
            "runs in this sweep cannot be compared (different task, model or evaluation):\n" + "\n".join(problems)
        )


# --- frames -------------------------------------------------------------------------------------
def _run_row(r: Run) -> dict:
    row = {"run": r.name, "arm": r.arm, "label": r.label, "seed": r.seed,
           "error_model": r.config["arm"].get("error_model")}
    for k, v in _flat(r.metrics).items():
        if not isinstance(v, (list, dict)) and not k.startswith(("errors_", "edit_ratio_hist")):
            row[k] = np.nan if v is None else v
    row.update(train_s=r.status.get("train_s"), wall_s=r.status.get("wall_s"),
               base_model=r.status.get("base_model"), path=str(r.path))
    return row


def _generation_frame(r: Run) -> pd.DataFrame:
    g = pd.DataFrame(r.records)
    return pd.DataFrame({
        "run": r.name, "arm": r.arm, "label": r.label, "seed": r.seed,
        "id": g["id"], "correct1": g["correct1"].astype(bool), "correct2": g["correct2"].astype(bool),
        "edit_ratio": g["edit_ratio"].astype(float), "no_edit": g["y1"] == g["y2"],
        "answer_changed": g["answer1"] != g["answer2"],
        "error1": g["error1"].map(error_kind), "error2": g["error2"].map(error_kind), "y1": g["y1"], "y2": g["y2"],
    })


def _error_frame(runs: list[Run]) -> pd.DataFrame:
    rows = []
    for r in runs:
        m = r.metrics
        for kind in sorted(set(m["errors_t1"]) | set(m["errors_t2"])):
            rows.append({"run": r.name, "arm": r.arm, "label": r.label, "seed": r.seed, "kind": kind,
                         "errors_t1": m["errors_t1"].get(kind, 0), "errors_t2": m["errors_t2"].get(kind, 0),
                         "errors_fixed": m["errors_fixed"].get(kind, 0)})
    return pd.DataFrame(rows, columns=["run", "arm", "label", "seed", "kind", "errors_t1", "errors_t2", "errors_fixed"])


def _history_frame(runs: list[Run]) -> pd.DataFrame:
    rows = []
    for r in runs:
        for h in r.history:
            step = h.get("step")
            for k, v in h.items():
                if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool):
                    rows.append((r.name, r.arm, r.label, r.seed, step, k, float(v)))
    return pd.DataFrame(rows, columns=["run", "arm", "label", "seed", "step", "metric", "value"])


# --- a controlled comparison: budgets and ceiling-free figures ------------------------------------
def budget_of(run_row: pd.Series) -> tuple:
    return tuple(run_row.get(f"budget/{k}") for k in BUDGET_FIELDS)


def budget_mismatches(sweep: Sweep) -> dict[str, str]:
    """{label: what differs} for every trained label (gradient_steps > 0) whose budget block is
    not the one most trained runs of the sweep share (a run without a block differs too)."""
    runs = sweep.runs
    if "budget/gradient_steps" not in runs:
        return {label: "no budget block in metrics.json" for label in sweep.labels if label != "base"}
    trained = runs[runs["budget/gradient_steps"].fillna(0) > 0]
    if trained.empty:
        return {}
    blocks = trained.apply(budget_of, axis=1)
    reference = blocks.value_counts().index[0]
    out = {}
    for (_, row), block in zip(trained.iterrows(), blocks):
        if block != reference:
            diff = ", ".join(f"{k} {v!r} vs {r!r}" for k, v, r in zip(BUDGET_FIELDS, block, reference) if v != r)
            out.setdefault(row["label"], f"seed {row['seed']}: {diff}")
    untrained = runs[runs["budget/gradient_steps"].isna()]
    for _, row in untrained.iterrows():
        if row["arm"] != "base":
            out.setdefault(row["label"], "no budget block in metrics.json")
    return out


def best_single_turn_label(sweep: Sweep) -> str:
    """The label with the highest mean Acc@t1 (over seeds and test problems)."""
    means = sweep.runs.groupby("label")["acc_t1"].mean()
    return str(means.idxmax())


# --- internals ----------------------------------------------------------------------------------
def _check_unique(runs: list[Run]) -> None:
    seen: dict[tuple, str] = {}
    for r in runs:
        key = (r.label, r.seed)
        if key in seen:
            raise SweepError(f"runs {seen[key]!r} and {r.name!r} are both {r.label!r} with seed {r.seed}; "
                             "give them distinct overrides or put them in different sweeps")
        seen[key] = r.name


def _compared_config(cfg: dict) -> dict:
    flat = {}
    for group in COMPARED_GROUPS:
        for k, v in _flat(cfg.get(group, {}), f"{group}/").items():
            key = k.replace("/", ".")
            if key not in IGNORED_CONFIG:
                flat[key] = v
    return flat


def _flat(d: dict, prefix: str = "") -> dict:
    """Metrics under `a/b` keys; the error histograms (`errors_*`) stay whole."""
    return flat_keys(d, prefix, leaf=lambda k: k.startswith("errors_"))


def _same(a, b) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
            return True
        return abs(a - b) <= TOLERANCE
    return a == b


