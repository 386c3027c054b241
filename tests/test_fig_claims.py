"""Fig. 9's and Fig. 10's claims as rows with intervals over photographs (issue 21, item 5):
the gates' change and correlation (`figstats.gate_claims`), the encoders' separation
(`figstats.separation_interval`, `figstats.tsne_claims`), on synthetic inputs with a
known answer."""

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import silhouette_score

from m2ir_lib.core.config import MODEL_PRESETS
from m2ir_lib.core.model import M2IR
from m2ir_lib.workbook import claims, figstats, visualize

TASKS = ("dehaze", "derain", "denoise")


def _gate_stats(change, r, spread, photographs=4, tiles=4, seed=0):
    """`gate_statistics`-like rows: the gate on a degraded input `change` away from its GT's,
    the correlation with the damage about `r`; most of the spread between photographs."""
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(photographs):
        photo = rng.normal(0, spread)
        for task in TASKS:
            for t in range(tiles):
                for block in ("encoder1.0", "latent.0"):
                    gt = 0.45 + rng.normal(0, 0.01)
                    noise = rng.normal(0, spread / 4)
                    rows.append(dict(task=task, image=f"p{p}_t{t}", unit=f"p{p}", block=block,
                                     gate_degraded=gt + change + photo + noise, gate_gt=gt,
                                     r_drop_vs_damage=r + 10 * (photo + noise)))  # fmt: skip
    return pd.DataFrame(rows, columns=figstats.GATE_COLUMNS)


def test_gate_claims_find_the_papers_reading_over_photographs():
    rows = figstats.gate_claims(_gate_stats(change=-0.02, r=0.3, spread=0.002))
    assert [r["claim"].split(" (")[-1] for r in rows] == [
        "all tasks)",
        *[f"{t})" for t in TASKS],
    ] * 2
    assert {r["source"] for r in rows} == {"Fig. 9"} and {r["kind"] for r in rows} == {"paper"}
    assert {r["n_units"] for r in rows} == {4}  # photographs, not the 16 tiles of each task
    change, corr = rows[0], rows[4]
    assert change["estimate"] == pytest.approx(-0.02, abs=0.005) and change["verdict"] == "supports"
    assert corr["estimate"] == pytest.approx(0.3, abs=0.05) and corr["verdict"] == "supports"
    assert all(r["ci_low"] < r["estimate"] < r["ci_high"] for r in rows)
    assert set(claims.frame(rows, "smoke").columns) == set(claims.CLAIM_COLUMNS)
    again = figstats.gate_claims(_gate_stats(change=-0.02, r=0.3, spread=0.002))
    pd.testing.assert_frame_equal(pd.DataFrame(rows), pd.DataFrame(again))  # seeded


def test_gate_claims_call_the_opposite_contradicted_and_noise_unresolved():
    higher = figstats.gate_claims(_gate_stats(change=+0.02, r=-0.3, spread=0.002))
    assert {r["verdict"] for r in higher} == {"contradicts"}
    noise = figstats.gate_claims(_gate_stats(change=0.0, r=0.0, spread=0.02, seed=0))
    assert noise[0]["verdict"] == "cannot resolve" and noise[0]["ci_low"] < 0 < noise[0]["ci_high"]
    assert "independent units (now 4)" in noise[0]["design"]
    text = figstats.claims_caption(noise).data
    r = noise[0]
    assert f"{r['estimate']:+.3f} [{r['ci_low']:+.3f}, {r['ci_high']:+.3f}]" in text
    assert "**cannot resolve**" in text and f"detectable here {r['detectable']:.2g}" in text


def test_gate_claims_of_a_table_without_photographs_have_no_interval():
    old = _gate_stats(change=-0.02, r=0.3, spread=0.002, photographs=1, tiles=1)
    rows = figstats.gate_claims(old.drop(columns=["image", "unit"]))  # written before units
    assert rows and all(not np.isfinite(r["ci_low"]) for r in rows)
    assert {r["verdict"] for r in rows} == {"cannot resolve"}
    assert figstats.gate_claims(figstats.gate_statistics([])) == []


def test_gate_statistics_name_the_image_and_its_photograph():
    torch.manual_seed(0)
    model = M2IR(MODEL_PRESETS["smoke"])
    item = dict(task="derain", name="coffee_t0", unit="coffee", clean=torch.rand(3, 32, 32))
    item["degraded"] = (item["clean"] + 0.2 * torch.rand(3, 32, 32)).clamp(0, 1)
    g = figstats.gate_statistics(visualize.gate_pairs(model, [item]))
    assert list(g.columns) == figstats.GATE_COLUMNS and len(g) > 1  # one line per block
    assert set(g["image"]) == {"coffee_t0"} and set(g["unit"]) == {"coffee"}


def _clusters(separated: float, photographs=4, points=12, seed=0):
    """Features of 3 tasks × photographs × points: the task shifts them by `separated`, each
    photograph by its own offset (the content every task shares)."""
    rng = np.random.default_rng(seed)
    feats, labels, units = [], [], []
    offsets = rng.normal(0, 1, (photographs, 6))
    for k, task in enumerate(TASKS):
        for p in range(photographs):
            for _ in range(points):
                feats.append(separated * np.eye(6)[k] + offsets[p] + rng.normal(0, 1, 6))
                labels.append(task)
                units.append(f"p{p}")
    return np.array(feats), labels, units


def test_separation_interval_resamples_photographs_around_the_silhouette():
    f, labels, units = _clusters(separated=3.0)
    ci = figstats.separation_interval(f, labels, units)
    assert ci.estimate == pytest.approx(figstats.separation(f, labels))
    assert ci.estimate == pytest.approx(silhouette_score(figstats._standardised(f), labels))
    assert ci.n == 4 and ci.df == 3 and ci.low < ci.estimate < ci.high
    assert ci == figstats.separation_interval(f, labels, units)  # seeded
    same = figstats.separation_interval(f, labels, units, minus=f)
    assert same.estimate == 0 and same.low == same.high == 0  # the same draw on both sides
    one = figstats.separation_interval(f, labels, ["p0"] * len(labels))
    assert one.n == 1 and not np.isfinite(one.low)


def test_tsne_claims_read_the_papers_direction():
    mst, labels, units = _clusters(separated=0.5)
    transformer, _, _ = _clusters(separated=4.0, seed=1)
    paper_like = {"MST": (mst, labels), "Transformer": (transformer, labels)}
    (row,) = figstats.tsne_claims(paper_like, units)
    assert row["source"] == "Fig. 10" and row["kind"] == "paper"
    assert row["estimate"] < 0 and row["ci_high"] < 0 and row["verdict"] == "supports"
    assert row["estimate"] == pytest.approx(
        figstats.separation(mst, labels) - figstats.separation(transformer, labels)
    )
    reverse = {"MST": (transformer, labels), "Transformer": (mst, labels)}
    assert figstats.tsne_claims(reverse, units)[0]["verdict"] == "contradicts"
    assert figstats.tsne_claims({}, []) == []
    table = figstats.tsne_statistics(paper_like, "latent", units)
    assert (table["ci_low"] < table["silhouette"]).all() and set(table["n_units"]) == {4}


def test_point_units_follow_the_feature_points():
    items = [dict(task=t, name=f"{u}_t0", unit=u, degraded=torch.rand(3, 32, 48))
             for t in TASKS for u in ("coffee", "flower")]  # fmt: skip
    model = M2IR(MODEL_PRESETS["smoke"])
    feats = visualize.feature_sets({"m": model}, items, "latent", tile=16)
    units = visualize.point_units(items, tile=16)
    assert len(units) == len(feats["m"][1]) == len(items) * 2 * 3
    assert units[:6] == ["coffee"] * 6 and visualize.point_units(items) == [
        i["unit"] for i in items
    ]
