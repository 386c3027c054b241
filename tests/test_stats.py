"""The statistics behind every table's intervals (m2ir_lib.workbook.stats): known answers, coverage,
determinism, pairing, and the per-image → cell reduction."""

import itertools
import math

import numpy as np
import pandas as pd
import pytest

from m2ir_lib.workbook import stats


def test_constant_sample_has_a_point_interval_and_one_value_has_none():
    ci = stats.bootstrap_mean([3.0] * 5)
    assert tuple(ci)[:4] == (3.0, 3.0, 3.0, 5) and ci.detectable() == 0.0
    one = stats.bootstrap_mean([7.0])
    assert one.estimate == 7.0 and math.isnan(one.low) and one.n == 1
    with pytest.raises(ValueError, match="non-finite"):
        stats.bootstrap_mean([1.0, float("inf")])


def test_interval_is_deterministic_and_close_to_the_normal_theory_one():
    x = np.random.default_rng(3).normal(30.0, 2.0, size=60)
    a, b = stats.bootstrap_mean(x), stats.bootstrap_mean(x)
    assert a == b  # seeded
    half = 2.0 * x.std(ddof=1) / math.sqrt(len(x))  # t(59) ≈ 2.0
    assert a.low < x.mean() < a.high
    assert (a.high - a.low) / 2 == pytest.approx(half, rel=0.1)
    assert stats.bootstrap_mean(x, seed=1) != a  # the seed is really used


def _photographs(rng, n_photos=4, tiles=4, truth=0.3, between=1.0, within=0.2, seeds=1,
                 seed_sd=0.0, interaction=0.0):  # fmt: skip
    """One simulated paired difference: photographs × tiles (× seeds), most of the variance
    between photographs, as the stand-in's 2 × 2 tiles of one photograph are."""
    photo = rng.normal(0, between, n_photos)
    v = np.stack([
        truth + rng.normal(0, seed_sd) + np.repeat(photo + rng.normal(0, interaction, n_photos),
                                                   tiles)
        + rng.normal(0, within, n_photos * tiles)
        for _ in range(seeds)
    ])  # fmt: skip
    return v, np.repeat(np.arange(n_photos), tiles)


@pytest.mark.parametrize(
    "design",
    [
        dict(),  # 4 photographs × 4 tiles, one seed: the committed stand-in's test set
        dict(n_photos=8),
        dict(n_photos=8, seeds=3, seed_sd=0.5, interaction=0.2),  # the two-level design
    ],
    ids=["4x4", "8x4", "3 seeds x 8x4"],
)
def test_intervals_over_photographs_are_calibrated_and_over_tiles_are_not(design):
    """Issue 21: with a known true difference and strong within-photograph correlation, the 95 %
    intervals cover the truth 93–97 % of the time, and a true difference of zero is called
    'supports' or 'contradicts' at most 5 % of the time (plus the Monte-Carlo error of
    1000 replicates, 2 sd = 1.4 %); resampling tiles as if they were independent does not."""
    rng = np.random.default_rng(21)
    reps, cover, false_calls, tile_cover = 1000, 0, 0, 0
    for r in range(reps):
        v, units = _photographs(rng, **design)
        ci = stats.design_interval(v, units, n_resamples=400, seed=r)
        cover += ci.low <= 0.3 <= ci.high
        false_calls += ci.excludes(0.3)  # the same interval, centred on a true zero
        if r < 300 and design.get("seeds", 1) == 1:
            tiles = stats.design_interval(v, None, n_resamples=400, seed=r)
            tile_cover += tiles.low <= 0.3 <= tiles.high
    assert 0.93 <= cover / reps <= 0.97
    assert false_calls / reps <= 0.05 + 2 * math.sqrt(0.05 * 0.95 / reps)
    if design.get("seeds", 1) == 1:
        assert tile_cover / 300 < 0.85  # tiles counted as photographs: far too narrow


def test_detectable_difference_is_the_textbook_power_formula():
    ci = stats.Interval(0.0, -1.0, 1.0, 10, 1, se=0.5, df=9)
    from scipy.stats import t

    assert ci.detectable() == pytest.approx((t.ppf(0.975, 9) + t.ppf(0.8, 9)) * 0.5)
    assert math.isnan(stats.Interval(0.0, float("nan"), float("nan"), 1).detectable())


def test_stratified_average_keeps_each_group_weight():
    strata = ["a"] * 6 + ["b"] * 2
    ci = stats.design_interval([0.0] * 6 + [10.0, 10.0], None, strata)
    assert ci.estimate == 5.0  # mean of the means, not the pooled mean 2.5
    assert ci.low == ci.high == 5.0 and ci.n == 8
    varied = stats.design_interval([0.0, 1.0, 2.0, 10.0, 11.0, 12.0], None, list("aaabbb"))
    assert varied.estimate == pytest.approx(6.0) and varied.low < 6.0 < varied.high


def test_photographs_shared_by_every_column_are_resampled_together():
    # 3 photographs, each degraded for two columns: 3 independent units, not 6
    ci = stats.design_interval([1.0, 2.0, 4.0, 1.5, 2.5, 4.5], list("xyzxyz"), list("aaabbb"))
    assert ci.n == 3 and ci.df == pytest.approx(2.0)
    apart = stats.design_interval([1.0, 2.0, 4.0, 1.5, 2.5, 4.5], list("xyzuvw"), list("aaabbb"))
    assert apart.n == 6


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
    assert tuple(exact)[:4] == (0.5, 0.5, 0.5, 3)


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
    assert big_tau == pytest.approx(1.0) and big_p == pytest.approx(2 / math.factorial(12))


def _per_image():
    """Two methods, two tasks, 3 images of 3 photographs; A has seeds 0 and 1, B one seed."""
    rows = []
    for task, base in (("t1", 20.0), ("t2", 30.0)):
        for k, img in enumerate(("a", "b", "c")):
            for seed, shift in ((0, 0.0), (1, 1.0)):
                rows.append(("A", f"runA{seed}", seed, task, img, base + k + shift))
            rows.append(("B", "runB", 0, task, img, base + k - 1.0))
    df = pd.DataFrame(rows, columns=["method", "run", "seed", "task", "image", "value"])
    return df.assign(table="I", dataset="", sigma=float("nan"), metric="PSNR",
                     unit=df["image"])[stats.PER_IMAGE_COLUMNS]  # fmt: skip


def test_cell_stats_counts_units_not_image_seed_pairs():
    cells = stats.cell_stats(_per_image()).set_index(["method", "task"])
    a = cells.loc[("A", "t1")]
    assert a["value"] == pytest.approx(21.5)  # seed means 21 and 22
    assert a["n"] == 3 and a["n_seeds"] == 2 and a["seeds"] == "0,1"
    assert a["seed_sd"] == pytest.approx(math.sqrt(0.5))
    assert a["ci_low"] <= 21.5 <= a["ci_high"]
    b = cells.loc[("B", "t2")]
    assert b["value"] == pytest.approx(30.0) and b["n_seeds"] == 1 and math.isnan(b["seed_sd"])
    tiles = _per_image().assign(unit="one photograph")  # three tiles of one photograph
    one = stats.cell_stats(tiles).set_index(["method", "task"]).loc[("B", "t1")]
    assert one["n"] == 1 and math.isnan(one["ci_low"])  # one unit: no interval


def test_average_and_difference_from_per_image_rows():
    df = _per_image()
    avg = stats.average_stats(df, "A", "PSNR", ["t1", "t2"])
    # the same 3 photographs in both columns: 3 independent units, resampled jointly
    assert avg["value"] == pytest.approx((21.5 + 31.5) / 2) and avg["n"] == 3
    assert stats.average_stats(df, "A", "PSNR", ["t1", "t3"]) is None
    d = stats.difference(df, "A", "B", "PSNR", ["t1"])
    # like for like: A's seed-0 run against B's seed-0 run (1.0 on every image), never A's
    # two-seed mean (which would add seed 1's luck, +0.5)
    assert tuple(d)[:4] == pytest.approx((1.0, 1.0, 1.0, 3)) and d.n_seeds == 1
    assert stats.difference(df, "A", "B", "PSNR", ["t1", "t2"]).estimate == pytest.approx(1.0)
    assert stats.difference(df, "A", "C", "PSNR", ["t1"]) is None
    floor = stats.difference(df, "A", "B", "PSNR", ["t1"], seedless_b=True)  # both A seeds
    assert floor.estimate == pytest.approx(1.5) and floor.n_seeds == 2


def test_a_one_seed_comparison_borrows_the_replicated_rows_seed_variance():
    df = _per_image()
    var = stats.seed_variance(df, "PSNR", ["t1"])
    assert var == pytest.approx((0.5, 1.0))  # A's seed means 21 and 22
    plain = stats.difference(df, "A", "B", "PSNR", ["t1"])
    borrowed = stats.difference(df, "A", "B", "PSNR", ["t1"], seed_var=var)
    assert borrowed.se == pytest.approx(math.sqrt(2 * 0.5))  # images agree exactly: seeds only
    assert borrowed.df == pytest.approx(1.0) and not borrowed.excludes(0)
    assert plain.low == plain.high == 1.0
    assert stats.seed_variance(df[df["method"] == "B"], "PSNR", ["t1"]) is None


def _kendall_by_hand(x, y, n_resamples=9999, seed=0):
    """The hand-written τ-b and permutation p that `stats.kendall_tau` replaced by scipy
    (issue 25), kept as the reference its numbers must equal."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    n = len(x)
    i, j = np.triu_indices(n, k=1)
    sx = np.sign(x[i] - x[j])

    def tau_b(ys):
        sy = np.sign(ys[:, i] - ys[:, j])
        return (sx * sy).sum(-1) / np.sqrt((sx != 0).sum() * (sy != 0).sum(-1))

    tau = float(tau_b(y[None])[0])
    if n <= 8:
        perms = y[np.array(list(itertools.permutations(range(n))))]
        return tau, float(np.mean(np.abs(tau_b(perms)) >= abs(tau) - 1e-12))
    rng = np.random.default_rng(seed)
    perms = np.stack([rng.permutation(y) for _ in range(n_resamples)])
    hits = np.sum(np.abs(tau_b(perms)) >= abs(tau) - 1e-12)
    return tau, float((hits + 1) / (n_resamples + 1))


@pytest.mark.parametrize(
    "x, y",
    [
        ([1, 2, 3, 4, 5], [2, 1, 4, 3, 5]),
        ([38.8, 38.9, 37.1, 36.0, 39.2, 35.5, 38.0], [30.1, 31.0, 29.9, 28.2, 30.5, 27.0, 30.0]),
        ([1, 2, 3, 4, 5, 6, 7, 8], [3, 1, 2, 5, 4, 7, 8, 6]),  # 8 rows: 40320 re-pairings
        ([1, 2, 2, 4, 5, 6], [3, 1, 2, 2, 5, 4]),  # ties on both sides
        ([5, 1, 3, 3, 2], [4, 4, 1, 2, 3]),
    ],
)
def test_kendall_tau_is_scipys_and_gives_the_hand_written_numbers(x, y):
    tau, p = stats.kendall_tau(x, y)
    ref_tau, ref_p = _kendall_by_hand(x, y)
    assert tau == pytest.approx(ref_tau, abs=1e-12) and p == pytest.approx(ref_p, abs=1e-12)


def test_kendall_tau_beyond_8_rows_is_exact_where_the_loop_sampled():
    x = np.arange(12.0)
    y = np.array([1, 0, 2, 4, 3, 5, 7, 6, 9, 8, 11, 10.0])
    tau, p = stats.kendall_tau(x, y)
    ref_tau, ref_p = _kendall_by_hand(x, y)  # 9999 random re-pairings: ± 3 standard errors
    assert tau == pytest.approx(ref_tau) and abs(p - ref_p) <= 3 * np.sqrt(p * (1 - p) / 9999)
    tied = np.array([1, 0, 2, 4, 4, 5, 7, 6, 9, 8, 11, 10.0])  # ties: scipy re-pairs at random
    assert stats.kendall_tau(x, tied, n_resamples=999)[1] == pytest.approx(
        _kendall_by_hand(x, tied, n_resamples=999)[1], abs=0.03
    )
