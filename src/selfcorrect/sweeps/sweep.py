"""`make sweep` and `make tune`: both embedded testbeds at once, with progress, an ETA and
per-testbed wall times.

    python -m selfcorrect.sweeps.sweep --dir outputs/sweeps/<stamp> [--seeds 10] [--first-seed 0] [--jobs 2] [--every 60]
    python -m selfcorrect.sweeps.sweep --mode tune --dir outputs/tune/<stamp>     # then selfcorrect.sweeps.tune per testbed

A testbed is a list of Hydra multiruns into one sweep directory (every arm, then the teacher
dial), then its summary and figures (`experiments/summarize_sweep.py`, `make_figures.py`). The
two testbeds run side by side, each through Hydra's joblib launcher with `--jobs` workers, so
that neither core waits: when one testbed is between multiruns or drawing its figures, the
other's workers have the machine. Jobs start in the order of the experiment's arm list, which
puts the longest first (base models, then the RL arms), so the workers finish together.

Progress, at least every `--every` seconds, on the terminal and in `<sweep dir>/progress.log`:
runs complete / planned per testbed, running and failed runs, elapsed time and an ETA: the
expected wall time of every run not yet finished (the mean of the finished runs of its arm, of
any arm before one has finished), divided by the workers. The planned runs are Hydra's own
expansion of each experiment's sweeper parameters (`planned_runs`), so a run directory is
matched by name. Re-running into a sweep directory resumes it (`selfcorrect.runtime.resume`): complete
runs are skipped and count as done, and the ETA uses only the runs this invocation finishes.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from selfcorrect.paths import CONF_DIR, SHARED_BASE_DIR
from selfcorrect.runtime.provenance import provenance

ROOT = Path(CONF_DIR).parent


@dataclass(frozen=True)
class Testbed:
    name: str
    suffix: str                 # the sweep directory is <dir><suffix>
    experiments: tuple[str, ...]
    tuning: tuple[str, ...]     # the experiments of `make tune` (--mode tune)
    shared_base: str | None = None  # runs trained from one base model, into <sweep dir>/shared_base (sweep mode)
    # one process per run, one run at a time (`python -m selfcorrect ... hydra.run.dir=<sweep>/<run>`) instead of
    # Hydra's joblib multirun: a real model's run holds GBs (the model, its optimizer, vLLM's KV cache) that a
    # shared worker process would keep between runs
    isolated: bool = False
    # overrides every run of the testbed gets (top-level keys such as `threads` cannot be set by an experiment file:
    # config.yaml's own keys come after it in the defaults list)
    overrides: tuple[str, ...] = ()


TESTBEDS = (
    Testbed("arithmetic", "", ("embedded_sweep", "embedded_dial"), ("tune_arithmetic", "tune_arithmetic_dial"),
            "embedded_shared_base"),
    Testbed("answer_first", "-answer_first", ("answer_first_sweep", "answer_first_dial"),
            ("tune_answer_first", "tune_answer_first_dial"), "answer_first_shared_base"),
)
# `make sweep-real`: the pre-registered real-model experiment (SmolLM2-135M-Instruct on a reasoning-gym task),
# never part of `make sweep`'s default testbeds; its summary is experiments/summarize_real.py
REAL_TESTBEDS = (
    Testbed("smollm2", "", ("smollm2_reasoning_gym_base", "smollm2_reasoning_gym"), (), isolated=True,
            overrides=("threads=2",)),  # one job: vLLM and the trainer share both cores
)
# `make controls` (issue 33, item 2; conf/experiment/controls_*.yaml): what the testbeds build in, each dial point a
# testbed of its own (its own directory, so an arm's label means one dial point), never part of `make sweep`
READ_PROBS = ("0.0", "0.03", "0.1", "0.3")  # answer-first's turn2.read_prob; 0.1 is the testbed's own value
DATA_SCALES = (4, 16)                        # the offline arms' episodes x the matched 3,072 (1x: the main controls runs)
CONTROL_TESTBEDS = (
    *(Testbed(f"read_prob_{v}", f"-read_prob_{v}", ("controls_answer_first",), (), overrides=(f"model.pretrain.turn2.read_prob={v}",))
      for v in READ_PROBS),
    Testbed("arithmetic_same_turn2", "-arithmetic_same_turn2", ("controls_arithmetic_same_turn2",), ()),
    *(Testbed(f"offline_data_{k}x_{tb}", f"-offline_data_{k}x_{tb}", (f"controls_offline_data_{tb}",), (),
              overrides=(f"budget.episodes={3072 * k}",))
      for tb in ("arithmetic", "answer_first") for k in DATA_SCALES),
)
MODES = ("sweep", "tune")


def planned_jobs(experiment: str, overrides: Sequence[str] = ()) -> dict[str, tuple[str, list[str]]]:
    """{run-directory name: (arm label, the job's overrides)}, in launch order, of `python -m selfcorrect -m
    experiment=<experiment> *overrides`: the experiment's `hydra.sweeper.params` expanded as Hydra's
    BasicSweeper does, each job named by its overrides as `hydra.job.override_dirname` names it
    (sorted, excluded keys dropped); the label is the job's arm (the experiment's own arm when the
    job sets none), with its teacher error model when the job sets one."""
    from hydra import compose, initialize_config_dir
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    fixed = [f"experiment={experiment}", *overrides]
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("config", overrides=fixed, return_hydra_config=True)
    params = [f"{k}={v}" for k, v in cfg.hydra.sweeper.params.items()]
    jobs = BasicSweeper.split_arguments(OverridesParser.create().parse_overrides(params + fixed), None)[0]
    exclude = set(cfg.hydra.job.config.override_dirname.exclude_keys)
    sep = cfg.hydra.job.config.override_dirname.item_sep
    plan: dict[str, tuple[str, list[str]]] = {}
    for job in jobs:
        kv = dict(o.split("=", 1) for o in job)
        arm = kv.get("arm", cfg.arm.name)
        named = [o for o in job if o.split("=", 1)[0] not in exclude and not o.startswith(("hydra.", "hydra/"))]
        label = f"{arm}[{kv['arm.error_model']}]" if "arm.error_model" in kv else arm
        plan[sep.join(sorted(named))] = (label, [o for o in job if not o.startswith("experiment=")])
    return plan


def planned_runs(experiment: str, overrides: Sequence[str] = ()) -> dict[str, str]:
    """{run-directory name: arm label} of `planned_jobs`."""
    return {name: label for name, (label, _) in planned_jobs(experiment, overrides).items()}


@dataclass
class Progress:
    """What one testbed's sweep directory says about its planned runs."""

    planned: dict[str, str]  # run name → arm label (`planned_runs`)
    complete: list[str] = field(default_factory=list)
    running: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    walls: dict[str, float] = field(default_factory=dict)      # complete run → wall_s
    started: dict[str, float] = field(default_factory=dict)    # running run → seconds since its start

    @classmethod
    def read(cls, sweep_dir: Path, planned: dict[str, str], now: float | None = None) -> "Progress":
        now = time.time() if now is None else now
        p = cls(planned)
        for name in planned:
            status = _status(sweep_dir / name)
            state = status.get("status")
            if state == "complete" and (sweep_dir / name / "metrics.json").exists():
                p.complete.append(name)
                p.walls[name] = float(status.get("wall_s") or 0.0)
            elif state == "running":
                p.running.append(name)
                p.started[name] = now - (sweep_dir / name / "run.json").stat().st_mtime
            elif state == "failed":
                p.failed.append(name)
        return p

    def remaining_s(self, finished_here: set[str]) -> float | None:
        """Expected wall seconds of the runs not finished yet (None before a trained run has finished
        in this invocation): each run at the mean wall time of its arm's runs finished by this invocation."""
        by_arm: dict[str, list[float]] = {}
        for name in self.complete:
            if name in finished_here:
                by_arm.setdefault(self.planned[name], []).append(self.walls[name])
        if not any(arm != "base" for arm in by_arm) and any(arm != "base" for arm in self.planned.values()):
            return None  # only base runs (which build the base models) have finished: nothing to estimate the rest from
        # an arm with no finished run yet: the mean of the finished trained runs (the base runs, which
        # build base models, take several times longer)
        trained = [w for arm, ws in by_arm.items() if arm != "base" for w in ws]
        every = trained or [w for ws in by_arm.values() for w in ws]
        overall = sum(every) / len(every)
        total = 0.0
        for name, arm in self.planned.items():
            if name in self.complete or name in self.failed:
                continue
            ws = by_arm.get(arm)
            expected = sum(ws) / len(ws) if ws else overall
            total += max(expected - self.started.get(name, 0.0), 0.0)
        return total


def _status(run_dir: Path) -> dict:
    try:
        return json.loads((run_dir / "run.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def code_key(code: dict) -> str:
    """How a run's code is named: its commit (or "unrecorded": no git checkout, or a run from before run.json had
    one), "(dirty)" when the tree had uncommitted code changes."""
    return (code.get("commit") or "unrecorded") + (" (dirty)" if code.get("dirty") else "")


def commits_of(sweep_dir: Path, names) -> dict[str, list[str]]:
    """{commit (+ " (dirty)") or "unrecorded": the complete runs made from it} of a sweep directory's runs."""
    out: dict[str, list[str]] = {}
    for name in names:
        status = _status(sweep_dir / name)
        if status.get("status") != "complete":
            continue
        out.setdefault(code_key(status.get("code") or {}), []).append(name)
    return out


def fmt_s(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    return f"{h}h{rem // 60:02d}m{rem % 60:02d}s" if h else f"{rem // 60}m{rem % 60:02d}s"


class Sweep:
    """One invocation of `make sweep`: the testbeds' pipelines in threads, a progress printer."""

    def __init__(self, base_dir: Path, testbeds: Sequence[Testbed], seeds: int, jobs: int, every: float,
                 python: str = sys.executable, extra: Sequence[str] = (), mode: str = "sweep", allow_mixed: bool = False,
                 first_seed: int = 0):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.base_dir, self.testbeds, self.seeds, self.jobs, self.every = base_dir, list(testbeds), seeds, jobs, every
        self.python, self.extra, self.mode, self.allow_mixed = python, list(extra), mode, allow_mixed
        self.first_seed = first_seed
        self.overrides = [f"seeds={seeds}", f"first_seed={first_seed}", *self.extra]
        # a multirun testbed's own overrides (a control's dial point) name its runs; an isolated one's are run settings
        self.plans = {tb.name: {f"{sub}{r}": a for e, sub in self.experiments(tb)
                                for r, a in planned_runs(e, self.overrides if tb.isolated else [*self.overrides, *tb.overrides]).items()}
                      for tb in self.testbeds}
        self.t0 = time.time()
        self.already: dict[str, set[str]] = {}
        self.state: dict[str, str] = {tb.name: "waiting" for tb in self.testbeds}
        self.wall: dict[str, float] = {}
        self.errors: dict[str, str] = {}
        self._lock = threading.Lock()

    def dir(self, tb: Testbed) -> Path:
        return Path(f"{self.base_dir}{tb.suffix}")

    def experiments(self, tb: Testbed) -> list[tuple[str, str]]:
        """(experiment, the sub-directory of the sweep directory it runs into: "" or "shared_base/")."""
        if self.mode == "tune":
            return [(e, "") for e in tb.tuning]
        return [(e, "") for e in tb.experiments] + ([(tb.shared_base, f"{SHARED_BASE_DIR}/")] if tb.shared_base else [])

    def complete_outside_plan(self, tb: Testbed) -> list[str]:
        """Complete runs in the testbed's directories (its own and each experiment's sub-directory) that the plan lacks."""
        found = []
        for sub in dict.fromkeys(sub for _, sub in self.experiments(tb)):
            d = self.dir(tb) / sub
            if d.is_dir():
                found += [f"{sub}{r.name}" for r in sorted(d.iterdir())
                          if r.is_dir() and _status(r).get("status") == "complete"]
        return [name for name in found if name not in self.plans[tb.name]]

    def analysis(self, tb: Testbed) -> list[tuple[str, str, list[str]]]:
        """(label, output file, command) of the steps after a testbed's runs."""
        d = self.dir(tb)
        if tb in REAL_TESTBEDS:
            return [("summary", "summary.out", [self.python, str(ROOT / "experiments/summarize_real.py"), str(d)])]
        if tb in CONTROL_TESTBEDS:  # a dial point is not a sweep with a primary family: its write-up reads all points
            return []
        if self.mode == "tune":
            return [("tuning table", "tune.out", [self.python, "-m", "selfcorrect.sweeps.tune", str(d), "--testbed", tb.name])]
        return [("summary", "summary.out", [self.python, str(ROOT / "experiments/summarize_sweep.py"), str(d)]),
                ("figures", "figures.out", [self.python, str(ROOT / "experiments/make_figures.py"), "--sweep", str(d)])]

    # --- the pipeline of one testbed -------------------------------------------------------------
    def pipeline(self, tb: Testbed) -> None:
        """The testbed's multiruns (their output to sweep.log), then its summary and figures
        (summary.out, figures.out); stops at the first step that fails."""
        d, t0 = self.dir(tb), time.time()
        if tb.isolated:  # one process per planned run, in order (the run's own directory: resume as in a multirun)
            steps = [(f"run {name}", "sweep.log", [self.python, "-m", "selfcorrect", f"experiment={e}", *job, *tb.overrides,
                                                   f"hydra.run.dir='{d / sub / name}'"])
                     for e, sub in self.experiments(tb) for name, (_, job) in planned_jobs(e, self.overrides).items()]
        else:
            steps = [(f"runs {e}", "sweep.log", [self.python, "-m", "selfcorrect", "-m", f"experiment={e}", *self.overrides, *tb.overrides,
                                                f"hydra.sweep.dir={d / sub}", "hydra/launcher=joblib", f"hydra.launcher.n_jobs={self.jobs}"])
                     for e, sub in self.experiments(tb)]
        steps += self.analysis(tb)
        try:
            for label, out, cmd in steps:
                self.state[tb.name] = label
                with open(d / out, "a") as sink:
                    sink.write(f"\n$ {' '.join(cmd)}\n")
                    sink.flush()
                    rc = subprocess.call(cmd, stdout=sink, stderr=subprocess.STDOUT, cwd=ROOT)
                if rc != 0 and self.mode == "tune" and label.startswith("runs"):
                    self.errors[tb.name] = f"{label}: some runs failed (they count as diverged in the tuning table; see {d / out})"
                elif rc != 0:
                    self.errors[tb.name] = f"{label} exited with {rc} (see {d / out})"
                    return
            self.wall[tb.name] = time.time() - t0
            (d / "wall_time.txt").write_text(f"testbed {tb.name}: {self.wall[tb.name]:.0f} s\n")
        finally:
            self.state[tb.name] = "done" if tb.name in self.wall else "stopped"

    # --- progress --------------------------------------------------------------------------------
    def line(self) -> str:
        now = time.time()
        parts, etas = [], []
        for tb in self.testbeds:
            p = Progress.read(self.dir(tb), self.plans[tb.name], now)
            here = set(p.complete) - self.already[tb.name]
            part = (f"{tb.name} {len(p.complete)}/{len(p.planned)} done, {len(p.running)} running, "
                    f"{len(p.failed)} failed [{self.state[tb.name]}]")
            parts.append(part)
            if self.state[tb.name] in ("done", "stopped"):
                continue
            left = p.remaining_s(here)
            etas.append(None if left is None else left / self.jobs)
        eta = ("ETA " + fmt_s(max(etas)) + " for the runs") if etas and None not in etas else (
            "ETA after the first trained runs finish" if etas else "runs finished")
        return f"[{self.mode} +{fmt_s(now - self.t0)}] " + " | ".join(parts) + f" | {eta}"

    def report(self, text: str) -> None:
        with self._lock:
            print(text, flush=True)
            for tb in self.testbeds:
                with open(self.dir(tb) / "progress.log", "a") as f:
                    f.write(text + "\n")

    def start(self) -> None:
        """The directories, what this launch runs on (`provenance.jsonl`: one line per launch; each run's
        run.json has its own `code`), the plan and how to resume it. A sweep whose complete runs come from another
        commit than this checkout's (or from a dirty tree, or recorded none) is refused unless `allow_mixed`: one
        sweep, one code."""
        code = provenance()
        for tb in self.testbeds:  # another plan's runs (e.g. seeds 0-9 in a FIRST_SEED=10 directory) are never mixed in
            outside = self.complete_outside_plan(tb)
            if outside:
                raise SystemExit(
                    f"{self.dir(tb)} holds {len(outside)} complete runs this launch does not plan (e.g. {', '.join(outside[:3])}): "
                    f"it was made with other settings (seeds {self.first_seed}-{self.first_seed + self.seeds - 1} planned now; "
                    "SEEDS / FIRST_SEED / overrides differ?). Resume it with the settings that made it, or use a new directory.")
        if not self.allow_mixed:
            for tb in self.testbeds:
                made = commits_of(self.dir(tb), self.plans[tb.name])
                other = {k: v for k, v in made.items() if k != code_key(code)}
                if other:
                    raise SystemExit(
                        f"{self.dir(tb)} holds complete runs made from other code than this checkout's "
                        f"({code_key(code)}): "
                        + "; ".join(f"{k}: {len(v)} runs, e.g. {v[0]}" for k, v in other.items())
                        + ". Resume it at that commit, start a new sweep directory, or pass --allow-mixed-commits "
                          "(ALLOW_MIXED=1 with make) to mix them knowingly (the summary lists the commits).")
        for tb in self.testbeds:
            self.dir(tb).mkdir(parents=True, exist_ok=True)
            self.already[tb.name] = set(Progress.read(self.dir(tb), self.plans[tb.name]).complete)
            # what each launch of this sweep ran on (each run's run.json has its own `code` too)
            with open(self.dir(tb) / "provenance.jsonl", "a") as f:
                f.write(json.dumps({"launched": time.strftime("%Y-%m-%dT%H:%M:%S"), "first_seed": self.first_seed,
                                    "seeds": self.seeds, **code}) + "\n")
        plan = ", ".join(f"{tb.name}: {len(self.plans[tb.name])} runs ({len(self.already[tb.name])} already complete) "
                         f"in {self.dir(tb)}" for tb in self.testbeds)
        what = (f"{self.seeds} seeds ({self.first_seed}-{self.first_seed + self.seeds - 1})" if self.mode == "sweep"
                else "tuning (lr_grid × tune_seeds)")
        self.report(f"[{self.mode}] {what}, {self.jobs} jobs per testbed; {plan}")
        real = all(tb in REAL_TESTBEDS for tb in self.testbeds)
        controls = all(tb in CONTROL_TESTBEDS for tb in self.testbeds)
        target, var = ("tune", "TUNE_DIR") if self.mode == "tune" else ("sweep-real", "REAL_DIR") if real \
            else ("controls", "CONTROLS_DIR") if controls else ("sweep", "SWEEP_DIR")
        seeds = f" FIRST_SEED={self.first_seed}" if self.first_seed and target == "sweep" else ""
        self.report(f"[{self.mode}] if interrupted, resume with: make {target} {var}={self.base_dir}{seeds}")

    def run(self) -> int:
        self.start()
        threads = [threading.Thread(target=self.pipeline, args=(tb,), daemon=True) for tb in self.testbeds]
        for t in threads:
            t.start()
        last = 0.0
        while any(t.is_alive() for t in threads):
            time.sleep(1.0)
            if time.time() - last >= self.every:
                self.report(self.line())
                last = time.time()
        self.report(self.line())
        for tb in self.testbeds:
            if tb.name in self.wall:
                shown = self.dir(tb) / ("summary.out" if tb in REAL_TESTBEDS else
                                        "figures/main_table.md" if self.mode == "sweep" else "tune.out")
                print(f"\n## {tb.name} ({self.dir(tb)})\n\n{shown.read_text() if shown.exists() else ''}", flush=True)
                where = (f"tables and figures in {self.dir(tb) / 'figures'}, per-run summary in {self.dir(tb) / 'summary.out'}"
                         if self.mode == "sweep" else f"learning rates in conf/tuned_lr/{tb.name}.yaml, table in experiments/tuning/{tb.name}.md")
                self.report(f"testbed {tb.name}: {self.wall[tb.name]:.0f} s ({fmt_s(self.wall[tb.name])}); {where}")
                made = commits_of(self.dir(tb), self.plans[tb.name])
                self.report(f"testbed {tb.name}: runs made from " + ", ".join(f"{k} ({len(v)})" for k, v in made.items()))
            else:
                self.report(f"testbed {tb.name}: NOT COMPLETE: {self.errors.get(tb.name, 'stopped')}")
        self.report(f"[{self.mode}] wall time {fmt_s(time.time() - self.t0)}")
        return 0 if len(self.wall) == len(self.testbeds) else 1


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", type=Path, required=True, help="sweep directory of the first testbed (the others add their suffix)")
    ap.add_argument("--seeds", type=int, default=10, help="seeds per arm (the `seeds` Hydra knob)")
    ap.add_argument("--first-seed", type=int, default=0,
                    help="the first seed (the `first_seed` Hydra knob): seeds first..first+seeds-1; a confirmatory replication "
                         "takes seeds no sweep has run (e.g. 10 after the default 0-9)")
    ap.add_argument("--jobs", type=int, default=2, help="joblib workers per testbed (one CPU thread each)")
    ap.add_argument("--every", type=float, default=60.0, help="seconds between progress lines")
    ap.add_argument("--testbeds", default=",".join(tb.name for tb in TESTBEDS),
                    help=f"comma-separated testbeds (default: the embedded ones; {', '.join(tb.name for tb in REAL_TESTBEDS)}: make sweep-real; "
                         f"{', '.join(tb.name for tb in CONTROL_TESTBEDS)}: make controls)")
    ap.add_argument("--mode", choices=MODES, default="sweep", help="sweep: the experiment sweeps; tune: `make tune`")
    ap.add_argument("--allow-mixed-commits", action="store_true",
                    help="resume a sweep whose complete runs come from another commit (the summary lists the commits)")
    ap.add_argument("overrides", nargs="*", help="further Hydra overrides for every run (e.g. eval.n_problems=500)")
    args = ap.parse_args(argv)
    if args.seeds < 1 or args.jobs < 1 or args.every <= 0 or args.first_seed < 0:
        raise SystemExit(f"--seeds and --jobs must be >= 1, --first-seed >= 0 and --every > 0, got {args.seeds}, {args.jobs}, "
                         f"{args.first_seed}, {args.every}")
    names = [n.strip() for n in args.testbeds.split(",") if n.strip()]
    known = {tb.name: tb for tb in (*TESTBEDS, *REAL_TESTBEDS, *CONTROL_TESTBEDS)}
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise SystemExit(f"unknown testbed(s) {unknown or names}; known: {sorted(known)}")
    return Sweep(args.dir, [known[n] for n in names], args.seeds, args.jobs, args.every, extra=args.overrides, mode=args.mode,
                 allow_mixed=args.allow_mixed_commits, first_seed=args.first_seed).run()


if __name__ == "__main__":
    sys.exit(main())
