import json
import math
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import yaml

from fixture_sweep import make_run, make_sweep, record
from selfcorrect.analysis.labels import run_label
from selfcorrect.analysis.results import ConfigMismatchError, IncompleteRunError, load_sweep
from selfcorrect.evaluation.metrics import summarize
from selfcorrect.evaluation.probe import probe_metrics, probe_record
from selfcorrect.tasks.arithmetic import ArithmeticTask


@pytest.fixture(scope="module")
def fixture_sweep(tmp_path_factory) -> Path:
    return make_sweep(tmp_path_factory.mktemp("fixture"))


@pytest.fixture
def sweep_copy(fixture_sweep, tmp_path) -> Path:
    return Path(shutil.copytree(fixture_sweep, tmp_path / "sweep"))


def designed_records(task, ids):
    """40 problems: 30 right then 10 wrong at t1; 4 of the wrong fixed, 2 of the right broken."""
    problems = [task.make_problem(*map(int, i.split("+"))) for i in ids]
    recs = []
    for i, p in enumerate(problems):
        right, wrong = task.write(p), task.write(p, {0: "sum_slip"})
        y1 = right if i < 30 else wrong
        y2 = wrong if i < 2 else right if i < 34 else y1
        recs.append(record(task, p, y1, y2))
    return recs


def test_loader_recomputes_known_metrics(sweep_copy):
    run = sweep_copy / "arm=base,seed=0"
    ids = [json.loads(line)["id"] for line in open(run / "generations.jsonl")]
    recs = designed_records(ArithmeticTask(), ids)
    with open(run / "generations.jsonl", "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in recs)
    probe = [json.loads(line) for line in open(run / "probe_base.jsonl")]
    with open(run / "probe_base.jsonl", "w") as f:  # the probe's own episodes are the test episodes
        f.writelines(json.dumps(probe_record(row, rec)) + "\n" for row, rec in zip(probe, recs))
    (run / "correction_matrix.jsonl").unlink()
    (run / "self_conditioning.jsonl").unlink()
    (run / "metrics.json").write_text(json.dumps(summarize(recs)))  # without the probe block
    with pytest.warns(UserWarning, match="arm=base,seed=0"):
        s = load_sweep(sweep_copy)
    row = s.runs.set_index("run").loc["arm=base,seed=0"]
    assert row["acc_t1"] == pytest.approx(30 / 40)
    assert row["acc_t2"] == pytest.approx(32 / 40)
    assert row["delta_i2c"] == pytest.approx(4 / 40) and row["delta_c2i"] == pytest.approx(2 / 40)
    assert row["delta"] == pytest.approx(2 / 40)
    assert row["correction_rate_own"] == pytest.approx(4 / 10)
    e = s.errors[(s.errors["run"] == "arm=base,seed=0")].set_index("kind")
    assert e.loc["sum_slip", "errors_t1"] == 10 and e.loc["sum_slip", "errors_fixed"] == 4
    # only the probe block, absent from the new metrics.json, is flagged; its own rate is recomputed
    assert set(s.disagreements["metric"]) == {f"probe/base/{k}" for k in (
        "correction_rate_offline", "correction_rate_own", "mismatch_gap", "n_wrong_offline", "n_wrong_own", "n",
        "correction_rate_offline_matched", "correction_rate_own_matched", "mismatch_gap_matched", "n_matched")}
    assert row["probe/base/correction_rate_own"] == pytest.approx(4 / 10)
    # matched: problems 30..39 are wrong at t1 (34..39 stay wrong); restricted to those the offline y1 also got wrong
    matched = [i for i, r in enumerate(probe) if not r["offline_correct1"] and i >= 30]
    assert row["probe/base/n_matched"] == len(matched) > 0
    assert row["probe/base/correction_rate_own_matched"] == pytest.approx(sum(i < 34 for i in matched) / len(matched))
    assert row["probe/base/correction_rate_offline_matched"] == pytest.approx(sum(probe[i]["correct2"] for i in matched) / len(matched))
    assert s.grid("base", "acc_t1").shape == (2, 40)  # two seeds × the shared problems


def test_every_fixture_run_recomputes_to_its_metrics_json(fixture_sweep):
    s = load_sweep(fixture_sweep)
    assert len(s.runs) == 12 and s.incomplete.empty and s.disagreements.empty
    assert s.labels[0] == "base" and "sft_teacher[error_model=carry_drop]" in s.labels
    # the per-problem grid reproduces the per-run metric exactly
    for label in s.labels:
        rows = s.runs[s.runs["label"] == label].sort_values("seed")
        np.testing.assert_allclose(s.grid(label, "delta").mean(1), rows["delta"].to_numpy())
    assert {"val/probe/base/correction_rate_offline", "train/reward_t2"} <= set(s.history["metric"])


def test_a_new_metric_is_one_place_summarize(sweep_copy):
    """Adding a metric is adding it to `metrics.summarize`: the run writes what it returns, the sweep
    loader recomputes every key of it from the records and compares (here: each scalar key in turn,
    tampered with, is flagged by name), and the runs table carries every scalar it returns. Nothing
    downstream lists the metrics by hand."""
    path = sweep_copy / "arm=score,seed=1"
    records = [json.loads(line) for line in (path / "generations.jsonl").read_text().splitlines()]
    keys = [k for k, v in summarize(records).items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    saved = json.loads((path / "metrics.json").read_text())
    assert len(keys) > 10 and set(keys) <= set(load_sweep(sweep_copy).runs.columns)
    for key in (keys[0], keys[len(keys) // 2], keys[-1]):
        (path / "metrics.json").write_text(json.dumps({**saved, key: saved[key] + 0.5}))
        with pytest.warns(UserWarning, match="arm=score,seed=1"):
            flagged = load_sweep(sweep_copy).disagreements
        assert flagged["metric"].tolist() == [key]
    (path / "metrics.json").write_text(json.dumps(saved))


def test_disagreeing_metrics_json_is_flagged_and_recomputed_values_win(sweep_copy):
    path = sweep_copy / "arm=score,seed=1" / "metrics.json"
    m = json.loads(path.read_text())
    true_acc = m["acc_t1"]
    m["acc_t1"] = 0.99
    path.write_text(json.dumps(m))
    with pytest.warns(UserWarning, match="arm=score,seed=1"):
        s = load_sweep(sweep_copy)
    d = s.disagreements
    assert d.to_dict("records") == [{"run": "arm=score,seed=1", "metric": "acc_t1", "saved": 0.99, "recomputed": true_acc}]
    assert s.runs.set_index("run").loc["arm=score,seed=1", "acc_t1"] == pytest.approx(true_acc)


def test_incomplete_runs_are_refused_by_name_or_listed_never_dropped(sweep_copy):
    from fixture_sweep import base_config

    cfg = base_config()
    make_run(sweep_copy, "score", 2, cfg, status="running")
    make_run(sweep_copy, "sft_self", 2, cfg, status="failed")
    with pytest.raises(IncompleteRunError) as err:
        load_sweep(sweep_copy)
    msg = str(err.value)
    assert "arm=score,seed=2" in msg and "'running'" in msg and "missing" in msg
    assert "arm=sft_self,seed=2" in msg and "RuntimeError: boom" in msg
    assert "allow_incomplete" in msg
    s = load_sweep(sweep_copy, allow_incomplete=True)
    assert sorted(s.incomplete["run"]) == ["arm=score,seed=2", "arm=sft_self,seed=2"]
    assert len(s.runs) == 12 and 2 not in set(s.runs["seed"])
    # a finished status with metrics.json gone is just as incomplete
    (sweep_copy / "arm=base,seed=1" / "metrics.json").unlink()
    with pytest.raises(IncompleteRunError, match=r"arm=base,seed=1.*missing metrics.json"):
        load_sweep(sweep_copy)


def test_probe_and_correction_matrix_are_recomputed_from_their_records(sweep_copy):
    run = sweep_copy / "arm=score,seed=0"
    saved = json.loads((run / "metrics.json").read_text())
    assert saved["probe/base"]["n_matched"] > 0 and saved["correction_matrix"]["n_keep"] == 20
    rows = [json.loads(line) for line in open(run / "correction_matrix.jsonl")]
    flipped = next(i for i, r in enumerate(rows) if r["row"] == "sum_slip" and r["site"] == "random")
    rows[flipped]["correct2"] = not rows[flipped]["correct2"]
    with open(run / "correction_matrix.jsonl", "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    probe = [json.loads(line) for line in open(run / "probe_base.jsonl")]
    both_wrong = next(i for i, r in enumerate(probe) if not r["offline_correct1"] and not r["own_correct1"])
    probe[both_wrong]["own_correct2"] = not probe[both_wrong]["own_correct2"]
    with open(run / "probe_base.jsonl", "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in probe)
    with pytest.warns(UserWarning, match="arm=score,seed=0"):
        s = load_sweep(sweep_copy)
    d = s.disagreements.set_index("metric")
    n = saved["correction_matrix"]["n"]["sum_slip"]["random"]
    assert d.loc["correction_matrix/fix_rate/sum_slip/random", "recomputed"] == pytest.approx(
        saved["correction_matrix"]["fix_rate"]["sum_slip"]["random"] + (1 if rows[flipped]["correct2"] else -1) / n)
    assert set(d.index) == {"correction_matrix/fix_rate/sum_slip/random", "probe/base/correction_rate_own_matched",
                            "probe/base/mismatch_gap_matched", "probe/base/correction_rate_own", "probe/base/mismatch_gap"}
    assert s.runs.set_index("run").loc["arm=score,seed=0", "probe/base/correction_rate_own_matched"] == pytest.approx(
        probe_metrics(probe)["correction_rate_own_matched"])


def test_self_conditioning_and_calibration_are_recomputed_from_their_records(sweep_copy):
    run = sweep_copy / "arm=score,seed=0"
    saved = json.loads((run / "metrics.json").read_text())
    chains = [json.loads(line) for line in open(run / "self_conditioning.jsonl")]
    i = next(i for i, r in enumerate(chains) if r["k"] == 2)
    chains[i]["correct"][1] = not chains[i]["correct"][1]
    with open(run / "self_conditioning.jsonl", "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in chains)
    recs = [json.loads(line) for line in open(run / "generations.jsonl")]
    recs[0]["logp1"] = math.log(0.5) if recs[0]["logp1"] > math.log(0.5) else math.log(0.99)
    with open(run / "generations.jsonl", "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in recs)
    with pytest.warns(UserWarning, match="arm=score,seed=0"):
        s = load_sweep(sweep_copy)
    d = s.disagreements.set_index("metric")
    n2 = saved["self_conditioning"]["n"]["2"]
    assert d.loc["self_conditioning/fix_rate/2", "recomputed"] == pytest.approx(
        saved["self_conditioning"]["fix_rate"]["2"] + (1 if chains[i]["correct"][1] else -1) / n2)
    assert "calibration/brier" in d.index and "calibration/mean_confidence" in d.index
    assert not any(k.startswith(("self_conditioning/fix_rate/1", "behaviour/")) for k in d.index)


def test_runs_with_mismatched_configs_or_problems_are_refused(sweep_copy, tmp_path):
    path = sweep_copy / "arm=sft_self,seed=1" / "config.yaml"
    cfg = yaml.safe_load(path.read_text())
    cfg["model"]["architecture"]["n_layer"] = 4
    path.write_text(yaml.safe_dump(cfg))
    with pytest.raises(ConfigMismatchError, match=r"arm=sft_self,seed=1.*model\.architecture\.n_layer = 4 vs 2"):
        load_sweep(sweep_copy)

    other = Path(shutil.copytree(sweep_copy.parent / "sweep", tmp_path / "other"))
    cfg["model"]["architecture"]["n_layer"] = 2
    (other / "arm=sft_self,seed=1" / "config.yaml").write_text(yaml.safe_dump(cfg))
    gen = other / "arm=score,seed=0" / "generations.jsonl"
    rows = [json.loads(line) for line in open(gen)]
    with open(gen, "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows[::-1])  # same problems, other order: not paired
    with pytest.raises(ConfigMismatchError, match=r"arm=score,seed=0.*test problems differ"):
        load_sweep(other)


def test_run_labels_keep_variants_apart():
    assert run_label("arm=base,seed=3", {"arm": {"name": "base"}}) == "base"
    cfg = {"arm": {"name": "sft_teacher", "error_model": "mixed"}}
    assert run_label("arm=sft_teacher,arm.error_model=mixed,seed=0", cfg) == "sft_teacher[error_model=mixed]"
    assert run_label("2026-01-01_00-00-00_sft_teacher_s0_x", cfg) == "sft_teacher[error_model=mixed]"
    assert run_label("arm=score,arm.alpha=5,seed=0", {"arm": {"name": "score"}}) == "score[alpha=5]"


def test_fixture_record_is_the_evaluators_record():
    from selfcorrect.evaluation.scoring import score
    from selfcorrect.models.policy import Episode, Turn

    task = ArithmeticTask()
    p = task.make_problem(357, 468)
    for y1, y2 in [(task.write(p), task.write(p, {1: "carry_drop"})), ("garbage", task.write(p, final_bug="final_copy"))]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ep = Episode(p, [Turn([], [], y1), Turn([], [], y2)])
        assert record(task, p, y1, y2) == score(task, ep).record()


# --- budget equality across the trained arms of a sweep -----------------------------------------
def _budget_runs(rows):
    from types import SimpleNamespace

    import pandas as pd

    df = pd.DataFrame(rows)
    return SimpleNamespace(runs=df, labels=sorted(df["label"].unique()))


def test_budget_mismatches_flag_the_arm_that_differs_and_nothing_else():
    from selfcorrect.analysis.results import budget_mismatches

    block = {"budget/episodes": 3072, "budget/gradient_steps": 96, "budget/sequences_per_step": 32,
             "budget/optimizer": "adamw", "budget/lr": 2e-4, "budget/lr_schedule": "constant"}
    base = {**block, "budget/episodes": 0, "budget/gradient_steps": 0}
    rows = [{"label": "base", "arm": "base", "seed": s, **base} for s in (0, 1)]
    rows += [{"label": a, "arm": a, "seed": s, **block} for a in ("score", "sft_self", "star") for s in (0, 1)]
    assert budget_mismatches(_budget_runs(rows)) == {}
    # each arm has its own tuned learning rate (`make tune`): a different lr alone is not a mismatch
    rows.append({"label": "star", "arm": "star", "seed": 2, **block, "budget/lr": 1e-5})
    assert budget_mismatches(_budget_runs(rows)) == {}
    rows.append({"label": "star_plus", "arm": "star_plus", "seed": 0, **block, "budget/lr": 5e-4, "budget/episodes": 12800})
    flagged = budget_mismatches(_budget_runs(rows))
    assert list(flagged) == ["star_plus"]
    assert "episodes 12800 vs 3072" in flagged["star_plus"] and "lr" not in flagged["star_plus"]
