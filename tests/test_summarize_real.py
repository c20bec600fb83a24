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
    assert "## Main table" in out and "## Cost per run" in out
