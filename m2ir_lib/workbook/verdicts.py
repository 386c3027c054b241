"""What a table concludes: the paper's claims against this run, in computed sentences.

Everything here reads the long format of `m2ir_lib.workbook.results` and a table's per-image
rows and returns Markdown; nothing is measured here. The closing text of every table
notebook is `conclusions`: per claim of the paper, on PSNR and on SSIM, the paper's effect,
this run's paired difference with its 95 % interval over independent units and like-for-like
seeds (`stats.difference`), the smallest difference this design can detect, and a verdict:

* "not testable here (detectable ≥ x; paper: y)" when the paper's claimed difference is
  smaller than what 80 % power at 5 % two-sided can find with these seeds and units;
* otherwise "supports" / "contradicts" when the interval excludes zero, "cannot resolve"
  when it does not.

A claim judged on one training seed per row adds the seed variance of the table's replicated
rows (or, where a table has none, of Table I's), since one run's score moves with its seed.
Only the paper's claims are called claims; a comparison the paper does not print (e.g. a
Restormer-style row in a table without a Restormer row) is labelled "our extra comparison".
With a profile, `conclusions` also writes every verdict as a row of
`results/<profile>/<stem>_claims.csv` (`m2ir_lib.workbook.claims`) for the summary page.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from IPython.display import Markdown

from m2ir_lib.core.config import Profile
from m2ir_lib.workbook import claims, results
from m2ir_lib.workbook.judge import (  # the verdict words and the claim machinery
    CONTRADICTS,
    METRICS,
    NOT_TESTABLE,
    SUPPORTS,
    UNRESOLVED,
    Context,
    Judged,
    _count,
    _digits,
    _fmt,
    _unit,
    design_needed,
    verdict,
    word,
)

# What the table notebooks, adec and readings use of the judge, under the name they know.
__all__ = [
    "CONTRADICTS",
    "METRICS",
    "NOT_TESTABLE",
    "SUPPORTS",
    "UNRESOLVED",
    "conclusions",
    "design_needed",
    "summary_text",
    "verdict",
    "word",
]
from m2ir_lib.workbook.labels import ours_for
from m2ir_lib.workbook.report import rank_agreement
from m2ir_lib.workbook.results import AVERAGE, FLOOR, STATUS


def _table(judged: list[Judged], first: str = "column") -> str:
    """Markdown: one line per judged claim, the metrics side by side."""
    if not judged:
        return ""
    ms = list(judged[0].ci)
    head = f"| {first} | units × seeds |"
    for m in ms:
        head += f" {m}: paper | {m}: this run [95 % CI] | {m}: detectable | {m}: verdict |"
    lines = [head, "|---" * (2 + 4 * len(ms)) + "|"]
    for j in judged:
        d0 = next((c for c in j.ci.values() if c is not None), None)
        size = f"{d0.n} × {d0.n_seeds}" if d0 else "—"
        cells = f"| {j.column if first == 'column' else j.claim} | {size} |"
        for m in ms:
            k, p, d = _digits(m), j.paper[m], j.ci[m]
            det = d.detectable() if d is not None else float("nan")
            cells += (
                f" {f'{p:+.{k}f}' if np.isfinite(p) else '—'} | {_fmt(d, k)} | "
                f"{f'{det:.{k}f}' if np.isfinite(det) else '—'} | {word(j.verdict[m])} |"
            )
        lines.append(cells)
    return "\n".join(lines)


def _sentence(title: str, judged: list[Judged]) -> str:
    """The claim's verdict counts per metric, and where PSNR and SSIM disagree."""
    text = f"**{title}** This run, per column"
    for m in judged[0].ci if judged else []:
        cols = [j for j in judged if j.column != AVERAGE]
        if cols:
            text += f"; {m} {_count([j.verdict[m] for j in cols])}"
        avg = next((j for j in judged if j.column == AVERAGE), None)
        if avg is not None:
            text += f" (Average: {avg.verdict[m]})"
    split = [j.column for j in judged if j.disagree()]
    if split:
        text += f". PSNR and SSIM disagree on {', '.join(split)}"
    return text + "."


# ---------------------------------------------------------------------------- conclusions


def conclusions(
    df: pd.DataFrame,
    per_image: pd.DataFrame,
    ours: str | list[str] | None = None,
    baseline: str | None = None,
    metric: str | None = None,
    reference: str | None = None,
    rivals: list[str] | None = None,
    profile: Profile | None = None,
):
    """The closing text of a table notebook, computed from the table and its per-image scores.

    Tables I–VI (`ours` given): per column and for the Average, M²IR − the Restormer-style
    network, M²IR − each trained rival and M²IR − the degraded input, on PSNR and SSIM, each a
    paired difference over the same units and seeds, judged against the paper's margin (a
    paper claim where the paper prints that row, else "our extra comparison"). Ablations
    (`ours` None): every row − the full model (`reference`, default the paper's best row),
    judged against the paper's difference; the full model against the degraded input; and
    Kendall τ of the two orders.

    Args:
        df: the table (paper and reproduced rows, averages added).
        per_image: the table's per-image rows (`results.read_per_image`).
        ours: our M²IR row(s); a list when different runs cover different columns (Table V).
        baseline: our Restormer-style row, if the table has one.
        metric: judge only this metric (default: PSNR and SSIM, those the paper prints).
        reference: the ablation row every other row is compared with.
        rivals: rows of named rivals (e.g. "PromptIR (ours, mini)", "AdaIR (released
            weights)").
        profile: when given, the verdicts are also written to
            `results/<profile>/<stem>_claims.csv` for the summary page.

    Returns:
        IPython Markdown.
    """
    ctx = Context(df, per_image, profile)
    if metric:
        ctx.metrics = [metric]
    if not ctx.metrics:
        return Markdown("The paper prints no PSNR or SSIM for this table: nothing to judge.")
    if ours is None:
        text, judged = _ablation_conclusions(ctx, reference)
    else:
        text, judged = _table_conclusions(ctx, ours, baseline, rivals or [])
    if profile is not None and judged:
        roman = str(df["table"].iloc[0])
        rows = [r for j in judged for r in j.rows(roman)]
        claims.write_claims(rows, profile, results.spec(roman).stem)
    return Markdown(text)


def _covered(ctx, ours: list[str]) -> list[tuple[str, str]]:
    """(column, our row scored on it) for the paper's columns, in the paper's order."""
    have = ctx.per_image
    cols = [t for t in dict.fromkeys(ctx.paper["task"]) if t != AVERAGE]
    out = []
    for task in cols:
        who = next(
            (o for o in ours if not have[(have["method"] == o) & (have["task"] == task)].empty),
            None,
        )
        if who is not None:
            out.append((task, who))
    return out


def _family(ctx, groups, claim, kind, b, paper_b) -> list[Judged]:
    return [
        ctx.judge(claim, name, kind, who, b, tasks, "M²IR", paper_b) for name, tasks, who in groups
    ]


def _table_conclusions(ctx, ours, baseline, rivals) -> tuple[str, list[Judged]]:
    ours = [ours] if isinstance(ours, str) else list(ours)
    covered = _covered(ctx, ours)
    if not covered:
        return "No reproduced scores per image in this table: nothing to judge.", []
    groups = [(t, [t], w) for t, w in covered]
    if len(covered) > 1 and len({w for _, w in covered}) == 1:
        groups.append((AVERAGE, [t for t, _ in covered], covered[0][1]))
    printed = set(ctx.paper["method"])
    lines, judged = [], []
    comparisons = []
    if baseline:
        paper_row = "Restormer" in printed
        comparisons.append(
            (
                baseline,
                "Restormer" if paper_row else None,
                "Claim: M²IR beats Restormer (the paper's Restormer row; here the "
                "Restormer-style network trained alike)."
                if paper_row
                else "Our extra comparison: M²IR against the Restormer-style network (the paper "
                "prints no Restormer row in this table).",
            )
        )
    for r in rivals:
        name = r.split(" (")[0]  # the paper's row: "PromptIR (ours, mini)" -> "PromptIR"
        if ctx.per_image[ctx.per_image["method"] == r].empty:
            continue
        comparisons.append(
            (
                r,
                name if name in printed else None,
                f"Claim: M²IR beats {name} (the paper's {name} row; here {r})."
                if name in printed
                else f"Our extra comparison: M²IR against {r}.",
            )
        )
    for b, paper_b, title in comparisons:
        kind = claims.PAPER if paper_b else claims.EXTRA
        claim = title.split(" (")[0].rstrip(".").split(": ", 1)[1]  # "M²IR beats Restormer"
        fam = _family(ctx, groups, claim, kind, b, paper_b)
        judged += fam
        lines += [_sentence(title, fam), _table(fam)]
    floor = _family(
        ctx,
        groups,
        "M²IR restores the column (above the degraded input)",
        claims.PAPER,
        FLOOR,
        None,
    )
    judged += floor
    lines += [
        _sentence(
            "Claim: M²IR restores every column (better than the degraded input; implicit in "
            "every row of the paper).",
            floor,
        ),
        _table(floor),
    ]
    lines.append(_design_sentence(ctx, covered[0][1], judged))
    lines.append(_data_sentence(ctx.df, covered[0][1], rivals))
    return "\n\n".join(lines), judged


def _design_sentence(ctx, method, judged: list[Judged]) -> str:
    """How many units and seeds the verdicts rest on, and where the seed variance came from."""
    seeds = sorted(set(ctx.per_image.loc[ctx.per_image["method"] == method, "seed"]))
    used = sorted({c.n_seeds for j in judged for c in j.ci.values() if c is not None})
    text = (
        f"{method} was trained with {len(seeds)} seed(s) ({', '.join(map(str, seeds))}). "
        "A difference pairs the same test units and the same seeds (a one-seed row meets the "
        "other row's run of that seed; the comparisons here rest on "
        f"{' to '.join(map(str, used)) or 'no'} seed(s)), and its interval resamples the "
        "independent units (photographs of the stand-in, images of a real set) and the seeds."
    )
    if any(c is not None and c.n_seeds == 1 for j in judged for c in j.ci.values()):
        text += (
            " A comparison on one seed also carries the seed-to-seed variance of "
            + (
                "Table I's replicated rows (this table trains no row twice)"
                if ctx.borrowed
                else "this table's replicated rows"
            )  # fmt: skip
            + ", because one run's score moves with its seed."
        )
    return text + (
        " 'detectable' is the smallest true difference this design finds with 80 % power at "
        "5 % two-sided; a paper effect below it is not testable here."
    )


def _data_sentence(df: pd.DataFrame, method: str, rivals=()) -> str:
    ours = df[(df["source"] == "reproduced") & (df["method"] == method)]
    profile, data = (
        (str(ours["profile"].iloc[0]), str(ours["data"].iloc[0])) if len(ours) else ("", "")
    )
    synthetic = "synthetic" in data or "stand-in" in data
    others = "the paper's margins over the other published methods are not tested here" + (
        " (only the rivals above are)." if rivals else " (those networks are not retrained)."
    )
    lead = f"Measured at profile `{profile}` on {data}. "
    if synthetic:
        return (
            lead
            + "These verdicts are about this stand-in and this budget, not about the "
            + (f"paper's numbers; {others}")
        )
    return lead + others[0].upper() + others[1:]


def _ablation_conclusions(ctx, reference) -> tuple[str, list[Judged]]:
    metric = ctx.metrics[0]
    paper = ctx.paper[ctx.paper["metric"] == metric].drop_duplicates("method")
    task = paper["task"].iloc[0]
    reference = reference or paper.loc[paper["value"].idxmax(), "method"]
    have = set(ctx.per_image.loc[ctx.per_image["metric"] == metric, "method"])
    ours_ref = ours_for(reference, have)  # without DA-CLIP weights: its MLP-prior run
    if ours_ref is None:
        return f"The full model ('{reference}') has no {metric} here: nothing to compare with.", []
    judged, same = [], []
    for _, r in paper.iterrows():
        who = ours_for(r["method"], have)
        if r["method"] == reference or who is None:
            continue
        if who == ours_ref:  # e.g. the paper's 'DACP MLP' row when the full model is the MLP run
            same.append(r["method"])
            continue
        j = ctx.judge(f"'{r['method']}' vs the full model", task, claims.PAPER, who, ours_ref,
                      [task], r["method"], reference)  # fmt: skip
        j.claim = f"{r['method']} − full model"
        judged.append(j)
    k = _digits(metric)
    spread = paper["value"].max() - paper["value"].min()
    lines = [
        f"**Claim: the full model ('{reference}') is the best row** (paper: the other rows "
        f"{spread:.{k}f}{_unit(metric)} or less below it). Each row − the full model, on the "
        f"same test units and the same seed(s): "
        + "; ".join(f"{m} {_count([j.verdict[m] for j in judged])}" for m in ctx.metrics)
        + ".",
        _table(judged, first="row"),
    ]
    if ours_ref != reference or same:
        lines.append(
            f"The paper's full model '{reference}' is answered here by the run '{ours_ref}'"
            + (" (no DA-CLIP weights: the MLP prior stands in)" if ours_ref != reference else "")
            + (
                f"; the paper's row(s) {', '.join(repr(m) for m in same)} are that same run, "
                "shown once and not compared with itself"
                if same
                else ""
            )
            + "."
        )
    full = ctx.judge("the full model restores the column (above the degraded input)", task,
                     claims.PAPER, ours_ref, FLOOR, [task])  # fmt: skip
    judged.append(full)
    v = full.verdict[metric]
    lines.append(
        f"The full model − the degraded input: {_fmt(full.ci[metric], k)} {metric} ({v})"
        + (
            "."
            if v == SUPPORTS
            else ": it has barely learned the task, so the order of the rows says little "
            "about the components."
        )
    )
    agree = rank_agreement(ctx.df[ctx.df["metric"] == metric], metric)
    if np.isfinite(agree["kendall_tau"]):
        read = (
            "no evidence that the two orders agree"
            if agree["p_value"] > 0.05
            else ("the orders agree" if agree["kendall_tau"] > 0 else "the orders are reversed")
        )
        lines.append(
            f"Order of the rows: Kendall τ = {agree['kendall_tau']:.2f} over {agree['rows']} "
            f"rows, permutation p = {agree['p_value']:.2f}: {read}."
        )
    lines.append(_design_sentence(ctx, ours_ref, judged))
    lines.append(_data_sentence(ctx.df, ours_ref))
    return "\n\n".join(lines), judged


def summary_text(
    df: pd.DataFrame,
    ours: str,
    references: list[str],
    paper: str = "M²IR",
    paper_references: list[str] = (),
    metric: str = "PSNR",
    task: str | None = None,
):
    """What the paper claims and what this run shows, in two computed sentences (Markdown).

    Args:
        df: the table (paper and reproduced rows, averages added).
        ours: our method's label; references: our other rows to compare it with.
        paper: the paper's method; paper_references: the paper's rows to compare it with.
        metric: which metric.
        task: which column (default: Average when present, else the only task).
    """
    tasks = list(dict.fromkeys(df.loc[df["metric"] == metric, "task"]))
    task = task or (AVERAGE if AVERAGE in tasks else tasks[0])

    def value(method, source):
        sel = df[(df["method"] == method) & (df["task"] == task) & (df["metric"] == metric)
                 & (df["source"] == source)]  # fmt: skip
        return float(sel["value"].iloc[0]) if len(sel) else float("nan")

    def sentence(source, who, refs):
        v = value(who, source)
        if not np.isfinite(v):
            why = df.loc[(df["method"] == who) & (df["metric"] == STATUS), "note"]
            return f"no {metric} for {who} ({'; '.join(why) or 'not measured'})"
        parts = [f"{who}: {task} {metric} {v:.2f}"]
        parts += [f"{v - w:+.2f} over {r}" for r in refs if np.isfinite(w := value(r, source))]
        return ", ".join(parts)

    ours_rows = df[(df["source"] == "reproduced") & (df["method"] == ours)]
    where = (
        f"profile `{ours_rows['profile'].iloc[0]}`, data: {ours_rows['data'].iloc[0]}"
        if len(ours_rows)
        else "no reproduced rows"
    )
    return Markdown(
        f"**Paper:** {sentence('paper', paper, paper_references)}.\n\n"
        f"**This run** ({where}): {sentence('reproduced', ours, references)}."
    )
