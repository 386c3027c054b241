"""What a table concludes: the paper's claims against this run, in computed sentences.

Everything here reads the long format of `m2ir_lib.workbook.results` and a table's per-image
rows (for paired differences) and returns Markdown; nothing is measured here. The closing text
of every table notebook is `conclusions`: per claim of the paper, whether this run supports it,
contradicts it or cannot resolve it, with the 95 % interval that decides
(`m2ir_lib.workbook.stats`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from IPython.display import Markdown

from m2ir_lib.workbook import stats
from m2ir_lib.workbook.labels import ours_for
from m2ir_lib.workbook.report import rank_agreement
from m2ir_lib.workbook.results import AVERAGE, FLOOR, LOWER_IS_BETTER, STATUS


def _value(df, method, task, metric, source):
    sel = df[
        (df["method"] == method)
        & (df["task"] == task)
        & (df["metric"] == metric)
        & (df["source"] == source)
    ]
    return float(sel["value"].iloc[0]) if len(sel) else float("nan")


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

    def sentence(source, who, refs):
        v = _value(df, who, task, metric, source)
        if not np.isfinite(v):
            why = df.loc[(df["method"] == who) & (df["metric"] == STATUS), "note"]
            return f"no {metric} for {who} ({'; '.join(why) or 'not measured'})"
        parts = [f"{who}: {task} {metric} {v:.2f}"]
        for r in refs:
            w = _value(df, r, task, metric, source)
            if np.isfinite(w):
                parts.append(f"{v - w:+.2f} over {r}")
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


def ablation_text(df: pd.DataFrame, metric: str = "PSNR"):
    """Best row and spread in the paper and in this run, and whether the orders agree."""
    lines = []
    for source in ("paper", "reproduced"):
        d = df[(df["source"] == source) & (df["metric"] == metric) & np.isfinite(df["value"])]
        d = d.drop_duplicates("method")
        if d.empty:
            lines.append(f"**{source}:** no {metric} values.")
            continue
        best = d.loc[d["value"].idxmax()]
        lines.append(
            f"**{'Paper' if source == 'paper' else 'This run'}:** best row "
            f"'{best['method']}' ({best['value']:.2f}); best − worst = "
            f"{d['value'].max() - d['value'].min():.2f} over {len(d)} rows."
        )
    agree = rank_agreement(df, metric)
    lines.append(
        f"Kendall τ between the two orders over {agree['rows']} shared rows: "
        f"{agree['kendall_tau']:.2f}, permutation p = {agree['p_value']:.2f} "
        "(1 = same order, 0 = unrelated)."
    )
    return Markdown("\n\n".join(lines))


# ---------------------------------------------------------------------------- conclusions

SUPPORTS, CONTRADICTS, UNRESOLVED = "supports", "contradicts", "cannot resolve"


def verdict(expected_sign: float, ci: stats.Interval | None, lower_is_better=False) -> str:
    """Does an interval of (ours − reference) agree with a claimed direction?

    `expected_sign` > 0 claims ours is better. With a lower-is-better metric the interval is
    read the other way. An interval that contains 0 cannot resolve the claim.
    """
    if ci is None:
        return "not measured"
    if not np.isfinite(ci.low):  # one image, or an infinite PSNR: no interval decides
        return UNRESOLVED
    if not ci.excludes(0.0):
        return UNRESOLVED
    better = (ci.estimate < 0) if lower_is_better else (ci.estimate > 0)
    return SUPPORTS if better == (expected_sign > 0) else CONTRADICTS


def seed_checked(v: str, per_image, a, b, metric, tasks) -> str:
    """Downgrade a verdict to 'cannot resolve' when the difference changes sign between
    training seeds (`stats.seed_differences`): images alone then do not decide it."""
    d = stats.seed_differences(per_image, a, b, metric, tasks)
    if v in (SUPPORTS, CONTRADICTS) and len(d) > 1 and not (np.all(d > 0) or np.all(d < 0)):
        return f"{UNRESOLVED} (sign varies over seeds: {d.min():+.2f} to {d.max():+.2f})"
    return v


def _fmt(ci: stats.Interval | None, k: int = 2) -> str:
    if ci is None:
        return "—"
    if not np.isfinite(ci.low):
        return f"{ci.estimate:+.{k}f} (no interval, n={ci.n})"
    return f"{ci.estimate:+.{k}f} [{ci.low:+.{k}f}, {ci.high:+.{k}f}]"


def _count(verdicts: list[str]) -> str:
    n = len(verdicts)
    verdicts = [UNRESOLVED if v.startswith(UNRESOLVED) else v for v in verdicts]
    parts = [
        f"{sum(v == w for v in verdicts)} {w}"
        for w in (SUPPORTS, CONTRADICTS, UNRESOLVED)
        if any(v == w for v in verdicts)
    ]
    other = sum(v not in (SUPPORTS, CONTRADICTS, UNRESOLVED) for v in verdicts)
    return f"of {n}: " + ", ".join(parts + ([f"{other} not measured"] if other else []))


def _where(df: pd.DataFrame, method: str) -> tuple[str, str]:
    ours = df[(df["source"] == "reproduced") & (df["method"] == method)]
    if ours.empty:
        return "", ""
    return str(ours["profile"].iloc[0]), str(ours["data"].iloc[0])


def _seed_sentence(df, method, task, metric) -> str:
    r = df[
        (df["source"] == "reproduced")
        & (df["method"] == method)
        & (df["task"] == task)
        & (df["metric"] == metric)
    ]
    if r.empty or not (r["n_seeds"].iloc[0] > 1):
        return (
            f"{method} trained with one seed here: the intervals cover the choice of test "
            "images, not the training seed."
        )
    return (
        f"{method} trained with {int(r['n_seeds'].iloc[0])} seeds: its {task} {metric} varies "
        f"by sd {r['seed_sd'].iloc[0]:.2f} between them; the intervals cover the test images "
        "(each image averaged over seeds), not this seed spread."
    )


def conclusions(
    df: pd.DataFrame,
    per_image: pd.DataFrame,
    ours: str | list[str] | None = None,
    baseline: str | None = None,
    metric: str = "PSNR",
    reference: str | None = None,
    rivals: list[str] | None = None,
):
    """The closing text of a table notebook, computed from the table and its per-image scores.

    Tables I–VI (`ours` given): per column and for the Average, M²IR − the Restormer-style
    network and M²IR − the degraded input, each a paired bootstrap interval over the same test
    images, judged against the paper's claim (M²IR better; the paper's own M²IR − Restormer
    margin where it prints a Restormer row). Ablations (`ours` None): every row − the full
    model (`reference`, default the paper's best row), judged against the paper's sign of
    that difference, the full model against the degraded input, and Kendall τ of the orders.

    Args:
        df: the table (paper and reproduced rows, averages added).
        per_image: the table's per-image rows (`results.read_per_image`).
        ours: our M²IR row(s); a list when different runs cover different columns (Table V).
        baseline: our Restormer-style row, if the table has one.
        metric: which metric to judge.
        reference: the ablation row every other row is compared with.
        rivals: rows of named rivals (e.g. "PromptIR (ours, mini)", "AdaIR (released
            weights)"): M²IR − each, per column and on the Average, beside the paper's margin
            over the method the row is named after.

    Returns:
        IPython Markdown.
    """
    if ours is None:
        return Markdown(_ablation_conclusions(df, per_image, metric, reference))
    return Markdown(_table_conclusions(df, per_image, ours, baseline, metric, rivals or []))


def _rival_sentence(per_image, paper, groups, rival, metric, low, k) -> str | None:
    """'Claim: M²IR beats <rival>' with this run's paired differences; None when the rival
    has no per-image scores (not trained, no data)."""
    if per_image[(per_image["method"] == rival) & (per_image["metric"] == metric)].empty:
        return None
    name = rival.split(" (")[0]  # the paper's row: "PromptIR (ours, mini)" -> "PromptIR"
    verdicts, avg = [], ""
    for task, tasks, who in groups:
        d = stats.difference(per_image, who, rival, metric, tasks)
        if d is None:
            continue
        v = seed_checked(verdict(1, d, low), per_image, who, rival, metric, tasks)
        if task == AVERAGE:
            gap = _paper_mean(paper, "M²IR", tasks) - _paper_mean(paper, name, tasks)
            paper_gap = f" (paper: {gap:+.{k}f})" if np.isfinite(gap) else ""
            avg = f". Average: {_fmt(d, k)}{paper_gap} → {v}"
        else:
            verdicts.append(v)
    if not verdicts:
        return None
    return (
        f"**Claim: M²IR beats {name}** (the paper's {name} row). This run, M²IR − {rival}, "
        f"per column, {_count(verdicts)}{avg}."
    )


def _table_conclusions(df, per_image, ours, baseline, metric, rivals=()) -> str:
    ours = [ours] if isinstance(ours, str) else list(ours)
    low = metric in LOWER_IS_BETTER
    paper = df[(df["source"] == "paper") & (df["metric"] == metric)]
    cols = [t for t in dict.fromkeys(paper["task"]) if t != AVERAGE]
    have = per_image[per_image["metric"] == metric]
    lines, vs_base, vs_floor, rows = [], [], [], []
    covered = []
    for task in cols:
        who = next(
            (o for o in ours if not have[(have["method"] == o) & (have["task"] == task)].empty),
            None,
        )
        if who is None:
            continue
        covered.append((task, who))
    groups = [(t, [t], w) for t, w in covered]
    if len(covered) > 1 and len({w for _, w in covered}) == 1:
        groups.append((AVERAGE, [t for t, _ in covered], covered[0][1]))
    k = 4 if metric in ("SSIM", "LPIPS") else 2
    for name, tasks, who in groups:
        p_m = _paper_mean(paper, "M²IR", tasks)
        p_r = _paper_mean(paper, "Restormer", tasks)
        d_b = stats.difference(per_image, who, baseline, metric, tasks) if baseline else None
        d_f = stats.difference(per_image, who, FLOOR, metric, tasks)
        v_b = seed_checked(verdict(1, d_b, low), per_image, who, baseline, metric, tasks)
        v_f = seed_checked(verdict(1, d_f, low), per_image, who, FLOOR, metric, tasks)
        if name != AVERAGE:
            vs_base.append((name, v_b, d_b))
            vs_floor.append((name, v_f, d_f))
        n = d_f.n if d_f is not None else 0
        paper_gap = f"{p_m - p_r:+.{k}f}" if np.isfinite(p_m - p_r) else "—"
        vs_b = f"| {paper_gap} | {_fmt(d_b, k)} | {v_b} " if baseline else ""
        rows.append(f"| {name} | {n} {vs_b}| {_fmt(d_f, k)} | {v_f} |")
    if not rows:
        return f"No reproduced {metric} with per-image scores in this table: nothing to judge."
    vs_b = (
        f"| paper: M²IR − Restormer | this run: M²IR − {baseline} [95 % CI] | verdict "
        if baseline
        else ""
    )
    head = (
        f"| column | n images {vs_b}| this run: M²IR − degraded input [95 % CI] | verdict |\n"
        + "|---" * (7 if baseline else 4)
        + "|"
    )
    lines.append(head + "\n" + "\n".join(rows))
    avg = next((r for r in groups if r[0] == AVERAGE), None)
    if baseline:
        text = (
            f"**Claim: M²IR beats a Restormer-style network** (the paper's Restormer row, or "
            f"Table VII's all-off row where this table has none). This run, per column, "
            f"{_count([v for _, v, _ in vs_base])}"
        )
        bad = [f"{t} ({_fmt(c, k)})" for t, v, c in vs_base if v == CONTRADICTS]
        text += f"; below it on {', '.join(bad)}" if bad else ""
        if avg is not None:
            d = stats.difference(per_image, avg[2], baseline, metric, avg[1])
            v = seed_checked(verdict(1, d, low), per_image, avg[2], baseline, metric, avg[1])
            text += f". Average: {_fmt(d, k)} → {v}"
        lines.append(text + ".")
    lines += filter(None, (_rival_sentence(per_image, paper, groups, r, metric, low, k)
                           for r in rivals))  # fmt: skip
    text = (
        f"**Claim: M²IR restores every column** (better than the degraded input; implicit in "
        f"every row of the paper). This run, {_count([v for _, v, _ in vs_floor])}"
    )
    bad = [f"{t} ({_fmt(c, k)})" for t, v, c in vs_floor if v == CONTRADICTS]
    unres = [t for t, v, _ in vs_floor if v.startswith(UNRESOLVED)]
    text += f"; below the input on {', '.join(bad)}" if bad else ""
    text += f"; indistinguishable from it on {', '.join(unres)}" if unres else ""
    lines.append(text + ".")
    task0 = AVERAGE if avg is not None else covered[0][0]
    lines.append(_seed_sentence(df, covered[0][1], task0, metric))
    lines.append(_data_sentence(df, covered[0][1], rivals))
    return "\n\n".join(lines)


def _paper_mean(paper: pd.DataFrame, method: str, tasks: list[str]) -> float:
    v = paper[(paper["method"] == method) & paper["task"].isin(tasks)]
    return float(v["value"].mean()) if len(v) == len(tasks) else float("nan")


def _data_sentence(df: pd.DataFrame, method: str, rivals=()) -> str:
    profile, data = _where(df, method)
    synthetic = "synthetic" in data or "stand-in" in data
    others = "The paper's margins over the other published methods are not tested here" + (
        " (only the rivals above are)." if rivals else " (those networks are not retrained)."
    )
    return f"Measured at profile `{profile}` on {data}. " + (
        "These verdicts are about this stand-in and this budget, not about the paper's "
        "numbers; " + others[0].lower() + others[1:]
        if synthetic
        else others
    )


def _ablation_conclusions(df, per_image, metric, reference) -> str:
    low = metric in LOWER_IS_BETTER
    paper = df[(df["source"] == "paper") & (df["metric"] == metric)].drop_duplicates("method")
    if paper.empty:
        return f"The paper prints no {metric} for this table."
    task = paper["task"].iloc[0]

    reference = reference or paper.loc[paper["value"].idxmax(), "method"]
    p_ref = float(paper.loc[paper["method"] == reference, "value"].iloc[0])
    have = set(per_image.loc[per_image["metric"] == metric, "method"])
    ours_ref = ours_for(reference, have)  # without DA-CLIP weights: its MLP-prior run
    if ours_ref is None:
        return f"The full model ('{reference}') has no {metric} here: nothing to compare with."
    k = 4 if metric in ("SSIM", "LPIPS") else 2
    rows, verdicts, same = [], [], []
    for _, r in paper.iterrows():
        who = ours_for(r["method"], have)
        if r["method"] == reference or who is None:
            continue
        if who == ours_ref:  # e.g. the paper's 'DACP MLP' row when the full model is the MLP run
            same.append(r["method"])
            continue
        gap = float(r["value"]) - p_ref
        d = stats.difference(per_image, who, ours_ref, metric, [task])
        f = stats.difference(per_image, who, FLOOR, metric, [task])
        v = verdict(-1 if gap < 0 else 1, d, low) if gap != 0 else "—"
        v = seed_checked(v, per_image, who, ours_ref, metric, [task])
        verdicts.append(v)
        rows.append(f"| {who} | {gap:+.{k}f} | {_fmt(d, k)} | {v} | {_fmt(f, k)} |")
    full_f = stats.difference(per_image, ours_ref, FLOOR, metric, [task])
    lines = [
        "| row | paper: row − full | this run: row − full [95 % CI] | verdict "
        "| this run: row − degraded input [95 % CI] |\n|---|---|---|---|---|\n" + "\n".join(rows)
    ]
    spread = paper["value"].max() - paper["value"].min()
    verdicts = [v for v in verdicts if v != "—"]
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
    lines.append(
        f"**Claim: the full model ('{reference}') is the best row** (paper: the other rows "
        f"{spread:.{k}f}{' dB' if metric == 'PSNR' else ''} or less below it). This run, "
        f"rows compared with it on the same {full_f.n if full_f else '?'} test images, "
        f"{_count(verdicts)}."
        + (
            " A difference counts as resolved only when it keeps its sign against each of "
            "the full model's training seeds."
            if len(set(per_image.loc[per_image["method"] == ours_ref, "seed"])) > 1
            else ""
        )
    )
    fv = seed_checked(verdict(1, full_f, low), per_image, ours_ref, FLOOR, metric, [task])
    if fv == SUPPORTS:
        lines.append(f"The full model beats the degraded input by {_fmt(full_f, k)} {metric}.")
    else:
        lines.append(
            f"The full model is not shown better than the degraded input ({_fmt(full_f, k)}, "
            f"{fv}): it has barely learned the task, so the order of the rows says little "
            "about the components."
        )
    agree = rank_agreement(df[df["metric"] == metric], metric)
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
    lines.append(_seed_sentence(df, ours_ref, task, metric))
    lines.append(_data_sentence(df, ours_ref))
    return "\n\n".join(lines)
