import shutil
from pathlib import Path

import matplotlib
import matplotlib.figure
import matplotlib.pyplot

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from fixture_sweep import make_sweep  # noqa: E402
from selfcorrect.analysis import figures, tables  # noqa: E402
from selfcorrect.analysis.labels import label_sort_key  # noqa: E402
from selfcorrect.analysis.results import load_sweep  # noqa: E402
from selfcorrect.analysis.scaling import answer_codes, budget_accuracy, load_samples, majority_correct, scaling_curves  # noqa: E402


@pytest.fixture(scope="module")
def fixture_sweep(tmp_path_factory) -> Path:
    return make_sweep(tmp_path_factory.mktemp("fig"))


def test_main_table_is_the_mean_over_seeds_with_se(fixture_sweep):
    s = load_sweep(fixture_sweep)
    t = tables.main_table(s, n_boot=500).set_index("label")
    for label in s.labels:
        r = s.runs[s.runs["label"] == label]
        assert t.loc[label, "acc_t2"] == pytest.approx(r["acc_t2"].mean())
        assert t.loc[label, "delta_se"] == pytest.approx(r["delta"].std(ddof=1) / np.sqrt(len(r)))
        assert t.loc[label, "delta_lo"] <= t.loc[label, "delta"] <= t.loc[label, "delta_hi"]
    md = tables.table_markdown(t.reset_index())
    assert md.count("\n| ") == len(s.labels) and "SCoRe" in md
    comp = tables.comparisons(s)
    assert {("score", "sft_self"), ("sft_self", "base")} <= set(zip(comp["a"], comp["b"]))
    assert ((comp["lo"] <= comp["diff"]) & (comp["diff"] <= comp["hi"]) & comp["p_value"].between(0, 1)).all()


def test_figures_needing_missing_arms_are_skipped_with_a_reason(fixture_sweep, tmp_path):
    only_base = tmp_path / "only_base"
    only_base.mkdir()
    for d in fixture_sweep.glob("arm=base,*"):
        shutil.copytree(d, only_base / d.name)
    s = load_sweep(only_base)
    drawn = {name: figures.draw(name, s) for name in figures.FIGURES}
    skipped = {k: v for k, v in drawn.items() if isinstance(v, str)}
    assert set(skipped) == {"3_mismatch_probe", "4_rl_dynamics", "5_mismatch_dial", "9_delta_vs_acc_t1", "11_behaviour_collapse",
                            "14_sparsity", "15_data_source"}
    assert "sft_teacher" in skipped["5_mismatch_dial"] and "['base']" in skipped["4_rl_dynamics"]
    assert skipped["4_rl_dynamics"].startswith("[skipped 4_rl_dynamics]")
    assert all(isinstance(f, matplotlib.figure.Figure) for k, f in drawn.items() if k not in skipped)
    matplotlib.pyplot.close("all")


def test_correction_matrix_heat_map_pools_the_cells_over_seeds(fixture_sweep):
    import json

    s = load_sweep(fixture_sweep)
    fig = figures.fig_correction_matrix(s)
    shown = fig.axes[0].images[0].get_array()
    labels = sorted(s.runs["label"].unique(), key=label_sort_key)
    i = labels.index("score")
    rows = [json.loads(line) for d in fixture_sweep.glob("arm=score,seed=*") for line in open(d / "correction_matrix.jsonl")]
    keep = [r["correct2"] for r in rows if r["row"] == "correct"]
    fix = [r["correct2"] for r in rows if r["row"] == "carry_drop" and r["site"] == "random"]
    ticks = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert shown[i, 0] == pytest.approx(np.mean(keep))
    assert shown[i, ticks.index("carry_drop\n@ random site")] == pytest.approx(np.mean(fix))
    matplotlib.pyplot.close("all")


def test_majority_vote_on_known_answers():
    answers = np.array([["12", "13", "12", None], ["7", "8", "9", "8"], [None, None, None, None], ["5", "6", "6", "5"]], dtype=object)
    correct = np.array([[1, 0, 1, 0], [1, 0, 0, 0], [0, 0, 0, 0], [1, 0, 0, 1]], dtype=bool)
    codes = answer_codes(answers)
    assert codes[0].tolist() == [0, 1, 0, -1] and codes[2].tolist() == [-1] * 4
    # "12" wins; "8" wins (wrong); all abstain is wrong; the 2-2 tie goes to the answer seen first ("5")
    assert majority_correct(codes, correct).tolist() == [True, False, False, True]
    # one sample per problem: expected accuracy is the fraction of right samples
    np.testing.assert_allclose(budget_accuracy(codes, correct, 1, n_draws=4000), correct.mean(1), atol=0.03)
    with pytest.raises(ValueError, match="budget 5"):
        budget_accuracy(codes, correct, 5)


def test_scaling_curves_from_a_cache(fixture_sweep):
    cache = next(fixture_sweep.glob("arm=score,seed=0/scaling_*.jsonl"))
    ids, answers, correct = load_samples(cache)
    assert answers.shape == correct.shape == (len(ids), 32, 3)
    df = scaling_curves(answers, correct, n_draws=8)
    turn1 = df[(df["mode"] == "turn") & (df["budget"] == 1)]["acc"].mean()
    assert turn1 == pytest.approx(correct[:, :, 0].mean())
    assert set(df.loc[df["mode"] == "sequential", "budget"]) == {2, 4, 8, 16, 32}


def test_make_figures_cli_draws_every_figure_and_prints_the_table(fixture_sweep, tmp_path, capsys):
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_figures", Path(__file__).resolve().parents[1] / "experiments" / "make_figures.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.main(["--sweep", str(fixture_sweep), "--out", str(tmp_path), "--scaling-arms", "none", "--n-boot", "500"]) == 0
    out = capsys.readouterr().out
    assert "## Main table" in out and "| SCoRe | 2 |" in out and str(tmp_path / "1_main_table.png") in out
    assert (tmp_path / "main_table.md").read_text().startswith("| Method |")
    assert (tmp_path / "comparisons.csv").exists() and "[skipped" not in out
    # the fixture lacks some primary arms: the table says its Holm family is not the pre-registered one
    assert "**Not the pre-registered family**: no runs of" in (tmp_path / "primary.md").read_text()
    # the fixture's runs carry no first-attempt ablation: the table says so rather than being absent
    assert (tmp_path / "y1_ablation.md").read_text().startswith("(no run carries the first-attempt ablation)")
    for name in figures.FIGURES:  # the fixture has every arm each figure needs
        for ext in ("png", "pdf"):
            assert (tmp_path / f"{name}.{ext}").stat().st_size > 5000


def test_a_one_seed_sweep_gets_its_tables_and_no_seed_level_test(tmp_path, capsys):
    """`make sweep SEEDS=1`: the primary comparisons need two seeds, so the figures step says none and completes."""
    import importlib.util

    from fixture_sweep import make_sweep

    spec = importlib.util.spec_from_file_location("make_figures", Path(__file__).resolve().parents[1] / "experiments" / "make_figures.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    sweep = make_sweep(tmp_path / "one", runs=[("base", 0), ("score", 0)])
    assert mod.main(["--sweep", str(sweep), "--out", str(tmp_path / "fig"), "--scaling-arms", "none", "--n-boot", "200"]) == 0
    assert "None: the seed-level tests need at least 2 seeds, this sweep has 1." in (tmp_path / "fig" / "primary.md").read_text()
    assert (tmp_path / "fig" / "main_table.md").exists()


def test_primary_md_names_its_preregistration_and_titles_the_pooled_seeds_exploratory():
    import importlib.util

    from selfcorrect.analysis import verdicts

    spec = importlib.util.spec_from_file_location("make_figures", Path(__file__).resolve().parents[1] / "experiments" / "make_figures.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    title, source = mod.primary_header("arithmetic", set(range(10, 20)), verdicts.CONFIRMATORY, {"77151a5"})
    assert title.startswith("Pre-registered primary comparisons, arithmetic testbed")
    assert source == ("Predictions and margins: docs/preregistration/2026-12-08_confirmatory_replication.md "
                      "(seeds 10–19; this sweep's seeds 10–19)")
    title, source = mod.primary_header("arithmetic", set(range(20)), verdicts.CONFIRMATORY, {"66d7474", "77151a5"})
    assert title.startswith("Primary comparisons on seeds outside their pre-registration's (an exploratory reading)")
    assert source.endswith("this sweep's seeds 0–19, outside them: an exploratory reading; runs from 2 commits: 66d7474, 77151a5)")


def test_primary_md_names_comparisons_tested_on_fewer_seeds_than_the_sweep_has():
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_figures", Path(__file__).resolve().parents[1] / "experiments" / "make_figures.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    t = pd.DataFrame({"comparison": ["score − base", "score − sft_self"], "n_seeds": [10, 9]})
    assert mod.fewer_seeds_note(t, 10) == ("**On fewer seeds than the sweep's 10**: score − sft_self (9): an arm lacks "
                                           "complete runs of some seeds.\n\n")
    assert mod.fewer_seeds_note(t, 9) == "" and mod.fewer_seeds_note(t.iloc[:0], 10) == ""
