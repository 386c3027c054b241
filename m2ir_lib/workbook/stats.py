"""How sure a table's numbers are: intervals over what is independent, power, rank tests.

One place for the statistics every table uses (issues 10 and 21). A table cell is a mean over
test images and, where a row was trained with several seeds, over seeds. Its uncertainty
comes from what could have come out otherwise: which *independent* test units were drawn and
which seeds. A tile is not independent of the other tiles of its photograph, so the unit of
the synthetic stand-in is the photograph (the per-image CSV's `unit` column names it) and
that of a real test set is the image.

The interval is a two-level bootstrap (`design_interval`):

* **units** are resampled whole (a photograph with all its tiles), within each column, or
  jointly where every column holds the same photographs. With 4–8 photographs the plain
  percentile bootstrap covers the truth far less than 95 % of the time (its variance is
  short by (n − 1)/n and its percentiles are too narrow), so each resample draws n − 1 of
  the n units (the rescaled bootstrap of Rao & Wu, JASA 1988), whose variance of a mean
  is unbiased, and the interval is estimate ± t·se with t from Student's distribution;
* **seeds**: the variance of the per-seed estimates over seeds, s²/S, which is what the same
  rescaled bootstrap over S seeds converges to (computed in closed form: with 2–3 seeds
  there are only a handful of distinct resamples);
* the two variances add, and the t quantile takes Satterthwaite's degrees of freedom.

A difference between two rows pairs the same images and the same seeds (`difference`): a
one-seed row is set against the other row's run of that seed, never against a multi-seed
mean, and the seed variance it cannot see is borrowed from the table's replicated rows
(`seed_variance`). `Interval.detectable` is the smallest true difference the design
detects with 80 % power in a 5 % two-sided test: (t₀.₉₇₅ + t₀.₈₀)·se. tests/test_stats.py
simulates photographs × tiles with a known truth and checks the intervals cover it 93–97 %
of the time (and that resampling tiles does not).

Per-image rows use the long schema of `PER_IMAGE_COLUMNS` (`results.write_per_image`);
`cell_stats` turns them into one line per (method, task, metric): value, n (independent
units), ci_low, ci_high, n_seeds, seed_sd.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy import stats as sps

CONFIDENCE = 0.95
POWER = 0.80
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
    "unit",
    "metric",
    "value",
]
IMAGE_KEYS = ["task", "dataset", "sigma", "image"]


class Interval(NamedTuple):
    """An estimate, its 95 % interval, and the design behind it.

    n: independent test units (photographs, or images of a real set); n_seeds: training
    seeds; se and df: the standard error and its degrees of freedom (nan bounds when no
    variance can be estimated, e.g. one unit).
    """

    estimate: float
    low: float
    high: float
    n: int
    n_seeds: int = 1
    se: float = float("nan")
    df: float = float("nan")
    parts: tuple = ()  # (level, variance, df) per source of variation: "units", "seeds"

    def excludes(self, x: float = 0.0) -> bool:
        """True when the whole interval lies on one side of x."""
        return bool(np.isfinite(self.low) and (self.low > x or self.high < x))

    def detectable(self, power: float = POWER, confidence: float = CONFIDENCE) -> float:
        """Smallest true difference found with probability `power` by a two-sided test at
        1 − `confidence`: (t_{1−α/2} + t_{power})·se on this design's degrees of freedom."""
        if not (np.isfinite(self.se) and self.df > 0):
            return float("nan")
        if self.se == 0:
            return 0.0
        a = 1 - (1 - confidence) / 2
        return float((sps.t.ppf(a, self.df) + sps.t.ppf(power, self.df)) * self.se)

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
        raise ValueError(f"non-finite values: {x[~np.isfinite(x)][:3]}")
    return x


Component = tuple[float, float]  # (variance of the estimate, its degrees of freedom)


def _t_interval(estimate: float, parts, n: int, n_seeds: int, confidence=CONFIDENCE) -> Interval:
    """estimate ± t·se from independent (level, variance, df) components, Satterthwaite's df."""
    parts = tuple(parts)
    if not parts or any(not np.isfinite(v) or not df > 0 for _, v, df in parts):
        return Interval(estimate, float("nan"), float("nan"), n, n_seeds)
    var = float(sum(v for _, v, _ in parts))
    if var == 0:  # nothing varies: the interval is the point
        return Interval(estimate, estimate, estimate, n, n_seeds, 0.0, float("inf"), parts)
    df = var**2 / sum(v**2 / df for _, v, df in parts if v > 0)
    half = float(sps.t.ppf(1 - (1 - confidence) / 2, df)) * np.sqrt(var)
    return Interval(estimate, estimate - half, estimate + half, n, n_seeds, np.sqrt(var), df, parts)


def _layout(units, strata) -> tuple[np.ndarray, np.ndarray, bool]:
    """Integer codes of units and strata, and whether units are shared by every stratum
    (then they are resampled jointly: one photograph degraded for every column)."""
    u = pd.factorize(np.asarray(units, dtype=object))[0]
    s = pd.factorize(np.asarray(strata, dtype=object))[0]
    per_stratum = [set(u[s == k]) for k in range(s.max() + 1)]
    shared = len(per_stratum) > 1 and all(p == per_stratum[0] for p in per_stratum)
    return u, s, shared


def _stratum_means(x: np.ndarray, s: np.ndarray) -> np.ndarray:
    """(..., N) values -> (..., T) mean of each stratum's images."""
    return np.stack([x[..., s == k].mean(-1) for k in range(s.max() + 1)], -1)


def _unit_components(x, u, s, shared, n_resamples, seed) -> list[Component]:
    """Variance of the mean of stratum means over resampled units (seed-averaged values x).

    Each resample draws n − 1 of a group's n units with replacement (rescaled bootstrap);
    a unit keeps all its images. Independent strata give one component each."""
    rng = np.random.default_rng(seed)
    n_strata = s.max() + 1
    groups = [np.arange(n_strata)] if shared else [np.array([k]) for k in range(n_strata)]
    parts = []
    for g in groups:
        inside = np.isin(s, g)
        ids = np.unique(u[inside])
        if len(ids) < 2:
            return [(float("nan"), 0.0)]
        counts = rng.multinomial(len(ids) - 1, np.full(len(ids), 1 / len(ids)), n_resamples)
        # sums and image counts of each (unit, stratum): a resample weighs them by its counts
        means = []
        for k in g:
            sel = inside & (s == k)
            col = np.searchsorted(ids, u[sel])
            total = np.bincount(col, weights=x[sel], minlength=len(ids))
            size = np.bincount(col, minlength=len(ids)).astype(float)
            with np.errstate(invalid="ignore", divide="ignore"):
                means.append((counts @ total) / (counts @ size))
        est = np.nanmean(np.stack(means, -1), -1) * len(g) / n_strata
        parts.append((float(np.nanvar(est, ddof=1)), len(ids) - 1.0))
    return parts


def design_interval(
    values,
    units=None,
    strata=None,
    *,
    extra: Sequence[Component] = (),
    confidence=CONFIDENCE,
    n_resamples=N_RESAMPLES,
    seed=SEED,
    nonfinite: str = "raise",
) -> Interval:
    """Mean over seeds of the mean of stratum (column) means, with its two-level interval.

    Args:
        values: (S, N) per seed and image, or (N,) for one seed.
        units: (N,) independent unit of each image (default: each image its own).
        strata: (N,) column of each image (default: one column); the estimate is the mean
            of the column means, so each column keeps its weight.
        extra: further (variance, df) components, e.g. a seed variance borrowed from
            replicated rows for a one-seed comparison (`seed_variance`).
        confidence, n_resamples, seed: interval level, bootstrap size and its seed.
        nonfinite: "raise" on inf/nan, or "nan": return the mean with no interval (an image
            left untouched by its degradation has PSNR = inf).
    """
    v = np.atleast_2d(np.asarray(values, dtype=float))
    n_img = v.shape[1]
    units = np.arange(n_img) if units is None else np.asarray(units)
    strata = np.zeros(n_img, dtype=int) if strata is None else np.asarray(strata)
    if n_img == 0 or len(units) != n_img or len(strata) != n_img:
        raise ValueError(f"{n_img} images, {len(units)} units, {len(strata)} strata")
    u, s, shared = _layout(units, strata)
    n_units = len(np.unique(u)) if shared else len(set(zip(u, s, strict=True)))
    n_seeds = v.shape[0]
    if not np.isfinite(v).all():
        if nonfinite != "nan":
            raise ValueError(f"non-finite values in a bootstrap sample: {v[~np.isfinite(v)][:3]}")
        with np.errstate(invalid="ignore"):
            est = float(_stratum_means(v, s).mean(-1).mean())
        return Interval(est, float("nan"), float("nan"), n_units, n_seeds)
    per_seed = _stratum_means(v, s).mean(-1)  # (S,)
    est = float(per_seed.mean())
    parts = [("units", *p) for p in _unit_components(v.mean(0), u, s, shared, n_resamples, seed)]
    if n_seeds > 1:
        parts.append(("seeds", float(per_seed.var(ddof=1)) / n_seeds, n_seeds - 1.0))
    parts += [("seeds", *p) for p in extra]
    return _t_interval(est, parts, n_units, n_seeds, confidence)


def bootstrap_mean(values, units=None, **kw) -> Interval:
    """Mean of one seed's per-image `values` and its interval over independent `units`."""
    return design_interval(np.asarray(values, dtype=float)[None], units, **kw)


def _aligned(a, b) -> tuple[np.ndarray, np.ndarray]:
    """Two per-image samples on the same images: Series are aligned by index, arrays by order."""
    if isinstance(a, pd.Series) and isinstance(b, pd.Series):
        if set(a.index) != set(b.index) or a.index.has_duplicates or b.index.has_duplicates:
            only = sorted(map(str, set(a.index) ^ set(b.index)))[:5]
            raise ValueError(f"a paired difference needs the same images on both sides; {only}")
        return a.to_numpy(float), b.reindex(a.index).to_numpy(float)
    a, b = np.asarray(a, dtype=float).ravel(), np.asarray(b, dtype=float).ravel()
    if a.shape != b.shape:
        raise ValueError(f"a paired difference needs equal lengths, got {len(a)} and {len(b)}")
    return a, b


def paired_difference(a, b, units=None, **kw) -> Interval:
    """Mean of a − b over the same test images, resampling `units` (default: images).

    Args:
        a, b: per-image values of two methods; pandas Series keyed by image are aligned by
            key (and must hold the same images), arrays must be in the same image order.
        units: independent unit of each image (in a's order).
        **kw: `design_interval` options.
    """
    a, b = _aligned(a, b)
    return bootstrap_mean(a - b, units, **kw)


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
    one. Without ties that is Kendall's exact null distribution (`scipy.stats.kendalltau`,
    method "exact": every n! re-pairing, at any n); with ties `scipy.stats.permutation_test`
    re-pairs: all n! of them up to 8 rows (exact), else `n_resamples` random ones plus the
    observed pairing. With fewer than 3 pairs, or a constant side: (nan, nan).
    """
    x, y = _clean(x), _clean(y)
    if len(x) != len(y):
        raise ValueError("x and y need the same length")
    n = len(x)
    if n < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan"), float("nan")
    if len(np.unique(x)) == n and len(np.unique(y)) == n:
        res = sps.kendalltau(x, y, method="exact")
        return float(res.statistic), float(res.pvalue)
    tau = float(sps.kendalltau(x, y).statistic)
    null = sps.permutation_test(
        (y,),
        lambda ys: abs(sps.kendalltau(x, ys).statistic),  # |τ|, one-sided: a two-sided test
        permutation_type="pairings",
        alternative="greater",
        n_resamples=np.inf if n <= 8 else n_resamples,
        rng=np.random.default_rng(seed),
    )
    return tau, float(null.pvalue)


# ---------------------------------------------------------------------------- per-image tables


def _units(per_image: pd.DataFrame) -> pd.Series:
    """Each row's independent unit, qualified by its data set (two real test sets may both
    hold a '1.png'); each image its own unit where the column is empty or missing."""
    image = per_image["image"].astype(str)
    unit = per_image["unit"].astype(str) if "unit" in per_image else image
    return per_image["dataset"].astype(str) + "/" + unit.where(unit != "", image)


def design(per_image: pd.DataFrame, method: str, metric: str, tasks: list[str]):
    """One row's scores as a (seeds × images) frame over `tasks`, and each image's unit.

    Columns are (task, dataset, sigma, image), in the rows' order; None when a task has no
    scores. A seed missing some of the images is an error: the design would not be crossed.
    """
    d = per_image[
        (per_image["method"] == method)
        & (per_image["metric"] == metric)
        & per_image["task"].isin(tasks)
    ]
    if d.empty or not set(tasks) <= set(d["task"]):
        return None
    # a missing sigma (not denoising) must stay a key, not drop the row from the groupby
    d = d.assign(sigma=pd.to_numeric(d["sigma"]).astype(float).fillna(-1.0), unit=_units(d))
    wide = d.groupby(["seed", *IMAGE_KEYS], sort=False)["value"].mean().unstack(IMAGE_KEYS)
    if wide.isna().to_numpy().any() and not d["value"].isna().any():
        raise ValueError(f"{method}: its seeds were scored on different images")
    units = d.drop_duplicates(IMAGE_KEYS).set_index(IMAGE_KEYS)["unit"]
    return wide, units.reindex(wide.columns)


def cell_stats(per_image: pd.DataFrame, **kw) -> pd.DataFrame:
    """One line per (method, task, metric) of a per-image table: the table's cell.

    value: mean over seeds of each seed's mean over images; n: independent units; ci_low and
    ci_high: the two-level interval (`design_interval`: units and seeds); n_seeds and
    seed_sd: how many seeds and the standard deviation of the per-seed means.
    """
    rows = []
    for (method, task, metric), g in per_image.groupby(
        ["method", "task", "metric"], sort=False, dropna=False
    ):
        wide, units = design(g, method, metric, [task])
        ci = design_interval(wide.to_numpy(), units.to_numpy(), nonfinite="nan", **kw)
        spread = seed_spread(wide.mean(axis=1).to_numpy())
        seeds = ",".join(str(x) for x in sorted(wide.index))
        rows.append(dict(method=method, task=task, metric=metric, **_cell(spread, ci),
                         seeds=seeds))  # fmt: skip
    return pd.DataFrame(rows)


def _cell(spread, ci) -> dict:
    """A cell's value and uncertainty columns: the mean over seeds, the design's interval."""
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
    got = design(per_image, method, metric, tasks)
    if got is None:
        return None
    wide, units = got
    strata = wide.columns.get_level_values("task")
    with np.errstate(invalid="ignore"):
        per_seed = np.stack([wide.loc[:, strata == t].mean(axis=1) for t in tasks], -1).mean(-1)
    ci = design_interval(wide.to_numpy(), units.to_numpy(), strata, nonfinite="nan", **kw)
    return _cell(seed_spread(per_seed), ci)


def seed_variance(per_image: pd.DataFrame, metric: str, tasks: list[str]) -> Component | None:
    """Variance of one run's score (mean of `tasks` means) over training seeds, pooled over the
    rows trained with several seeds, and its degrees of freedom; None when no row has two.

    A one-seed comparison cannot see how much the score of a run moves with its seed; this is
    the estimate of it that the table's replicated rows give (ddof 1, pooled)."""
    ss, df = 0.0, 0
    for method in dict.fromkeys(per_image["method"]):
        got = design(per_image, method, metric, tasks)
        if got is None or len(got[0]) < 2:
            continue
        wide = got[0]
        strata = wide.columns.get_level_values("task")
        per_seed = np.stack([wide.loc[:, strata == t].mean(axis=1) for t in tasks], -1).mean(-1)
        if not np.isfinite(per_seed).all():
            continue
        ss += float(((per_seed - per_seed.mean()) ** 2).sum())
        df += len(per_seed) - 1
    return (ss / df, float(df)) if df else None


def difference(
    per_image: pd.DataFrame,
    a: str,
    b: str,
    metric: str,
    tasks: list[str],
    *,
    seedless_b: bool = False,
    seed_var: Component | None = None,
    **kw,
) -> Interval | None:
    """Paired difference a − b over the same images and the same seeds: one task, or the
    Average (mean of task means) of several.

    Only the seeds both rows were trained with are compared (a one-seed row meets the other
    row's run of the same seed); `seedless_b` marks b as seed-free (the degraded input), so
    every seed of a is kept. When the comparison rests on one seed and `seed_var` (a run's
    variance over seeds, `seed_variance`) is given, it is added, twice for two trained rows
    (each run has its own seed luck) and once against a seed-free b.

    Returns None when either row lacks a task or the two share no seed.
    """
    ga, gb = design(per_image, a, metric, tasks), design(per_image, b, metric, tasks)
    if ga is None or gb is None:
        return None
    (wa, units), (wb, _) = ga, gb
    if set(wa.columns) != set(wb.columns):
        only = sorted(map(str, set(wa.columns) ^ set(wb.columns)))[:3]
        raise ValueError(f"{a} and {b}: a paired difference needs the same images; {only}")
    wb = wb.reindex(columns=wa.columns)
    if seedless_b:
        diff = wa.to_numpy() - wb.to_numpy().mean(0)[None]
    else:
        common = wa.index.intersection(wb.index)
        if common.empty:
            return None
        diff = wa.loc[common].to_numpy() - wb.loc[common].to_numpy()
    extra = []
    if diff.shape[0] == 1 and seed_var is not None:
        extra.append((seed_var[0] * (1 if seedless_b else 2), seed_var[1]))
    strata = wa.columns.get_level_values("task")
    with np.errstate(invalid="ignore"):  # inf − inf where an image is left untouched
        return design_interval(diff, units.to_numpy(), strata, extra=extra, nonfinite="nan", **kw)
