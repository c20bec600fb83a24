"""`make sweep`'s driver (selfcorrect.sweeps.sweep): the runs it plans are the runs Hydra launches, and
its progress line counts them and estimates what is left."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from selfcorrect.sweeps.sweep import REAL_TESTBEDS, TESTBEDS, Progress, Sweep, fmt_s, main, planned_runs


@pytest.mark.parametrize("seeds", [3, 10])
def test_the_plan_covers_every_arm_and_seed(seeds):
    for tb in TESTBEDS:
        plan = {r: a for e in tb.experiments for r, a in planned_runs(e, [f"seeds={seeds}"]).items()}
        runs = list(plan)
        assert len(runs) == 18 * seeds  # base + 14 arms + a dial of 3 teachers
        assert runs[:seeds] == [f"arm=base,seed={s}" for s in range(seeds)]  # the base models first
        assert plan[f"arm=score,seed={seeds - 1}"] == "score"
        dial = [a for a in plan.values() if a.startswith("sft_teacher[")]  # the dial's jobs name no arm: the experiment's
        assert len(dial) == 3 * seeds and len(set(dial)) == 3
        shared = planned_runs(tb.shared_base, [f"seeds={seeds}"])  # 3 further seeds of SCoRe and Pair-SFT D+ on seed 0's base
        assert sorted(shared) == sorted(f"arm={a},seed={s}" for a in ("score", "sft_self_plus") for s in (200, 201, 202))


def test_first_seed_moves_every_seed_and_the_shared_base_but_no_run_name_or_setting():
    """`make sweep FIRST_SEED=10` (a confirmatory replication on fresh seeds): the same runs, named the same way, on
    seeds 10-12 (their bases too); the shared-base runs train from seed 10's base."""
    from conftest import compose_config

    tb = TESTBEDS[0]
    moved = {r: a for e in tb.experiments for r, a in planned_runs(e, ["seeds=3", "first_seed=10"]).items()}
    default = {r: a for e in tb.experiments for r, a in planned_runs(e, ["seeds=3"]).items()}
    assert list(moved)[:3] == [f"arm=base,seed={s}" for s in (10, 11, 12)]
    assert {r.replace("seed=1", "seed="): a for r, a in moved.items()} == default  # seed 10 ↔ 0, 11 ↔ 1, 12 ↔ 2
    cfg = compose_config([f"experiment={tb.shared_base}", "arm=score", "seed=201", "first_seed=10"])
    assert cfg.model.pretrain.seed == 10
    run = [f"experiment={tb.experiments[0]}", "arm=score", "seed=10"]  # a run's settings: first_seed is not one
    moved_run, plain_run = (OmegaConf.to_container(compose_config(o), resolve=True) for o in ([*run, "first_seed=10"], run))
    assert moved_run.pop("first_seed") == 10 and plain_run.pop("first_seed") == 0 and moved_run == plain_run
    with pytest.raises(SystemExit, match="first-seed"):
        main(["--dir", "/nonexistent", "--first-seed", "-1"])


def test_shared_base_runs_train_from_seed_0s_base_model():
    from conftest import compose_config

    for tb in TESTBEDS:
        cfg = compose_config([f"experiment={tb.shared_base}", "arm=score", "seed=201"])
        own = compose_config([tb.experiments[0].join(("experiment=", "")), "arm=score", "seed=0"])
        assert cfg.seed == 201 and cfg.model.pretrain.seed == 0 == own.model.pretrain.seed
        assert cfg.model == own.model and cfg.budget.lr == own.budget.lr  # one base model and one learning rate


def test_planned_names_are_the_directories_hydra_makes(tmp_path):
    """Launch the dial multiruns for real (every job stops at config validation: threads=0), and
    compare the directories Hydra created with the plan."""
    for experiment in ("embedded_dial", "answer_first_dial"):
        d = tmp_path / experiment
        cmd = [sys.executable, "-m", "selfcorrect", "-m", f"experiment={experiment}", "seeds=2", "threads=0",
               "tracking.mode=disabled", f"hydra.sweep.dir={d}"]
        res = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "HYDRA_FULL_ERROR": "1"}, timeout=300)
        assert res.returncode != 0 and "threads must be a positive integer" in res.stderr
        made = sorted(p.name for p in d.iterdir() if p.is_dir())
        assert made == sorted(planned_runs(experiment, ["seeds=2"])) and len(made) == 6


def write_run(d: Path, status: str, wall: float | None = None) -> None:
    d.mkdir(parents=True)
    (d / "run.json").write_text(json.dumps({"status": status, **({"wall_s": wall} if wall else {})}))
    if status == "complete":
        (d / "metrics.json").write_text("{}")


def test_progress_counts_states_and_estimates_the_rest(tmp_path):
    planned = {"arm=base,seed=0": "base", "arm=base,seed=1": "base", "arm=score,seed=0": "score",
               "arm=score,seed=1": "score", "arm=sft_self,seed=0": "sft_self"}
    names = list(planned)
    write_run(tmp_path / names[0], "complete", 100.0)
    write_run(tmp_path / names[1], "complete", 120.0)
    write_run(tmp_path / names[2], "complete", 30.0)
    write_run(tmp_path / names[3], "running")
    write_run(tmp_path / names[4], "failed")
    write_run(tmp_path / "arm=other,seed=0", "complete", 1.0)  # not planned: ignored
    p = Progress.read(tmp_path, planned, now=time.time() + 10)
    assert (len(p.complete), p.running, p.failed) == (3, ["arm=score,seed=1"], ["arm=sft_self,seed=0"])
    assert p.remaining_s(finished_here=set()) is None  # nothing finished in this invocation: no estimate
    # the running score run is expected to take score's mean (30 s) and has run ~10 s of it
    assert p.remaining_s(finished_here=set(names[:3])) == pytest.approx(20.0, abs=1.0)
    # an arm that has not finished yet is expected at the mean of the finished trained runs (not the
    # base runs, which build the base models)
    p2 = Progress.read(tmp_path, {**{n: planned[n] for n in names[:3]}, "arm=star,seed=0": "star"})
    assert p2.remaining_s(set(names[:3])) == pytest.approx(30.0)
    assert p2.remaining_s(set(names[:2])) is None  # only base runs finished by this invocation: no estimate yet


def test_durations_read_as_minutes_and_hours():
    assert (fmt_s(59.6), fmt_s(3 * 3600 + 61)) == ("1m00s", "3h01m01s")


def test_the_progress_line_names_each_testbed(tmp_path):
    sweep = Sweep(tmp_path / "s", TESTBEDS, seeds=1, jobs=2, every=60)
    for tb in TESTBEDS:
        sweep.dir(tb).mkdir(parents=True)
        sweep.already[tb.name] = set()
    write_run(sweep.dir(TESTBEDS[0]) / "arm=base,seed=0", "complete", 50.0)
    line = sweep.line()
    # 18 runs of the seed + the 6 shared-base runs (SCoRe and Pair-SFT D+, 3 seeds on seed 0's base)
    assert "arithmetic 1/24 done, 0 running, 0 failed" in line and "answer_first 0/24 done" in line
    assert "ETA after the first trained runs finish" in line  # answer_first has no finished run to estimate from


def test_bad_arguments_are_refused():
    with pytest.raises(SystemExit, match="unknown testbed"):
        main(["--dir", "x", "--testbeds", "nope"])
    with pytest.raises(SystemExit, match="--seeds and --jobs must be >= 1"):
        main(["--dir", "x", "--seeds", "0"])


def test_a_launch_records_its_code_and_how_to_resume(tmp_path, capsys):
    sweep = Sweep(tmp_path / "r", REAL_TESTBEDS, seeds=1, jobs=1, every=60)
    sweep.start()
    sweep.start()  # a resumed launch appends
    lines = [json.loads(x) for x in (tmp_path / "r" / "provenance.jsonl").read_text().splitlines()]
    assert len(lines) == 2 and all(len(x["commit"]) == 40 and "torch" in x["libraries"] for x in lines)
    assert f"resume with: make sweep-real REAL_DIR={tmp_path / 'r'}" in capsys.readouterr().out


def test_a_sweep_with_runs_of_other_code_is_refused_unless_allowed(tmp_path):
    sweep = Sweep(tmp_path / "r", REAL_TESTBEDS, seeds=1, jobs=1, every=60)
    run = tmp_path / "r" / "arm=score,seed=0"
    run.mkdir(parents=True)
    (run / "metrics.json").write_text("{}")
    (run / "run.json").write_text(json.dumps({"status": "complete", "code": {"commit": "0" * 40, "dirty": False}}))
    with pytest.raises(SystemExit, match=f"other code than this checkout's.*{'0' * 40}: 1 runs, e.g. arm=score,seed=0"):
        sweep.start()
    (run / "run.json").write_text(json.dumps({"status": "complete"}))  # made before runs recorded their commit
    with pytest.raises(SystemExit, match="unrecorded: 1 runs"):
        sweep.start()
    Sweep(tmp_path / "r", REAL_TESTBEDS, seeds=1, jobs=1, every=60, allow_mixed=True).start()
    # runs of this checkout's code (commit and dirty flag) resume without a flag
    now = json.loads((tmp_path / "r" / "provenance.jsonl").read_text().splitlines()[-1])
    (run / "run.json").write_text(json.dumps({"status": "complete", "code": {k: now[k] for k in ("commit", "dirty")}}))
    sweep.start()


def test_a_directory_with_complete_runs_of_another_plan_is_refused(tmp_path, capsys):
    """Resuming a FIRST_SEED=10 directory without FIRST_SEED would plan seeds 0-9 into it and pool them with 10-19."""
    run = tmp_path / "r" / "arm=score,seed=0"
    run.mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({"status": "complete"}))
    with pytest.raises(SystemExit, match=r"1 complete runs this launch does not plan \(e.g. arm=score,seed=0\).*seeds 10-10"):
        Sweep(tmp_path / "r", REAL_TESTBEDS, seeds=1, jobs=1, every=60, first_seed=10, allow_mixed=True).start()
    (run / "run.json").write_text(json.dumps({"status": "failed"}))  # an unfinished run is not a result: it is cleared on its rerun
    Sweep(tmp_path / "r", REAL_TESTBEDS, seeds=1, jobs=1, every=60, first_seed=10, allow_mixed=True).start()
    launch = json.loads((tmp_path / "r" / "provenance.jsonl").read_text().splitlines()[-1])
    assert (launch["first_seed"], launch["seeds"]) == (10, 1)
    assert "make sweep-real REAL_DIR=" in capsys.readouterr().out  # FIRST_SEED is a `make sweep` setting only


def test_code_is_named_by_commit_and_dirty_flag():
    from selfcorrect.sweeps.sweep import code_key

    assert code_key({"commit": "a" * 40, "dirty": False}) == "a" * 40
    assert code_key({"commit": "a" * 40, "dirty": True}) == "a" * 40 + " (dirty)"
    assert code_key({"commit": None, "dirty": None}) == code_key({}) == "unrecorded"  # no git checkout: resumable


def test_control_testbeds_name_each_dial_point_and_set_it_in_the_base(tmp_path):
    """make controls: each dial point a testbed with its own directory; its override reaches the runs' config
    (the base model's pretraining, hence its cache key) and names them as Hydra does."""
    from conftest import compose_config
    from selfcorrect.sweeps.sweep import CONTROL_TESTBEDS

    names = [tb.name for tb in CONTROL_TESTBEDS]
    assert len(set(names)) == len(names) == len({tb.suffix for tb in CONTROL_TESTBEDS}) == 9
    read0 = next(tb for tb in CONTROL_TESTBEDS if tb.name == "read_prob_0.0")
    d = tmp_path / "read0"
    cmd = [sys.executable, "-m", "selfcorrect", "-m", "experiment=controls_answer_first", "seeds=1", *read0.overrides,
           "threads=0", "tracking.mode=disabled", f"hydra.sweep.dir={d}"]
    res = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "HYDRA_FULL_ERROR": "1"}, timeout=300)
    assert res.returncode != 0 and "threads must be a positive integer" in res.stderr
    plan = planned_runs("controls_answer_first", ["seeds=1", *read0.overrides])
    assert sorted(p.name for p in d.iterdir() if p.is_dir()) == sorted(plan) and len(plan) == 5
    assert all("read_prob=0.0" in name for name in plan)
    cfg = compose_config(["experiment=controls_answer_first", *read0.overrides])
    assert cfg.model.pretrain.turn2.read_prob == 0.0 and cfg.model.pretrain.turn1.read_prob == 0.0
    same = compose_config(["experiment=controls_arithmetic_same_turn2"])
    assert same.model.pretrain.turn2_rules == same.model.pretrain.turn1_rules
    assert compose_config(["experiment=embedded_sweep"]).model.pretrain.turn2_rules != same.model.pretrain.turn2_rules
    scaled = next(tb for tb in CONTROL_TESTBEDS if tb.name == "offline_data_16x_answer_first")
    assert set(planned_runs("controls_offline_data_answer_first", ["seeds=1", *scaled.overrides]).values()) == {"sft_self_plus", "star_plus"}
