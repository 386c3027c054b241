"""What the workbook's training costs before it runs: per-run seconds and the plan's wall time.

`m2ir_lib.pipeline` trains every run of the workbook (`tables.workbook_plan`) in one pool of
one-thread workers before the first notebook, longest run first. This module predicts how
long that takes, from measured step times only:

1. a run already trained here: the seconds in its own log;
2. else the same run in the profile's reference table (`results/<profile>/training_runs.csv`,
   matched by its cache folder), measured by the run that produced the committed results;
3. else the run of the same name in that table, scaled by iterations (its data or code may
   have changed since, which moves a step's cost little);
4. else its iterations × the median seconds per iteration measured by runs of the same kind
   (network type, patch and batch) under 1 to 3;
5. else unknown (nan), and the prediction says how many runs it could not price.

`wall_times` then schedules the runs longest first on 1, 2, 4 and 8 workers (the pool's
own order) and reports the finish time of the last one. It assumes one thread per worker and
no slowdown from sharing memory bandwidth, so it is a lower bound on a busy machine.
"""

from __future__ import annotations

import heapq
import math

import pandas as pd

from m2ir_lib.core.config import Profile, check_profile
from m2ir_lib.engine.checkpoint import read_log
from m2ir_lib.workbook import results
from m2ir_lib.workbook.experiments import Run, run_dir

CORES = (1, 2, 4, 8)
REFERENCE = "training_runs.csv"  # notebook 02's table of trained runs (`runinfo.run_summary`)


def _kind(r: Run) -> tuple:
    """Runs whose steps cost alike: same network type, patch and batch."""
    return (type(r.model).__name__, r.train.patch, r.train.global_batch)


def predicted_seconds(runs: list[Run], profile: Profile, root=None) -> pd.DataFrame:
    """One line per run: iterations, predicted one-thread training seconds and their source."""
    check_profile(profile)
    ref_path = results.results_dir(profile, root) / REFERENCE
    ref = pd.read_csv(ref_path) if ref_path.is_file() else pd.DataFrame()
    measured = (
        ref.dropna(subset=["train_minutes"]).set_index("cache")["train_minutes"] * 60
        if {"cache", "train_minutes"} <= set(ref.columns)
        else pd.Series(dtype=float)
    )
    by_name = (
        ref.dropna(subset=["train_minutes", "steps"]).drop_duplicates("run").set_index("run")
        if {"run", "steps", "train_minutes"} <= set(ref.columns)
        else pd.DataFrame(columns=["steps", "train_minutes"])
    )
    rows = []
    for r in runs:
        d = run_dir(r, profile) if r.data.available else None
        seconds, source = math.nan, ""
        if d is not None and (d / "log.csv").is_file():
            log = read_log(d / "log.csv")
            if len(log) and int(log["step"].max()) >= r.train.iters:
                seconds, source = float(log["time_s"].max()), "this run's log"
        if math.isnan(seconds) and d is not None and d.name in measured.index:
            seconds, source = float(measured[d.name]), f"reference {REFERENCE}"
        if math.isnan(seconds) and r.label in by_name.index:
            same = by_name.loc[r.label]
            seconds = float(same["train_minutes"]) * 60 * r.train.iters / float(same["steps"])
            source = f"same run name in {REFERENCE}, scaled by iterations"
        rows.append(
            dict(run=r.label, kind=_kind(r), iters=r.train.iters, seconds=seconds, source=source)
        )
    out = pd.DataFrame(rows, columns=["run", "kind", "iters", "seconds", "source"])
    per_iter = (out["seconds"] / out["iters"]).groupby(out["kind"]).median()
    guess = out["seconds"].isna() & out["kind"].isin(per_iter.dropna().index)
    out.loc[guess, "seconds"] = out.loc[guess, "iters"] * out.loc[guess, "kind"].map(per_iter)
    out.loc[guess, "source"] = "iterations × median s/iteration of its kind"
    out["kind"] = out["kind"].map(lambda k: f"{k[0]} {k[1]}² × {k[2]}")
    return out


def makespan(seconds, workers: int) -> float:
    """Finish time of the last run when runs start longest first on `workers` workers, each
    taking the next run as soon as it is free (the pool's order)."""
    free = [0.0] * workers
    for s in sorted(seconds, reverse=True):
        heapq.heappush(free, heapq.heappop(free) + s)
    return max(free)


def wall_times(pred: pd.DataFrame, cores=CORES) -> pd.DataFrame:
    """Predicted wall time of the plan's training on each core count (one-thread workers)."""
    known = pred["seconds"].dropna().to_numpy()
    return pd.DataFrame(
        {
            "cores": list(cores),
            "minutes": [round(makespan(known, c) / 60, 1) for c in cores],
            "runs": len(pred),
            "runs_unpriced": int(pred["seconds"].isna().sum()),
        }
    )


def plan_line(pred: pd.DataFrame, cores=CORES) -> str:
    """One sentence: how many runs, and the predicted wall time on 1, 2, 4 and 8 cores."""
    w = wall_times(pred, cores)
    todo = ", ".join(f"{m:g} min on {c}" for c, m in zip(w["cores"], w["minutes"], strict=True))
    missing = int(w["runs_unpriced"].iloc[0])
    return f"{len(pred)} training runs, predicted {todo} (one-thread workers, longest first)" + (
        f"; {missing} run(s) without a measured step time are left out" if missing else ""
    )


def longest_first(runs: list[Run], pred: pd.DataFrame) -> list[Run]:
    """The runs in the pool's order: predicted seconds descending, unpriced runs last."""
    s = dict(zip(pred["run"], pred["seconds"].fillna(-1.0), strict=True))
    return sorted(runs, key=lambda r: -s.get(r.label, -1.0))
