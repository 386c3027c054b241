"""The numbers notebook 01 shows beside §III (m2ir_lib.workbook.walkthrough): eq. (5) ranges against
brute force, the MST/Restormer shape trace and parameter difference, the loss shares, the
α/β gates and the priors P′ and P."""

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch

from m2ir_lib.core import losses
from m2ir_lib.core.config import get_profile
from m2ir_lib.core.model import M2IR
from m2ir_lib.workbook import walkthrough


def _brute_force_weights(n, k, samples=200_000, seed=0):
    """Eq. (5) in numpy on s′ drawn all over the simplex: Dirichlet draws from very spread
    (near the vertices and edges) to very concentrated (near uniform), plus the centre."""
    rng = np.random.default_rng(seed)
    conc = 10.0 ** rng.uniform(-2, 3, size=(samples, 1))
    s = rng.gamma(np.broadcast_to(conc, (samples, n)))
    s = s[s.sum(1) > 0]  # all-zero draws (underflow at tiny concentrations) name no point
    s = np.vstack([s / s.sum(1, keepdims=True), np.full((1, n), 1 / n)])
    z = np.exp(s).sum(1) + math.e
    w = np.exp(s) / z[:, None]
    top = np.argsort(-s, axis=1)[:, :k]
    kept = np.take_along_axis(w, top, axis=1)
    shared = math.e / z
    return kept, shared, kept.sum(1) + shared


@pytest.mark.parametrize("n,k", [(1, 1), (2, 1), (3, 2), (4, 1), (4, 2), (4, 4), (6, 3)])
def test_eq5_bounds_hold_and_are_tight_against_brute_force(n, k):
    b = walkthrough.eq5_bounds(n, k).set_index("weight")
    kept, shared, total = _brute_force_weights(n, k)
    for name, values in [
        ("specialised (selected)", kept),
        ("shared E_S", shared),
        ("sum of kept weights", total),
    ]:
        lo, hi = b.loc[name, "lower"], b.loc[name, "upper"]
        assert values.min() >= lo - 1e-12 and values.max() <= hi + 1e-12, name
        # tight: the sampled extremes come close to each derived end
        assert values.min() - lo < 5e-3 and hi - values.max() < 5e-3, (name, values.min(), lo)


def test_eq5_bounds_known_values_and_bad_input():
    b = walkthrough.eq5_bounds(4, 2).set_index("weight")
    e = math.e
    assert b.loc["shared E_S", "upper"] == pytest.approx(e / (4 * math.exp(0.25) + e))
    assert b.loc["sum of kept weights", "upper"] == pytest.approx((2 * e + 1) / (2 * e + 3))
    assert b.loc["sum of kept weights", "upper"] < 1  # not renormalised
    assert not b.loc["specialised (selected)", "upper_attained"]
    with pytest.raises(ValueError, match="1 ≤ K ≤ N"):
        walkthrough.eq5_bounds(4, 5)


def test_eq5_check_routes_through_dgea_within_the_ranges():
    cfg = get_profile("smoke").model
    check = walkthrough.eq5_check(cfg, samples=2048, seed=1)
    assert check["inside"].all() and check.attrs["shared_first"]
    # the random routings reach both ends of the kept sum's range
    row = check.set_index("weight").loc["sum of kept weights"]
    assert row.observed_min - row.lower < 1e-2 and row.upper - row.observed_max < 1e-2
    w = walkthrough.random_routing_weights(cfg, samples=512, seed=1)
    assert w.shape == (512, cfg.num_experts + 1)
    assert ((w[:, : cfg.num_experts] > 0).sum(1) == cfg.top_k).all()
    assert "inside the ranges" in walkthrough.eq5_text(check, 4, 2).data


def test_block_shapes_trace_every_step_at_the_configured_width():
    cfg = get_profile("smoke").model
    blocks = walkthrough.block_pair(cfg)
    df = walkthrough.block_shapes(blocks, size=(16, 24)).set_index("step")
    mst, res = df[walkthrough.MST_LABEL], df[walkthrough.RESTORMER_LABEL]
    c, h = cfg.dim, cfg.heads[0]
    feature = str((1, c, 16, 24))
    att = "channel attention map softmax(q̂k̂ᵀτ)"
    assert (mst.drop([att, "MDTA output projection"]) == feature).all()
    assert mst[att] == res[att] == str((1, h, c // h, c // h))
    assert res["W_l¹ X"] == "—" and mst["MDTA output projection"] == "—"
    assert res["MDTA output projection"] == feature


def test_block_parameters_difference_is_2c2_plus_9c():
    cfg = get_profile("smoke").model
    for level in (0, 1):
        blocks = walkthrough.block_pair(cfg, level=level)
        df = walkthrough.block_parameters(blocks).set_index("part")
        c = cfg.dim * 2**level
        for label, block in blocks.items():
            total = sum(p.numel() for p in block.parameters())
            assert df.loc["total", label] == total == df[label].drop("total").sum()
        assert df.loc["total", "MST − Restormer"] == 2 * c * c + 9 * c
    assert "2C² + 9C" in walkthrough.msa_adds(df.reset_index(), c).data


def _net():
    torch.manual_seed(0)
    return M2IR(get_profile("smoke").model).eval()


def test_loss_shares_sum_to_one_and_match_total_loss():
    net, x = _net(), torch.rand(1, 3, 32, 32)
    y, routings = net(x, return_routing=True)
    total, terms = losses.total_loss(y, torch.rand(1, 3, 32, 32), routings)
    s = walkthrough.loss_shares(terms, 0.01, 0.1)
    assert s["share"].sum() == pytest.approx(1)
    assert s["weighted"].sum() == pytest.approx(total.item(), rel=1e-5)
    assert list(s["weight"]) == [1.0, 0.01, 0.1]
    with pytest.raises(ValueError, match="not positive"):
        walkthrough.loss_shares({"l1": 0.0, "balance": 0.0, "fft": 0.0}, 0.01, 0.1)


def test_training_loss_shares_read_step_one_and_the_tail(tmp_path):
    log = pd.DataFrame(
        {
            "step": [1, 2, 3],
            "loss_charbonnier": [0.2, 0.1, 0.1],
            "loss_balance": [2.0, 1.0, 3.0],
            "loss_fft": [1.0, 0.5, 0.3],
        }
    )
    log.to_csv(tmp_path / "log.csv", index=False)
    df = walkthrough.training_loss_shares(tmp_path / "log.csv", 0.01, 0.1, last=2)
    shares = df[["charbonnier", "balance", "fft"]]
    assert np.allclose(shares.sum(axis=1), 1)
    assert df.loc[0, "total"] == pytest.approx(0.2 + 0.02 + 0.1)
    assert df.loc[1, "charbonnier"] == pytest.approx(0.1 / (0.1 + 0.02 + 0.04))
    assert df.loc[1, "when"] == "after training (steps 2–3)"
    log.drop(columns="loss_fft").to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(ValueError, match="loss_fft"):
        walkthrough.training_loss_shares(tmp_path / "bad.csv", 0.01, 0.1)


def test_gates_at_init_and_after_a_change():
    net, moved = _net(), _net()
    with torch.no_grad():
        moved.adecs[0].alpha.fill_(0.5)
    df = walkthrough.adec_gates_at({"init": net, "moved": moved}).set_index(["network", "adec"])
    assert df.loc[("init", 0), "alpha_abs_mean"] == 0 and df.loc[("init", 0), "beta_mean"] == 1
    assert df.loc[("moved", 0), "alpha_abs_mean"] == pytest.approx(0.5)


def test_priors_prompt_part_is_a_softmax_and_p_varies_in_space():
    net = _net()
    items = [
        {"task": t, "degraded": torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(i))}
        for i, t in enumerate(["derain", "dehaze"])
    ]
    table = walkthrough.prior_prompts(net, items)
    assert list(table.index) == ["derain", "dehaze"] and list(table.columns) == list(
        net.cfg.prompts
    )
    assert np.allclose(table.sum(axis=1), 1)
    maps = walkthrough.prior_maps(net, items[0]["degraded"])
    assert [tuple(m.shape) for m in maps] == [(4, 4), (8, 8), (16, 16)]
    assert all(m.std() > 0 for m in maps)
    assert "MLP" in walkthrough.prior_label(net)


def test_prior_plot_says_learnable_mlp_not_text_similarity():
    """Issue 27: without DA-CLIP weights the prompt part compares with no text."""
    net = _net()
    items = [{"task": "derain", "degraded": torch.rand(3, 32, 32)}]
    fig = walkthrough.plot_priors(net, items)
    titles = " ".join(ax.get_title() for ax in fig.axes) + fig._suptitle.get_text()
    assert "learnable MLP" in titles and "S(I, text)" not in titles
    assert "no text" in walkthrough.prompt_part_label(net)
    plt.close(fig)
