"""The figures of the tables: the paper's numbers beside ours, and Table XIII as bars.

Everything here reads the long format of `m2ir_lib.workbook.results` and returns matplotlib
figures (saved as PNG when a path is given); nothing is measured here. Every method keeps one
colour in every figure (`method_colour`).
"""

from __future__ import annotations

import zlib
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.patches import Patch
from matplotlib.ticker import FormatStrFormatter, NullFormatter

from m2ir_lib.workbook.labels import PAPER_DEVICE, paper_label
from m2ir_lib.workbook.results import AVERAGE, FLOOR, save_figure, spec

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
