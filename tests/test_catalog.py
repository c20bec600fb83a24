"""Arms are declared once, in their YAML (selfcorrect.training.catalog): adding an arm is one file."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from selfcorrect.training import catalog

CONF = Path(__file__).resolve().parents[1] / "conf"


def test_every_arm_file_declares_its_training_function_family_name_and_order():
    arms = catalog.arms()
    assert set(arms) == {p.stem for p in (CONF / "arm").glob("*.yaml")}
    assert list(arms)[0] == "base" and arms["base"].family == "none"
    assert set(catalog.of_family("rl")) == {"score", "score_no_stage1", "score_no_shaping", "score_shaping_control",
                                            "rl_single_turn", "rl_multi_turn_naive", "rl_multi_turn_sum"}
    assert arms["sft_self_plus"].train == arms["sft_self"].train  # inherited through its defaults
    for a in arms.values():
        assert callable(a.trainer()), a.name
    orders = [a.order for a in arms.values()]
    assert orders == sorted(orders) and len(set(orders)) == len(orders)


@pytest.fixture
def conf_copy(tmp_path, monkeypatch):
    arm_dir = tmp_path / "arm"
    shutil.copytree(CONF / "arm", arm_dir)
    monkeypatch.setattr(catalog, "ARM_DIR", arm_dir)
    catalog.arms.cache_clear()
    yield arm_dir
    catalog.arms.cache_clear()


def test_a_new_arm_is_one_yaml_file(conf_copy):
    (conf_copy / "score_slow.yaml").write_text(
        "defaults:\n  - score@_here_\n  - _self_\nname: score_slow\ndisplay: \"SCoRe, slow (throwaway)\"\norder: 44\n")
    arm = catalog.arm("score_slow")
    assert (arm.family, arm.display, arm.train, arm.data) == ("rl", "SCoRe, slow (throwaway)", catalog.arm("score").train, "own_online")
    assert "score_slow" in catalog.of_family("rl") and list(catalog.arms()).index("score_slow") == list(catalog.arms()).index("score") + 4


@pytest.mark.parametrize("text, message", [
    ("name: broken\n", "lacks \\['train', 'family', 'display', 'order', 'data'\\]"),
    ("name: other\ntrain: a:b\nfamily: rl\ndisplay: x\norder: 1\ndata: own_online\n", "is named 'other'"),
    ("name: broken\ntrain: a:b\nfamily: magic\ndisplay: x\norder: 1\ndata: own_online\n", "family must be one of"),
    ("name: broken\ntrain: a:b\nfamily: rl\ndisplay: x\norder: 1\ndata: telepathy\n", "data must be one of .*'telepathy'"),
])
def test_a_bad_arm_file_is_refused_naming_it(conf_copy, text, message):
    (conf_copy / "broken.yaml").write_text(text)
    with pytest.raises(ValueError, match=message):
        catalog.arms()


def test_unknown_arm_is_named():
    with pytest.raises(ValueError, match="unknown arm 'telepathy'"):
        catalog.arm("telepathy")
