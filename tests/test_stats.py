"""The statistics behind every table's intervals (m2ir_lib.workbook.stats): known answers, coverage,
determinism, pairing, and the per-image → cell reduction."""

import math

import numpy as np
import pandas as pd
import pytest

from m2ir_lib.workbook import stats, verdicts


def test_constant_sample_has_a_point_interval_and_one_value_has_none():
    ci = stats.bootstrap_mean([3.0] * 5)
    assert ci == (3.0, 3.0, 3.0, 5)
    one = stats.bootstrap_mean([7.0])
    assert one.estimate == 7.0 and math.isnan(one.low) and one.n == 1
    with pytest.raises(ValueError, match="non-finite"):
        stats.bootstrap_mean([1.0, float("inf")])


def test_interval_is_deterministic_and_close_to_the_normal_theory_one():
    x = np.random.default_rng(3).normal(30.0, 2.0, size=60)
    a, b = stats.bootstrap_mean(x), stats.bootstrap_mean(x)
    assert a == b  # seeded
    half = 1.96 * x.std(ddof=1) / math.sqrt(len(x))
    assert a.low < x.mean() < a.high
    assert (a.high - a.low) / 2 == pytest.approx(half, rel=0.15)
    assert stats.bootstrap_mean(x, seed=1) != a  # the seed is really used


def test_coverage_of_the_true_mean_is_near_95_percent():
    rng = np.random.default_rng(0)
    hits = 0
    for k in range(200):
        ci = stats.bootstrap_mean(rng.normal(5.0, 1.0, size=20), n_resamples=500, seed=k)
        hits += ci.low <= 5.0 <= ci.high
    # the percentile bootstrap undercovers a little at n=20; 0.88-0.99 is a loose, failing band
    assert 0.88 <= hits / 200 <= 0.99


def test_stratified_average_keeps_each_group_weight():
    ci = stats.bootstrap_mean_of_means([[0.0] * 6, [10.0, 10.0]])
    assert ci.estimate == 5.0  # mean of the means, not the pooled mean 2.5
    assert ci.low == ci.high == 5.0 and ci.n == 8
    varied = stats.bootstrap_mean_of_means([[0.0, 1.0, 2.0], [10.0, 11.0, 12.0]])
    assert varied.estimate == pytest.approx(6.0) and varied.low < 6.0 < varied.high


def test_paired_difference_uses_the_pairing():
    rng = np.random.default_rng(1)
    base = rng.normal(25.0, 4.0, size=12)  # images differ a lot from each other ...
    a = base + 0.3 + rng.normal(0, 0.05, size=12)  # ... but a beats b on each by ~0.3
    paired = stats.paired_difference(a, base)
    assert paired.estimate == pytest.approx(0.3, abs=0.05)
    assert paired.excludes(0.0) and paired.low > 0
    # unpaired, the two means' intervals overlap: the pairing is what resolves the gap
    ia, ib = stats.bootstrap_mean(a), stats.bootstrap_mean(base)
    assert ia.low < ib.high
    exact = stats.paired_difference([1.0, 2.0, 3.0], [0.5, 1.5, 2.5])
    assert exact == (0.5, 0.5, 0.5, 3)


def test_paired_difference_aligns_series_by_image_and_refuses_other_images():
    a = pd.Series([1.0, 2.0, 4.0], index=["x", "y", "z"])
    b = pd.Series([3.0, 1.0, 1.0], index=["z", "x", "y"])  # same images, other order
    assert stats.paired_difference(a, b).estimate == pytest.approx(2 / 3)  # 0, 1, 1
    with pytest.raises(ValueError, match="same images"):
        stats.paired_difference(a, b.rename(index={"z": "w"}))
    with pytest.raises(ValueError, match="equal lengths"):
        stats.paired_difference([1.0, 2.0], [1.0])


def test_seed_spread():
    assert stats.seed_spread([1.0, 2.0, 3.0]) == (2.0, 1.0, 3)
    one = stats.seed_spread([4.0])
    assert one.mean == 4.0 and math.isnan(one.sd) and one.n_seeds == 1


def test_kendall_tau_exact_permutation_p_values():
    # n = 5: 120 re-pairings, |τ| = 1 for 2 of them, |τ| ≥ 0.8 for 10 of them
    assert stats.kendall_tau([1, 2, 3, 4, 5], [1, 2, 3, 4, 5]) == pytest.approx((1.0, 2 / 120))
    assert stats.kendall_tau([1, 2, 3, 4, 5], [1, 2, 3, 5, 4]) == pytest.approx((0.8, 10 / 120))
    tau, p = stats.kendall_tau([1, 2, 3, 4, 5], [5, 4, 3, 2, 1])
    assert tau == pytest.approx(-1.0) and p == pytest.approx(2 / 120)
    from scipy.stats import kendalltau

    x, y = [1, 2, 2, 4, 5, 6], [3, 1, 2, 2, 5, 4]  # ties: τ-b as scipy computes it
    assert stats.kendall_tau(x, y)[0] == pytest.approx(kendalltau(x, y).statistic)
    assert all(math.isnan(v) for v in stats.kendall_tau([1, 2], [2, 1]))
    assert all(math.isnan(v) for v in stats.kendall_tau([1, 2, 3], [4, 4, 4]))
    big_tau, big_p = stats.kendall_tau(range(12), range(12), n_resamples=999)
    assert big_tau == pytest.approx(1.0) and big_p == pytest.approx(1 / 1000)


def _per_image():
    """Two methods, two tasks, 3 images; method A has seeds 0 and 1, B one seed."""
    rows = []
    for task, base in (("t1", 20.0), ("t2", 30.0)):
        for k, img in enumerate(("a", "b", "c")):
            for seed, shift in ((0, 0.0), (1, 1.0)):
                rows.append(("A", f"runA{seed}", seed, task, img, base + k + shift))
            rows.append(("B", "runB", 0, task, img, base + k - 1.0))
    df = pd.DataFrame(rows, columns=["method", "run", "seed", "task", "image", "value"])
    return df.assign(table="I", dataset="", sigma=float("nan"), metric="PSNR")[
        stats.PER_IMAGE_COLUMNS
    ]


def test_cell_stats_counts_images_not_image_seed_pairs():
    cells = stats.cell_stats(_per_image()).set_index(["method", "task"])
    a = cells.loc[("A", "t1")]
    assert a["value"] == pytest.approx(21.5)  # seed means 21 and 22
    assert a["n"] == 3 and a["n_seeds"] == 2 and a["seeds"] == "0,1"
    assert a["seed_sd"] == pytest.approx(math.sqrt(0.5))
    assert a["ci_low"] <= 21.5 <= a["ci_high"]
    b = cells.loc[("B", "t2")]
    assert b["value"] == pytest.approx(30.0) and b["n_seeds"] == 1 and math.isnan(b["seed_sd"])


def test_average_and_difference_from_per_image_rows():
    df = _per_image()
    avg = stats.average_stats(df, "A", "PSNR", ["t1", "t2"])
    assert avg["value"] == pytest.approx((21.5 + 31.5) / 2) and avg["n"] == 6
    assert stats.average_stats(df, "A", "PSNR", ["t1", "t3"]) is None
    d = stats.difference(df, "A", "B", "PSNR", ["t1"])
    assert d == pytest.approx((1.5, 1.5, 1.5, 3))  # every image: 0.5 seed-mean shift + 1
    assert stats.difference(df, "A", "B", "PSNR", ["t1", "t2"]).estimate == pytest.approx(1.5)
    assert stats.difference(df, "A", "C", "PSNR", ["t1"]) is None


def test_seed_differences_pair_seeds_or_compare_with_a_single_seed():
    df = _per_image()
    assert stats.seed_differences(df, "A", "B", "PSNR", ["t1"]).tolist() == [1.0, 2.0]
    both = pd.concat([df, df[df["method"] == "B"].assign(seed=1, value=lambda d: d["value"] + 3)])
    assert stats.seed_differences(both, "A", "B", "PSNR", ["t1"]).tolist() == [1.0, -1.0]
    assert len(stats.seed_differences(df, "B", "B", "PSNR", ["t1"])) == 0  # one seed each


def test_a_verdict_whose_sign_flips_between_seeds_is_not_resolved():

    df = _per_image()
    both = pd.concat([df, df[df["method"] == "B"].assign(seed=1, value=lambda d: d["value"] + 3)])
    assert verdicts.seed_checked("supports", df, "A", "B", "PSNR", ["t1"]) == "supports"
    flipped = verdicts.seed_checked("supports", both, "A", "B", "PSNR", ["t1"])
    assert flipped.startswith("cannot resolve") and "-1.00 to +1.00" in flipped
