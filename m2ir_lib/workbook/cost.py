"""What a full reproduction costs: the training runs behind each table, their derived
schedules at the published data sizes, and the GPU-hours at a measured throughput.

The runs are those the default plan trains (`planned_runs`: every seed and rival of
notebook 02, and the ablations). Their iterations are derived, not measured:
`experiments.schedule` on the published training counts (data_prep's layouts) with the paper
profile's epochs, repeats and global batch. The seconds per step of each network are
measured by `benchmarks/gpu_reference.py` on one GPU (`gpu_reference_*.json` in
`benchmarks/measured/`); without one, `benchmarks/reproduction_cost.py`'s throughput of the
real loop (`reproduction_cost_*.json`) costs every network at M²IR's; without either the
hours read "not measured yet". The 2 × RTX 4090 column is an extrapolation (`RTX4090_VS`),
never a measurement.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from data_prep.adapters import WEATHERBENCH_DEFAULT
from m2ir_lib.core.config import M2IRConfig, Profile, check_profile
from m2ir_lib.core.rivals import RIVALS, RivalConfig
from m2ir_lib.workbook import experiments, results, settings, tables

NOT_MEASURED = "not measured yet"
MEASURED = results.repo_root() / "benchmarks" / "measured"
# Extrapolation to the paper's GPUs: peak dense FP32 throughput, RTX 4090 82.6 TFLOPS against
# 67 TFLOPS for an H100/H200 SXM (vendor data sheets), and ideal scaling to 2 GPUs. Memory
# bandwidth (1.0 vs 4.8 TB/s) favours the H200, so treat the column as a rough guide.
RTX4090_VS = {"NVIDIA H200": 82.6 / 67.0, "NVIDIA H100 80GB HBM3": 82.6 / 67.0}


def published_rows(setting: str) -> dict[str, int]:
    """Training rows per task at the published sizes (one row per noise level for denoising;
    `settings.published_rows`), WeatherBench's as one total."""
    if setting == "weatherbench":  # per-weather counts unpublished; every factor is 1
        return {"weather": int(WEATHERBENCH_DEFAULT["totals"]["train"])}
    rows = settings.published_rows(setting)
    if rows is None:
        raise KeyError(setting)
    return rows


NETWORKS = ("m2ir_mlp", "m2ir_daclip", *RIVALS)  # `network_of`'s answers
SEEDS = 3  # the default plan's training seeds of the headline rows (notebook 02)
# Who the measured step time stands for: M²IR's ablation variants (fewer experts, no prior,
# other losses) are costed at the full network's step, the nearest measured one.
APPROXIMATION = "ablation variants costed at M²IR's step time"


def network_of(model: M2IRConfig | RivalConfig) -> str:
    """The `benchmarks/gpu_reference.py` network whose step time a run is costed at: the rival
    itself, 'restormer' for the Restormer-style network (the Restormer architecture layer for
    layer), 'm2ir_daclip' with the DA-CLIP prior, else 'm2ir_mlp' (the plan's M²IR without
    DA-CLIP weights, and every ablation variant)."""
    if isinstance(model, RivalConfig):
        return model.arch
    if model.block == "transformer" and not model.has_adec:
        return "restormer"
    return "m2ir_daclip" if model.prior == "daclip" and model.special_experts else "m2ir_mlp"


def planned_runs(profile: Profile, seeds: int = SEEDS, daclip_checkpoint: str = "") -> list:
    """(table, run, ablation) of every run the default plan trains, each once: notebook 02's
    `tables.training_plan(profile, seeds=seeds)` (Tables I–VI with the rivals of Tables I and
    II, Table VII's headline rows) and the ablation runs of Tables VII–XII.

    Each run is listed under the first table that plans it: Table VI reuses Table I's runs,
    and the full model of Tables VIII–XII (with its seeds) is Table VII's, as the run cache has.
    """
    check_profile(profile)
    kw = dict(seeds=seeds, daclip_checkpoint=daclip_checkpoint)
    found = [(t, r, False) for t in tables.TABLE_RUNS for r in tables.table_runs(t, profile, **kw)]
    derain = settings.locate("derain", profile)
    found += [(t, r, True) for t in tables.ABLATIONS
              for r in tables.ablation_runs(t, profile, derain, **kw)]  # fmt: skip
    out, seen = [], set()
    for table, run, ablation in found:
        key = run_identity(run, ablation)
        if key not in seen:
            seen.add(key)
            out.append((table, run, ablation))
    return out


def run_identity(run, ablation: bool) -> tuple:
    """What makes two planned runs one: network, optimisation, data, seed and budget."""
    return (ablation, run.data.setting, run.model, run.train, run.seed, run.tasks)


def reproduction_plan(
    profile: Profile, seeds: int = SEEDS, daclip_checkpoint: str = ""
) -> pd.DataFrame:
    """Every run of `planned_runs` with its derived schedule under `profile` (the paper
    profile: its epochs, repeats and global batch on the published data sizes), one row each,
    and the network its GPU time is costed at (`network_of`)."""
    out = []
    for table, run, ablation in planned_runs(profile, seeds, daclip_checkpoint):
        setting = run.data.setting
        reps = settings.SETTINGS[setting].repeats
        _, s = experiments.schedule(
            profile, setting, published_rows(setting), reps, run.train, ablation, cap=False
        )
        out.append(
            dict(table=table, run=run.label, setting=setting, network=network_of(run.model),
                 seed=run.seed, samples_per_epoch=s.samples_per_epoch,
                 iters_per_epoch=s.iters_per_epoch, epochs=s.epochs, iterations=s.iters,
                 global_batch=s.global_batch, budget=s.budget)
        )  # fmt: skip
    return pd.DataFrame(out)


def measured_step_times(folder: str | Path = MEASURED, precision: str = "fp32") -> dict | None:
    """Training images/s per network at `precision` from the newest `gpu_reference_*.json`
    measured with the paper networks (`benchmarks/gpu_reference.py`), or None.

    Returns: {"device", "file", "images_per_s": {network: images/s on one GPU}}.
    """
    best = None
    for path in Path(folder).glob("gpu_reference_*.json"):
        found = json.loads(path.read_text())
        if found["env"].get("preset") != "paper":  # a --smoke file costs nothing real
            continue
        speed = {r["model"]: r["images_per_s"] for r in found.get("train", [])
                 if r.get("precision") == precision and r.get("images_per_s")}  # fmt: skip
        if speed and (best is None or found["env"]["started"] > best["started"]):
            best = {"device": found["env"]["device"], "file": path.name,
                    "started": found["env"]["started"], "images_per_s": speed}  # fmt: skip
    return best


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


def _throughput(folder, precision) -> tuple[dict | None, str]:
    """images/s per network (one GPU) and the basis sentence. `gpu_reference.py`'s per-network
    step times first; else `reproduction_cost.py`'s loop throughput, for every network."""
    m = measured_step_times(folder, precision)
    if m is not None:
        return m, (
            f"measured: seconds per step of each network, {precision}, one {m['device']} "
            f"({m['file']}); {APPROXIMATION}; iterations derived; 4090 column extrapolated"
        )
    m = measured_throughput(folder, precision)
    if m is None:
        return None, "iterations derived from published counts; throughput not measured"
    # images/s is that of all `world_size` GPUs together: per GPU it is a world_size-th
    per_gpu = m["images_per_s"] / m["world_size"]
    basis = (
        f"measured: {m['images_per_s']:.1f} img/s, {precision}, {m['world_size']}× "
        f"{m['device']} ({m['file']}), M²IR's, for every network; iterations derived; "
        "4090 column extrapolated"
    )
    return {"device": m["device"], "images_per_s": dict.fromkeys(NETWORKS, per_gpu)}, basis


def reproduction_cost(
    profile: Profile,
    folder: str | Path = MEASURED,
    precision: str = "fp32",
    seeds: int = SEEDS,
    daclip_checkpoint: str = "",
) -> pd.DataFrame:
    """GPU-hours per paper table: derived iterations × global batch ÷ measured images/s of
    each run's network (`network_of`), summed over every run the default plan trains.

    Columns: table, runs, iterations, samples (M), `GPU-hours` (on one GPU of `measured on`,
    at `precision`), `2×RTX 4090 hours (extrapolated)`, `measured on` and `basis` (which
    numbers are measured and which derived or extrapolated). Without a measurement the hours
    read `NOT_MEASURED`; a table with a network not measured names it.
    """
    plan = reproduction_plan(profile, seeds, daclip_checkpoint)
    m, basis = _throughput(folder, precision)
    speed = {} if m is None else m["images_per_s"]
    plan["images"] = plan["iterations"] * plan["global_batch"]
    plan["gpu_h"] = [
        img / speed.get(net) / 3600 if speed.get(net) else None
        for img, net in zip(plan["images"], plan["network"], strict=True)
    ]
    ratio = RTX4090_VS.get(m["device"]) if m else None
    rows = []
    for table, g in [*plan.groupby("table", sort=False), ("all", plan)]:
        row = {"table": table, "runs": len(g), "iterations": int(g["iterations"].sum()),
               "samples (M)": round(float(g["images"].sum()) / 1e6, 2)}  # fmt: skip
        missing = sorted(set(g.loc[g["gpu_h"].isna(), "network"]))
        if m is None:
            row["GPU-hours"] = row["2×RTX 4090 hours (extrapolated)"] = NOT_MEASURED
        elif missing:
            row["GPU-hours"] = f"{NOT_MEASURED}: {', '.join(missing)}"
            row["2×RTX 4090 hours (extrapolated)"] = row["GPU-hours"]
        else:
            gpu_h = float(g["gpu_h"].sum())
            row["GPU-hours"] = round(gpu_h, 1)
            row["2×RTX 4090 hours (extrapolated)"] = (
                round(gpu_h / ratio / 2, 1) if ratio else "no scaling factor for this GPU"
            )
        row["measured on"] = m["device"] if m else "—"
        row["basis"] = basis
        rows.append(row)
    return pd.DataFrame(rows)
