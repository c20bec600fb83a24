"""The paper's figures from a loaded sweep (`results.load_sweep`); tables: `analysis.tables`.

Each `fig_*` function takes a `Sweep` and returns a matplotlib Figure, or raises
`FigureSkipped` with the reason when the sweep lacks the arms or logs it needs. `FIGURES`
lists them in order; `draw_all` saves each as PNG and PDF. Uncertainty: error bars / bands
are ± one s.e. over seeds (over problems when a label has a single seed, as the legend says).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from selfcorrect.analysis.diagnostics import checkpoint_points
from selfcorrect.analysis.labels import ERROR_MODEL_ORDER, display_name, label_arm, label_sort_key
from selfcorrect.analysis.results import Sweep
from selfcorrect.analysis.scaling import load_samples, scaling_curves
from selfcorrect.analysis.stats import mean_se, seed_interval
from selfcorrect.analysis.tables import METRIC_NAMES, main_table
from selfcorrect.evaluation.scaling_samples import ScalingSpec
from selfcorrect.training import catalog

RL_ARMS = catalog.of_family("rl")
EDIT_BINS = np.linspace(0, 1, 11)
DPI = 130


class FigureSkipped(Exception):
    """The sweep lacks what a figure needs; the message says what."""


# --- figures ------------------------------------------------------------------------------------
def fig_main_table(sweep: Sweep, table: pd.DataFrame | None = None) -> plt.Figure:
    """(1) The main table as bars: accuracy per turn, and Δ split into i→c and c→i."""
    t = main_table(sweep, n_boot=2000) if table is None else table
    x = np.arange(len(t))
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(max(8, 1.6 * len(t) + 4), 4.2), dpi=DPI)
    w = 0.38
    for off, m, color in ((-w / 2, "acc_t1", "#9ecae1"), (w / 2, "acc_t2", "#3182bd")):
        ax1.bar(x + off, 100 * t[m], w, yerr=100 * t[m + "_se"].fillna(0), capsize=3, color=color, label=METRIC_NAMES[m])
    ax1.set_ylabel("accuracy (%)")
    ax1.set_ylim(0, 100)
    ax1.set_title("Accuracy at each attempt")
    ax2.bar(x - w / 2, 100 * t["delta_i2c"], w, yerr=100 * t["delta_i2c_se"].fillna(0), capsize=3, color="#31a354", label="Δ i→c (fixed)")
    ax2.bar(x + w / 2, -100 * t["delta_c2i"], w, yerr=100 * t["delta_c2i_se"].fillna(0), capsize=3, color="#de2d26", label="−Δ c→i (broken)")
    ax2.errorbar(x, 100 * t["delta"], yerr=100 * t["delta_se"].fillna(0), fmt="D", color="black", capsize=4, label="Δ(t1,t2)")
    ax2.axhline(0, color="gray", lw=0.8)
    ax2.set_ylabel("percentage points of all problems")
    ax2.set_title("Change from attempt 1 to 2")
    for ax in (ax1, ax2):
        ax.set_xticks(x, [f"{n}\n(n={s} seed{'s' if s > 1 else ''})" for n, s in zip(t["method"], t["n_seeds"])],
                      rotation=30 if len(t) > 4 else 0, ha="right" if len(t) > 4 else "center", fontsize=8)
        ax.legend(fontsize=8, loc="best")
    fig.suptitle("Main table: mean ± s.e. (over seeds; over problems for 1-seed arms)", fontsize=10)
    fig.tight_layout()
    return fig


def fig_edit_histograms(sweep: Sweep) -> plt.Figure:
    """(2) Edit-distance ratio between attempts per arm (paper Fig. 4); the first bar is
    exactly 0 (no edit at all), the rest are tenths of (0, 1]."""
    labels = sweep.labels
    ncols = min(4, len(labels))
    nrows = math.ceil(len(labels) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.4 * ncols, 2.8 * nrows + 0.6), dpi=DPI, sharey=True, squeeze=False)
    names = ["0"] + [f"{lo:.1f}–{hi:.1f}" for lo, hi in zip(EDIT_BINS[:-1], EDIT_BINS[1:])]
    for ax, label in zip(axes.flat, labels):
        g = sweep.generations[sweep.generations["label"] == label]
        per_seed = []
        for _, gs in g.groupby("seed"):
            r = gs["edit_ratio"].to_numpy()
            counts = [np.mean(r == 0)] + [np.mean((r > lo) & (r <= hi)) for lo, hi in zip(EDIT_BINS[:-1], EDIT_BINS[1:])]
            per_seed.append(counts)
        per_seed = np.array(per_seed)
        mean = per_seed.mean(0)
        # s.e. over seeds; with one seed, the binomial s.e. over the problems
        err = per_seed.std(0, ddof=1) / np.sqrt(len(per_seed)) if len(per_seed) > 1 else np.sqrt(mean * (1 - mean) / len(g))
        ax.bar(np.arange(11), 100 * mean, yerr=100 * err, capsize=2, color=["#636363"] + ["#6baed6"] * 10)
        ax.set_title(f"{display_name(label)} ({len(per_seed)} seed{'s' if len(per_seed) > 1 else ''})", fontsize=9)
        ax.set_xticks(np.arange(11), names, rotation=90, fontsize=6)
        ax.set_xlabel("edit distance ratio (y1 vs y2)", fontsize=8)
    return _finish_grid(fig, axes, len(labels), "% of test problems",
                        "Edit-distance ratio between attempts (grey: identical attempts); ± s.e. over seeds (over problems for 1 seed)")


def fig_mismatch_probe(sweep: Sweep) -> plt.Figure:
    """(3) Correction rate on fixed offline first attempts vs on the policy's own, over
    training (paper Fig. 5), on the same problems: those where both first attempts are wrong
    (`val/probe/<label>/correction_rate_{offline,own}_matched`, see `selfcorrect.evaluation.probe`)."""
    h = sweep.history
    h = h[h["metric"].str.match(r"^val/probe/.+/correction_rate_(offline|own)_matched$") & h["step"].notna()]
    if h.empty:
        raise FigureSkipped("no run logs val/probe/<label>/correction_rate_{offline,own}_matched during training "
                            f"(needs a training arm such as sft_self, star, score; sweep has {sweep.labels})")
    labels = sorted(h["label"].unique(), key=label_sort_key)
    ncols = min(3, len(labels))
    nrows = math.ceil(len(labels) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.4 * ncols, 3.3 * nrows + 0.5), dpi=DPI, squeeze=False, sharey=True)
    for ax, label in zip(axes.flat, labels):
        hl = h[h["label"] == label]
        probes = sorted({m.split("/")[2] for m in hl["metric"]})
        for i, probe in enumerate(probes):
            color = plt.cm.tab10(i)
            for kind, style in (("offline", "-"), ("own", "--")):
                n_seeds = _band(ax, hl[hl["metric"] == f"val/probe/{probe}/correction_rate_{kind}_matched"], color, style,
                                f"{'fixed' if kind == 'offline' else 'own'} first attempts ({probe})")
        ax.set_title(f"{display_name(label)} ({n_seeds} seed{'s' if n_seeds > 1 else ''})", fontsize=9)
        ax.set_xlabel("training step")
        ax.set_ylim(0, 1)
        ax.legend(fontsize=7)
    return _finish_grid(fig, axes, len(labels), "correction rate\n(wrong at t1 → right at t2)",
                        "Distribution shift: correcting fixed offline attempts vs the policy's own, on the same val problems "
                        "(both first attempts wrong; ± s.e. over seeds)")


def _finish_grid(fig: plt.Figure, axes: np.ndarray, used: int, ylabel: str, title: str) -> plt.Figure:
    """Label the left column, blank the unused panels, title and lay out a grid of panels."""
    for ax in axes[:, 0]:
        ax.set_ylabel(ylabel)
    for ax in list(axes.flat)[used:]:
        ax.axis("off")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def fig_rl_dynamics(sweep: Sweep) -> plt.Figure:
    """(4) RL dynamics (paper Fig. 6) as small multiples, one panel per RL arm: training reward of
    each attempt and how often the second attempt changes the answer, from `train/*` history."""
    h = sweep.history[sweep.history["step"].notna()]
    have = set(h.loc[h["metric"].isin(["train/reward_t1", "train/reward_t2"]), "label"])
    labels = sorted((l for l in have if label_arm(l) in RL_ARMS), key=label_sort_key)
    if not labels:
        raise FigureSkipped(f"no RL run logs train/reward_t1 / train/reward_t2 (needs one of {RL_ARMS}; sweep has {sweep.labels})")
    ncols = min(4, len(labels))
    nrows = math.ceil(len(labels) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.6 * ncols, 3.0 * nrows + 0.8), dpi=DPI, squeeze=False, sharey=True, sharex=True)
    series = (("train/reward_t1", "#9ecae1", "--", "reward, attempt 1"), ("train/reward_t2", "#08519c", "-", "reward, attempt 2"),
              ("train/answer_change_rate", "#e6550d", ":", "answer-change rate"))
    for ax, label in zip(axes.flat, labels):
        hl = h[h["label"] == label]
        n_seeds = 0
        for metric, color, style, name in series:
            n_seeds = max(n_seeds, _band(ax, _smooth(hl[hl["metric"] == metric]), color, style, name))
        stage = hl[hl["metric"] == "train/stage"].sort_values("step")
        if not stage.empty and stage["value"].nunique() > 1:
            ax.axvline(stage.loc[stage["value"] > stage["value"].min(), "step"].min(), color="gray", ls=":", lw=1)
        ax.set_title(f"{display_name(label)} ({n_seeds} seed{'s' if n_seeds > 1 else ''})", fontsize=8)
        ax.set_ylim(0, 1)
        ax.set_xlabel("training step")
    axes.flat[0].legend(fontsize=7, loc="lower right")
    return _finish_grid(fig, axes, len(labels), "rate",
                        "RL dynamics per arm (moving average; bands ± s.e. over seeds; dotted vertical: Stage II starts)")


def fig_mismatch_dial(sweep: Sweep) -> plt.Figure:
    """(5) Teacher-error SFT: Δ and correction rates vs the teacher's error model, ordered by
    how far its errors are from the learner's own (`offline_error_tv`). The correction rates are
    the probe's matched rates: fixed offline vs own first attempts on the same problems (both
    wrong), per probe set."""
    r = sweep.runs[sweep.runs["arm"] == "sft_teacher"]
    if r.empty:
        raise FigureSkipped(f"no sft_teacher runs (needs arm=sft_teacher with arm.error_model; sweep has {sweep.labels})")
    if r["error_model"].isna().any():
        raise FigureSkipped("sft_teacher runs without arm.error_model in their config")
    tv = r["offline_error_tv"] if "offline_error_tv" in r else pd.Series(np.nan, index=r.index)
    r = r.assign(tv=pd.to_numeric(tv, errors="coerce"))
    order = sorted(r["error_model"].unique(), key=lambda m: (
        np.nan_to_num(r.loc[r["error_model"] == m, "tv"].mean(), nan=np.inf),
        ERROR_MODEL_ORDER.index(m) if m in ERROR_MODEL_ORDER else 99))
    probes = [c.split("/")[1] for c in r.columns if c.startswith("probe/") and c.endswith("/correction_rate_offline_matched")]
    if not probes:
        raise FigureSkipped("sft_teacher runs report no matched probe rates (probe/<set>/correction_rate_offline_matched)")
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2), dpi=DPI)
    x = np.arange(len(order))
    series = [("delta", ax1, "black", "o-", "Δ(t1,t2)")]
    for i, probe in enumerate(probes):
        series += [(f"probe/{probe}/correction_rate_offline_matched", ax2, plt.cm.tab10(i), "o-", f"fixed attempts ({probe})"),
                   (f"probe/{probe}/correction_rate_own_matched", ax2, plt.cm.tab10(i), "s--", f"own attempts, same problems ({probe})")]
    for col, ax, color, fmt, name in series:
        stats = [mean_se(v) if len(v := r.loc[r["error_model"] == m, col].dropna()) else (np.nan, np.nan) for m in order]
        mean, se = np.array(stats).T
        scale = 100 if col == "delta" else 1
        ax.errorbar(x, scale * mean, yerr=scale * np.nan_to_num(se), fmt=fmt, color=color, capsize=4, label=name)
    if "base" in sweep.labels:
        b = sweep.runs[sweep.runs["label"] == "base"]
        ax1.axhline(100 * b["delta"].mean(), color="gray", ls=":", label="base model")
        ax2.axhline(b["correction_rate_own"].mean(), color="gray", ls=":", label="base model (own, all its errors)")
    ticks = [f"{m}\nTV={r.loc[r['error_model'] == m, 'tv'].mean():.2f}" for m in order]
    for ax in (ax1, ax2):
        ax.set_xticks(x, ticks, fontsize=8)
        ax.set_xlabel("teacher error model (ordered by TV distance to the learner's own errors)", fontsize=9)
        ax.legend(fontsize=7)
    ax1.axhline(0, color="gray", lw=0.8)
    ax1.set_ylabel("Δ(t1,t2) (percentage points)")
    ax2.set_ylabel("correction rate (wrong → right)\non problems where both first attempts are wrong")
    ax2.set_ylim(0, 1)
    fig.suptitle("The mismatch dial: SFT on teacher-written errors (± s.e. over seeds)", fontsize=10)
    fig.tight_layout()
    return fig


def fig_error_types(sweep: Sweep) -> plt.Figure:
    """(6) Which error kinds each arm fixes: errors fixed at t2 / errors at t1, pooled over seeds."""
    e = sweep.errors
    if e.empty or e["errors_t1"].sum() == 0:
        raise FigureSkipped("no first-attempt errors in any run: nothing to fix")
    pooled = e.groupby(["label", "kind"])[["errors_t1", "errors_fixed"]].sum().reset_index()
    labels = sorted(pooled["label"].unique(), key=label_sort_key)
    kinds = sorted(pooled.loc[pooled["errors_t1"] > 0, "kind"].unique())
    cols = kinds + ["all"]
    rate = np.full((len(labels), len(cols)), np.nan)
    n = np.zeros((len(labels), len(cols)), dtype=int)
    for i, label in enumerate(labels):
        pl = pooled[pooled["label"] == label].set_index("kind")
        for j, k in enumerate(kinds):
            if k in pl.index and pl.loc[k, "errors_t1"] > 0:
                n[i, j], rate[i, j] = pl.loc[k, "errors_t1"], pl.loc[k, "errors_fixed"] / pl.loc[k, "errors_t1"]
        n[i, -1] = pl["errors_t1"].sum()
        rate[i, -1] = pl["errors_fixed"].sum() / n[i, -1] if n[i, -1] else np.nan
    fig, _ = _rate_heat_map(rate, n, labels, cols, "error kind of the first attempt", "fixed at t2 / errors at t1",
                            "Which errors get fixed (pooled over seeds; ± binomial s.e.; n = first-attempt errors)")
    return fig


def fig_correction_matrix(sweep: Sweep) -> plt.Figure:
    """(8) The correction matrix (`selfcorrect.evaluation.correction_matrix`): per arm, the rate at which the
    second attempt is right when the first is the correct attempt (keep) or carries exactly one
    injected error of a kind at the base's own error site or at a random site (fix); pooled over
    seeds, ± binomial s.e., n = controlled first attempts."""
    r = sweep.runs
    if "correction_matrix/keep_rate" not in r or r["correction_matrix/keep_rate"].isna().all():
        raise FigureSkipped(f"no run reports a correction_matrix (eval.correction_matrix; needs a task with an error model; sweep has {sweep.labels})")
    r = r[r["correction_matrix/keep_rate"].notna()]
    cells = [("keep_rate", "n_keep", "keep\n(correct y1)")]
    for c in r.columns:
        if c.startswith("correction_matrix/fix_rate/"):
            kind, site = c.split("/")[2:4]
            cells.append((f"fix_rate/{kind}/{site}", f"n/{kind}/{site}", f"{kind}\n@ {site} site"))
    labels = sorted(r["label"].unique(), key=label_sort_key)
    rate = np.full((len(labels), len(cells)), np.nan)
    n = np.zeros((len(labels), len(cells)), dtype=int)
    for i, label in enumerate(labels):
        rl = r[r["label"] == label]
        for j, (rate_col, n_col, _) in enumerate(cells):
            counts = rl[f"correction_matrix/{n_col}"].fillna(0).to_numpy()
            fixed = (rl[f"correction_matrix/{rate_col}"].fillna(0).to_numpy() * counts).round()
            n[i, j] = counts.sum()
            rate[i, j] = fixed.sum() / n[i, j] if n[i, j] else np.nan
    fig, ax = _rate_heat_map(rate, n, labels, [c[2] for c in cells],
                             "controlled first attempt: correct, or exactly one injected error (kind @ site)",
                             "second attempt right (keep / fix rate)",
                             "Correction matrix on the test problems (pooled over seeds; ± binomial s.e.)", fontsize=6)
    ax.axvline(0.5, color="white", lw=2)
    return fig


def scaling_frame(sweep: Sweep, spec: ScalingSpec = ScalingSpec()) -> pd.DataFrame:
    """Per-run scaling curves from the cached samples: rows (label, seed, mode, budget, acc, se)."""
    rows = []
    for name, run in sweep.run_objects.items():
        path = run.path / spec.filename
        if not path.exists():
            continue
        ids, answers, correct = load_samples(path)
        df = scaling_curves(answers, correct, seed=spec.seed)
        for (mode, budget), g in df.groupby(["mode", "budget"]):
            m, se = mean_se(g["acc"])
            rows.append({"run": name, "label": run.label, "seed": run.seed, "mode": mode, "budget": budget,
                         "acc": m, "se": se, "n_problems": len(ids)})
    return pd.DataFrame(rows, columns=["run", "label", "seed", "mode", "budget", "acc", "se", "n_problems"])


def fig_inference_scaling(sweep: Sweep, spec: ScalingSpec = ScalingSpec()) -> plt.Figure:
    """(7) Accuracy vs sample budget: parallel sampling + majority vote vs sampling +
    self-correction (paper Fig. 1 right), and accuracy per revision turn."""
    f = scaling_frame(sweep, spec)
    if f.empty:
        raise FigureSkipped(f"no cached scaling samples ({spec.filename}) in any run; generate them with "
                            "`experiments/make_figures.py --scaling-arms ...` or selfcorrect.evaluation.scaling_samples.sample_revisions")
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2), dpi=DPI)
    labels = sorted(f["label"].unique(), key=label_sort_key)
    for i, label in enumerate(labels):
        color = plt.cm.tab10(i)
        fl = f[f["label"] == label]
        n_seeds = fl["seed"].nunique()
        for mode, style, ax, name in (("parallel", "o-", ax1, "parallel, majority vote"),
                                      ("sequential", "s--", ax1, "sample + self-correct, majority vote"),
                                      ("turn", "o-", ax2, "")):
            g = fl[fl["mode"] == mode].groupby("budget")
            xs = np.array(sorted(g.groups))
            mean = g["acc"].mean().loc[xs].to_numpy()
            # band: s.e. over seeds with 2+ seeds, else the s.e. over problems of the one run
            err = (g["acc"].std(ddof=1) / np.sqrt(n_seeds)).loc[xs].to_numpy() if n_seeds > 1 else g["se"].mean().loc[xs].to_numpy()
            lab = f"{display_name(label)}: {name}" if name else display_name(label)
            ax.plot(xs, 100 * mean, style, color=color, label=lab + f" ({n_seeds} seed{'s' if n_seeds > 1 else ''})", ms=4)
            ax.fill_between(xs, 100 * (mean - err), 100 * (mean + err), color=color, alpha=0.2)
    ax1.set_xscale("log", base=2)
    ax1.set_xlabel("samples per problem (total attempts generated)")
    ax1.set_ylabel("majority-vote accuracy (%)")
    ax1.set_title(f"Inference-time scaling (T={spec.temperature:g}, {f['n_problems'].max()} test problems)", fontsize=9)
    ax2.set_xlabel("attempt number (each revises the previous)")
    ax2.set_ylabel("accuracy of attempt t (%), mean over samples")
    ax2.set_xticks(range(1, spec.n_turns + 1))
    ax2.set_title(f"More than two turns of revision (T={spec.temperature:g})", fontsize=9)
    for ax in (ax1, ax2):
        ax.set_ylim(0, 100)
        ax.legend(fontsize=7)
    fig.suptitle("Bands: ± s.e. over seeds (over problems for single-seed arms)", fontsize=10)
    fig.tight_layout()
    return fig


def fig_delta_vs_acc_t1(sweep: Sweep) -> plt.Figure:
    """(9) Δ and fix rate against Acc@t1 over every evaluated checkpoint (validation; steps 0, 12,
    ... of each run): the comparison the Acc@t1 ceiling does not bias (`diagnostics`). Points: one
    per run and step; lines: the mean over seeds per step, in the order of the steps."""
    pts = checkpoint_points(sweep)
    pts = pts[pts["label"].map(label_arm) != "base"]
    if pts.empty:
        raise FigureSkipped(f"no run logs validation checkpoints (val/acc_t1, val/delta) during training; sweep has {sweep.labels}")
    labels = sorted(pts["label"].unique(), key=label_sort_key)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8), dpi=DPI)
    for i, label in enumerate(labels):
        g = pts[pts["label"] == label]
        color, marker = plt.cm.tab20(i % 20), "osD^v<>"[i % 7]
        mean = g.groupby("step")[["acc_t1", "delta", "fix_rate"]].mean()
        for ax, metric in zip(axes, ("delta", "fix_rate")):
            ax.scatter(100 * g["acc_t1"], 100 * g[metric], s=6, color=color, alpha=0.25)
            ax.plot(100 * mean["acc_t1"], 100 * mean[metric], marker=marker, ms=3, lw=1.2, color=color, label=display_name(label))
    base = pts.loc[pts["step"] == 0, "acc_t1"]
    for ax, name in zip(axes, ("Δ(t1,t2) (points, validation)", "fix rate (%, wrong → right over wrong t1)")):
        if len(base):
            ax.axvline(100 * base.mean(), color="gray", ls=":", lw=1)
        ax.set_xlabel("validation Acc@t1 (%)  (dotted: the base's)")
        ax.set_ylabel(name)
    axes[0].axhline(0, color="gray", lw=0.8)
    axes[1].legend(fontsize=6, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.suptitle("Δ and fix rate against Acc@t1 over every checkpoint (points: runs × steps; lines: mean over seeds per step)", fontsize=10)
    fig.tight_layout()
    return fig


def fig_fix_break(sweep: Sweep) -> plt.Figure:
    """(10) The ceiling-free rates on the test problems: fix rate (wrong → right over the wrong first
    attempts) against break rate (right → wrong over the right ones), per arm, ± the seed-level
    t interval."""
    runs = sweep.runs
    if "fix_rate" not in runs or runs["fix_rate"].isna().all():
        raise FigureSkipped("no run reports fix_rate / break_rate (metrics.summarize of a newer run)")
    fig, ax = plt.subplots(figsize=(7.5, 5.5), dpi=DPI)
    for i, label in enumerate(sweep.labels):
        g = runs[runs["label"] == label].dropna(subset=["fix_rate", "break_rate"])
        if g.empty:
            continue
        _seed_errorbar(ax, g["break_rate"].to_numpy(), g["fix_rate"].to_numpy(), scale=100, fmt="osD^v<>"[i % 7],
                       color=plt.cm.tab20(i % 20), capsize=3, label=display_name(label))
    ax.set_xlabel("break rate (%): right → wrong, over the right first attempts")
    ax.set_ylabel("fix rate (%): wrong → right, over the wrong first attempts")
    ax.legend(fontsize=6, loc="center left", bbox_to_anchor=(1.0, 0.5))
    ax.set_title("Ceiling-free correction rates on the test problems (± 95 % t interval over seeds)", fontsize=9)
    fig.tight_layout()
    return fig


def fig_behaviour_collapse(sweep: Sweep) -> plt.Figure:
    """(11) Behaviour collapse over training (issue 23): the entropy of the revision behaviours on the
    validation problems whose first attempt is wrong, at every monitoring step, per arm (mean ± s.e.
    over seeds); the base's value is step 0. Lower = one way of revising took over."""
    from selfcorrect.analysis.mechanisms import behaviour_over_training

    curves = behaviour_over_training(sweep.history)
    if curves.empty or "entropy_bits" not in curves:
        raise FigureSkipped("no run logged behaviour/wrong_t1 at its validation points (a task without revision_behaviour)")
    labels = [lab for lab in sweep.labels if lab != "base" and lab in set(curves["label"])]
    fig, ax = plt.subplots(figsize=(8, 5), dpi=DPI)
    for i, label in enumerate(labels):
        g = curves[curves["label"] == label].groupby("step")["entropy_bits"]
        m, se = g.mean(), g.sem().fillna(0.0)
        style = "-" if label_arm(label) in RL_ARMS else "--"
        ax.plot(m.index, m.values, style, color=plt.cm.tab20(i % 20), label=display_name(label))
        ax.fill_between(m.index, m - se, m + se, color=plt.cm.tab20(i % 20), alpha=0.12)
    ax.set_xlabel("gradient step (validation points; step 0 = the base)")
    ax.set_ylabel("entropy of revision behaviours on wrong y1 (bits)")
    ax.legend(fontsize=6, loc="center left", bbox_to_anchor=(1.0, 0.5))
    ax.set_title("Behaviour collapse over training (solid: RL, dashed: offline)", fontsize=9)
    fig.tight_layout()
    return fig


def fig_self_conditioning(sweep: Sweep) -> plt.Figure:
    """(12) Self-conditioning (issue 23): the fix rate of the second attempt after k = 1, 2, 3
    injected errors (left), and the fix rate at turn t given a wrong turn t − 1 (right), per arm,
    mean ± s.e. over seeds."""
    runs = sweep.runs
    ks = sorted(int(c.rsplit("/", 1)[1]) for c in runs if c.startswith("self_conditioning/fix_rate/"))
    ts = sorted(int(c.rsplit("/", 1)[1]) for c in runs if c.startswith("self_conditioning/fix_given_wrong/"))
    if not ks:
        raise FigureSkipped("no run has a self_conditioning block (a task without an error model, or an older run)")
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4.5), dpi=DPI)
    for i, label in enumerate(sweep.labels):
        g = runs[runs["label"] == label]
        color, style = plt.cm.tab20(i % 20), "-" if label_arm(label) in RL_ARMS else "--"
        for ax, cols, xs in ((a1, [f"self_conditioning/fix_rate/{k}" for k in ks], ks),
                             (a2, [f"self_conditioning/fix_given_wrong/{t}" for t in ts], ts)):
            vals = [mean_se(g[c].dropna().to_numpy()) if c in g and g[c].notna().any() else (np.nan, np.nan) for c in cols]
            m = np.array([v[0] for v in vals]) * 100
            se = np.nan_to_num(np.array([v[1] for v in vals]) * 100)
            ax.errorbar(xs, m, yerr=se, fmt=style + "o", color=color, capsize=2, markersize=3, label=display_name(label))
    a1.set_xlabel("injected errors in the first attempt (k)")
    a1.set_ylabel("fix rate at turn 2 (%)")
    a1.set_xticks(ks)
    a2.set_xlabel("turn t")
    a2.set_ylabel("fix rate at turn t given turn t − 1 wrong (%)")
    a2.set_xticks(ts)
    a2.legend(fontsize=6, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.suptitle("Self-conditioning on errors: more errors in the context (left), more turns (right; k = 1)", fontsize=9)
    fig.tight_layout()
    return fig


def fig_calibration(sweep: Sweep) -> plt.Figure:
    """(13) Calibration and the revise decision (issue 23), per arm on the test problems, ± the
    seed-level t interval: ECE and AUROC of the policy's probability of its own first attempt
    (left), and P(the answer changes | y1 wrong) against P(… | y1 right) (right: up and to the left
    is a second attempt that acts only when it should)."""
    runs = sweep.runs
    if "calibration/ece" not in runs:
        raise FigureSkipped("no run has a calibration block (records without logp1: an older run)")
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 5), dpi=DPI)
    for i, label in enumerate(sweep.labels):
        g = runs[runs["label"] == label]
        color, marker = plt.cm.tab20(i % 20), "osD^v<>"[i % 7]
        for ax, (xc, yc) in ((a1, ("calibration/ece", "calibration/auroc")),
                             (a2, ("revise/p_change_given_right", "revise/p_change_given_wrong"))):
            d = g[[xc, yc]].dropna().astype(float)
            if d.empty:
                continue
            _seed_errorbar(ax, d[xc].to_numpy(), d[yc].to_numpy(), fmt=marker, color=color, capsize=2, label=display_name(label))
    a1.set_xlabel("ECE of y1's own probability (10 bins)")
    a1.set_ylabel("AUROC of y1's probability for y1 correct")
    a2.set_xlabel("P(answer changes | y1 right)")
    a2.set_ylabel("P(answer changes | y1 wrong)")
    a2.legend(fontsize=6, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.suptitle("Calibration of the first attempt (left) and the revise decision (right), ± 95 % t over seeds", fontsize=9)
    fig.tight_layout()
    return fig


def fig_sparsity(sweep: Sweep) -> plt.Figure:
    """(14) Update sparsity (issue 23): the fraction of parameters the kept update leaves unchanged
    at each tolerance, from the fp32 weights (solid) and after rounding both to bf16 (dashed), per
    trained arm, mean over seeds."""
    runs = sweep.runs
    cols = {d: sorted((c for c in runs if c.startswith(f"sparsity/unchanged/{d}/")), key=lambda c: float(c.rsplit("/", 1)[1]))
            for d in ("fp32", "bf16")}
    if not cols["fp32"]:
        raise FigureSkipped("no run has sparsity/ keys (the base, or runs before issue 23)")
    fig, ax = plt.subplots(figsize=(8, 5), dpi=DPI)
    for i, label in enumerate(lab for lab in sweep.labels if lab != "base"):
        g = runs[runs["label"] == label]
        for d, style in (("fp32", "-o"), ("bf16", "--s")):
            ys = [100 * float(g[c].astype(float).mean()) for c in cols[d]]
            ax.plot(range(len(ys)), ys, style, color=plt.cm.tab20(i % 20), markersize=3,
                    label=display_name(label) if d == "fp32" else None)
    ax.set_xticks(range(len(cols["fp32"])), [c.rsplit("/", 1)[1] for c in cols["fp32"]])
    ax.set_xlabel("tolerance on |θ_kept − θ_base|")
    ax.set_ylabel("parameters unchanged (%)")
    ax.legend(fontsize=6, loc="center left", bbox_to_anchor=(1.0, 0.5))
    ax.set_title("Update sparsity: fp32 weights (solid), both rounded to bf16 (dashed)", fontsize=9)
    fig.tight_layout()
    return fig


def fig_data_source(sweep: Sweep) -> plt.Figure:
    """(15) On-policy vs off-policy data (issue 23): the fix rate and break rate of the arms grouped
    by where their training data came from (`catalog.DATA_SOURCES`), the mean over a source's arms
    per seed, ± the seed-level t interval."""
    from selfcorrect.analysis.mechanisms import data_source_table

    if "fix_rate" not in sweep.runs or "base" not in sweep.labels:
        raise FigureSkipped("needs fix_rate / break_rate and the base arm (Acc@t1 change)")
    t = data_source_table(sweep.runs)
    if t.empty:
        raise FigureSkipped(f"no trained arm to group by its data source; sweep has {sweep.labels}")
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.5), dpi=DPI)
    for ax, (m, name) in zip(axes, (("fix_rate", "fix rate (%)"), ("break_rate", "break rate (%)"),
                                    ("acc_t1_change", "Acc@t1 − base (points)"))):
        y = 100 * t[m].to_numpy()
        err = np.nan_to_num(100 * np.vstack([t[m] - t[f"{m}_lo"], t[f"{m}_hi"] - t[m]]))
        ax.bar(range(len(t)), y, yerr=err, capsize=3, color=[plt.cm.tab10(i) for i in range(len(t))])
        ax.set_xticks(range(len(t)), [catalog.DATA_SOURCES[d].replace(", ", ",\n") for d in t["data"]], fontsize=6)
        ax.set_ylabel(name)
    fig.suptitle("Arms by the source of their training data (mean over the source's arms per seed, ± 95 % t)", fontsize=9)
    fig.tight_layout()
    return fig


FIGURES: dict[str, Callable[[Sweep], plt.Figure]] = {
    "1_main_table": fig_main_table,
    "2_edit_histograms": fig_edit_histograms,
    "3_mismatch_probe": fig_mismatch_probe,
    "4_rl_dynamics": fig_rl_dynamics,
    "5_mismatch_dial": fig_mismatch_dial,
    "6_error_types": fig_error_types,
    "7_inference_scaling": fig_inference_scaling,
    "8_correction_matrix": fig_correction_matrix,
    "9_delta_vs_acc_t1": fig_delta_vs_acc_t1,
    "10_fix_break": fig_fix_break,
    "11_behaviour_collapse": fig_behaviour_collapse,
    "12_self_conditioning": fig_self_conditioning,
    "13_calibration": fig_calibration,
    "14_sparsity": fig_sparsity,
    "15_data_source": fig_data_source,
}


def save(fig: plt.Figure, out_dir: str | Path, name: str) -> list[Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{name}.png", out / f"{name}.pdf"]
    for p in paths:
        fig.savefig(p, bbox_inches="tight")
    plt.close(fig)
    return paths


def draw(name: str, sweep: Sweep, out_dir: str | Path | None = None, **kwargs) -> plt.Figure | str:
    """Draw one figure; save it when `out_dir` is given. Returns the figure, or the skip
    message (also printed) when the sweep lacks what it needs."""
    try:
        fig = FIGURES[name](sweep, **kwargs)
    except FigureSkipped as e:
        msg = f"[skipped {name}] {e}"
        print(msg)
        return msg
    if out_dir is not None:
        save(fig, out_dir, name)
    return fig


def draw_all(sweep: Sweep, out_dir: str | Path, table: pd.DataFrame | None = None,
             spec: ScalingSpec = ScalingSpec()) -> tuple[dict[str, list[Path]], dict[str, str]]:
    """Every figure as PNG + PDF under `out_dir`: ({name: paths}, {name: skip reason})."""
    saved, skipped = {}, {}
    for name, fn in FIGURES.items():
        kwargs = {"table": table} if name == "1_main_table" else {"spec": spec} if name == "7_inference_scaling" else {}
        try:
            fig = fn(sweep, **kwargs)
        except FigureSkipped as e:
            skipped[name] = str(e)
            continue
        saved[name] = save(fig, out_dir, name)
    return saved, skipped


def fig_control_dial(table: pd.DataFrame, x_of: dict[str, float], xlabel: str, title: str, arms=None,
                     log_x: bool = False, xticklabels: dict[float, str] | None = None) -> plt.Figure:
    """A control's dial (`analysis.controls.control_table` rows; `x_of` maps a point to its dial value): per arm, Δ, the
    fix rate and SCoRe − the arm in Δ against the dial (`arms`: only these), each at its seed mean with the seed-level
    t interval; one line per arm, whatever its runs' label at each point."""
    rows = table[table["point"].isin(list(x_of)) & (table["arm"].isin(arms) if arms is not None else True)]
    if rows.empty:
        raise FigureSkipped(f"no control point of {sorted(x_of)} in the table")
    panels = (("delta", "Δ(t1, t2) (points)"), ("fix_rate", "fix rate (%)"), ("score_minus", "SCoRe − arm in Δ (points)"))
    arms_here = sorted(rows["arm"].unique(), key=label_sort_key)
    lines = []  # one line per arm across the points' labels, nudged apart to keep bars legible; one colour per arm
    for j, arm in enumerate(arms_here):
        nudge = 0.06 * (j - (len(arms_here) - 1) / 2)
        r = rows[rows["arm"] == arm].assign(x=lambda d: d["point"].map(x_of)).sort_values("x")
        lines.append((j, arm, r.assign(x=r["x"] * 2 ** nudge if log_x else r["x"] + nudge)))
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for ax, (metric, ylabel) in zip(axes, panels):
        for j, arm, r in lines:
            if metric not in r or r[metric].isna().all():
                continue
            r = r[r[metric].notna()]
            err = np.vstack([r[metric] - r[f"{metric}_lo"], r[f"{metric}_hi"] - r[metric]]).clip(min=0) * 100
            ax.errorbar(r["x"], 100 * r[metric], yerr=np.nan_to_num(err), marker="o", capsize=3, color=f"C{j}", label=display_name(arm))
        ax.axhline(0, color="grey", lw=0.6)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        if log_x:
            ax.set_xscale("log", base=2)
        if xticklabels:
            ax.set_xticks(list(xticklabels), list(xticklabels.values()))
        else:
            ax.set_xticks(sorted(set(x_of.values())))
    axes[0].legend(fontsize=7)
    fig.suptitle(title + " (seed means, t intervals over seeds)", fontsize=10)
    fig.tight_layout()
    return fig


# --- internals ----------------------------------------------------------------------------------
def _seed_errorbar(ax, x: np.ndarray, y: np.ndarray, scale: float = 1.0, **kwargs) -> None:
    """One point at the seed means of x and y, with their seed-level t intervals as error bars
    (none for a single seed), everything multiplied by `scale`."""
    ex, ey = seed_interval(x), seed_interval(y)

    def err(e):
        return None if math.isnan(e.se) else [[scale * (e.mean - e.lo)], [scale * (e.hi - e.mean)]]

    ax.errorbar(scale * ex.mean, scale * ey.mean, xerr=err(ex), yerr=err(ey), **kwargs)


def _rate_heat_map(rate: np.ndarray, n: np.ndarray, labels: list[str], cols: list[str], xlabel: str, cbar: str,
                   title: str, fontsize: int = 7) -> tuple[plt.Figure, plt.Axes]:
    """Rates in [0, 1] of run labels (rows) × `cols` as a heat map, each cell annotated with its
    per cent ± binomial s.e. and n ("–" where there is nothing to rate)."""
    fig, ax = plt.subplots(figsize=(1.2 * len(cols) + 3.5, 0.55 * len(labels) + 2.0), dpi=DPI)
    im = ax.imshow(np.ma.masked_invalid(rate), cmap="viridis", vmin=0, vmax=1, aspect="auto")
    for i in range(rate.shape[0]):
        for j in range(rate.shape[1]):
            if np.isnan(rate[i, j]):
                ax.text(j, i, "–", ha="center", va="center", color="gray")
            else:
                se = math.sqrt(rate[i, j] * (1 - rate[i, j]) / n[i, j])
                ax.text(j, i, f"{100 * rate[i, j]:.0f}±{100 * se:.0f}%\nn={n[i, j]}", ha="center", va="center",
                        fontsize=fontsize, color="white" if rate[i, j] < 0.6 else "black")
    ax.set_xticks(range(len(cols)), cols, rotation=25, ha="right", fontsize=7)
    ax.set_yticks(range(len(labels)), [display_name(l) for l in labels], fontsize=8)
    ax.set_xlabel(xlabel)
    fig.colorbar(im, ax=ax, label=cbar)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig, ax


def _smooth(h: pd.DataFrame) -> pd.DataFrame:
    """Moving average per run over ~1/20 of the steps (RL rewards are noisy per batch)."""
    if h.empty:
        return h
    out = []
    for _, g in h.sort_values("step").groupby("run"):
        w = max(1, len(g) // 20)
        out.append(g.assign(value=g["value"].rolling(w, min_periods=1).mean()))
    return pd.concat(out)


def _band(ax, h: pd.DataFrame, color, style: str, label: str) -> int:
    """Mean over seeds per step with a ± s.e. band; returns the number of seeds."""
    if h.empty:
        return 0
    g = h.groupby("step")["value"]
    steps = np.array(sorted(g.groups), dtype=float)
    mean = g.mean().loc[steps].to_numpy()
    n = h["seed"].nunique()
    ax.plot(steps, mean, style, color=color, label=label, lw=1.5)
    if n > 1:
        se = (g.std(ddof=1) / np.sqrt(g.count())).loc[steps].fillna(0).to_numpy()
        ax.fill_between(steps, mean - se, mean + se, color=color, alpha=0.2)
    return n
