"""experiments/call_path.py: the counts of issue 31's done-when (modules entered, moves, climbs back up, training
moves outside the family's folder) from a recorded path, and the import graph they rest on."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("call_path", ROOT / "experiments" / "call_path.py")
call_path = importlib.util.module_from_spec(spec)
spec.loader.exec_module(call_path)


def test_the_import_graph_resolves_submodule_imports_and_has_no_cycle():
    graph = call_path.import_graph()
    assert "selfcorrect.runtime.checkpoint" in graph["selfcorrect.run"]  # `from selfcorrect.runtime import checkpoint`
    assert "selfcorrect.config" in graph["selfcorrect.run"]
    importers = call_path.importers_of(graph)
    assert "selfcorrect.training.rl.grpo_run" in importers["selfcorrect.training.rl.grpo_engine"]
    assert call_path.layer("selfcorrect.run") < call_path.layer("selfcorrect.training.rl.arms") < call_path.layer("selfcorrect.runtime.records")
    assert all(m not in importers[m] for m in graph)  # no module imports itself through others


class Recorded:
    """A path as `ConfigPath` records it: (caller module, caller function, line, callee module, callee)."""

    def __init__(self, moves):
        self.moves = {k: {"order": i, "raw": raw} for i, (k, raw) in enumerate(moves)}


def test_counts_modules_moves_climbs_and_moves_outside_the_family():
    sc = "selfcorrect."
    moves = [
        ((sc + "run", "run", 1, sc + "config", "parse"), True),
        ((sc + "run", "_run_main", 2, sc + "training.rl.arms", "train_score"), False),
        ((sc + "training.rl.arms", "train_score", 3, sc + "training.rl.grpo_run", "train_grpo"), False),
        ((sc + "training.rl.grpo_run", "train", 4, sc + "training.budget", "Budget.spent"), False),  # the layer's own
        ((sc + "training.rl.grpo_run", "train", 5, sc + "models.policy", "Policy.rollout"), False),   # a shared layer
        ((sc + "training.rl.grpo_run", "train", 6, sc + "training.offline.sft", "sft_train"), False),  # the other family
        ((sc + "training.rl.grpo_run", "train", 7, sc + "run", "_evaluate"), False),                  # a callback up
        ((sc + "training.rl.grpo_engine", "_rollout", 8, sc + "training.rl.grpo_run", "rollouts_for_step"), False),
    ]
    importers = call_path.importers_of(call_path.import_graph())
    everything = call_path.count(Recorded(moves), importers, raw_only=False)
    assert len(everything["moves"]) == 8
    assert everything["modules"] == [sc + m for m in ("run", "config", "training.rl.arms", "training.rl.grpo_run",
                                                         "training.budget", "models.policy", "training.offline.sft",
                                                         "training.rl.grpo_engine")]
    assert [k[2] for k in everything["climbs"]] == [7, 8]  # up a layer; back into the module that imports the caller
    assert [k[2] for k in everything["outside"]] == [6, 7]
    raw = call_path.count(Recorded(moves), importers, raw_only=True)
    assert raw["modules"] == [sc + "run", sc + "config"] and not raw["climbs"]
