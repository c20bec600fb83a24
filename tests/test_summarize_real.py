"""experiments/summarize_real.py: the real-model experiment's verdicts follow its pre-registered rule, and an
incomplete sweep gets tables but no verdicts."""

import importlib.util
import shutil
from pathlib import Path

import numpy as np
import pytest

from selfcorrect.analysis.results import load_sweep
from selfcorrect.analysis.stats import holm, t_test_p

from fixture_sweep import make_sweep

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def summarize_real():
    spec = importlib.util.spec_from_file_location("summarize_real", ROOT / "experiments" / "summarize_real.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory):  # the real design: one base run, every trained arm x 3 seeds
    runs = [("base", 0)] + [(arm, s) for arm in ("score", "sft_self", "rl_multi_turn_naive") for s in (0, 1, 2)]
    return make_sweep(tmp_path_factory.mktemp("real"), runs=runs, n_problems=30, scaling_labels=())


def test_verdicts_follow_the_pre_registered_rule(summarize_real, sweep_dir, monkeypatch):
    monkeypatch.setattr(summarize_real, "FAMILY", (("base", +1), ("sft_self", +1), ("rl_multi_turn_naive", -1)))
    sweep = load_sweep(sweep_dir, warn=False)
    assert summarize_real.missing_runs(sweep) == []
    text, rows = summarize_real.primary(sweep)
    score = summarize_real.per_seed(sweep, "score", "delta")
    by_b = {r["b"]: r for r in rows}
    (base,) = summarize_real.per_seed(sweep, "base", "delta").values()
    assert by_b["base"]["d"] == pytest.approx([score[s] - base for s in (0, 1, 2)])  # the one base, every seed
    other = summarize_real.per_seed(sweep, "sft_self", "delta")
    assert by_b["sft_self"]["d"] == pytest.approx([score[s] - other[s] for s in (0, 1, 2)])
    adjusted = holm({b: t_test_p(r["d"]) for b, r in by_b.items()})
    for b, r in by_b.items():
        assert r["p_holm"] == pytest.approx(adjusted[b]) and r["lo"] <= r["mean"] <= r["hi"]
        if r["p_holm"] < summarize_real.ALPHA:
            assert r["verdict"] == ("holds" if np.sign(r["mean"]) == r["sign"] else "contradicted")
        else:
            assert r["verdict"] in ("not decided", "equivalent within ±3 points")
    assert "| B | predicted |" in text


def test_an_incomplete_sweep_gets_tables_but_no_verdicts(summarize_real, sweep_dir, tmp_path, capsys):
    partial = tmp_path / "partial"
    shutil.copytree(sweep_dir, partial)
    shutil.rmtree(partial / "arm=score,seed=2")
    assert summarize_real.main([str(partial)]) == 0
    out = (partial / "summary.md").read_text()
    assert "verdicts withheld" in out and "score seed 2" in out and "| B | predicted |" not in out
    assert "## Main table" in out and "## Cost per run" in out and "Always answering" in out


def rows_of(summarize_real, ps):
    rows = [{"b": f"b{i}", "p": p} for i, p in enumerate(ps)]
    summarize_real.holm_levels(rows)
    return [r["level"] for r in rows]


def test_interval_levels_follow_holm_and_stop_at_its_first_non_rejection(summarize_real):
    # raw p 0.011, 0.012: Holm rejects neither at 0.05/5, 0.05/4 -> both (and all later) at the first step's level
    assert rows_of(summarize_real, [0.011, 0.012, 0.5, 0.6, 0.7]) == [0.01] * 5
    # 0.001 rejected at 0.01, 0.011 at 0.0125, 0.02 not at 0.05/3 -> held there; an undefined p sorts last
    assert rows_of(summarize_real, [0.001, 0.011, 0.02, float("nan"), 0.3]) == pytest.approx(
        [0.01, 0.0125, 0.05 / 3, 0.05 / 3, 0.05 / 3])
    assert rows_of(summarize_real, [0.001, 0.001, 0.5, 0.6, 0.7])[:2] == [0.01, 0.01]  # ties share a level


def test_identical_per_seed_differences_are_not_decided(summarize_real, sweep_dir, monkeypatch):
    monkeypatch.setattr(summarize_real, "FAMILY", (("base", +1), ("score_copy", +1)))
    sweep = load_sweep(sweep_dir, warn=False)
    real = summarize_real.per_seed

    def fake(sw, label, metric, seeds=None):  # an arm whose Δ is SCoRe's minus 0.6 points on every seed
        if label == "score_copy":
            return {s: v - 0.006 for s, v in real(sw, "score", metric, seeds).items()}
        return real(sw, label, metric, seeds)

    monkeypatch.setattr(summarize_real, "per_seed", fake)
    monkeypatch.setattr(sweep, "grid", lambda label, metric: type(sweep).grid(sweep, "score", metric))
    _, rows = summarize_real.primary(sweep)
    copy = next(r for r in rows if r["b"] == "score_copy")
    assert copy["d"] == pytest.approx([0.006] * 3) and copy["degenerate"]
    assert copy["verdict"].startswith("not decided (identical per-seed differences") and copy["p_holm"] == 1.0
