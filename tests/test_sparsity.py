"""Update sparsity, effective rank and overlap of updated sets (selfcorrect.evaluation.mechanisms.sparsity)
on known cases, and the sweep analysis on a tiny saved model pair."""

import json
import math

import pytest
import torch

from selfcorrect.evaluation.mechanisms import sparsity as sp

KEYS = ["0", "1e-06", "1e-05", "0.0001"]


def _state(seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"b.weight": torch.randn(6, 5, generator=g), "a.bias": torch.randn(7, generator=g),
            "c.weight": torch.randn(3, 4, 2, generator=g)}


def _clone(state):
    return {k: v.clone() for k, v in state.items()}


def test_tolerance_keys():
    assert [sp.tol_key(t) for t in sp.TOLERANCES] == KEYS
    with pytest.raises(ValueError):
        sp.tol_key(-1e-5)


def test_identical_state_dicts_are_unchanged_everywhere():
    base = _state()
    r = sp.update_sparsity(base, _clone(base))
    assert r["tolerances"] == KEYS
    assert r["n_params"] == 30 + 7 + 24 and r["n_tensors"] == 3 and r["n_matrices"] == 1
    for d in ("fp32", "bf16"):
        assert r["unchanged"][d] == {k: 1.0 for k in KEYS}
        for e in r["tensors"].values():
            assert e["unchanged"][d] == {k: 1.0 for k in KEYS}
    assert r["tensors"]["b.weight"]["effective_rank"] == 0.0  # no update at all
    assert not sp.updated_mask(base, _clone(base), 0.0, "fp32").any()


def test_k_of_n_changed_by_a_large_amount():
    base = _state()
    new = _clone(base)
    new["b.weight"].view(-1)[[0, 7, 29]] += 3.0
    new["c.weight"].view(-1)[5] -= 2.0
    r = sp.update_sparsity(base, new)
    n, k = 61, 4
    for d in ("fp32", "bf16"):
        for key in KEYS:
            assert r["unchanged"][d][key] == pytest.approx((n - k) / n)
        assert r["tensors"]["b.weight"]["unchanged"][d]["0"] == pytest.approx(27 / 30)
        assert r["tensors"]["a.bias"]["unchanged"][d]["0"] == 1.0
    mask = sp.updated_mask(base, new, 1e-5, "bf16")
    # sorted-name order: a.bias (7), b.weight (30), c.weight (24)
    assert mask.dtype == torch.bool and mask.numel() == n
    assert mask.nonzero().flatten().tolist() == [7 + 0, 7 + 7, 7 + 29, 37 + 5]
    s = sp.summary(r)
    assert s["sparsity/unchanged/fp32/0"] == pytest.approx(57 / 61)
    assert s["sparsity/n_params"] == 61
    assert tuple(s) == sp.SUMMARY_KEYS
    assert len(json.dumps(s)) < 2000


def test_tolerance_thresholds_in_fp32():
    base = {"w": torch.zeros(4)}
    new = {"w": torch.tensor([0.0, 5e-7, 5e-6, 5e-5])}
    u = sp.update_sparsity(base, new)["unchanged"]["fp32"]
    assert u == {"0": 0.25, "1e-06": 0.5, "1e-05": 0.75, "0.0001": 1.0}


def test_small_change_is_invisible_in_bf16():
    g = torch.Generator().manual_seed(1)
    # bf16-representable weights of magnitude in [1, 2), both signs
    w = (1 + torch.rand(500, generator=g)).bfloat16().float().clamp(1, 1.9921875)
    w = w * torch.where(torch.rand(500, generator=g) < 0.5, -1.0, 1.0)
    base = {"w": w}
    r = sp.update_sparsity(base, {"w": w + w.abs() / 1000})
    assert r["unchanged"]["fp32"]["0"] == 0.0 and r["unchanged"]["fp32"]["1e-06"] == 0.0
    assert r["unchanged"]["bf16"]["0"] == 1.0
    assert not sp.updated_mask(base, {"w": w + w.abs() / 1000}, 0.0, "bf16").any()
    assert sp.updated_mask(base, {"w": w + w.abs() / 1000}, 0.0, "fp32").all()
    # a change of |w|/100 exceeds half a bf16 step (|w|/256 at most) and is seen in bf16 too
    assert sp.update_sparsity(base, {"w": w + w.abs() / 100})["unchanged"]["bf16"]["0"] == 0.0


def test_effective_rank_known_cases():
    g = torch.Generator().manual_seed(2)
    u, v = torch.randn(64, 1, generator=g), torch.randn(1, 32, generator=g)
    assert sp.effective_rank(u @ v) == pytest.approx(1.0, abs=1e-3)
    q, _ = torch.linalg.qr(torch.randn(48, 48, generator=g))
    assert sp.effective_rank(q) == pytest.approx(48.0, rel=1e-6)
    q2, _ = torch.linalg.qr(torch.randn(64, 32, generator=g))  # orthonormal columns
    assert sp.effective_rank(q2) == pytest.approx(32.0, rel=1e-6)
    assert sp.effective_rank(q2.T) == pytest.approx(32.0, rel=1e-6)
    # singular values (3, 1): p = (3/4, 1/4)
    expected = math.exp(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25)))
    assert sp.effective_rank(torch.diag(torch.tensor([3.0, 1.0, 0.0]))) == pytest.approx(expected, rel=1e-9)
    assert sp.effective_rank(torch.zeros(3, 3)) == 0.0


def test_effective_rank_in_update_sparsity_and_means():
    g = torch.Generator().manual_seed(3)
    base = {"m1.weight": torch.randn(20, 10, generator=g), "m2.weight": torch.randn(8, 8, generator=g),
            "v.bias": torch.randn(5, generator=g)}
    q, _ = torch.linalg.qr(torch.randn(8, 8, generator=g))
    new = {"m1.weight": base["m1.weight"] + torch.randn(20, 1, generator=g) @ torch.randn(1, 10, generator=g),
           "m2.weight": base["m2.weight"] + q, "v.bias": base["v.bias"] + 1}
    r = sp.update_sparsity(base, new)
    assert r["n_matrices"] == 2 and "effective_rank" not in r["tensors"]["v.bias"]
    assert r["tensors"]["m1.weight"]["effective_rank_ratio"] == pytest.approx(0.1, abs=1e-3)
    assert r["tensors"]["m2.weight"]["effective_rank_ratio"] == pytest.approx(1.0, abs=1e-3)
    er = r["effective_rank"]
    assert er["mean"] == pytest.approx((1 + 8) / 2, abs=1e-3)
    assert er["weighted_mean"] == pytest.approx((200 * 1 + 64 * 8) / 264, abs=1e-3)
    assert er["ratio_mean"] == pytest.approx((0.1 + 1) / 2, abs=1e-3)
    assert er["ratio_weighted_mean"] == pytest.approx((200 * 0.1 + 64 * 1) / 264, abs=1e-3)


def test_overlap_known_and_self():
    m1 = torch.tensor([1, 1, 0, 0], dtype=torch.bool)
    m2 = torch.tensor([1, 0, 1, 0], dtype=torch.bool)
    o = sp.overlap(m1, m2)
    assert o["o12"] == 0.5 and o["o21"] == 0.5 and o["jaccard"] == pytest.approx(1 / 3)
    assert o["joint"] == 0.25 and o["joint_chance"] == 0.25 and o["o12_chance"] == 0.5
    m3 = torch.tensor([1, 1, 1, 0], dtype=torch.bool)
    o = sp.overlap(m1, m3)
    assert o["o12"] == 1.0 and o["o21"] == pytest.approx(2 / 3)
    assert o["o12_chance"] == 0.75 and o["o21_chance"] == 0.5 and o["joint_chance"] == pytest.approx(0.375)
    s = sp.overlap(m3, m3)
    assert s["o12"] == s["o21"] == s["jaccard"] == 1.0 and s["joint"] == 0.75
    empty = sp.overlap(torch.zeros(4, dtype=torch.bool), m1)
    assert empty["o12"] is None and empty["o21"] == 0.0


def test_overlap_of_independent_masks_is_chance():
    g = torch.Generator().manual_seed(4)
    p, q, n = 0.3, 0.6, 200_000
    m1, m2 = torch.rand(n, generator=g) < p, torch.rand(n, generator=g) < q
    o = sp.overlap(m1, m2)
    assert o["joint"] == pytest.approx(p * q, abs=0.004)
    assert o["joint_chance"] == pytest.approx(p * q, abs=0.004)
    assert o["o12"] == pytest.approx(q, abs=0.01) and o["o21"] == pytest.approx(p, abs=0.01)
    assert o["lift"] == pytest.approx(1.0, abs=0.02)
    # a correlated pair is clearly above chance
    m3 = m1 | (torch.rand(n, generator=g) < 0.1)
    assert sp.overlap(m1, m3)["lift"] > 2.5


def test_overlap_rejects_bad_masks():
    with pytest.raises(ValueError, match="different length"):
        sp.overlap(torch.zeros(4, dtype=torch.bool), torch.zeros(5, dtype=torch.bool))
    with pytest.raises(ValueError, match="bool"):
        sp.overlap(torch.zeros(4), torch.zeros(4))


def test_tied_weights_counted_once():
    g = torch.Generator().manual_seed(5)
    wte = torch.randn(10, 4, generator=g)
    base = {"transformer.wte.weight": wte, "h.weight": torch.randn(4, 4, generator=g), "lm_head.weight": wte}
    new_wte = wte.clone()
    new_wte[0, 0] += 1.0
    new = {"transformer.wte.weight": new_wte, "h.weight": base["h.weight"].clone(), "lm_head.weight": new_wte}
    r = sp.update_sparsity(base, new)
    assert r["n_params"] == 56 and "lm_head.weight" not in r["tensors"]
    assert r["dropped_tied"] == ["lm_head.weight"]
    assert r["unchanged"]["fp32"]["0"] == pytest.approx(55 / 56)
    assert sp.updated_mask(base, new, 0.0, "fp32").numel() == 56
    # sharing lost in a copy: the alias with equal values is still dropped; so is any shared storage
    copied = {k: v.clone() for k, v in base.items()}
    assert sp.update_sparsity(base, copied)["n_params"] == 56
    shared = {"x.weight": wte, "y.weight": wte}
    kept, dropped = sp.drop_tied(shared)
    assert list(kept) == ["x.weight"] and dropped == ["y.weight"]
    # an untied head (different values) is a parameter of its own
    untied = dict(base, **{"lm_head.weight": torch.randn(10, 4, generator=g)})
    assert sp.update_sparsity(untied, _clone(untied))["n_params"] == 96


def test_bad_input_names_the_tensor():
    base = _state()
    new = _clone(base)
    new["b.weight"] = torch.zeros(5, 6)
    with pytest.raises(ValueError, match="b.weight"):
        sp.update_sparsity(base, new)
    new = _clone(base)
    del new["c.weight"]
    with pytest.raises(ValueError, match="c.weight"):
        sp.update_sparsity(base, new)
    with pytest.raises(ValueError, match="extra.bias"):
        sp.updated_mask(base, dict(_clone(base), **{"extra.bias": torch.zeros(2)}), 1e-5)
    with pytest.raises(ValueError, match="dtype"):
        sp.updated_mask(base, _clone(base), 1e-5, "fp16")


def _tiny_gpt2():
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=11, n_positions=8, n_embd=8, n_layer=1, n_head=2, tie_word_embeddings=True)
    return GPT2LMHeadModel(cfg)


def _write_run(run_dir, base_dir, sha, arm, seed, policy, metrics):
    run_dir.mkdir()
    policy.save_pretrained(run_dir / "policy")
    (run_dir / "run.json").write_text(json.dumps({"status": "complete", "arm": arm, "seed": seed,
                                                  "base_model": str(base_dir), "base_weights_sha256": sha}))
    (run_dir / "config.yaml").write_text(f"seed: {seed}\narm:\n  name: {arm}\n")
    (run_dir / "metrics.json").write_text(json.dumps(metrics))


def test_sweep_analysis_on_saved_models(tmp_path):
    from selfcorrect.analysis import sparsity as asp
    from selfcorrect.runtime.checkpoint import weights_sha256

    base = _tiny_gpt2()
    base_dir = tmp_path / "base"
    base.save_pretrained(base_dir)
    sha = weights_sha256(base)
    n = sum(p.numel() for p in base.parameters())  # parameters() lists the tied head once

    # from_pretrained's state dict (tied head shared) against the safetensors (head omitted)
    r = sp.update_sparsity(sp.load_state(base_dir), {k: v.float() for k, v in base.state_dict().items()})
    assert r["n_params"] == n and r["unchanged"]["bf16"]["0"] == 1.0
    assert r["dropped_tied"] == ["lm_head.weight"]

    sweep = tmp_path / "sweep"
    sweep.mkdir()
    p1, p2 = _tiny_gpt2(), _tiny_gpt2()
    with torch.no_grad():
        p1.transformer.h[0].mlp.c_fc.weight.view(-1)[:10] += 1.0   # 10 updated
        p2.transformer.h[0].mlp.c_fc.weight.view(-1)[5:25] += 1.0  # 20 updated, 5 shared
        p2.transformer.wte.weight[0, :2] += 1.0                     # the tied head moves with it: counted once
    good = {"acc_t1": 0.5, "sparsity/unchanged/fp32/0": (n - 10) / n}
    _write_run(sweep / "arm=score,seed=0", base_dir, sha, "score", 0, p1, good)
    _write_run(sweep / "arm=sft_self,seed=0", base_dir, sha, "sft_self", 0, p2,
               {"sparsity/unchanged/fp32/0": 0.5})
    (sweep / "arm=base,seed=0").mkdir()  # no policy: skipped
    (sweep / "arm=base,seed=0" / "run.json").write_text(json.dumps({"base_model": str(base_dir)}))

    details: dict = {}
    rows = asp.run_rows(sweep, details=details, verify_base=True)
    assert [r["run"] for r in rows] == ["arm=score,seed=0", "arm=sft_self,seed=0"]
    a, b = rows
    assert a["label"] == "score" and a["seed"] == 0 and a["base_sha_ok"] is True
    for d in ("fp32", "bf16"):
        assert a[f"sparsity/unchanged/{d}/1e-05"] == pytest.approx((n - 10) / n)
        assert b[f"sparsity/unchanged/{d}/1e-05"] == pytest.approx((n - 22) / n)
    assert a["saved_max_abs_diff"] == 0.0
    assert b["saved_max_abs_diff"] == pytest.approx(abs(0.5 - (n - 22) / n))
    assert "transformer.h.0.mlp.c_fc.weight" in details["arm=score,seed=0"]["tensors"]

    ov = asp.overlap_rows(sweep, "between")
    assert [(o["dtype"], o["tol"]) for o in ov] == [("bf16", "1e-05"), ("fp32", "1e-05")]
    o = ov[0]
    assert (o["label_a"], o["label_b"]) == ("score", "sft_self")
    assert o["o12"] == pytest.approx(5 / 10) and o["o21"] == pytest.approx(5 / 22)
    assert o["joint"] == pytest.approx(5 / n) and o["joint_chance"] == pytest.approx(10 * 22 / n ** 2)
    assert asp.overlap_rows(sweep, "within") == []
    table = asp.markdown_table(ov, asp.OVERLAP_COLUMNS)
    assert table.count("\n") == 4 and "| score | sft_self |" in table


def test_the_chance_within_tensors_removes_overlap_that_whole_tensors_explain():
    # tensor A (100 entries): both runs update all of it; tensor B (100): each updates an independent half
    g = torch.Generator().manual_seed(0)
    a1, a2 = torch.ones(100, dtype=torch.bool), torch.ones(100, dtype=torch.bool)
    b1, b2 = torch.rand(100, generator=g) < 0.5, torch.rand(100, generator=g) < 0.5
    m1, m2 = torch.cat([a1, b1]), torch.cat([a2, b2])
    ov = sp.overlap(m1, m2, [100, 100])
    assert ov["lift"] > 1.1  # pooled: A's shared updates look like overlap beyond chance
    assert abs(ov["lift_by_tensor"] - 1.0) < 0.1  # within tensors: as independent as they are
    assert ov["joint_chance_by_tensor"] == pytest.approx((100 * 1.0 + 100 * float(b1.float().mean()) * float(b2.float().mean())) / 200)
    with pytest.raises(ValueError, match="segments cover 150"):
        sp.overlap(m1, m2, [100, 50])
