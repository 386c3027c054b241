"""What a run is and how it went: one-line descriptions of planned runs, training curves,
expert shares and a summary of trained runs (for notebook 02 and the table notebooks).

Everything here reads `experiments.Run` objects and the files a trained run leaves in its
cache folder (`log.csv`, `meta.json`); nothing is trained here.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pandas as pd

from m2ir_lib.core.config import M2IRConfig, Profile, TrainConfig, check_profile
from m2ir_lib.core.rivals import RIVAL_LABELS, RivalConfig
from m2ir_lib.engine.checkpoint import read_log
from m2ir_lib.workbook.experiments import Run, run_dir
from m2ir_lib.workbook.settings import SETTINGS


def describe(runs: list[Run], profile: Profile) -> pd.DataFrame:
    """One line per run: what differs, its schedule, data, cache folder and state."""
    check_profile(profile)
    rows = []
    for r in runs:
        d = run_dir(r, profile) if r.data.available else None
        rows.append(
            {
                "run": r.label,
                **_network(r.model),
                "iters": r.train.iters,
                "epochs": r.schedule.epochs if r.schedule else None,  # derived or stated
                "batch": r.train.global_batch,  # per optimizer step, any number of GPUs
                "patch": r.train.patch,
                "loss": _loss_label(r.train),
                "tasks": ",".join(r.tasks or ("all",)),
                "data": r.data.label,
                "cache": d.name if d else r.data.reason,
                "trained": bool(d and (d / "final.pt").is_file()),
                "note": r.note,
            }
        )
    return pd.DataFrame(rows)


def _network(m) -> dict:
    """The network columns: M²IR's block, prior and experts; a rival's architecture name."""
    if isinstance(m, RivalConfig):
        name = RIVAL_LABELS[m.arch]
        return {
            "block": f"{name} (transformer)",
            "prior": "none",
            "experts": "no ADEC",
            "top_k": None,
        }
    return {
        "block": m.block,
        "prior": m.prior,
        "experts": _experts_label(m),
        "top_k": m.top_k,
    }


def _experts_label(m: M2IRConfig) -> str:
    special = f"{m.num_experts} special" if m.special_experts else ""
    return " + ".join(filter(None, [special, "shared" if m.shared_expert else ""])) or "no ADEC"


def _loss_label(t: TrainConfig) -> str:
    terms = ["charb" if t.charbonnier else "L1"]
    terms += [f"{t.lambda1:g}·balance"] if t.use_balance else []
    terms += [f"{t.lambda2:g}·FFT"] if t.use_fft else []
    return " + ".join(terms)


def unique(runs: list[Run], profile: Profile) -> list[Run]:
    """Runs of several tables, each configuration once, labelled `<setting>: <label>`."""
    check_profile(profile)
    seen, out = set(), []
    for r in runs:
        key = run_dir(r, profile) if r.data.available else (r.data.setting, r.label)
        if key not in seen:
            seen.add(key)
            out.append(dataclasses.replace(r, label=f"{r.data.setting}: {r.label}"))
    return out


def curves(ckpts: dict[str, Path], smooth: int = 10) -> pd.DataFrame:
    """Training logs of trained runs, long by run label, with `loss_smoothed` (rolling mean)."""
    frames = []
    for label, path in ckpts.items():
        log = read_log(Path(path).parent / "log.csv")
        log.insert(0, "run", label)
        log["loss_smoothed"] = log["loss"].rolling(smooth, min_periods=1).mean()
        frames.append(log)
    return (
        pd.concat(frames, ignore_index=True)
        if frames
        else pd.DataFrame(columns=["run", "step", "lr", "loss", "loss_smoothed", "time_s"])
    )


def expert_shares(log: pd.DataFrame) -> pd.DataFrame:
    """Per step, each specialised expert's share of the top-K selections in each ADEC (eq. 9's
    S_n, normalised), long format: run, step, adec, expert, share."""
    cols = [c for c in log.columns if c.startswith("adec") and "_e" in c]
    if not cols:
        return pd.DataFrame(columns=["run", "step", "adec", "expert", "share"])
    long = log.melt(
        id_vars=["run", "step"], value_vars=cols, var_name="which", value_name="share"
    ).dropna(subset=["share"])
    parts = long["which"].str.extract(r"adec(\d+)_e(\d+)")
    long["adec"] = "ADEC " + (parts[0].astype(int) + 1).astype(str)
    long["expert"] = "E" + (parts[1].astype(int) + 1).astype(str)
    return long.drop(columns="which")


def run_summary(runs: list[Run], ckpts: dict[str, Path], profile: Profile) -> pd.DataFrame:
    """One line per run: cache key, steps, last loss (mean of the last 10 steps), wall time."""
    check_profile(profile)
    rows = []
    for r in runs:
        row = {"run": r.label, "setting": r.data.setting, "data": r.data.label, "note": r.note}
        if r.label in ckpts:
            log = read_log(Path(ckpts[r.label]).parent / "log.csv")
            meta = json.loads((Path(ckpts[r.label]).parent / "meta.json").read_text())
            row.update(
                cache=Path(ckpts[r.label]).parent.name,
                steps=int(log["step"].max()),
                final_loss=float(log["loss"].tail(10).mean()),
                train_minutes=round(float(log["time_s"].max()) / 60, 2),
                device=meta.get("device", ""),
                status="trained",
            )
        else:
            row.update(status=r.data.reason or "not trained")
        rows.append(row)
    return pd.DataFrame(rows)


def settings_table() -> pd.DataFrame:
    """`SETTINGS` as a table: manifest, what the paper used, tasks, protocol."""
    return pd.DataFrame([{"setting": k, **dataclasses.asdict(v)} for k, v in SETTINGS.items()])
