"""One claim judged: the verdict words, the power gate, and what design would test a claim.

`verdict` reads an interval of (ours − reference) against the paper's claimed direction and
size: "not testable here (detectable ≥ x; paper: y)" when the paper's difference is below
what this design detects (`stats.Interval.detectable`: 80 % power, 5 % two-sided), else
supports / contradicts / cannot resolve. `Judged` holds one claim on one column, on PSNR and
SSIM, and becomes rows of `claims.CLAIM_COLUMNS`; `Context` pairs a table's rows like for
like (`stats.difference`) and, for one-seed comparisons, adds the seed variance of the
table's replicated rows, or of Table I's where the table trains no row twice.
`m2ir_lib.workbook.verdicts` writes the sentences.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from m2ir_lib.core.config import Profile
from m2ir_lib.workbook import results, stats
from m2ir_lib.workbook.results import FLOOR, LOWER_IS_BETTER

SUPPORTS, CONTRADICTS, UNRESOLVED = "supports", "contradicts", "cannot resolve"
NOT_TESTABLE = "not testable here"
METRICS = ("PSNR", "SSIM")
PRACTICAL = 100  # a design needing > 100× the seeds × units is not offered at this scale


def _digits(metric: str) -> int:
    return 4 if metric in ("SSIM", "LPIPS") else 2


def _unit(metric: str) -> str:
    return " dB" if metric == "PSNR" else ""


def verdict(
    expected_sign: float,
    ci: stats.Interval | None,
    lower_is_better: bool = False,
    paper_effect: float | None = None,
    metric: str = "PSNR",
) -> str:
    """Does an interval of (ours − reference) agree with a claimed direction?

    `expected_sign` > 0 claims ours is better; with a lower-is-better metric the interval is
    read the other way. Where the paper prints the size of the effect (`paper_effect`) and it
    is below what this design can detect (`Interval.detectable`), the claim is not testable
    here, whatever the interval says. An interval that contains 0 cannot resolve the claim.
    """
    if ci is None:
        return "not measured"
    if not np.isfinite(ci.low):  # one unit, or an infinite PSNR: no interval decides
        return UNRESOLVED
    mdd, k, u = ci.detectable(), _digits(metric), _unit(metric)
    if paper_effect is not None and np.isfinite(paper_effect) and abs(paper_effect) < mdd:
        return f"{NOT_TESTABLE} (detectable ≥ {mdd:.{k}f}{u}; paper: {paper_effect:+.{k}f}{u})"
    if not ci.excludes(0.0):
        if paper_effect is not None and np.isfinite(paper_effect) and ci.excludes(paper_effect):
            return f"{UNRESOLVED} (the paper's {paper_effect:+.{k}f}{u} lies outside the interval)"
        return UNRESOLVED
    better = (ci.estimate < 0) if lower_is_better else (ci.estimate > 0)
    return SUPPORTS if better == (expected_sign > 0) else CONTRADICTS


def word(v: str) -> str:
    """The verdict's category, without its numbers."""
    return next((w for w in (NOT_TESTABLE, UNRESOLVED) if v.startswith(w)), v)


def _count(verdicts: list[str]) -> str:
    n, verdicts = len(verdicts), [word(v) for v in verdicts]
    kinds = (SUPPORTS, CONTRADICTS, NOT_TESTABLE, UNRESOLVED)
    parts = [f"{verdicts.count(w)} {w}" for w in kinds if w in verdicts]
    other = sum(v not in kinds for v in verdicts)
    return f"of {n}: " + ", ".join(parts + ([f"{other} not measured"] if other else []))


def design_needed(ci: stats.Interval | None, effect: float, metric: str = "PSNR") -> str:
    """What design would detect `effect` (80 % power, 5 % two-sided), from this design's
    variance components: more units (photographs or images), more seeds, or both. The
    factor between se and the detectable difference is kept at this design's, so the answer
    is never 'this design' where the verdict says not testable (and errs on the safe side)."""
    if ci is None or not np.isfinite(effect) or effect == 0 or not ci.se > 0:
        return ""
    mdd = ci.detectable()
    if not np.isfinite(mdd):
        return ""
    if mdd <= abs(effect):
        return "this design"
    target = (abs(effect) * ci.se / mdd) ** 2  # the variance that would make mdd = |effect|
    v_u = sum(v for level, v, _ in ci.parts if level == "units")
    v_s = sum(v for level, v, _ in ci.parts if level == "seeds")
    ways = []
    if v_s < target:
        ways.append(f"≥ {math.ceil(ci.n * v_u / (target - v_s))} independent test units")
    if v_u < target and v_s > 0:
        ways.append(f"≥ {math.ceil(ci.n_seeds * v_s / (target - v_u))} seeds per row")
    k = (v_u + v_s) / target
    if not ways and k <= PRACTICAL:
        ways.append(f"{math.ceil(ci.n * k)} units and {math.ceil(ci.n_seeds * k)} seeds per row")
    if not ways:
        ways.append(f"no practical `mini` design (the variance must shrink {k:.0f}-fold)")
    return " or ".join(ways) + "; or the `paper` profile on the real test sets"


def _fmt(ci: stats.Interval | None, k: int = 2) -> str:
    if ci is None:
        return "—"
    if not np.isfinite(ci.low):
        return f"{ci.estimate:+.{k}f} (no interval, n={ci.n})"
    return f"{ci.estimate:+.{k}f} [{ci.low:+.{k}f}, {ci.high:+.{k}f}]"


# ---------------------------------------------------------------------------- one claim


@dataclass
class Judged:
    """One claim on one column, judged on each metric."""

    claim: str
    column: str
    kind: str
    paper: dict  # metric -> the paper's effect (nan: direction only)
    ci: dict  # metric -> stats.Interval | None
    verdict: dict  # metric -> str

    def disagree(self) -> bool:
        w = {word(v) for v in self.verdict.values()}
        return {SUPPORTS, CONTRADICTS} <= w

    def rows(self, source: str) -> list[dict]:
        out = []
        for m, ci in self.ci.items():
            out.append(
                dict(
                    source=source,
                    claim=self.claim,
                    column=self.column,
                    kind=self.kind,
                    metric=m,
                    paper_effect=self.paper[m],
                    estimate=ci.estimate if ci else np.nan,
                    ci_low=ci.low if ci else np.nan,
                    ci_high=ci.high if ci else np.nan,
                    n_units=ci.n if ci else np.nan,
                    n_seeds=ci.n_seeds if ci else np.nan,
                    detectable=ci.detectable() if ci else np.nan,
                    verdict=self.verdict[m],
                    design=design_needed(ci, self.paper[m], m),
                )
            )
        return out


class Context:
    """A table's per-image rows, its paper rows and where a one-seed claim's seed variance
    comes from."""

    def __init__(self, df, per_image, profile: Profile | None):
        self.df, self.per_image, self.profile = df, per_image, profile
        self.paper = df[df["source"] == "paper"]
        have = set(per_image["metric"])
        self.metrics = [m for m in METRICS if m in set(self.paper["metric"]) and m in have]
        self.borrowed = False

    def seed_var(self, metric: str, tasks: list[str]):
        own = stats.seed_variance(self.per_image, metric, tasks)
        if own is not None or self.profile is None:
            return own
        try:  # Table I trains three seeds; its spread stands in where a table has one seed
            ref = results.read_per_image(self.profile, "I")
        except FileNotFoundError:
            return None
        cols = [t for t in dict.fromkeys(ref["task"])]
        got = (
            stats.seed_variance(ref, metric, cols)
            if len(tasks) > 1
            else _pooled([stats.seed_variance(ref, metric, [t]) for t in cols])
        )
        self.borrowed = self.borrowed or got is not None
        return got

    def paper_effect(self, a: str, b: str, metric: str, tasks: list[str]) -> float:
        p = self.paper[self.paper["metric"] == metric]

        def mean(method):
            v = p[(p["method"] == method) & p["task"].isin(tasks)]
            return float(v["value"].mean()) if len(v) == len(tasks) else float("nan")

        return mean(a) - mean(b)

    def judge(self, claim, column, kind, a, b, tasks, paper_a="M²IR", paper_b=None, sign=1):
        """a − b over `tasks` on each metric, against the paper's paper_a − paper_b."""
        floor = b == FLOOR
        paper, ci, verdict_ = {}, {}, {}
        for m in self.metrics:
            eff = self.paper_effect(paper_a, paper_b, m, tasks) if paper_b else float("nan")
            d = stats.difference(
                self.per_image, a, b, m, tasks, seedless_b=floor,
                seed_var=self.seed_var(m, tasks),
            )  # fmt: skip
            if paper_b and np.isfinite(eff):
                sign = 0 if eff == 0 else np.sign(eff)
            paper[m], ci[m] = eff, d
            low = m in LOWER_IS_BETTER
            verdict_[m] = "—" if sign == 0 else verdict(sign, d, low, eff, m)
        return Judged(claim, column, kind, paper, ci, verdict_)


def _pooled(parts):
    parts = [p for p in parts if p is not None]
    if not parts:
        return None
    df = sum(d for _, d in parts)
    return sum(v * d for v, d in parts) / df, float(df)
