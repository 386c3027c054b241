"""How sure a table's numbers are: bootstrap intervals over test images, seed spread, rank tests.

One place for the statistics every table uses (issue 10). A table cell is a mean over test
images, so its uncertainty comes from which images were drawn: the 95 % interval is a
percentile bootstrap of that mean (`scipy.stats.bootstrap`, seeded, so the same numbers give
the same interval). A difference between two methods is measured on the *same* images, so
its interval resamples images jointly (paired bootstrap of the per-image differences). An
Average over the paper's columns is the mean of the column means; its interval resamples
images within each column independently (a stratified bootstrap), which keeps every
column's weight fixed as the paper's Average does. Training seeds are a second source of
variation that image resampling does not see: `seed_spread` reports it beside the interval.

Per-image rows use the long schema of `PER_IMAGE_COLUMNS` (`results.write_per_image`);
`cell_stats` turns them into one line per (method, task, metric): value, n, ci_low, ci_high,
n_seeds, seed_sd.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy import stats as sps

CONFIDENCE = 0.95
N_RESAMPLES = 2000
SEED = 0  # every bootstrap is seeded: same numbers in, same interval out
PER_IMAGE_COLUMNS = [
    "table",
    "method",
    "run",
    "seed",
    "task",
    "dataset",
    "sigma",
    "image",
    "metric",
    "value",
]


class Interval(NamedTuple):
    """A mean and its 95 % bootstrap interval over `n` test images (nan bounds when n < 2)."""

    estimate: float
    low: float
    high: float
    n: int

    def excludes(self, x: float = 0.0) -> bool:
        """True when the whole interval lies on one side of x."""
        return bool(np.isfinite(self.low) and (self.low > x or self.high < x))

    def __str__(self) -> str:
        if not np.isfinite(self.low):
            return f"{self.estimate:+.2f} (n={self.n}, no interval)"
        return f"{self.estimate:+.2f} [{self.low:+.2f}, {self.high:+.2f}] (n={self.n})"


class SeedSpread(NamedTuple):
    """Mean and sample standard deviation (ddof 1) of one number over training seeds."""

    mean: float
    sd: float
    n_seeds: int


def _clean(values) -> np.ndarray:
    x = np.asarray(values, dtype=float).ravel()
    if not np.isfinite(x).all():
        raise ValueError(f"non-finite values in a bootstrap sample: {x[~np.isfinite(x)][:3]}")
    return x


def bootstrap_mean_of_means(
    groups: Sequence,
    *,
    confidence=CONFIDENCE,
    n_resamples=N_RESAMPLES,
    seed=SEED,
    nonfinite: str = "raise",
) -> Interval:
    """Mean of the group means and its stratified percentile-bootstrap interval.

    Each group (e.g. the images of one task) is resampled on its own, so a group's weight in
    the estimate never changes; with one group this is the ordinary bootstrap of a mean.

    Args:
        groups: one array of values per group (at least one value each).
        confidence: interval coverage (0.95).
        n_resamples: bootstrap resamples.
        seed: seed of the resampling.
        nonfinite: "raise" on an infinite or nan value, or "nan": return the (possibly
            infinite) mean without an interval (an image left untouched by its degradation
            has PSNR = inf, and no interval describes such a mean).
    """
    if nonfinite == "nan":
        raw = [np.asarray(g, dtype=float).ravel() for g in groups]
        if not all(np.isfinite(x).all() for x in raw):
            est = float(np.mean([x.mean() for x in raw]))
            return Interval(est, float("nan"), float("nan"), sum(len(x) for x in raw))
    xs = [_clean(g) for g in groups]
    if not xs or any(len(x) == 0 for x in xs):
        raise ValueError("every group needs at least one value")
    est = float(np.mean([x.mean() for x in xs]))
    n = sum(len(x) for x in xs)
    if any(len(x) < 2 for x in xs):
        return Interval(est, float("nan"), float("nan"), n)
    if all(np.ptp(x) == 0 for x in xs):  # nothing to resample: the interval is the point
        return Interval(est, est, est, n)
    res = sps.bootstrap(
        tuple(xs),
        lambda *s, axis=-1: np.mean([v.mean(axis=axis) for v in s], axis=0),
        confidence_level=confidence,
        n_resamples=n_resamples,
        method="percentile",
        paired=False,
        vectorized=True,
        rng=np.random.default_rng(seed),
    )
    return Interval(est, float(res.confidence_interval.low), float(res.confidence_interval.high), n)


def bootstrap_mean(values, **kw) -> Interval:
    """Mean of `values` (one per test image) and its percentile-bootstrap 95 % interval."""
    return bootstrap_mean_of_means([values], **kw)


def _aligned(a, b, strict: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Two per-image samples on the same images: Series are aligned by index, arrays by order
    (`strict=False` lets infinite values through, for `nonfinite="nan"`)."""
    clean = _clean if strict else (lambda v: np.asarray(v, dtype=float).ravel())
    if isinstance(a, pd.Series) and isinstance(b, pd.Series):
        if set(a.index) != set(b.index) or a.index.has_duplicates or b.index.has_duplicates:
            only = sorted(map(str, set(a.index) ^ set(b.index)))[:5]
            raise ValueError(f"a paired difference needs the same images on both sides; {only}")
        return clean(a), clean(b.reindex(a.index))
    a, b = clean(a), clean(b)
    if a.shape != b.shape:
        raise ValueError(f"a paired difference needs equal lengths, got {len(a)} and {len(b)}")
    return a, b


def paired_difference(a, b, **kw) -> Interval:
    """Mean of a − b over the same test images, with the paired bootstrap interval.

    Args:
        a, b: per-image values of two methods; pandas Series keyed by image are aligned by
            key (and must hold the same images), arrays must be in the same image order.
        **kw: `bootstrap_mean_of_means` options.
    """
    a, b = _aligned(a, b)
    return bootstrap_mean(a - b, **kw)


def paired_difference_of_means(groups_a: Sequence, groups_b: Sequence, **kw) -> Interval:
    """Difference of two Averages (mean of task means) over the same images, per task paired."""
    if len(groups_a) != len(groups_b):
        raise ValueError("both sides need the same tasks")
    with np.errstate(invalid="ignore"):
        diffs = [
            np.subtract(*_aligned(a, b, strict=False))
            for a, b in zip(groups_a, groups_b, strict=True)
        ]
    return bootstrap_mean_of_means(diffs, **kw)


def seed_spread(values) -> SeedSpread:
    """Mean and standard deviation (ddof 1; nan with one seed) of a number over seeds."""
    x = np.asarray(values, dtype=float).ravel()
    if len(x) == 0:
        raise ValueError("no values")
    with np.errstate(invalid="ignore"):  # inf - inf when an image is left untouched
        sd = float(x.std(ddof=1)) if len(x) > 1 else float("nan")
    return SeedSpread(float(x.mean()), sd, len(x))


def kendall_tau(x, y, *, n_resamples: int = 9999, seed: int = SEED) -> tuple[float, float]:
    """Kendall's τ-b between two orderings and its two-sided permutation p-value.

    The p-value is the share of re-pairings of y with x whose |τ| is at least the observed
    one: all n! of them up to 8 rows (exact), else `n_resamples` random ones plus the
    observed pairing. With fewer than 3 pairs, or a constant side: (nan, nan).
    """
    x, y = _clean(x), _clean(y)
    if len(x) != len(y):
        raise ValueError("x and y need the same length")
    n = len(x)
    if n < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan"), float("nan")
    i, j = np.triu_indices(n, k=1)
    sx = np.sign(x[i] - x[j])

    def tau_b(ys):  # ys: (P, n) re-pairings; ties handled as in scipy's tau-b
        sy = np.sign(ys[:, i] - ys[:, j])
        return (sx * sy).sum(-1) / np.sqrt((sx != 0).sum() * (sy != 0).sum(-1))

    tau = float(tau_b(y[None])[0])
    if n <= 8:
        perms = y[np.array(list(itertools.permutations(range(n))))]
        p = float(np.mean(np.abs(tau_b(perms)) >= abs(tau) - 1e-12))
    else:
        rng = np.random.default_rng(seed)
        perms = np.stack([rng.permutation(y) for _ in range(n_resamples)])
        p = float((np.sum(np.abs(tau_b(perms)) >= abs(tau) - 1e-12) + 1) / (n_resamples + 1))
    return tau, p


# ---------------------------------------------------------------------------- per-image tables


def image_means(per_image: pd.DataFrame) -> pd.DataFrame:
    """Per (method, task, metric, image): the value averaged over training seeds.

    Each image's metric is averaged over the seeds first, so intervals over images and paired
    differences between methods compare the same images, whatever the seed counts.
    """
    keys = ["method", "task", "metric", "dataset", "sigma", "image"]
    d = per_image.assign(sigma=per_image["sigma"].astype(str))
    return d.groupby(keys, sort=False, dropna=False)["value"].mean().reset_index()


def method_images(per_image: pd.DataFrame, method: str, task: str, metric: str) -> pd.Series:
    """Seed-averaged per-image values of one cell, indexed by (dataset, sigma, image)."""
    d = image_means(per_image)
    d = d[(d["method"] == method) & (d["task"] == task) & (d["metric"] == metric)]
    return d.set_index(["dataset", "sigma", "image"])["value"]


def cell_stats(per_image: pd.DataFrame, **kw) -> pd.DataFrame:
    """One line per (method, task, metric) of a per-image table: the table's cell.

    value: mean over seeds of each seed's mean over images; n: images; ci_low/ci_high: 95 %
    bootstrap interval of the mean over images (each image averaged over seeds); n_seeds and
    seed_sd: how many seeds and the standard deviation of the per-seed means.
    """
    rows = []
    for (method, task, metric), g in per_image.groupby(
        ["method", "task", "metric"], sort=False, dropna=False
    ):
        per_seed = g.groupby("seed", sort=True)["value"].mean()
        spread = seed_spread(per_seed.to_numpy())
        imgs = image_means(g)["value"].to_numpy()
        ci = bootstrap_mean(imgs, nonfinite="nan", **kw)
        rows.append(
            dict(
                method=method,
                task=task,
                metric=metric,
                **_cell(spread, ci),
                seeds=",".join(str(s) for s in per_seed.index),
            )
        )
    return pd.DataFrame(rows)


def _cell(spread, ci) -> dict:
    """A cell's value and uncertainty columns: the mean over seeds, the image interval."""
    return dict(
        value=spread.mean,
        n=ci.n,
        ci_low=ci.low,
        ci_high=ci.high,
        n_seeds=spread.n_seeds,
        seed_sd=spread.sd,
    )


def average_stats(per_image: pd.DataFrame, method: str, metric: str, tasks: list[str], **kw):
    """The Average over `tasks` (mean of task means) of one method, as `cell_stats` gives a cell.

    Returns None when a task has no per-image values for the method.
    """
    d = per_image[(per_image["method"] == method) & (per_image["metric"] == metric)]
    if not set(tasks) <= set(d["task"]):
        return None
    per_seed = [
        np.mean([g.loc[g["task"] == t, "value"].mean() for t in tasks])
        for _, g in d.groupby("seed", sort=True)
    ]
    spread = seed_spread(per_seed)
    means = image_means(d)
    groups = [means.loc[means["task"] == t, "value"] for t in tasks]
    ci = bootstrap_mean_of_means(groups, nonfinite="nan", **kw)
    return _cell(spread, ci)


def difference(
    per_image: pd.DataFrame, a: str, b: str, metric: str, tasks: list[str], **kw
) -> Interval | None:
    """Paired difference a − b over the same images: one task, or the Average of several.

    Returns None when either method lacks per-image values for a task.
    """
    ga, gb = [], []
    for t in tasks:
        sa, sb = method_images(per_image, a, t, metric), method_images(per_image, b, t, metric)
        if sa.empty or sb.empty:
            return None
        ga.append(sa)
        gb.append(sb)
    return paired_difference_of_means(ga, gb, nonfinite="nan", **kw)


def seed_differences(
    per_image: pd.DataFrame, a: str, b: str, metric: str, tasks: list[str]
) -> np.ndarray:
    """a − b of the per-seed means (mean of task means), one per seed both rows trained with;
    when one row has a single seed, each of the other's seeds is compared with it. Empty when
    neither row has several seeds, so an image interval is all there is to judge by."""

    def per_seed(m):
        d = per_image[
            (per_image["method"] == m)
            & (per_image["metric"] == metric)
            & per_image["task"].isin(tasks)
        ]
        return d.groupby(["seed", "task"])["value"].mean().groupby("seed").mean()

    sa, sb = per_seed(a), per_seed(b)
    if len(sa) < 2 and len(sb) < 2 or sa.empty or sb.empty:
        return np.array([])
    if len(sa) == 1 or len(sb) == 1:
        return (sa.to_numpy()[:, None] - sb.to_numpy()[None, :]).ravel()
    common = sa.index.intersection(sb.index)
    return (sa[common] - sb[common]).to_numpy()
