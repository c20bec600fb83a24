"""`make tune`'s rule (selfcorrect.sweeps.tune): per arm, the lr with the highest mean validation Acc@t2
at the kept checkpoint over the tuning seeds; ties to the smaller rate; a failed run counts as 0."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from selfcorrect.sweeps.tune import choose, read_runs, write


def row(key, lr, seed, acc2, acc1=0.5, status="complete"):
    arm = key.partition("-")[0]
    return {"run": f"{key},{lr},{seed}", "lr_key": key, "arm": arm, "lr": lr, "seed": seed, "status": status,
            "rule": "val_acc_t2", "step": 12, "val_acc_t1": acc1 if status == "complete" else None,
            "val_acc_t2": acc2 if status == "complete" else None}


def test_the_rule_picks_the_best_mean_validation_acc_t2():
    rows = [row("score", 1e-5, 100, 0.60), row("score", 1e-5, 101, 0.62),
            row("score", 1e-4, 100, 0.70), row("score", 1e-4, 101, 0.50),   # mean 0.60 < 0.61
            row("sft_self", 1e-5, 100, 0.8), row("sft_self", 3e-5, 100, 0.8),  # a tie: the smaller rate
            row("star", 1e-4, 100, 0.9, status="failed"), row("star", 1e-4, 101, 0.9),  # mean (0 + 0.9) / 2 < 0.5
            row("star", 3e-5, 100, 0.5), row("star", 3e-5, 101, 0.5),
            row("sft_teacher-mixed", 3e-4, 100, 0.4), row("base", 1e-5, 100, 0.3)]
    chosen, table = choose(rows)
    assert chosen == {"score": 1e-5, "sft_self": 1e-5, "star": 3e-5, "sft_teacher-mixed": 3e-4}  # the base is not tuned
    assert table["star"][1e-4] == (0.5, 0.45, 2, 1) and table["score"][1e-4][1] == 0.6  # (Acc@t1, Acc@t2, runs, failed)


def test_the_table_is_written_for_the_sweep_to_read(tmp_path):
    rows = [row("score", lr, s, acc) for lr, acc in ((1e-5, 0.5), (1e-4, 0.7)) for s in (100, 101)]
    rows += [row("sft_teacher-random_digit", 3e-5, s, 0.6) for s in (100, 101)]
    chosen, table = choose(rows)
    conf, md = tmp_path / "conf" / "arithmetic.yaml", tmp_path / "md" / "arithmetic.md"
    write("arithmetic", Path("outputs/tune/x"), chosen, table, conf, md, [1e-5, 3e-5, 1e-4])
    assert yaml.safe_load(conf.read_text()) == {"base": 1e-5, "score": 1e-4, "sft_teacher-random_digit": 3e-5}
    text = md.read_text()
    assert "| SCoRe | 50.0 / 50.0 | — | **50.0 / 70.0** | 1e-04 |" in text and "Teacher-error SFT [random_digit]" in text


def test_tuning_runs_are_read_from_their_directories(tmp_path):
    d = tmp_path / "arm=score,budget.lr=1e-05,seed=100"
    d.mkdir()
    (d / "config.yaml").write_text(yaml.safe_dump({"arm": {"name": "score", "lr_key": "score"}, "budget": {"lr": 1e-5}, "seed": 100}))
    (d / "run.json").write_text(json.dumps({"status": "complete"}))
    (d / "metrics.json").write_text(json.dumps({"checkpoint": {"rule": "val_acc_t2", "step": 24, "val_acc_t1": 0.5, "val_acc_t2": 0.6}}))
    (r,) = read_runs(tmp_path)
    assert (r["lr_key"], r["lr"], r["seed"], r["step"], r["val_acc_t2"], r["status"]) == ("score", 1e-5, 100, 24, 0.6, "complete")
