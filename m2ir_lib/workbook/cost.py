"""What a full reproduction costs: the training runs behind each table, their derived
schedules at the published data sizes, and the GPU-hours at a measured throughput.

The iterations are derived, not measured: `experiments.schedule` on the published training
counts (data_prep's layouts) with the paper profile's epochs, repeats and global batch. The
throughput is measured by `benchmarks/reproduction_cost.py` (the real `paper` network trained
by the real loop under torchrun), committed as `benchmarks/measured/reproduction_cost_*.json`.
Without such a file the hours read "not measured yet". The 2 × RTX 4090 column is an
extrapolation (`RTX4090_VS`), never a measurement.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pandas as pd

from data_prep.adapters import LAYOUTS, WEATHERBENCH_DEFAULT
from m2ir_lib.core.config import Profile, check_profile
from m2ir_lib.data.datasets import NOISE_SIGMAS
from m2ir_lib.workbook import experiments, results, settings, tables

NOT_MEASURED = "not measured yet"
MEASURED = results.repo_root() / "benchmarks" / "measured"
# Extrapolation to the paper's GPUs: peak dense FP32 throughput, RTX 4090 82.6 TFLOPS against
# 67 TFLOPS for an H100/H200 SXM (vendor data sheets), and ideal scaling to 2 GPUs. Memory
# bandwidth (1.0 vs 4.8 TB/s) favours the H200, so treat the column as a rough guide.
RTX4090_VS = {"NVIDIA H200": 82.6 / 67.0, "NVIDIA H100 80GB HBM3": 82.6 / 67.0}

# data_prep parts whose published training counts make each setting's training set.
_PARTS = {
    "3d": ("wed-bsd400", "rain100l-train", "ots"),
    "5d": ("wed-bsd400", "rain100l-train", "ots", "gopro-train", "lol-train"),
    "cdd11": ("cdd11-train",),
    "denoise": ("wed-bsd400",),
    "dehaze": ("ots",),
    "derain": ("rain100l-train",),
}


def published_rows(setting: str) -> dict[str, int]:
    """Training rows per task at the published sizes (one row per noise level for denoising)."""
    if setting == "weatherbench":  # per-weather counts unpublished; every factor is 1
        return {"weather": int(WEATHERBENCH_DEFAULT["totals"]["train"])}
    rows: dict[str, int] = {}
    for part in _PARTS[setting]:
        for s in LAYOUTS[part][0].sources:
            n = s.expected * (len(NOISE_SIGMAS) if s.task == "denoise" else 1)
            rows[s.task] = rows.get(s.task, 0) + n
    return rows


def reproduction_plan(profile: Profile) -> pd.DataFrame:
    """Every distinct training run of Tables I–XII with its derived schedule under `profile`
    (the paper profile: its epochs, repeats and global batch on the published data sizes).

    Table VI reuses Table I's runs; the ablations' shared full-model row trains once (listed
    under Table VII), as the run cache does.
    """
    check_profile(profile)
    out, seen = [], set()
    specs = [(t, s, label.format(p=profile.name), m, {}, False) for t in tables.TABLE_RUNS
             for s, label, m in tables.TABLE_RUNS[t] if t != "VI"]  # fmt: skip
    specs += [(t, "derain", label, m, tr, True) for t in tables.ABLATIONS
              for label, m, tr in tables.ABLATIONS[t]]  # fmt: skip
    for table, setting, label, m, tr, ablation in specs:
        base = profile.ablation_train if ablation else profile.train
        tcfg = dataclasses.replace(base, **tr)
        key = (setting, dataclasses.replace(profile.model, **m), tcfg, ablation)
        if key in seen:
            continue
        seen.add(key)
        reps = settings.SETTINGS[setting].repeats
        tcfg, s = experiments.schedule(
            profile, setting, published_rows(setting), reps, tcfg, ablation, cap=False
        )
        out.append(
            dict(table=table, run=label, setting=setting, samples_per_epoch=s.samples_per_epoch,
                 iters_per_epoch=s.iters_per_epoch, epochs=s.epochs, iterations=s.iters,
                 global_batch=s.global_batch, budget=s.budget)
        )  # fmt: skip
    return pd.DataFrame(out)


def measured_throughput(folder: str | Path = MEASURED, precision: str = "fp32") -> dict | None:
    """The newest committed `reproduction_cost_*.json` run at `precision`, or None."""
    best = None
    for path in sorted(Path(folder).glob("reproduction_cost_*.json")):
        found = json.loads(path.read_text())
        for run in found.get("runs", []):
            asked = run.get("requested", run.get("precision"))  # bf16 falls back on CPU
            if asked == precision == run.get("precision") and run.get("images_per_s"):
                best = {**run, "device": found["env"]["device"], "file": path.name}
    return best


def reproduction_cost(
    profile: Profile, folder: str | Path = MEASURED, precision: str = "fp32"
) -> pd.DataFrame:
    """GPU-hours per paper table: derived iterations × global batch ÷ measured images/s.

    Columns: table, runs, iterations, samples (M), `<GPU> GPU-hours (<precision>)` (measured
    throughput × derived schedule), `2×RTX 4090 hours (extrapolated)`, and `basis` (which
    numbers are measured and which derived or extrapolated).
    """
    plan = reproduction_plan(profile)
    m = measured_throughput(folder, precision)
    rows = []
    for table, g in plan.groupby("table", sort=False):
        images = float((g["iterations"] * g["global_batch"]).sum())
        row = {"table": table, "runs": len(g), "iterations": int(g["iterations"].sum()),
               "samples (M)": round(images / 1e6, 2)}  # fmt: skip
        if m is None:
            row["GPU-hours"] = NOT_MEASURED
            row["2×RTX 4090 hours (extrapolated)"] = NOT_MEASURED
            row["basis"] = "iterations derived from published counts; throughput not measured"
        else:
            # images/s is that of all `world_size` GPUs together: GPU-hours scale by it
            gpu_h = images / m["images_per_s"] / 3600 * m["world_size"]
            ratio = RTX4090_VS.get(m["device"])
            row["GPU-hours"] = round(gpu_h, 1)
            row["2×RTX 4090 hours (extrapolated)"] = (
                round(gpu_h / ratio / 2, 1) if ratio else "no scaling factor for this GPU"
            )
            row["basis"] = (
                f"measured: {m['images_per_s']:.1f} img/s, {precision}, {m['world_size']}× "
                f"{m['device']} ({m['file']}); iterations derived; 4090 column extrapolated"
            )
        rows.append(row)
    df = pd.DataFrame(rows)
    total = {"table": "all", "runs": int(df["runs"].sum()),
             "iterations": int(df["iterations"].sum()),
             "samples (M)": round(float(df["samples (M)"].sum()), 2)}  # fmt: skip
    for col in ("GPU-hours", "2×RTX 4090 hours (extrapolated)"):
        vals = df[col]
        num = pd.to_numeric(vals, errors="coerce")
        total[col] = round(float(num.sum()), 1) if num.notna().all() else vals.iloc[0]
    total["basis"] = df["basis"].iloc[0]
    return pd.concat([df, pd.DataFrame([total])], ignore_index=True)
