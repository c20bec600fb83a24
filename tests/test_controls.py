"""The write-up of `make controls` (analysis/controls.py): per point and arm the seed-level Δ, fix and break
rates, and SCoRe − arm in Δ paired on the seeds both have, SCoRe from the point itself or its reference sweep."""

import numpy as np
import pytest

from selfcorrect.analysis.controls import control_table, controls_markdown
from selfcorrect.analysis.results import load_sweep
from selfcorrect.analysis.stats import seed_paired

from fixture_sweep import make_sweep


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory):
    with_score = load_sweep(make_sweep(tmp_path_factory.mktemp("ctl_a"), runs=[(a, s) for a in ("base", "score", "sft_self")
                                                                               for s in (0, 1, 2)]), warn=False)
    offline_only = load_sweep(make_sweep(tmp_path_factory.mktemp("ctl_b"), runs=[("sft_self", s) for s in (0, 1)]), warn=False)
    return with_score, offline_only


def test_each_arm_gets_its_estimates_and_score_minus_it_paired_by_seed(sweeps):
    with_score, offline_only = sweeps
    t = control_table({"dial": with_score, "data_4x": offline_only}, references={"data_4x": with_score})
    row = t[(t["point"] == "dial") & (t["label"] == "sft_self")].iloc[0]
    runs = with_score.runs
    d = lambda label: runs[runs["label"] == label].sort_values("seed")["delta"].to_numpy()  # noqa: E731
    want = seed_paired(d("score"), d("sft_self"))
    assert row["seeds"] == 3 and row["delta"] == pytest.approx(d("sft_self").mean())
    assert row["acc_t1"] == pytest.approx(runs[runs["label"] == "sft_self"]["acc_t1"].mean())
    assert (row["score_minus"], row["score_minus_lo"]) == pytest.approx((want.diff, want.lo))
    assert row["score_from"] == "this point"
    assert np.isnan(t[(t["point"] == "dial") & (t["label"] == "score")].iloc[0].get("score_minus", np.nan))
    off = t[t["point"] == "data_4x"].iloc[0]  # seeds 0 and 1 only: paired with SCoRe's seeds 0 and 1 of the reference
    assert off["paired_seeds"] == 2 and off["score_from"] == "reference"
    assert off["score_minus"] == pytest.approx((d("score")[:2] - offline_only.runs.sort_values("seed")["delta"].to_numpy()).mean())
    md = controls_markdown(t)
    assert md.count("\n") == 1 + len(t) and "| data_4x |" in md and "(2; reference)" in md


def test_a_point_without_score_and_without_a_reference_has_no_comparison(sweeps):
    _, offline_only = sweeps
    t = control_table({"data_16x": offline_only})
    assert "score_minus" not in t or t["score_minus"].isna().all()
    assert controls_markdown(t.iloc[0:0]) == "(no control point found)"


def test_the_write_up_script_reads_every_point_that_ran_and_names_the_missing(tmp_path, monkeypatch, capsys):
    import importlib.util
    import shutil
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("summarize_controls", root / "experiments" / "summarize_controls.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    prefix = tmp_path / "2000-01-01_00-00-00-controls"
    shutil.move(make_sweep(tmp_path / "a", runs=[(a, s) for a in ("base", "score") for s in (0, 1)]), f"{prefix}-read_prob_0.1")
    shutil.move(make_sweep(tmp_path / "b", runs=[("sft_self", s) for s in (0, 1)]), f"{prefix}-offline_data_4x_answer_first")
    shutil.move(make_sweep(tmp_path / "c", runs=[("sft_self", s) for s in (0, 1)]), f"{prefix}-offline_data_4x_arithmetic")
    monkeypatch.setattr(sys, "argv", ["summarize_controls.py", str(prefix)])
    mod.main()
    text = Path(f"{prefix}-controls.md").read_text()
    assert "| read_prob_0.1 |" in text and "| offline_data_4x_answer_first |" in text
    assert "(2; reference)" in text  # answer-first's offline point faces SCoRe of read_prob_0.1
    assert "Not run yet: read_prob_0.0" in text and "No arithmetic reference given" in text

    # with the arithmetic reference: its control arms on the control seeds become a point, and the dials are drawn
    reference = make_sweep(tmp_path / "d", runs=[(a, s) for a in ("base", "score", "sft_self", "rl_multi_turn_naive") for s in (0, 1, 2)])
    monkeypatch.setattr(sys, "argv", ["summarize_controls.py", str(prefix), "--arithmetic-reference", str(reference)])
    mod.main()
    text = Path(f"{prefix}-controls.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith("| arithmetic (make sweep) |")]
    # the arms of the arithmetic points (sft_self) and SCoRe, which they face; seeds 0-1 only (not base, not seed 2)
    assert len(rows) == 2 and all("| 2 |" in r for r in rows) and "(2; this point)" in rows[0]
    assert "No arithmetic reference given" not in text
    figures = Path(f"{prefix}-controls-figures")
    assert sorted(p.name for p in figures.glob("*.png")) == ["controls_offline_data_answer_first.png", "controls_offline_data_arithmetic.png"]

    # an answer-first `make sweep` directory stands in for the read_prob_0.1 point (the same configuration)
    shutil.move(f"{prefix}-read_prob_0.1", tmp_path / "af_sweep")
    monkeypatch.setattr(sys, "argv", ["summarize_controls.py", str(prefix), "--answer-first-reference", str(tmp_path / "af_sweep")])
    mod.main()
    text = Path(f"{prefix}-controls.md").read_text()
    assert [line.split(" | ")[1] for line in text.splitlines() if line.startswith("| answer_first (make sweep) |")] == ["SCoRe"]
    assert "(2; reference)" in text and "| read_prob_0.1 |" not in text


def test_a_points_runs_named_by_its_override_still_face_score(sweeps):
    """A control point's Hydra job names carry its override (`score[read_prob=0.0]`): SCoRe is found by arm."""
    import dataclasses

    with_score, _ = sweeps
    named = dataclasses.replace(with_score, runs=with_score.runs.assign(label=with_score.runs["label"] + "[read_prob=0.0]"))
    plain, renamed = control_table({"p": with_score}), control_table({"p": named})
    assert list(renamed["arm"]) == list(plain["arm"]) and renamed["score_minus"].notna().sum() == 2
    assert np.allclose(renamed["score_minus"].dropna(), plain["score_minus"].dropna())
