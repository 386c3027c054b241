"""The summary page of a profile's results: `results/<profile>/README.md`.

One page a person browsing the repository can read without running anything: for each of
Tables I–XIII the paper's printed row(s) beside ours with n and 95 % intervals, the
conclusion its notebook computed, and the figures; at the top, the commit, date, machine
and run time that produced them. `m2ir_lib.pipeline` rewrites it after every run, from the
CSVs, figures and executed notebooks under `results/<profile>/`; nothing on it is typed.

    python -m m2ir_lib.summary --profile mini      # rebuild the page from what is there
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
from pathlib import Path

import pandas as pd
import torch

from m2ir_lib.core.config import Profile, check_profile
from m2ir_lib.data.files import atomic_write_text, git_commit
from m2ir_lib.workbook import budget, claims, report, results, routing

# Paper rows shown beside ours in the comparison tables (all rows of the ablations), with
# their starred variants: Tables III and V print 'AdaIR*' and 'PromptIR*' rows.
PAPER_ROWS = ("M²IR", "Restormer", "PromptIR", "AdaIR")
PAGE = "README.md"


def machine() -> str:
    """What ran the workbook: CPU or GPU, cores, OS, Python and torch versions."""
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    cpu = platform.processor() or platform.machine()
    return (
        f"{cpu}, {os.cpu_count()} cores, {device}; {platform.system()} {platform.release()}; "
        f"Python {platform.python_version()}, torch {torch.__version__}"
    )


def notebook_conclusion(executed: Path) -> str | None:
    """The Markdown that `verdicts.conclusions(...)` displayed in an executed notebook."""
    if not executed.is_file():
        return None
    nb = json.loads(executed.read_text(encoding="utf-8"))
    for cell in nb["cells"]:
        if cell["cell_type"] == "code" and "verdicts.conclusions(" in "".join(cell["source"]):
            for out in cell.get("outputs", []):
                text = out.get("data", {}).get("text/markdown")
                if text:
                    return "".join(text).strip()
    return None


def _markdown(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "_(no rows)_"
    flat = frame.copy()
    if isinstance(flat.columns, pd.MultiIndex):
        flat.columns = [" ".join(str(c) for c in col if str(c)) for col in flat.columns]
    if isinstance(flat.index, pd.MultiIndex):
        flat.index = [" / ".join(str(i) for i in idx) for idx in flat.index]
    return flat.to_markdown()


def _metric(table: pd.DataFrame) -> list[str] | None:
    metrics = set(table.loc[table["metric"] != results.STATUS, "metric"])
    return ["PSNR"] if "PSNR" in metrics else None


def table_section(profile: Profile, roman: str, root: Path | None = None) -> str:
    """One table's block: paper rows, our rows with intervals, status, conclusion, figure."""
    spec = results.TABLES[roman]
    lines = [f"## Table {roman}: {spec.title}", ""]
    out = results.results_dir(profile, root)
    if not (out / f"{spec.stem}.csv").is_file():
        return "\n".join([*lines, f"_Not produced by this run (no `{spec.stem}.csv`)._", ""])
    table = results.read_results(profile, roman, root)
    metrics = _metric(table)
    paper = table[table["source"] == "paper"]
    ablation = roman in ("VII", "VIII", "IX", "X", "XI", "XII")
    keep = (
        None
        if ablation or roman == "XIII"
        else [m for m in dict.fromkeys(paper["method"]) if m.rstrip("*") in PAPER_ROWS]
    )
    ours = table[table["source"] == "reproduced"]
    if roman == "XIII":  # each latency column names the device that measured it
        printed, view = report.efficiency_view(paper), report.efficiency_view(ours)
        legend = "each latency column names the device that measured it"
    else:
        printed, view = report.wide_view(paper, metrics, keep), report.interval_view(table, metrics)
        legend = "▼ = no better than the degraded input"
    lines += ["**Paper (printed)**", "", _markdown(printed), ""]
    lines += [f"**This run** (`{profile.name}`; {legend})", ""]
    lines += [_markdown(view), ""]
    status = report.status_view(table)
    if not status.empty:
        lines += ["**Not reproduced here**", "", _markdown(status), ""]
    executed = out / "notebooks"
    found = sorted(executed.glob(f"*_table_{roman}_*.ipynb"))
    text = notebook_conclusion(found[0]) if found else None
    if text:
        lines += ["**Conclusion computed by the notebook**", "", text, ""]
    figure = out / "figures" / f"{spec.stem}.png"
    if figure.is_file():
        lines += [f"![Table {roman}](figures/{figure.name})", ""]
    return "\n".join(lines)


def _cost(out: Path) -> dict[str, str]:
    """Per table, what its `paper`-profile runs cost (`reproduction_cost.csv`), in words."""
    path = out / "reproduction_cost.csv"
    if not path.is_file():
        return {}
    cost = pd.read_csv(path, dtype=str, keep_default_na=False)
    return {
        r["table"]: f"{int(r['iterations']):,} iterations, GPU-hours: {r['GPU-hours']}"
        for _, r in cost.iterrows()
        if r.get("iterations", "").isdigit()
    }


def claims_section(profile: Profile, root: Path | None = None) -> str:
    """The opening table: every claim judged at the level the paper makes it (a table's
    Average or single column, an ablation row, a mechanism), with the paper's effect, this
    run's, the smallest difference this design detects, the verdict and the design that
    would test it; per-column verdicts are counted below it and listed in `*_claims.csv`."""
    found = claims.read_claims(profile, root)
    lines = ["## The paper's claims at a glance", ""]
    if found.empty:
        return "\n".join([*lines, "_No claim was judged by this run (no `*_claims.csv`)._", ""])
    found["column"] = found["column"].fillna("").astype(str)
    single = found.groupby(["source", "claim"])["column"].transform("nunique") == 1
    top = found[single | found["column"].isin([results.AVERAGE, ""])]
    rest = found.drop(top.index)
    cost = _cost(results.results_dir(profile, root))

    def num(x, metric):
        k = 4 if metric in ("SSIM", "LPIPS") else 2
        return f"{x:+.{k}f}" if pd.notna(x) else "—"

    def design(r):
        text = str(r["design"]) if pd.notna(r["design"]) else ""
        return text + (f" ({cost[r['source']]})" if "paper" in text and r["source"] in cost else "")

    view = pd.DataFrame(
        {
            "table": top["source"],
            "claim": [
                c + ("" if k == claims.PAPER else " (our extra comparison)")
                for c, k in zip(top["claim"], top["kind"], strict=True)
            ],
            "column": top["column"],
            "metric": top["metric"],
            "paper": [num(x, m) for x, m in zip(top["paper_effect"], top["metric"], strict=True)],
            "this run [95 % CI]": [
                f"{num(e, m)} [{num(lo, m)}, {num(hi, m)}]" if pd.notna(lo) else num(e, m)
                for e, lo, hi, m in zip(
                    top["estimate"], top["ci_low"], top["ci_high"], top["metric"], strict=True
                )
            ],
            "units × seeds": [
                f"{int(u)} × {int(s)}" if pd.notna(u) and pd.notna(s) else "—"
                for u, s in zip(top["n_units"], top["n_seeds"], strict=True)
            ],
            "detectable": [
                num(x, m).lstrip("+") for x, m in zip(top["detectable"], top["metric"], strict=True)
            ],
            "verdict": top["verdict"],
            "what would test it": [design(r) for _, r in top.iterrows()],
        }
    )
    lines += [view.to_markdown(index=False), ""]
    if not rest.empty:
        counts = rest["verdict"].astype(str).str.split(" \\(").str[0].value_counts()
        lines += [
            f"Per column, {len(rest)} further verdicts: "
            + ", ".join(f"{n} {w}" for w, n in counts.items())
            + " (each table's `*_claims.csv`, and its section below).",
            "",
        ]
    return "\n".join(lines)


def write_summary(profile: Profile, root: str | Path | None = None) -> Path:
    """Write `results/<profile>/README.md` from what the workbook left there; atomic."""
    check_profile(profile)
    out = results.results_dir(profile, root)  # honours $M2IR_RESULTS unless root is given
    times_path = out / "pipeline_times.csv"
    times = pd.read_csv(times_path) if times_path.is_file() else pd.DataFrame()
    head = [
        f"# Reference results, profile `{profile.name}`",
        "",
        "Generated by `python -m m2ir_lib.summary` at the end of every pipeline run (e.g. "
        f"`make reproduce PROFILE={profile.name}`); do not edit by hand. `source == paper` "
        "numbers are the paper's printed ones (`results/reported/`); everything else was "
        "measured by this run. Column meanings: docs/results.md.",
        "",
        f"- commit: `{git_commit(short=True)}`",
        f"- written: {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- machine: {machine()}",
    ]
    if not times.empty:
        plan = times["notebook"].str.startswith("(")  # the up-front training stage, not a notebook
        books = times[~plan]
        ok = (books["status"] == "ok").sum()
        stage = f"the training plan {times.loc[plan, 'seconds'].sum() / 60:.1f} min, " * bool(
            plan.any()
        )
        head.append(
            f"- wall time: {times['seconds'].sum() / 60:.1f} min in all: {stage}"
            f"{ok} of {len(books)} notebooks ok in {books['seconds'].sum() / 60:.1f} min "
            "(per stage: `pipeline_times.csv`)"
        )
    plan_path = out / "training_plan.csv"
    if plan_path.is_file():  # predicted before training, from measured step times
        head.append(f"- training: {budget.plan_line(pd.read_csv(plan_path))}")
    body = [claims_section(profile, root)]
    body += [table_section(profile, roman, root) for roman in results.TABLES]
    body += [routing.summary_section(profile, root)]  # beside Fig. 9 (issue 27)
    figures = sorted((out / "figures").glob("*.png")) if (out / "figures").is_dir() else []
    tables = {f"{s.stem}.png" for s in results.TABLES.values()}
    others = [f for f in figures if f.name not in tables]
    tail = ["## Other figures", ""] + [f"![{f.stem}](figures/{f.name})" for f in others]
    page = "\n".join(head + [""] + body + tail) + "\n"
    return atomic_write_text(page, out / PAGE)
