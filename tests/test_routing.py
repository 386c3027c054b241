"""Routing by degradation (issue 27): expert shares per image (`probes.expert_shares`), the
mutual information between degradation type and expert choice with its permutation test,
the claim rows and the heat map (m2ir_lib.workbook.routing)."""

import dataclasses

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch

from m2ir_lib.core.config import MODEL_PRESETS
from m2ir_lib.core.model import M2IR
from m2ir_lib.engine.probes import expert_shares
from m2ir_lib.workbook import claims, routing

TYPES = ("derain", "dehaze", "denoise")


def _router(specialised: bool, photographs=8, experts=4, seed=0):
    """Long share rows of one setting and ADEC: every photograph degraded in each of the three
    ways, two tiles each; a specialised router sends type k to expert k, a random one draws
    shares that ignore the type."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(photographs):
        for k, t in enumerate(TYPES):
            for tile in range(2):
                p = np.eye(experts)[k] if specialised else rng.dirichlet(np.ones(experts))
                for e in range(experts):
                    rows.append(dict(setting="3d", run="r", task=t, image=f"p{u}-{tile}",
                                     unit=f"p{u}", adec=0, position="latent", expert=e + 1,
                                     share=p[e], confidence=p[e]))  # fmt: skip
    return pd.DataFrame(rows)


def test_shares_of_a_real_router_sum_to_one_per_image_and_adec():
    torch.manual_seed(0)
    net = M2IR(MODEL_PRESETS["smoke"]).eval()
    items = [
        {"task": t, "name": "img", "unit": "photo", "degraded": torch.rand(3, 32, 32)}
        for t in TYPES
    ]
    shares = expert_shares(net, items)
    per = shares.groupby(["task", "image", "adec"])["share"].sum()
    assert len(per) == 3 * len(net.adecs) and np.allclose(per, 1)
    assert set(shares.expert) == set(range(1, net.cfg.num_experts + 1))
    table = routing.share_table(shares.assign(setting="3d"))
    assert np.allclose(table.groupby(["adec", "task"])["share"].sum(), 1)


def test_no_routing_without_specialised_experts():
    net = M2IR(dataclasses.replace(MODEL_PRESETS["smoke"], special_experts=False))
    with pytest.raises(ValueError, match="routes nothing"):
        expert_shares(net, [{"task": "derain", "name": "a", "degraded": torch.rand(3, 16, 16)}])


def test_mutual_information_known_values():
    eye = np.eye(3)
    assert routing.mutual_information(eye, ["a", "b", "c"]) == pytest.approx(np.log2(3))
    same = np.full((4, 3), 1 / 3)
    assert routing.mutual_information(same, ["a", "a", "b", "b"]) == pytest.approx(0)
    assert routing.type_entropy(["a", "a", "b", "b"]) == pytest.approx(1)


def test_a_perfectly_specialised_router_is_found():
    p, types, units = routing._per_image(_router(True))
    s = routing.specialisation(p, types, units, n_permutations=199)
    assert s["mi"] == pytest.approx(np.log2(3)) and s["mi"] == pytest.approx(s["h_type"])
    assert s["p_value"] == pytest.approx(1 / 200)
    table = routing.mi_table(_router(True), n_permutations=199)
    assert table.verdict.iloc[0] == "supports"


def test_a_random_router_is_not():
    p, types, units = routing._per_image(_router(False))
    s = routing.specialisation(p, types, units, n_permutations=199)
    assert s["p_value"] > 0.2
    assert s["mi"] > 0 and abs(s["excess"].mean()) < s["mi"]  # the plug-in bias is removed
    verdict = routing.mi_table(_router(False), n_permutations=199).verdict.iloc[0]
    assert verdict.startswith(("cannot resolve", "contradicts"))


def test_permutations_keep_each_photograph_and_count_relabellings():
    types = np.array(["a", "b", "a", "b", "c", "c"])
    units = np.array(["p", "p", "q", "q", "r", "s"])  # p, q mixed; r, s one type each
    rng = np.random.default_rng(0)
    for _ in range(20):
        out = routing.permuted_types(types, units, rng)
        for u in ("p", "q"):
            assert sorted(out[units == u]) == sorted(types[units == u])
        assert sorted(out[4:]) == ["c", "c"]
    assert routing.relabellings(types, units) == 2 * 2 * 1
    few = routing.mi_table(_router(True, photographs=1), n_permutations=99)
    assert few.p_min.iloc[0] == pytest.approx(1 / 90)  # 6! / (2! 2! 2!) labellings


def test_too_few_images_are_not_testable():
    one_tile = _router(True, photographs=1).query("image.str.endswith('-0')")  # 3! labellings
    table = routing.mi_table(one_tile, n_permutations=99)
    assert table.p_min.iloc[0] == pytest.approx(1 / 6)
    assert table.verdict.iloc[0].startswith("not testable here")


def test_claim_rows_and_heat_map_are_labelled(tmp_path):
    table = routing.mi_table(_router(True), n_permutations=99)
    rows = routing.routing_claims(table)
    df = claims.frame(rows, "smoke")
    assert (df.source == "Fig. 9 routing").all() and df.detectable.notna().all()
    assert "experts specialise by degradation" in df.claim.iloc[0]
    fig = routing.plot_shares(routing.share_table(_router(True)), tmp_path / "r.png")
    bars = [ax for ax in fig.axes if "share of the top-K" in ax.get_ylabel()]
    assert len(bars) == 1 and (tmp_path / "r.png").is_file()
    plt.close(fig)
    assert "I(type; expert)" in routing.caption(table)


def test_summary_section_shows_the_verdicts_beside_fig9(tmp_path):
    from m2ir_lib.core.config import get_profile
    from m2ir_lib.workbook import results

    profile = get_profile("smoke")
    assert "not measured" in routing.summary_section(profile, tmp_path)
    table = routing.mi_table(_router(True), n_permutations=99)
    results.write_frame(table, profile, routing.MI_STEM, tmp_path)
    page = routing.summary_section(profile, tmp_path)
    assert "I(type; expert)" in page and "supports" in page
