"""Fig. 9 and Fig. 10 in numbers: what §IV-D claims of them, with intervals over photographs.

`gate_statistics` turns captured gate pairs (`visualize.gate_pairs`) into per-image numbers
and `gate_claims` judges the paper's reading of Fig. 9 (the gates lower on a degraded input,
and lowest where it is degraded); `separation` is the silhouette of degradation types in
encoder features and `tsne_claims` judges Fig. 10 (the MST encoder's silhouette below the
Transformer's), `separation_interval` resampling photographs and recomputing the score.
Each claim becomes rows of `claims.CLAIM_COLUMNS`; `claims_caption` prints them. Drawing
stays in `m2ir_lib.workbook.visualize`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch.nn.functional as F
from IPython.display import Markdown
from scipy import stats as sps
from sklearn.metrics import pairwise_distances, silhouette_score

from m2ir_lib.workbook import claims, stats, verdicts


def _standardised(features: np.ndarray) -> np.ndarray:
    return (features - features.mean(0)) / (features.std(0) + 1e-8)


def separation(features: np.ndarray, labels: list[str]) -> float:
    """Silhouette score of the degradation labels in feature space (−1..1): high means the
    encoder keeps degradation types apart (the paper's Transformer), low means entangled
    (its MST), Fig. 10 / §IV-D."""
    return float(silhouette_score(_standardised(features), labels))


# ---------------------------------------------------------------------------- Fig. 9 in numbers

GATE_COLUMNS = ["task", "image", "unit", "block", "gate_degraded", "gate_gt", "r_drop_vs_damage"]


def gate_statistics(pairs: list[dict]) -> pd.DataFrame:
    """Fig. 9 in numbers: per pair and encoder block, the mean gate σ(W_l² X) on the degraded
    input and on its GT, and the Pearson r between the gate's drop (GT − degraded) and the
    local degradation |degraded − GT| at the block's resolution. The paper's reading (low
    gates where the image is degraded) predicts a lower mean on the degraded input and r > 0.
    `image` and `unit` (the photograph) name each pair, for intervals over photographs.
    """
    rows = []
    for k, p in enumerate(pairs):
        damage = (p["degraded"] - p["clean"]).abs().mean(0)[None, None]  # (1, 1, H, W)
        image = p.get("name", str(k))
        for name, g_deg in p["gates_degraded"].items():
            g_deg, g_gt = g_deg["gate"], p["gates_clean"][name]["gate"]  # (h, w)
            d = F.adaptive_avg_pool2d(damage, g_deg.shape).flatten()
            drop = (g_gt - g_deg).flatten()
            r = (
                float(np.corrcoef(drop.numpy(), d.numpy())[0, 1])
                if d.std() > 0 and drop.std() > 0
                else float("nan")
            )
            rows.append(
                {
                    "task": p["task"],
                    "image": image,
                    "unit": p.get("unit", image),
                    "block": name,
                    "gate_degraded": float(g_deg.mean()),
                    "gate_gt": float(g_gt.mean()),
                    "r_drop_vs_damage": r,
                }
            )
    return pd.DataFrame(rows, columns=GATE_COLUMNS)


def gate_summary(gate_stats: pd.DataFrame) -> pd.DataFrame:
    """Per task: mean gates on degraded input and GT, mean r, and whether the gate is lower
    on the degraded input (the paper's reading of Fig. 9)."""
    agg = gate_stats.groupby("task")[["gate_degraded", "gate_gt", "r_drop_vs_damage"]].mean()
    return agg.assign(lower_on_degraded=agg["gate_degraded"] < agg["gate_gt"])


# §IV-D on Fig. 9, read as two numbers per image (the mean over encoder blocks), each with the
# sign the paper's words give it: (column, claim, metric, expected sign).
GATE_CLAIMS = (
    ("gate_change", "MSA gates respond lower on a degraded input than on its GT",
     "mean gate σ(W_l² X), degraded − GT", -1),
    ("r_drop_vs_damage", "MSA gates drop where the input is degraded",
     "Pearson r, gate drop (GT − degraded) vs |degraded − GT|", +1),
)  # fmt: skip
ALL_TASKS = "all tasks"


def _per_image_gates(gate_stats: pd.DataFrame) -> pd.DataFrame:
    """One line per image: task, unit and the mean over encoder blocks of the gate change
    (degraded − GT) and of r. A table written before images had names counts each task's
    rows as one image of one unit."""
    numbers = ["gate_degraded", "gate_gt", "r_drop_vs_damage"]
    g = gate_stats.astype(dict.fromkeys(numbers, float))  # an empty table reads as objects
    g["gate_change"] = g["gate_degraded"] - g["gate_gt"]
    for col in ("image", "unit"):
        g[col] = g[col].astype(str) if col in g else g["task"]
    keys = ["task", "image", "unit"]
    return g.groupby(keys, sort=False)[["gate_change", "r_drop_vs_damage"]].mean().reset_index()


def _design_note(ci: stats.Interval) -> str:
    """What design would decide a direction-only claim: the detectable difference shrinks as
    1/√units, so this many units would detect an effect of this run's size."""
    d = ci.detectable()
    if not np.isfinite(d):
        return "at least 2 independent units (photographs) for an interval"
    if ci.excludes(0):
        return "decided at this design"
    need = int(np.ceil(ci.n * (d / abs(ci.estimate)) ** 2)) if ci.estimate else float("inf")
    return f"≈ {need} independent units (now {ci.n}) to detect an effect of this size"


def _claim(source, claim, metric, sign, ci: stats.Interval) -> dict:
    """A claim row (`claims.CLAIM_COLUMNS`) for a direction the paper states, no size."""
    return dict(
        source=source, claim=claim, kind=claims.PAPER, metric=metric,
        paper_effect=float("nan"), estimate=ci.estimate, ci_low=ci.low, ci_high=ci.high,
        n_units=ci.n, n_seeds=ci.n_seeds, detectable=ci.detectable(),
        verdict=verdicts.verdict(sign, ci), design=_design_note(ci),
    )  # fmt: skip


def gate_claims(gate_stats: pd.DataFrame) -> list[dict]:
    """Fig. 9's claim rows: per `GATE_CLAIMS` statistic, over all tasks (the mean of the task
    means) and per task, the mean over images with its interval over photographs
    (`stats.design_interval`, units resampled whole), and the verdict in the paper's direction.
    An image whose r is undefined (a flat gate or damage map) is left out of that statistic."""
    per_image = _per_image_gates(gate_stats)
    rows = []
    for column, claim, metric, sign in GATE_CLAIMS:
        for task in [ALL_TASKS, *dict.fromkeys(per_image["task"])]:
            d = per_image if task == ALL_TASKS else per_image[per_image["task"] == task]
            d = d[np.isfinite(d[column])]
            if d.empty:
                continue
            ci = stats.design_interval(d[column], d["unit"], d["task"])
            rows.append(_claim("Fig. 9", f"{claim} ({task})", metric, sign, ci))
    return rows


def _interval_text(row: dict, digits: int = 3) -> str:
    """The estimate and its interval from a claim row, "+0.012 [-0.004, +0.028] (n = 4 ...)"."""
    est = f"{row['estimate']:+.{digits}f}"
    if not np.isfinite(row["ci_low"]):
        return f"{est} (no interval, n = {row['n_units']})"
    return f"{est} [{row['ci_low']:+.{digits}f}, {row['ci_high']:+.{digits}f}] " \
           f"(n = {row['n_units']} independent units)"  # fmt: skip


def claims_caption(rows: list[dict]):
    """One computed line per claim row of Fig. 9 or Fig. 10: the claim, this run's estimate
    with its interval and what the design can detect, and the verdict (IPython Markdown)."""
    if not rows:
        return Markdown("No claim rows: no test images or features (data missing).")
    lines = []
    for r in rows:
        power = f", detectable here {r['detectable']:.2g}" if np.isfinite(r["detectable"]) else ""
        lines.append(f"- **{r['source']}**, {r['claim']}: {r['metric']} "
                     f"{_interval_text(r)}{power}: **{r['verdict']}**.")  # fmt: skip
    return Markdown("\n".join(lines))


# ---------------------------------------------------------------------------- Fig. 10 in numbers


def _group_distances(features, labels, units) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per point, its summed distance to the points of every (unit, label) group, as
    (N, units, labels), and each point's unit and label codes: enough to recompute the
    silhouette of any resample of whole units without the N × N distance matrix."""
    z = _standardised(np.asarray(features, dtype=float))
    u = pd.factorize(np.asarray(units, dtype=object))[0]
    k = pd.factorize(np.asarray(labels, dtype=object))[0]
    n_u, n_k = u.max() + 1, k.max() + 1
    onehot = np.zeros((len(z), n_u * n_k))
    onehot[np.arange(len(z)), u * n_k + k] = 1
    sums = np.concatenate([pairwise_distances(z[i : i + 1024], z) @ onehot
                           for i in range(0, len(z), 1024)])  # fmt: skip
    return sums.reshape(len(z), n_u, n_k), u, k


def _resampled_silhouette(sums, u, k, counts) -> np.ndarray:
    """Silhouette score of every resample (rows of `counts`: copies of each unit), computed on
    the multiset the resample makes; a point's own copies are not its neighbours, so an
    all-ones row gives the silhouette of the sample itself (sklearn's, singletons 0)."""
    size = np.zeros(sums.shape[1:])  # points per (unit, label)
    np.add.at(size, (u, k), 1)
    within = np.einsum("iul,ru->ril", sums, counts)  # (R, N, labels): weighted distance sums
    n = counts @ size  # (R, labels): weighted points per label
    w = counts[:, u]  # (R, N): copies of each point
    idx = np.arange(len(u))
    with np.errstate(invalid="ignore", divide="ignore"):
        a = within[:, idx, k] / (n[:, k] - w)
        mean = within / n[:, None, :]
        mean[:, idx, k] = np.inf  # b: the nearest *other* label
        b = mean.min(-1)
        s = np.where(n[:, k] - w > 0, (b - a) / np.maximum(a, b), 0.0)
    s = np.nan_to_num(s)
    return (w * s).sum(1) / w.sum(1)


def separation_interval(
    features, labels, units, *, minus=None, n_resamples: int = stats.N_RESAMPLES,
    seed: int = stats.SEED,
) -> stats.Interval:  # fmt: skip
    """The silhouette of `labels` in `features` (`separation`), or its difference from that of
    `minus` (other features of the same points), with a 95 % interval over whole units.

    A silhouette is not a mean of per-image numbers, so each resample draws n − 1 of the n
    units (photographs) with replacement, as `stats` does for means (rescaled bootstrap), and
    recomputes the score on the points they carry, the same draw for both encoders; se² is the
    bootstrap variance, the interval estimate ± t·se with n − 1 degrees of freedom. Units are
    resampled jointly over tasks: one photograph degraded for every task moves as one.
    """
    sides = [(features, +1)] + ([(minus, -1)] if minus is not None else [])
    n_units = len(set(units))
    ones = np.ones((1, n_units))
    parts = [(_group_distances(f, labels, units), sign) for f, sign in sides]
    est = float(sum(sign * _resampled_silhouette(*g, ones)[0] for g, sign in parts))
    if n_units < 2:
        return stats.Interval(est, float("nan"), float("nan"), n_units)
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(n_units - 1, np.full(n_units, 1 / n_units), n_resamples)
    boot = sum(sign * np.concatenate([_resampled_silhouette(*g, c) for c in
                                      np.array_split(counts, -(-n_resamples // 250))])
               for g, sign in parts)  # fmt: skip
    se, df = float(np.std(boot, ddof=1)), n_units - 1.0
    half = float(sps.t.ppf(1 - (1 - stats.CONFIDENCE) / 2, df)) * se
    return stats.Interval(est, est - half, est + half, n_units, 1, se, df)


def tsne_statistics(feats: dict, level: str, units=None) -> pd.DataFrame:
    """Per encoder: number of points and the silhouette of the task labels (`separation`),
    with its interval over units (`separation_interval`) when the points' `units` are given."""
    rows = []
    for name, (f, lab) in feats.items():
        ok = len(set(lab)) > 1 and len(lab) > len(set(lab))
        ci = separation_interval(f, lab, units) if ok and units is not None else None
        rows.append(dict(
            encoder=name, points=len(lab), level=level,
            silhouette=separation(f, lab) if ok else float("nan"),
            ci_low=ci.low if ci else float("nan"), ci_high=ci.high if ci else float("nan"),
            n_units=ci.n if ci else len(set(units)) if units is not None else pd.NA,
        ))  # fmt: skip
    return pd.DataFrame(
        rows, columns=["encoder", "points", "level", "silhouette", "ci_low", "ci_high", "n_units"]
    )


def tsne_claims(feats: dict, units) -> list[dict]:
    """Fig. 10's claim row: §IV-D says the Transformer encoder's features form well-separated
    clusters per degradation while the MST encoder's overlap, so the silhouette of the task
    labels, MST − Transformer (the first two entries of `feats`), is expected below 0."""
    if len(feats) < 2:
        return []
    (mst, (f_mst, labels)), (tra, (f_tra, _)) = list(feats.items())[:2]
    if len(set(labels)) < 2:
        return []
    ci = separation_interval(f_mst, labels, units, minus=f_tra)
    claim = f"the MST encoder separates degradation types less than the Transformer ({mst} − {tra})"
    return [_claim("Fig. 10", claim, "silhouette of the task labels, MST − Transformer", -1, ci)]
