"""Follow one run's configuration from `run.run` down, and count what a reader of the code meets (issue 31's
done-when: at most 8 modules entered, at most 6 climbs back up).

    python experiments/call_path.py [--arms base,sft_self,score] [--show]

Each arm runs once, tiny (a base model of a few pretraining steps, a handful of updates, a few test
problems), under `sys.setprofile`. What is counted, by call site (a call made in a loop counts once: the
count is what a reader following the code meets, not how often it runs):

- **the configuration's path**: every call from one `selfcorrect` module into a function of another that
  receives the configuration: the composed `DictConfig` (or a node of it), the parsed `RunSpec` or any part
  of it (each block's spec, its plain dicts), or an object that holds one of those (the `ArmContext`, a
  trainer or policy whose attributes hold a spec) as an argument, `self` included. The caller is the
  nearest `selfcorrect` frame below the call, so a call made back into our code by a library (TRL's
  trainer calling our hooks) is charged to the module that called the library.
- **modules entered**: the distinct modules on that path, `run.py` included.
- **moves**: the distinct call sites on it (caller module ≠ callee module).
- **climbs back up**: the moves into a higher layer (`LAYERS`: entry point, sweeps, config, training,
  evaluation, models, tasks, runtime) or into a module that imports the caller, directly or through others:
  the caller cannot import it, so the call came up through a function or object passed down (a callback).
- **outside the family's folder**: the training path's moves (caller in `training/offline/` or
  `training/rl/`) into a module outside its own folder other than `models/`, `evaluation/`, `runtime/`,
  `tasks/` (the one data loader) and the training layer's own shared modules (`training/*.py`: the arm
  context, the budget, the checkpoint rule), i.e. into the other family, `sweeps/`, `analysis/`, the entry
  point or the config parser.

Prints one table per arm and, with `--show`, the moves in the order they were first made.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

from omegaconf import DictConfig, ListConfig, OmegaConf

import selfcorrect

# the checkout whose code runs (PYTHONPATH=<checkout>/src traces another commit)
SRC = Path(selfcorrect.__file__).resolve().parents[1]
PKG = SRC / "selfcorrect"
TINY = [
    "model.pretrain.steps=300", "model.pretrain.batch_size=32", "model.pretrain.n_problems=4000",
    "budget.episodes=32", "budget.gradient_steps=2", "budget.sequences_per_step=16",
    "eval.n_problems=16", "eval.n_monitor=8", "eval.monitor_every=1", "eval.probe_every=1",
    "eval.correction_matrix.n_problems=8", "eval.self_conditioning.n_problems=8", "eval.y1_ablation.n_problems=8",
    "tracking.mode=disabled", "threads=1",
    "++arm.probe.n_train=4", "++arm.probe.n_val=4", "++arm.probe.val_problems=16",
]
LIMITS = {"modules": 8, "climbs": 6}
SHARED_LAYERS = ("models", "evaluation", "runtime", "tasks")


def module_name(path: Path) -> str:
    rel = path.resolve().relative_to(SRC).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


# the package's layers, top first (docs/layout.md: each imports only the layers below it); the arms' training
# functions and the task and model kinds are imported by name, so the import graph alone misses some of it
LAYERS = ("__main__", "run", "sweeps", "config", "training", "evaluation", "models", "tasks", "runtime", "paths")


def layer(module: str) -> int:
    """The rank of `module`'s layer (0 = the top); an unlisted module (analysis) ranks with the entry point."""
    part = module.split(".")[1] if "." in module else module
    return LAYERS.index(part) if part in LAYERS else 0


def import_graph() -> dict[str, set[str]]:
    """Each selfcorrect module → the selfcorrect modules it imports by `import` statements (a package import
    resolved to the submodule when `from package import submodule`)."""
    mods = {module_name(p): p for p in PKG.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in mods.items():
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                deps |= {a.name for a in node.names if a.name in mods}
            elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("selfcorrect"):
                for a in node.names:
                    sub = f"{node.module}.{a.name}"
                    deps.add(sub if sub in mods else node.module)
        graph[name] = {d for d in deps if d in mods and d != name}
    return graph


def importers_of(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """Each module → every module that imports it, directly or through others."""
    def closure(m, seen):
        for d in graph.get(m, ()):
            if d not in seen:
                seen.add(d)
                closure(d, seen)
        return seen
    deps = {m: closure(m, set()) for m in graph}
    return {m: {n for n in graph if m in deps[n]} for m in graph}


class ConfigPath:
    """The profiler: collects the configuration's moves while `run.run` runs."""

    def __init__(self, cfg: DictConfig):
        self.ids: set[int] = set()
        self.keep: list = []           # the configuration's objects stay alive while their ids are used
        self.add(cfg)
        self.moves: dict[tuple, dict] = {}

    def add(self, obj) -> None:
        """`obj` and every container or spec reachable from it."""
        if id(obj) in self.ids or isinstance(obj, (str, bytes, int, float, bool, type(None), Path)):
            return
        if isinstance(obj, (DictConfig, ListConfig, Mapping, list, tuple)) or dataclasses.is_dataclass(obj):
            self.ids.add(id(obj))
            self.keep.append(obj)
            if isinstance(obj, (DictConfig, ListConfig)):
                return  # its nodes are checked by type (`carries`)
            values = (obj.values() if isinstance(obj, Mapping) else obj if isinstance(obj, (list, tuple))
                      else [getattr(obj, f.name) for f in dataclasses.fields(obj)])
            for v in values:
                self.add(v)

    def carries(self, obj, raw_only: bool = False) -> bool:
        """`obj` is the configuration or holds it (one attribute deep); `raw_only`: the raw `DictConfig`."""
        def known(v) -> bool:
            return isinstance(v, (DictConfig, ListConfig)) or (not raw_only and id(v) in self.ids)
        if known(obj):
            return True
        attrs = getattr(obj, "__dict__", None)
        if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            attrs = {f.name: getattr(obj, f.name, None) for f in dataclasses.fields(obj)}
        return isinstance(attrs, dict) and any(known(v) for v in attrs.values())

    def profile(self, frame, event, arg):
        if event == "return":
            code = frame.f_code
            if code.co_name == "parse" and code.co_filename.endswith("selfcorrect/config.py"):
                self.add(arg)  # the RunSpec and its parts join the configuration
            elif code.co_name == "to_container" and "omegaconf" in code.co_filename and self.carries(frame.f_locals.get("cfg")):
                self.add(arg)  # the configuration as plain values (wherever it is converted)
            return
        if event != "call" or not frame.f_code.co_filename.startswith(str(PKG)):
            return
        code = frame.f_code
        nargs = code.co_argcount + code.co_kwonlyargcount + bool(code.co_flags & 4) + bool(code.co_flags & 8)
        args = [frame.f_locals.get(n) for n in code.co_varnames[:nargs]]
        if not any(self.carries(a) for a in args):
            return
        caller = frame.f_back
        while caller is not None and not caller.f_code.co_filename.startswith(str(PKG)):
            caller = caller.f_back
        if caller is None:
            return
        src, dst = module_name(Path(caller.f_code.co_filename)), module_name(Path(code.co_filename))
        if src == dst:
            return
        key = (src, caller.f_code.co_name, caller.f_lineno, dst, code.co_qualname)
        move = self.moves.setdefault(key, {"order": len(self.moves), "raw": False})
        move["raw"] |= any(self.carries(a, raw_only=True) for a in args)


def trace(arm: str, cache: Path, out: Path) -> ConfigPath:
    from hydra import compose, initialize_config_dir

    from selfcorrect import run
    conf_dir = run.CONF_DIR  # noqa: an older checkout keeps it there

    with initialize_config_dir(config_dir=str(conf_dir), version_base="1.3"):
        known = compose("config")
        # an older checkout (a before/after comparison) lacks some of today's keys: their overrides are left out
        tiny = [o for o in TINY if o.startswith("++") or OmegaConf.select(known, o.split("=")[0], default="<missing>") != "<missing>"]
        cfg = compose("config", overrides=[*tiny, f"arm={arm}", f"paths.cache_dir={cache}"])
    path = ConfigPath(cfg)
    sys.setprofile(path.profile)
    try:
        run.run(cfg, out / arm)
    finally:
        sys.setprofile(None)
    return path


FAMILIES = ("selfcorrect.training.offline", "selfcorrect.training.rl")


def family(module: str) -> str | None:
    """The training family folder `module` is in, if any."""
    return next((f for f in FAMILIES if module == f or module.startswith(f + ".")), None)


def shared_training(module: str) -> bool:
    """A module of the training layer itself (`training/*.py`: the arm context, budget, checkpoint rule,
    catalog), shared by both families."""
    return module.startswith("selfcorrect.training.") and module.count(".") == 2


def count(path: ConfigPath, importers: dict[str, set[str]], raw_only: bool) -> dict:
    moves = sorted((k for k in path.moves if path.moves[k]["raw"] or not raw_only), key=lambda k: path.moves[k]["order"])
    modules = ["selfcorrect.run"] + [m for k in moves for m in (k[0], k[3])]
    climbs = [k for k in moves if layer(k[3]) < layer(k[0]) or k[3] in importers.get(k[0], set())]
    outside = [k for k in moves if family(k[0]) and not (
        family(k[3]) == family(k[0]) or shared_training(k[3]) or k[3].split(".")[1] in SHARED_LAYERS)]
    return {"moves": moves, "modules": list(dict.fromkeys(modules)), "climbs": climbs, "outside": outside}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--arms", default="base,sft_self,score", help="comma-separated arm names (conf/arm/)")
    ap.add_argument("--show", action="store_true", help="list every move in the order first made")
    args = ap.parse_args()
    importers = importers_of(import_graph())
    short = lambda m: m.removeprefix("selfcorrect.")  # noqa: E731
    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        for arm in args.arms.split(","):
            path = trace(arm, Path(tmp) / "cache", Path(tmp) / "runs")
            for what, raw_only in (("the raw DictConfig", True), ("the configuration, raw or parsed", False)):
                c = count(path, importers, raw_only)
                print(f"\n## arm={arm}, following {what}: {len(c['modules'])} modules entered (≤ {LIMITS['modules']}), "
                      f"{len(c['moves'])} moves, {len(c['climbs'])} climbs back up (≤ {LIMITS['climbs']}), "
                      f"{len(c['outside'])} training moves outside the family's folder")
                print("modules:", ", ".join(short(m) for m in c["modules"]))
                for k in c["climbs"]:
                    print(f"  climb: {short(k[0])}.{k[1]}:{k[2]} → {short(k[3])}.{k[4]}")
                for k in c["outside"]:
                    print(f"  outside: {short(k[0])}.{k[1]}:{k[2]} → {short(k[3])}.{k[4]}")
                if args.show:
                    for k in c["moves"]:
                        print(f"  {short(k[0])}.{k[1]}:{k[2]} → {short(k[3])}.{k[4]}")
                failed |= len(c["modules"]) > LIMITS["modules"] or len(c["climbs"]) > LIMITS["climbs"] or bool(c["outside"])
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
