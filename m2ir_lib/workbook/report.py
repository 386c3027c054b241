"""How a table is shown: the paper's layout, our values with their intervals, paper beside ours.

Everything here reads the long format of `m2ir_lib.workbook.results` and returns DataFrames or
Markdown; nothing is measured here. What a table concludes is `m2ir_lib.workbook.verdicts`;
its figures are `m2ir_lib.workbook.plots`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from IPython.display import Markdown

from m2ir_lib.core.config import Profile, check_profile
from m2ir_lib.workbook import stats
from m2ir_lib.workbook.labels import (
    EFFICIENCY_METRICS,
    PAPER_DEVICE,
    in_paper_order,
    latency_column,
    ours_for,
    paper_label,
)
from m2ir_lib.workbook.results import FLOOR, STATUS, paper_table, with_floor


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
    Columns are (task (n=images), metric) in the paper's column order; rows are our methods
    in the paper's row order (`labels.in_paper_order`: a row sits where the paper row it
    answers sits, rows answering none follow in the table's order), the floor last."""
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
    head = {t: f"{t} (n={int(n[t])})" if pd.notna(n[t]) else t for t in n.index}
    d = d.assign(text=d.apply(cell, axis=1), column=d["task"].map(head))
    wide = d.pivot_table(
        index="method", columns=["column", "metric"], values="text", aggfunc="first", sort=False
    ).fillna("")
    tasks, mets = _paper_order(d)
    wide = wide[[(head[t], m) for t in tasks for m in mets if (head[t], m) in wide.columns]]
    ours = [m for m in dict.fromkeys(d["method"]) if m != FLOOR]
    order = in_paper_order(ours, _paper_methods(df)) + [FLOOR]
    return wide.reindex([m for m in order if m in wide.index])


def _paper_methods(df: pd.DataFrame) -> list[str]:
    """The paper's row labels of the table, in its order: its rows in `df`, else its
    reported file; none for a table the paper does not print."""
    paper = list(dict.fromkeys(df.loc[df["source"] == "paper", "method"]))
    if paper or "table" not in df or df["table"].nunique() != 1:
        return paper
    try:
        return list(dict.fromkeys(paper_table(str(df["table"].iloc[0]))["method"]))
    except (FileNotFoundError, KeyError, ValueError):
        return []


def schedule_line(profile: Profile, ablation: bool = False, seeds: int | None = None):
    """The profile's schedule as one Markdown line, read from the `Profile` the caller resolved
    (`m2ir_lib.core.config`; never typed)."""
    check_profile(profile)
    t = profile.ablation_train if ablation else profile.train
    m = profile.model
    text = (
        f"**Profile `{profile.name}`** ({'ablation' if ablation else 'all-in-one'} schedule, from "
        f"`m2ir_lib.core.config`): {t.iters} iterations of batch {t.batch_size}"
        f"{f' × {t.grad_accum} accumulated' if t.grad_accum > 1 else ''} on {t.patch}² patches, "
        f"learning rate {t.lr:g} (warm-up {t.warmup_iters}, cosine horizon {t.cosine_iters}); "
        f"network width {m.dim}, blocks {m.num_blocks}, N = {m.num_experts}, K = {m.top_k}"
    )
    table = "VII" if ablation else "I"
    if seeds is not None and profile.seed_tables is not None and table not in profile.seed_tables:
        text += (  # `Profile.seed_tables`: where extra seeds cannot make a claim testable
            f"; one training seed per row at `{profile.name}`: no claim of these tables is "
            "testable at this scale, so more seeds would only repeat them"
        )
    elif seeds is not None:
        text += f"; the headline rows train with {seeds} seed{'s' if seeds != 1 else ''}"
    cap = profile.eval_max_images
    text += f"; test images per column: {'all' if cap is None else f'at most {cap}'}."
    return Markdown(text)


def efficiency_view(df: pd.DataFrame) -> pd.DataFrame:
    """Table XIII as the paper prints it, methods × metrics in its column order
    (`labels.EFFICIENCY_METRICS`; CPU and GPU latency apart), with the device each row was
    measured on: the paper's RTX 4090 for its rows, this machine's CPU or GPU for ours.
    Milliseconds compare only on one device, so each latency column names the device that
    measured it (`labels.latency_column`): the paper's RTX 4090 column holds the paper's rows
    only, and a latency we measured on, say, an H200 has a column of its own."""
    d = df[df["metric"] != STATUS]
    device = [
        PAPER_DEVICE if src == "paper" else (v if isinstance(v, str) and v else "")
        for src, v in zip(d["source"], d["device"], strict=True)
    ]
    d = d.assign(metric=[latency_column(m, v) for m, v in zip(d["metric"], device, strict=True)])
    wide = d.pivot_table(
        index=["source", "method"], columns="metric", values="value", aggfunc="first", sort=False
    )
    # each of the paper's metrics in its place, a latency once per device (the paper's first)
    order = [
        c
        for m in EFFICIENCY_METRICS.values()
        for c in sorted(wide.columns, key=lambda c: c != latency_column(m, PAPER_DEVICE))
        if c == m or c.startswith(f"{m} on ")
    ]
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
    tables. Our row answering each paper row (`labels.paper_label`) sits beside it; where it
    is labelled otherwise (a 'DACP (MLP prior)' row without DA-CLIP weights) the column
    'this run's row' names it, so a run standing for two paper rows is seen as one run."""
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
