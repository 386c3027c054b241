"""How a table is shown: the paper's layout, paper beside ours, margins, plots, verdicts.

Everything here reads the long format of `m2ir_lib.results` (and a table's per-image rows,
for paired differences) and returns DataFrames, matplotlib figures or Markdown; nothing is
measured here. The closing text of every table notebook is `conclusions`: per claim of the
paper, whether this run supports it, contradicts it or cannot resolve it, with the 95 %
interval that decides (`m2ir_lib.stats`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from m2ir_lib import stats
from m2ir_lib.results import AVERAGE, FLOOR, LOWER_IS_BETTER, STATUS, save_figure, spec


def show_full_tables() -> None:
    """Let notebooks print whole tables: every column (Table III has 11 tasks × 2 metrics),
    every row and whole notes, never a '…' in their place. Called when this module loads,
    so every notebook that shows a table gets it."""
    pd.set_option("display.max_columns", None)
    pd.set_option("display.max_rows", 500)
    pd.set_option("display.width", None)
    pd.set_option("display.expand_frame_repr", False)  # one block of columns, not wrapped
    pd.set_option("display.max_colwidth", None)


show_full_tables()

# ---------------------------------------------------------------------------- views


def wide_view(
    df: pd.DataFrame, metrics: list[str] | None = None, methods: list[str] | None = None
) -> pd.DataFrame:
    """Methods × tasks as the paper prints them: rows (source, method), columns (task, metric).

    Args:
        df: long-format rows.
        metrics: metrics to keep (default: all but status).
        methods: paper methods to keep (default: all); reproduced rows are always kept.
    """
    d = df[df["metric"] != STATUS]
    if metrics:
        d = d[d["metric"].isin(metrics)]
    if methods is not None:
        d = d[(d["source"] == "reproduced") | d["method"].isin(methods)]
    tasks, mets = _paper_order(d)
    wide = d.pivot_table(
        index=["source", "method"],
        columns=["task", "metric"],
        values="value",
        aggfunc="first",
        sort=False,
    )
    cols = [(t, m) for t in tasks for m in mets if (t, m) in wide.columns]
    return _rounded(wide[cols].dropna(axis=1, how="all"))


def _paper_order(d: pd.DataFrame) -> tuple[list[str], list[str]]:
    """Tasks and metrics in the order of the paper's table (its reported file), then any
    others in the order they appear."""
    tasks, mets = list(dict.fromkeys(d["task"])), list(dict.fromkeys(d["metric"]))
    if "table" in d and len(d) and d["table"].nunique() == 1:
        from m2ir_lib.results import paper_table

        try:
            paper = paper_table(str(d["table"].iloc[0]))
        except (FileNotFoundError, KeyError, ValueError):
            return tasks, mets
        p_tasks, p_mets = list(dict.fromkeys(paper["task"])), list(dict.fromkeys(paper["metric"]))
        tasks = [t for t in p_tasks if t in tasks] + [t for t in tasks if t not in p_tasks]
        mets = [m for m in p_mets if m in mets] + [m for m in mets if m not in p_mets]
    return tasks, mets


def _rounded(wide: pd.DataFrame) -> pd.DataFrame:
    """Round as the paper prints: 4 decimals for SSIM/LPIPS, 2 for the rest."""
    metric = wide.columns.get_level_values("metric")
    return wide.apply(
        lambda col: col.round(
            4 if metric[wide.columns.get_loc(col.name)] in ("SSIM", "LPIPS") else 2
        )
    )


def status_view(df: pd.DataFrame) -> pd.DataFrame:
    """The status rows (what is missing and why), for display under the table."""
    return df.loc[df["metric"] == STATUS, ["method", "task", "note"]].reset_index(drop=True)


def interval_view(df: pd.DataFrame, metrics: list[str] | None = None) -> pd.DataFrame:
    """Our rows as text cells: value [95 % interval], the seed spread when several seeds
    trained, and ▼ where the cell is no better than the degraded input (`results.with_floor`).
    Columns are (task (n=images), metric); rows are our methods, the floor last."""
    from m2ir_lib.results import with_floor

    d = with_floor(df)
    d = d[(d["source"] == "reproduced") & (d["metric"] != STATUS)]
    if metrics:
        d = d[d["metric"].isin(metrics)]
    if d.empty:
        return pd.DataFrame()

    def cell(r):
        k = 4 if r["metric"] in ("SSIM", "LPIPS") else 2
        text = f"{r['value']:.{k}f}"
        if np.isfinite(r["ci_low"]):
            text += f" [{r['ci_low']:.{k}f}, {r['ci_high']:.{k}f}]"
        if pd.notna(r["n_seeds"]) and r["n_seeds"] > 1:
            text += f" sd {r['seed_sd']:.{k}f}/{int(r['n_seeds'])} seeds"
        return ("▼ " if str(r["at_or_below_floor"]) == "True" else "") + text

    n = d.groupby("task", sort=False)["n"].max()
    d = d.assign(
        text=d.apply(cell, axis=1),
        column=[f"{t} (n={int(n[t])})" if n[t] == n[t] else t for t in d["task"]],
    )
    wide = d.pivot_table(
        index="method", columns=["column", "metric"], values="text", aggfunc="first", sort=False
    ).fillna("")
    order = [m for m in dict.fromkeys(d["method"]) if m != FLOOR] + [FLOOR]
    return wide.reindex([m for m in order if m in wide.index])


def schedule_line(profile: str, ablation: bool = False, seeds: int | None = None):
    """The profile's schedule as one Markdown line, read from `m2ir_lib.config` (never typed)."""
    from IPython.display import Markdown

    from m2ir_lib.config import get_profile

    prof = get_profile(profile)
    t = prof.ablation_train if ablation else prof.train
    m = prof.model
    text = (
        f"**Profile `{profile}`** ({'ablation' if ablation else 'all-in-one'} schedule, from "
        f"`m2ir_lib.config`): {t.iters} iterations of batch {t.batch_size}"
        f"{f' × {t.grad_accum} accumulated' if t.grad_accum > 1 else ''} on {t.patch}² patches, "
        f"learning rate {t.lr:g} (warm-up {t.warmup_iters}, cosine horizon {t.cosine_iters}); "
        f"network width {m.dim}, blocks {m.num_blocks}, N = {m.num_experts}, K = {m.top_k}"
    )
    if seeds is not None:
        text += f"; the headline rows train with {seeds} seed{'s' if seeds != 1 else ''}"
    cap = prof.eval_max_images
    text += f"; test images per column: {'all' if cap is None else f'at most {cap}'}."
    return Markdown(text)


def efficiency_view(df: pd.DataFrame) -> pd.DataFrame:
    """Table XIII as the paper prints it, methods × metrics in its column order
    (`tables.EFFICIENCY_METRICS`; CPU and GPU latency apart), with the device each row was
    measured on: the paper's RTX 4090 for its rows, this machine's CPU or GPU for ours."""
    from m2ir_lib.tables import EFFICIENCY_METRICS, PAPER_DEVICE

    d = df[df["metric"] != STATUS]
    wide = d.pivot_table(
        index=["source", "method"], columns="metric", values="value", aggfunc="first", sort=False
    )
    order = [m for m in EFFICIENCY_METRICS.values() if m in wide.columns]
    wide = wide[order + [m for m in wide.columns if m not in order]].round(2)
    devices = d.groupby(["source", "method"], sort=False)["device"].agg(
        lambda x: "; ".join(dict.fromkeys(str(v) for v in x if isinstance(v, str) and v))
    )
    wide["measured on"] = [
        PAPER_DEVICE if src == "paper" else devices.get((src, m), "") for src, m in wide.index
    ]
    wide.columns.name = None
    return wide


# ---------------------------------------------------------------------------- comparisons


def side_by_side(df: pd.DataFrame, metrics: list[str] | None = None) -> pd.DataFrame:
    """One row per paper row label (paper order), columns (metric, source): for ablation
    tables. Our row answering each paper row (`tables.paper_label`) sits beside it; where it
    is labelled otherwise (a 'DACP (MLP prior)' row without DA-CLIP weights) the column
    'this run's row' names it, so a run standing for two paper rows is seen as one run."""
    from m2ir_lib.tables import paper_label

    d = df[df["metric"] != STATUS]
    if metrics:
        d = d[d["metric"].isin(metrics)]
    paper_rows = list(dict.fromkeys(d.loc[d["source"] == "paper", "method"]))
    ran = {
        m: paper_label(m, paper_rows) or m
        for m in dict.fromkeys(d.loc[d["source"] != "paper", "method"])
    }
    d = d.assign(
        method=[
            m if s == "paper" else ran[m] for m, s in zip(d["method"], d["source"], strict=True)
        ],
    )
    order = list(dict.fromkeys(paper_rows + list(d["method"])))
    wide = d.pivot_table(
        index="method", columns=["metric", "source"], values="value", aggfunc="first"
    )
    wide = _rounded(wide.reindex([m for m in order if m in wide.index]))
    relabelled = {v: k for k, v in ran.items() if k != v}
    if relabelled:
        from m2ir_lib.tables import ours_for

        def said(m):
            if m in relabelled:
                return relabelled[m]
            who = ours_for(m, relabelled.values()) if m in paper_rows else None
            return f"not run; its stand-in: {who}" if who else ""

        wide[("this run's row", "")] = [said(m) for m in wide.index]
    return wide


def margins(
    df: pd.DataFrame, reference: str, metric: str = "PSNR", source: str = "reproduced"
) -> pd.DataFrame:
    """`metric` of every other method minus that of `reference`, per task (one source)."""
    d = df[(df["source"] == source) & (df["metric"] == metric)]
    wide = d.pivot_table(
        index="method", columns="task", values="value", aggfunc="first", sort=False
    )
    if reference not in wide.index:
        raise ValueError(f"no {source} {metric} row for {reference!r}; have {list(wide.index)}")
    return wide.drop(index=reference) - wide.loc[reference]


def rank_agreement(df: pd.DataFrame, metric: str = "PSNR") -> dict:
    """Does our run order the rows like the paper? Kendall's τ between the paper's and our
    values over the method labels both have (1 = same order, −1 = reversed), with its exact
    permutation p-value (`stats.kendall_tau`; the degraded input's row is left out)."""
    from m2ir_lib.tables import paper_label

    d = df[(df["metric"] == metric) & df["value"].notna() & (df["method"] != FLOOR)]
    paper_rows = set(d.loc[d["source"] == "paper", "method"])
    d = d.assign(
        method=[
            m if s == "paper" else (paper_label(m, paper_rows) or m)
            for m, s in zip(d["method"], d["source"], strict=True)
        ]
    )
    wide = d.pivot_table(index="method", columns="source", values="value", aggfunc="first")
    wide = wide.dropna() if {"paper", "reproduced"} <= set(wide.columns) else wide.iloc[:0]
    if len(wide) < 3:
        return {
            "metric": metric,
            "rows": len(wide),
            "kendall_tau": float("nan"),
            "p_value": float("nan"),
            "best_paper": None,
            "best_ours": None,
        }
    tau, p = stats.kendall_tau(wide["paper"], wide["reproduced"])
    return {
        "metric": metric,
        "rows": len(wide),
        "kendall_tau": tau,
        "p_value": p,
        "best_paper": wide["paper"].idxmax(),
        "best_ours": wide["reproduced"].idxmax(),
    }


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
    from IPython.display import Markdown

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
    from IPython.display import Markdown

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
    from IPython.display import Markdown

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
    from m2ir_lib.tables import ours_for

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


# ---------------------------------------------------------------------------- plot

BLUE, ORANGE, GREY = "#1f77b4", "#ff7f0e", "#7f7f7f"
# Ablation rows that are the full model, or the Restormer-style all-off network, keep that
# network's colour in every figure.
SAME_AS = {
    "MST ✓ | DACP ✓ | special ✓ | shared ✓": "M²IR",
    "MST ✓ | DACP (MLP prior) | special ✓ | shared ✓": "M²IR",
    "N=4": "M²IR",
    "K=2": "M²IR",
    "charb ✓ | balance ✓ | FFT ✓": "M²IR",
    "λ1=0.01": "M²IR",
    "λ2=0.1": "M²IR",
    "MST ✗ | DACP ✗ | special ✗ | shared ✗": "Restormer",
}
MIN_SPAN = {"PSNR": 1.0, "SSIM": 0.02, "LPIPS": 0.02, "FID": 5.0}


def method_colour(label: str) -> str:
    """One colour per method in every figure: M²IR (the paper's and ours) blue, Restormer
    and our Restormer-style network orange, the degraded input grey, any other method a
    fixed colour derived from its name (the paper's row and ours share it)."""
    import zlib

    import matplotlib

    label = SAME_AS.get(label, label)
    if label == FLOOR:
        return GREY
    if label.startswith("M²IR"):
        return BLUE
    if label.startswith("Restormer"):
        return ORANGE
    # tab20 without the blues, oranges and greys of M²IR, Restormer and the floor (and their
    # light twins), so no other method is mistaken for them.
    taken = (0, 1, 2, 3, 14, 15)
    palette = [c for i, c in enumerate(matplotlib.colormaps["tab20"].colors) if i not in taken]
    name = label.split(" (")[0]  # "AdaIR (ours, mini)", "AdaIR (released weights)": AdaIR's
    return matplotlib.colors.to_hex(palette[zlib.crc32(name.encode()) % len(palette)])


def _family_rank(label: str) -> int:
    """M²IR first, the Restormer family second, the rest after: same order in both panels."""
    label = SAME_AS.get(label, label)
    return 0 if label.startswith("M²IR") else 1 if label.startswith("Restormer") else 2


def _limits(values, metric) -> tuple[float, float]:
    """y-limits that hold every value and interval, never narrower than `MIN_SPAN` (so a few
    hundredths of a dB are not stretched across the panel)."""
    v = np.asarray([x for x in values if np.isfinite(x)], dtype=float)
    lo, hi = float(v.min()), float(v.max())
    span = max(hi - lo, MIN_SPAN.get(metric, 0.0))
    mid = (lo + hi) / 2
    return mid - 0.55 * span, mid + 0.55 * span


def plot_paper_vs_ours(
    df: pd.DataFrame,
    metric: str = "PSNR",
    paper_methods: list[str] | None = None,
    path: str | Path | None = None,
    title: str = "",
    close: bool = False,
):
    """Dot plots of the paper's numbers (left) and ours with 95 % intervals (right).

    Numbers from a stand-in data set are not on the paper's scale, so each source has its own
    panel; each panel's axis holds every dot, interval and the degraded input's level (grey
    bars, ours only) and spans at least `MIN_SPAN`, so noise is not magnified into a trend.
    Colours follow `method_colour` in every figure.

    Args:
        df: long-format rows.
        metric: which metric to plot.
        paper_methods: paper methods to show (default: M²IR and the paper's Restormer, or,
            for one-column ablation tables, every row).
        path: save the figure there as PNG when given.
        title: figure title (default: the table's title).
        close: close the figure after saving (scripts); notebooks leave it open to show it.

    Returns:
        The matplotlib Figure.
    """
    import matplotlib.pyplot as plt

    d = df[(df["metric"] == metric) & np.isfinite(df["value"])].copy()  # PSNR of a no-op is inf
    if d.empty:
        raise ValueError(f"no {metric} values to plot")
    one_task = d["task"].nunique() == 1 or set(d["task"]) <= {d["task"].iloc[0], AVERAGE}
    if paper_methods is None and not one_task:
        paper_methods = ["M²IR", "Restormer"]
    if paper_methods is not None:
        d = d[(d["source"] == "reproduced") | d["method"].isin(paper_methods)]
    for c in ("ci_low", "ci_high"):
        d[c] = d[c] if c in d else np.nan
    from m2ir_lib.tables import paper_label

    paper_rows = list(dict.fromkeys(d.loc[d["source"] == "paper", "method"]))
    as_paper = {m: paper_label(m, paper_rows) or m for m in dict.fromkeys(d["method"])}
    order = list(dict.fromkeys(paper_rows + list(as_paper.values())))
    # Room under the panels for the rotated row labels, so the plot keeps its height.
    longest = max(len(str(x)) for x in (d["method"] if one_task else d["task"]))
    fig, axes = plt.subplots(
        1, 2, figsize=(12, 3.8 + 0.06 * longest), squeeze=False, layout="constrained"
    )
    for ax, source in zip(axes[0], ("paper", "reproduced"), strict=True):
        s = d[d["source"] == source]
        floor = s[s["method"] == FLOOR]
        s = s[s["method"] != FLOOR]
        if one_task:  # each panel its own rows; ours in the paper's order, in its colours
            xs = sorted(dict.fromkeys(s["method"]), key=lambda m: order.index(as_paper[m]))
            series = [(m, s[s["method"] == m], [i]) for i, m in enumerate(xs)]
        else:
            xs = list(dict.fromkeys(d["task"]))
            methods = sorted(dict.fromkeys(s["method"]), key=_family_rank)
            width = 0.6 / max(len(methods), 1)
            series = []
            for i, m in enumerate(methods):
                g = s[s["method"] == m]
                shift = (i - (len(methods) - 1) / 2) * width
                series.append((m, g, [xs.index(t) + shift for t in g["task"]]))
        values = list(s["value"]) + list(s["ci_low"]) + list(s["ci_high"]) + list(floor["value"])
        for m, g, x in series:
            if g.empty:
                continue
            lo = (g["value"] - g["ci_low"]).to_numpy(dtype=float)
            hi = (g["ci_high"] - g["value"]).to_numpy(dtype=float)
            err = None if np.isnan(lo).all() else np.nan_to_num(np.vstack([lo, hi]))
            ax.errorbar(
                x * len(g) if one_task else x,
                g["value"],
                yerr=err,
                fmt="o",
                color=method_colour(m if m in SAME_AS else as_paper[m]),
                capsize=3,
                label=None if one_task else m,
            )
        for _, f in floor.iterrows():
            x = range(len(xs)) if one_task else [xs.index(f["task"])]
            for xi in x:
                ax.hlines(f["value"], xi - 0.4, xi + 0.4, color=GREY, linestyles="--")
        if len(floor):
            ax.plot([], [], "--", color=GREY, label=FLOOR)
        ax.set_xticks(
            range(len(xs)), xs, rotation=60 if one_task else 45, ha="right", rotation_mode="anchor"
        )
        ax.set_xlim(-0.6, len(xs) - 0.4)
        if any(np.isfinite(values)):
            ax.set_ylim(*_limits(values, metric))
        ax.set_ylabel(metric)
        ax.set_title(
            "paper (no intervals published)"
            if source == "paper"
            else "this run (95 % interval over test images)"
        )
        ax.grid(axis="y", alpha=0.3)
    table = d["table"].iloc[0]
    fig.suptitle(title or f"Table {table}: {spec(table).title}")
    legend = {}  # one legend under both panels, so no entry hides a dot or the floor
    for ax in axes[0]:
        for h, lbl in zip(*ax.get_legend_handles_labels(), strict=True):
            legend.setdefault(lbl, h)
    if legend:
        fig.legend(
            legend.values(),
            legend.keys(),
            loc="outside lower center",
            ncol=min(len(legend), 3),
            fontsize=8,
        )
    save_figure(fig, path)
    if close:
        plt.close(fig)
    return fig


def plot_efficiency(
    df: pd.DataFrame,
    metrics: tuple[str, ...] = ("Params (M)", "FLOPs (G)", "latency GPU (ms)", "latency CPU (ms)"),
    path: str | Path | None = None,
    close: bool = False,
):
    """Table XIII as bars, one panel per metric (log scale where values span 50×), the
    paper's rows and ours in every panel, each bar in its method's colour (`method_colour`),
    the paper's hatched. A latency panel names the devices measured on; a metric nobody
    measured here says so instead of a bar."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FormatStrFormatter, NullFormatter

    from m2ir_lib.tables import PAPER_DEVICE

    d = df[(df["metric"].isin(metrics)) & np.isfinite(df["value"].astype(float))]
    methods = list(dict.fromkeys(d["method"]))
    if d.empty:
        raise ValueError(f"no values of {metrics} to plot")
    fig, axes = plt.subplots(
        1,
        len(metrics),
        figsize=(3.6 * len(metrics), 0.32 * len(methods) + 1.6),
        sharey=True,
        squeeze=False,
        layout="constrained",
    )
    for ax, metric in zip(axes[0], metrics, strict=True):
        g = d[d["metric"] == metric].drop_duplicates(["source", "method"])
        for _, r in g.iterrows():
            ax.barh(
                methods.index(r["method"]),
                r["value"],
                color=method_colour(r["method"]),
                hatch="//" if r["source"] == "paper" else None,
                edgecolor="white" if r["source"] == "paper" else None,
            )
        ours = g[g["source"] == "reproduced"]
        where = "; ".join(
            dict.fromkeys(str(v) for v in ours["device"] if str(v) not in ("", "nan"))
        )
        title = metric
        if "latency" in metric:
            title += (
                f"\npaper: {PAPER_DEVICE.split(' (')[0]}" if (g["source"] == "paper").any() else ""
            )
            title += f"\nthis run: {where or 'not measured (no such device)'}"
        ax.set_title(title, fontsize=8)
        if len(g) and g["value"].max() > 50 * g["value"].min():  # 0.06M to 285M parameters
            ax.set_xscale("log")
            ax.xaxis.set_major_formatter(FormatStrFormatter("%g"))
            ax.xaxis.set_minor_formatter(NullFormatter())
        elif not len(g):
            ax.text(0.5, 0.5, "not measured", transform=ax.transAxes, ha="center", va="center")
        ax.grid(axis="x", alpha=0.3)
    axes[0][0].set_yticks(range(len(methods)), methods, fontsize=7)
    axes[0][0].invert_yaxis()
    from matplotlib.patches import Patch

    fig.legend(
        [Patch(facecolor="grey", hatch="//", edgecolor="white"), Patch(facecolor="grey")],
        ["the paper's number", "this run"],
        loc="outside lower center",
        ncol=2,
        fontsize=8,
    )
    fig.suptitle("Table XIII: efficiency at 720×480")
    save_figure(fig, path)
    if close:
        plt.close(fig)
    return fig
