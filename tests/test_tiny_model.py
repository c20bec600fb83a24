import pytest
import torch
from transformers import AutoModelForCausalLM

from selfcorrect.models.tiny_model import base_model_spec, build_base_model, pretraining_texts
from selfcorrect.runtime.cache import artifact_facts, cached_artifact, config_hash
from selfcorrect.tasks import make_task
from selfcorrect.tasks.arithmetic import ArithmeticTask

from conftest import TINY_OVERRIDES, compose_config


def _weights(path):
    return AutoModelForCausalLM.from_pretrained(path).state_dict()


def test_build_is_bit_for_bit_reproducible_and_seed_dependent(tmp_path):
    task = ArithmeticTask()
    cfg = compose_config(TINY_OVERRIDES).model
    a = _weights(build_base_model(cfg, task, tmp_path / "a"))
    b = _weights(build_base_model(cfg, task, tmp_path / "b"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    other = compose_config([*TINY_OVERRIDES, "seed=1"]).model
    c = _weights(build_base_model(other, task, tmp_path / "a"))
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_build_is_cached_by_config_hash(tmp_path):
    task = ArithmeticTask()
    cfg = compose_config(TINY_OVERRIDES).model
    first = build_base_model(cfg, task, tmp_path)
    stamp = (first / "model.safetensors").stat().st_mtime_ns
    assert build_base_model(cfg, task, tmp_path) == first
    assert (first / "model.safetensors").stat().st_mtime_ns == stamp
    facts = artifact_facts(first.parent)
    assert facts["spec"]["pretrain"]["steps"] == 20 and facts["facts"]["wall_s"] > 0


@pytest.mark.parametrize("testbed, corpus, key", [
    ("arithmetic", {"turn1_rules", "turn2_rules"}, "034e2691465c7cdd"),
    ("answer_first", {"turn1", "turn2"}, "c8e4a9e9514bf020"),
])
def test_the_task_config_gives_the_base_its_corpus_under_the_same_cache_key(testbed, corpus, key):
    """A task's corpus settings sit in its task config (conf/task/<task>.yaml sets them in
    model.pretrain), and the base model's cache key hashes the same spec as when they sat in the
    model config: the bases built so far are found again. Change a pin only to rebuild a base."""
    cfg = compose_config([f"+testbed={testbed}"])
    spec = base_model_spec(cfg.model, make_task(cfg.task))
    assert corpus <= set(spec["pretrain"]) and config_hash(spec) == key


def test_cached_artifact_builds_once_and_leaves_nothing_half_written(tmp_path):
    calls = []

    def build(out):
        calls.append(out)
        (out / "data.txt").write_text("x")
        return {"ok": True}

    p1 = cached_artifact(tmp_path, "thing", {"a": 1}, build)
    p2 = cached_artifact(tmp_path, "thing", {"a": 1}, build)
    assert p1 == p2 and len(calls) == 1 and p1.name == config_hash({"a": 1})

    def broken(out):
        (out / "partial.txt").write_text("half")
        raise RuntimeError("boom")

    try:
        cached_artifact(tmp_path, "thing", {"a": 2}, broken)
    except RuntimeError:
        pass
    leftovers = [p.name for p in (tmp_path / "thing").iterdir() if not p.name.endswith(".lock")]
    assert leftovers == [p1.name]


@pytest.mark.parametrize("three_turn_every", [0, 1, 2])
def test_pretraining_traces_are_multi_turn_and_on_train_problems(three_turn_every):
    """Two attempts per trace, except the batches picked by `three_turn_every` (three)."""
    task = ArithmeticTask()
    from selfcorrect.models.char_tokenizer import build_char_tokenizer
    from selfcorrect.models.tiny_model import ALPHABET

    tok = build_char_tokenizer(ALPHABET + task.revise_instruction)
    pre = compose_config([*TINY_OVERRIDES, "model.pretrain.batch_size=8", f"model.pretrain.three_turn_every={three_turn_every}"]).model.pretrain
    import random
    texts, lens = pretraining_texts(task, tok, pre, 40, random.Random(0))
    counts = []
    for i, (text, n) in enumerate(zip(texts, lens)):
        x, rest = text[:n], text[n:]
        assert task.split_of(x.rstrip("=")) == "train"
        assert rest.endswith("<eos>")
        attempts = rest[: -len("<eos>")].split("<eos>[revise]")
        batch = i // 8
        expected = 3 if three_turn_every and batch % three_turn_every == three_turn_every - 1 else 2
        assert len(attempts) == expected, (i, rest)
        counts.append(len(attempts))
        problem = task.make_problem(*map(int, x.rstrip("=").split("+")))
        assert all(task.verify(problem, y).well_formed for y in attempts)
    assert (3 in counts) == bool(three_turn_every)
