"""Does the router sort degradations? Expert shares per degradation type, §III-C, Fig. 5.

§III-C says DGEA's router lets "specialized experts ... dynamically focus on distinct
degradation-specific variations". Routing happens whatever ADEC's α is, so the claim can be
tested at any scale. The rows come from `engine.probes.expert_shares`: per test image, ADEC
and specialised expert, the share of the image's top-K selections (eq. 5) that went to the
expert. This module turns them into

* `share_table`: the mean share of each expert per setting, ADEC and degradation type;
* `mutual_information`: I(type; expert) in bits, with every image weighted equally, as
  I = (1/n) Σ_i Σ_e p_i(e) log₂(P(e | t_i) / P(e)), a mean of per-image terms;
* `specialisation`: that I against its permutation null. Types are permuted over images
  within each photograph that carries several types (the stand-in degrades one photograph in
  every way, so the scene is held fixed), and whole photographs exchange their type where a
  photograph carries one; the p-value is (1 + #{I_π ≥ I}) / (1 + permutations), and the
  smallest p the design can reach is 1 / (distinct relabellings);
* `routing_claims`: the claim rows (`claims.CLAIM_COLUMNS`, source "Fig. 9 routing"): the
  estimate is I minus its null mean, per image I's term minus that term's mean over the
  permutations, with an interval over photographs (`stats.design_interval`). The verdict:
  "not testable here" where no relabelling of this many images can reach p < 0.05, "cannot
  resolve" where the permutation p is not below 0.05, else `verdicts.verdict` of the
  interval in the claimed direction (both tests must agree to support the claim).

`summary_section` puts the table, the verdicts and the heat map on the summary page beside
Fig. 9. The trained networks and images come from `m2ir_lib.workbook.experts`.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import Markdown

from m2ir_lib.core.config import Profile
from m2ir_lib.workbook import claims, results, stats, verdicts

SOURCE = "Fig. 9 routing"
CLAIM = "experts specialise by degradation"
METRIC = "I(type; expert) − permutation-null mean, bits"
SHARES_STEM, MI_STEM, FIGURE = "routing_shares", "routing_mi", "routing_by_degradation"
N_PERMUTATIONS = 999
ALPHA = 0.05  # the test's level; a design whose smallest p is above it cannot decide
KEYS = ["setting", "adec", "position"]


# ---------------------------------------------------------------------------- shares


def share_table(shares: pd.DataFrame) -> pd.DataFrame:
    """Mean share of the top-K selections per setting, ADEC, degradation type and expert
    (images weighted equally; each (setting, ADEC, type) sums to 1), with the image count."""
    g = shares.groupby([*KEYS, "task", "expert"], sort=False)
    out = g["share"].mean().rename("share").reset_index()
    return out.assign(images=g["share"].size().to_numpy())


def _per_image(one: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(shares (n, N), types (n,), units (n,)) of one setting and ADEC, an image a row."""
    wide = one.pivot_table(index=["task", "image", "unit"], columns="expert", values="share")
    idx = wide.index.to_frame(index=False)
    return wide.to_numpy(float), idx["task"].astype(str).to_numpy(), idx["unit"].to_numpy()


# ---------------------------------------------------------------------------- I(type; expert)


def _terms(p: np.ndarray, types: np.ndarray) -> np.ndarray:
    """Per image, Σ_e p_i(e) log₂(P(e | t_i) / P(e)); their mean is I(type; expert)."""
    marginal = p.mean(0)  # P(e)
    out = np.empty(len(p))
    for t in np.unique(types):
        rows = types == t
        cond = p[rows].mean(0)  # P(e | t)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(p[rows] > 0, np.log2(cond / marginal), 0.0)
        out[rows] = (p[rows] * ratio).sum(1)
    return out


def mutual_information(p, types) -> float:
    """I(type; expert) in bits of per-image expert shares `p` (n, N), rows summing to 1."""
    return float(_terms(np.asarray(p, float), np.asarray(types)).mean())


def type_entropy(types) -> float:
    """H(type) in bits, the most I(type; expert) can be."""
    _, counts = np.unique(np.asarray(types), return_counts=True)
    q = counts / counts.sum()
    return float(-(q * np.log2(q)).sum())


def _blocks(types: np.ndarray, units: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Images grouped by photograph: those holding several types, and those holding one."""
    groups = [np.flatnonzero(units == u) for u in pd.unique(units)]
    mixed = [g for g in groups if len(set(types[g])) > 1]
    return mixed, [g for g in groups if len(set(types[g])) == 1]


def _multinomial(labels) -> int:
    """Distinct orderings of `labels`: n! / Π n_t!."""
    _, counts = np.unique(np.asarray(labels), return_counts=True)
    return math.factorial(int(counts.sum())) // math.prod(math.factorial(int(c)) for c in counts)


def relabellings(types, units) -> int:
    """How many distinct type labellings the permutation scheme can draw (the observed one
    among them), so the smallest reachable p-value is its inverse."""
    types, units = np.asarray(types), np.asarray(units)
    mixed, pure = _blocks(types, units)
    n = math.prod(_multinomial(types[g]) for g in mixed)
    return n * (_multinomial([types[g[0]] for g in pure]) if pure else 1)


def permuted_types(types, units, rng: np.random.Generator) -> np.ndarray:
    """One draw of the null: types shuffled within each photograph holding several, and
    whole one-type photographs exchanging their types."""
    types, units = np.asarray(types), np.asarray(units)
    mixed, pure = _blocks(types, units)
    out = types.copy()
    for g in mixed:
        out[g] = rng.permutation(types[g])
    if len(pure) > 1:
        labels = [types[g[0]] for g in pure]
        for g, j in zip(pure, rng.permutation(len(pure)), strict=True):
            out[g] = labels[j]
    return out


def specialisation(
    p, types, units, n_permutations: int = N_PERMUTATIONS, seed: int = stats.SEED
) -> dict:
    """I(type; expert) of per-image shares `p` (n, N) and its permutation test over images.

    Args:
        p: (n, N) expert shares per image, rows summing to 1.
        types: (n,) degradation type of each image.
        units: (n,) photograph of each image (its own name on a real test set).
        n_permutations, seed: size and seed of the permutation null.

    Returns:
        dict: mi, h_type (bits), mi_null (mean over permutations), p_value, p_min (the
        smallest p this design can reach), relabellings, and `excess`, per image its term of
        I minus that term's mean over the permutations (their mean is mi − mi_null).
    """
    p, types, units = np.asarray(p, float), np.asarray(types).astype(str), np.asarray(units)
    rng = np.random.default_rng(seed)
    observed = _terms(p, types)
    null = np.stack(
        [_terms(p, permuted_types(types, units, rng)) for _ in range(n_permutations)]
    )  # (permutations, n)
    mi, mi_null = float(observed.mean()), null.mean(1)
    distinct = relabellings(types, units)
    return dict(
        mi=mi,
        h_type=type_entropy(types),
        mi_null=float(mi_null.mean()),
        p_value=float((1 + (mi_null >= mi - 1e-12).sum()) / (1 + n_permutations)),
        p_min=max(1 / distinct, 1 / (1 + n_permutations)),
        relabellings=distinct,
        excess=observed - null.mean(0),
    )


# ---------------------------------------------------------------------------- verdicts


def mi_table(shares: pd.DataFrame, n_permutations: int = N_PERMUTATIONS) -> pd.DataFrame:
    """Per setting and ADEC: I(type; expert), H(type), the null mean, the permutation p and
    the smallest reachable p, images and photographs, and the verdict (`routing_claims`)."""
    rows = []
    for key, one in shares.groupby(KEYS, sort=False):
        p, types, units = _per_image(one)
        s = specialisation(p, types, units, n_permutations)
        ci = stats.design_interval(s["excess"], units)
        rows.append(
            {
                **dict(zip(KEYS, key, strict=True)),
                "mi_bits": s["mi"],
                "h_type_bits": s["h_type"],
                "mi_null_bits": s["mi_null"],
                "p_value": s["p_value"],
                "p_min": s["p_min"],
                "images": len(p),
                "photographs": len(pd.unique(units)),
                "estimate": ci.estimate,
                "ci_low": ci.low,
                "ci_high": ci.high,
                "detectable": ci.detectable(),
                "verdict": _verdict(ci, s),
            }
        )
    return pd.DataFrame(rows)


def _verdict(ci: stats.Interval, s: dict) -> str:
    if s["p_min"] > ALPHA:
        return (
            f"{verdicts.NOT_TESTABLE} (smallest reachable permutation p {s['p_min']:.2f} "
            f"> {ALPHA}: {s['relabellings']} relabellings)"
        )
    if s["p_value"] >= ALPHA:  # the exact test decides first; the interval only adds to it
        return f"{verdicts.UNRESOLVED} (permutation p {s['p_value']:.3f} ≥ {ALPHA})"
    return verdicts.verdict(+1, ci)


def routing_claims(table: pd.DataFrame) -> list[dict]:
    """One claim row per setting and ADEC of `mi_table` (the paper states a direction)."""
    return [
        dict(
            source=SOURCE,
            claim=f"{CLAIM} ({r.setting}, ADEC {r.adec + 1} at {r.position})",
            column="",
            kind=claims.PAPER,
            metric=METRIC,
            paper_effect=float("nan"),
            estimate=r.estimate,
            ci_low=r.ci_low,
            ci_high=r.ci_high,
            n_units=r.photographs,
            n_seeds=1,
            detectable=r.detectable,
            verdict=r.verdict,
            design=f"I = {r.mi_bits:.3f} of H(type) = {r.h_type_bits:.2f} bits, permutation "
            f"p = {r.p_value:.3f} (smallest reachable {r.p_min:.3f}; {r.images} images)",
        )
        for r in table.itertuples()
    ]


def caption(table: pd.DataFrame) -> str:
    """One computed line per setting and ADEC: I, its null, p, the interval and verdict."""
    if table.empty:
        return "No routing measured (no trained all-in-one M²IR with data)."
    return "\n".join(
        f"- **{r.setting}, ADEC {r.adec + 1} ({r.position})**: I(type; expert) = "
        f"{r.mi_bits:.3f} bits of H(type) = {r.h_type_bits:.2f} (null mean "
        f"{r.mi_null_bits:.3f}), permutation p = {r.p_value:.3f} over {r.images} images of "
        f"{r.photographs} photographs (smallest reachable p {r.p_min:.3f}); excess "
        f"{r.estimate:+.3f} [{r.ci_low:+.3f}, {r.ci_high:+.3f}], detectable here "
        f"{r.detectable:.3f}: **{r.verdict}**."
        for r in table.itertuples()
    )


def show(table: pd.DataFrame) -> Markdown:
    """`caption` for a notebook."""
    return Markdown(caption(table))


# ---------------------------------------------------------------------------- heat map


def plot_shares(table: pd.DataFrame, path: str | Path | None = None):
    """Heat maps of `share_table`: a row of panels per setting, a panel per ADEC (types ×
    experts), every panel on one 0–1 colour scale with one labelled colour bar."""
    if table.empty:
        print("no routing shares to draw (no trained all-in-one M²IR with data)")
        return None
    settings, adecs = list(dict.fromkeys(table.setting)), sorted(set(table.adec))
    n_types = table.groupby("setting")["task"].nunique().max()
    fig, axes = plt.subplots(
        len(settings), len(adecs), squeeze=False, layout="constrained",
        figsize=(3.2 * len(adecs) + 1.2, (0.32 * n_types + 1.2) * len(settings)),
    )  # fmt: skip
    for r, setting in enumerate(settings):
        for c, adec in enumerate(adecs):
            one = table[(table.setting == setting) & (table.adec == adec)]
            grid = one.pivot(index="task", columns="expert", values="share")
            grid = grid.reindex(list(dict.fromkeys(one.task)))
            ax = axes[r, c]
            ax.imshow(grid.to_numpy(), cmap="viridis", vmin=0, vmax=1, aspect="auto")
            for (i, j), v in np.ndenumerate(grid.to_numpy()):
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7, color="w")
            ax.set_xticks(range(grid.shape[1]), [f"E{e}" for e in grid.columns], fontsize=7)
            ax.set_yticks(range(grid.shape[0]), grid.index, fontsize=7)
            pos = one.position.iloc[0] if len(one) else ""
            ax.set_title(f"{setting}: ADEC {adec + 1} ({pos})", fontsize=8)
    bar = fig.colorbar(axes[0, 0].images[0], ax=axes.ravel().tolist(), shrink=0.7)
    bar.set_label("share of the top-K selections (eq. 5), one scale", fontsize=8)
    fig.suptitle("Which specialised expert each degradation type selects", fontsize=9)
    return results.save_figure(fig, path)


# ---------------------------------------------------------------------------- summary page


def summary_section(profile: Profile, root: str | Path | None = None) -> str:
    """The summary page's block beside Fig. 9: the gate figure, the routing heat map, the
    mutual information per setting and ADEC with its verdict (from the CSVs notebook 16
    wrote); a note where they were not produced."""
    out = results.results_dir(profile, root)
    lines = ["## Fig. 9 and routing by degradation (§III-C, §IV-D)", ""]
    if (out / "figures" / "fig9_gating.png").is_file():
        lines += ["![fig9_gating](figures/fig9_gating.png)", ""]
    mi_path = out / f"{MI_STEM}.csv"
    if not mi_path.is_file():
        return "\n".join([*lines, f"_Routing not measured by this run (no `{MI_STEM}.csv`)._", ""])
    table = pd.read_csv(mi_path)
    lines += [
        "Per trained all-in-one M²IR (Tables I–IV) and ADEC: the mutual information between "
        "degradation type and the experts an image's pixels select, against a permutation "
        f"null over images (`{SHARES_STEM}.csv`: the shares per type and expert).",
        "",
        caption(table),
        "",
    ]
    if (out / "figures" / f"{FIGURE}.png").is_file():
        lines += [f"![{FIGURE}](figures/{FIGURE}.png)", ""]
    return "\n".join(lines)
