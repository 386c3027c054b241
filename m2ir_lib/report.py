"""How a table is shown: the paper's layout, paper beside ours, margins, plots, verdicts.

Everything here reads the long format of `m2ir_lib.results` and returns DataFrames, seaborn
figures or Markdown; nothing is measured here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from m2ir_lib.results import AVERAGE, STATUS, spec

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
    tasks = list(dict.fromkeys(d["task"]))
    mets = list(dict.fromkeys(d["metric"]))
    wide = d.pivot_table(
        index=["source", "method"],
        columns=["task", "metric"],
        values="value",
        aggfunc="first",
        sort=False,
    )
    cols = [(t, m) for t in tasks for m in mets if (t, m) in wide.columns]
    return _rounded(wide[cols])


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


# ---------------------------------------------------------------------------- comparisons


def side_by_side(df: pd.DataFrame, metrics: list[str] | None = None) -> pd.DataFrame:
    """One row per method label (paper order), columns (metric, source): for ablation tables,
    whose reproduced rows carry the paper's row labels."""
    d = df[df["metric"] != STATUS]
    if metrics:
        d = d[d["metric"].isin(metrics)]
    order = list(dict.fromkeys(list(d.loc[d["source"] == "paper", "method"]) + list(d["method"])))
    wide = d.pivot_table(
        index="method", columns=["metric", "source"], values="value", aggfunc="first"
    )
    return _rounded(wide.reindex([m for m in order if m in wide.index]))


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
    values over the method labels both have (1 = same order, −1 = reversed)."""
    from scipy.stats import kendalltau

    d = df[(df["metric"] == metric) & df["value"].notna()]
    wide = d.pivot_table(index="method", columns="source", values="value", aggfunc="first")
    wide = wide.dropna() if {"paper", "reproduced"} <= set(wide.columns) else wide.iloc[:0]
    if len(wide) < 3:
        return {
            "metric": metric,
            "rows": len(wide),
            "kendall_tau": float("nan"),
            "best_paper": None,
            "best_ours": None,
        }
    tau = kendalltau(wide["paper"], wide["reproduced"]).statistic
    return {
        "metric": metric,
        "rows": len(wide),
        "kendall_tau": float(tau),
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
        f"{agree['kendall_tau']:.2f} (1 = same order, 0 = unrelated)."
    )
    return Markdown("\n\n".join(lines))


# ---------------------------------------------------------------------------- plot


def plot_paper_vs_ours(
    df: pd.DataFrame,
    metric: str = "PSNR",
    paper_methods: list[str] | None = None,
    path: str | Path | None = None,
    title: str = "",
    close: bool = False,
):
    """Seaborn bars of the paper's numbers beside ours, one panel per source (own y-scale).

    Numbers from a stand-in data set are not on the paper's scale, so each source gets its
    own panel: compare the pattern across tasks or settings, not the height across panels.

    Args:
        df: long-format rows.
        metric: which metric to plot.
        paper_methods: paper methods to show (default: those whose name starts with "M²IR"
            and, for one-task ablation tables, every row).
        path: save the figure there as PNG when given.
        title: figure title (default: the table's title).
        close: close the figure after saving (scripts); notebooks leave it open to show it.

    Returns:
        The seaborn FacetGrid.
    """
    import matplotlib.pyplot as plt
    import seaborn as sns

    d = df[(df["metric"] == metric) & np.isfinite(df["value"])].copy()  # PSNR of a no-op is inf
    if d.empty:
        raise ValueError(f"no {metric} values to plot")
    one_task = d["task"].nunique() == 1 or set(d["task"]) <= {d["task"].iloc[0], AVERAGE}
    if paper_methods is None and not one_task:
        paper_methods = [
            m for m in d.loc[d["source"] == "paper", "method"].unique() if m.startswith("M²IR")
        ]
    if paper_methods is not None:
        d = d[(d["source"] == "reproduced") | d["method"].isin(paper_methods)]
    if one_task:
        grid = sns.catplot(
            data=d,
            x="method",
            y="value",
            col="source",
            kind="point",
            sharey=False,
            sharex=False,
            height=3.2,
            aspect=1.6,
        )
        for ax in grid.axes.flat:
            ax.tick_params(axis="x", rotation=60)
            for lbl in ax.get_xticklabels():
                lbl.set_ha("right")
    else:
        grid = sns.catplot(
            data=d,
            x="task",
            y="value",
            hue="method",
            col="source",
            kind="bar",
            sharey=False,
            height=3.2,
            aspect=1.6,
        )
        for ax in grid.axes.flat:
            ax.tick_params(axis="x", rotation=45)
            lo = d.loc[d["source"] == ax.get_title().split("= ")[-1], "value"]
            if len(lo) and metric != "SSIM":
                ax.set_ylim(max(0.0, lo.min() * 0.9), lo.max() * 1.03)
            elif len(lo):
                ax.set_ylim(max(0.0, lo.min() - 0.05), min(1.0, lo.max() + 0.02))
    grid.set_axis_labels("", metric)
    table = d["table"].iloc[0]
    grid.figure.suptitle(title or f"Table {table}: {spec(table).title}", y=1.02)
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        grid.figure.savefig(path, dpi=110, bbox_inches="tight")
    if close:
        plt.close(grid.figure)
    return grid
