"""Table XIII (§IV-D): parameters, FLOPs, latency and peak memory of the networks at 720×480.

`efficiency_rows` measures the profile's M²IR, its Restormer-style opponent and the rivals
in full (`speed.efficiency_table`) and counts the paper-size networks (parameters, and
MACs when asked), in the authors' configuration for the rivals; `measured_gpu_rows` reads
the GPU columns that `benchmarks/gpu_check.py` measured and committed (`MEASURED`). The
paper's latency is on its RTX 4090 (`PAPER_DEVICE`).
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
from pathlib import Path

import pandas as pd
import torch

from m2ir_lib.core.config import MODEL_PRESETS, Profile, baseline_config, check_profile
from m2ir_lib.core.rivals import RIVAL_LABELS
from m2ir_lib.engine import efficiency, speed
from m2ir_lib.workbook import results
from m2ir_lib.workbook.labels import EFFICIENCY_METRICS

PAPER_SIZE = (480, 720)  # Table XIII: 720×480 inputs


PROMPTIR_NOTE = (
    "Table XIII prints 34.1M / 745G for PromptIR, which no configuration of the official code "
    "gives (745G is a plain Restormer's count); the authors' code gives this row's numbers"
)


def efficiency_rows(
    profile: Profile,
    *,
    paper_macs: bool = False,
    device: str = "auto",
    repeats: int = 3,
    seed: int = 0,
    rivals: bool = True,
) -> pd.DataFrame:
    """Table XIII for our networks at 720×480: the paper's network counted (params always;
    MACs when `paper_macs`, seconds through `efficiency.macs_extrapolated`), and the profile's
    M²IR, Restormer-style network and rivals measured in full (params, MACs, latency, peak
    memory) in one `speed.efficiency_table` run.

    Args:
        profile: the run profile, whose network is measured in full.
        paper_macs: also count the paper network's MACs (with and without DA-CLIP).
        device: "auto" (CUDA when present), "cpu" or a CUDA device.
        repeats: timed forward passes (median).
        seed: seed of the random weights and the input.
        rivals: also Restormer, PromptIR and AdaIR: at the profile's size measured beside
            M²IR, and in the authors' configuration counted (params and MACs, seconds:
            `efficiency.rival_macs_extrapolated`).
    """
    check_profile(profile)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
    torch.manual_seed(seed)
    frames = []
    # The profile's networks first: peak memory is the whole process's, so it must not
    # include the 285M-parameter DA-CLIP structure built below.
    cfg = profile.model
    preset = next((k for k, v in MODEL_PRESETS.items() if v == cfg), None)
    named = {
        "M²IR (w/o DA-CLIP)": f"M²IR (ours, {profile.name} config, w/o DA-CLIP)",
        "Restormer-style baseline": f"Restormer-style (ours, {profile.name} config)",
        **{v: f"{v} (ours, {profile.name} config)" for v in RIVAL_LABELS.values()},
    }
    rows = efficiency.table_xiii_models(preset or cfg, rivals=rivals and preset is not None)
    models = {named[k]: v for k, v in rows.items() if k in named}  # not DA-CLIP's (above)
    # The opponent as Tables I–VI train it: sized by the profile (Profile.baseline).
    models[named["Restormer-style baseline"]] = (
        dataclasses.replace(baseline_config(cfg), **profile.baseline),
        "none",
    )
    measured = speed.efficiency_table(models, PAPER_SIZE, device, repeats=repeats)
    for _, m in measured.iterrows():
        values = {
            ("720×480", name): float(m[key])
            for key, name in EFFICIENCY_METRICS.items()
            if key in m and m[key] is not None and m[key] == m[key]
        }
        note = (
            f"{m['device']}, {m['threads']} threads, {m['dtype']}; "
            f"+{m['attention_macs_G']:.1f}G channel-attention products not in FLOPs"
        )
        frames.append(
            results.rows(
                "XIII",
                m["method"],
                values,
                profile=profile,
                seed=seed,
                device=str(m["device"]),
                data="no data (random weights)",
                note=note,
            )
        )
        lost = [name for key, name in EFFICIENCY_METRICS.items() if ("720×480", name) not in values]
        frames += [
            results.status_row(
                "XIII",
                m["method"],
                f"{name}: not measured: "
                + ("no GPU on this machine" if "GPU" in name else "measured on the GPU only")
                + f" (ran on {m['device']})",
                profile=profile,
                seed=seed,
                task="720×480",
            )
            for name in lost
        ]
    for mode, label in (
        ("none", "M²IR (paper config, w/o DA-CLIP)"),
        ("daclip", "M²IR (paper config, DA-CLIP structure)"),
    ):
        net = efficiency.build_variant("paper", mode)
        values = {("720×480", "Params (M)"): sum(p.numel() for p in net.parameters()) / 1e6}
        del net
        note = "random weights; parameters counted"
        if paper_macs:
            c = efficiency.count_complexity("paper", mode, PAPER_SIZE, extrapolate=True)
            values[("720×480", "FLOPs (G)")] = c["macs"] / 1e9
            note += (
                "; network MACs = a·HW + b from three small inputs (exact for this network), "
                f"prior counted at 720×480; +{c['attention_macs'] / 1e9:.1f}G channel-attention "
                "products not in FLOPs"
            )
        frames.append(
            results.rows(
                "XIII",
                label,
                values,
                profile=profile,
                seed=seed,
                device="cpu",
                data="no data (random weights)",
                note=note,
            )
        )
        if not paper_macs:
            frames.append(
                results.status_row(
                    "XIII",
                    label,
                    "FLOPs not counted: paper_macs=False "
                    "(or `python -m m2ir_lib.efficiency --config paper --fast`)",
                    profile=profile,
                    seed=seed,
                    task="720×480",
                )
            )
    if rivals:
        frames += [_paper_rival_row(n, profile, seed) for n in RIVAL_LABELS]
    return pd.concat(frames, ignore_index=True)


def _paper_rival_row(name: str, profile: Profile, seed: int) -> pd.DataFrame:
    """A rival in the authors' released configuration: params and MACs at 720×480."""
    c = efficiency.rival_macs_extrapolated(name, "paper", PAPER_SIZE)
    note = (
        "random weights, the authors' configuration; MACs = a·HW + b from three small inputs "
        f"(exact for this network); +{c['attention_macs'] / 1e9:.1f}G channel-attention "
        "products not in FLOPs"
    )
    note += f"; {PROMPTIR_NOTE}" if name == "promptir" else ""
    values = {
        ("720×480", "Params (M)"): c["params"] / 1e6,
        ("720×480", "FLOPs (G)"): c["macs"] / 1e9,
    }
    return results.rows(
        "XIII",
        f"{RIVAL_LABELS[name]} (authors' config)",
        values,
        profile=profile,
        seed=seed,
        device="cpu",
        data="no data (random weights)",
        note=note,
    )


MEASURED = results.repo_root() / "benchmarks" / "measured"
GPU_LABELS = {  # gpu_check.py's model names -> this table's rows
    "M²IR (random DA-CLIP)": "M²IR (paper config, DA-CLIP structure)",
    "M²IR (w/o DA-CLIP)": "M²IR (paper config, w/o DA-CLIP)",
    "Restormer-style baseline": "Restormer-style (paper config)",
}
# gpu_reference.py's networks -> this table's rows (the rivals in the authors' configuration)
REFERENCE_LABELS = {
    "m2ir_daclip": "M²IR (paper config, DA-CLIP structure)",
    "m2ir_none": "M²IR (paper config, w/o DA-CLIP)",
    **{n: f"{label} (authors' config)" for n, label in RIVAL_LABELS.items()},
}
PRECISIONS = ("fp32", "bf16")
NO_REFERENCE = (
    "latency GPU (ms), GPU memory (MB): not measured: no benchmarks/measured/gpu_reference_*.json"
    " (run `python benchmarks/gpu_reference.py` on a GPU, docs/gpu.md)"
)


def measured_gpu_rows(
    profile: Profile, folder: str | Path = MEASURED, seed: int = 0
) -> pd.DataFrame:
    """Table XIII's GPU columns from the committed measurements, one set of rows per GPU:
    `benchmarks/gpu_reference.py`'s (`gpu_reference_*.json`: M²IR with and without DA-CLIP,
    Restormer, PromptIR, AdaIR) and, for a GPU without one, `benchmarks/gpu_check.py`'s
    (`gpu_check_*.json`). Values are the paper config at 720×480, fp32 latency and peak GPU
    memory; bf16 and the training step are in the note; each row names its device. A row no
    file measured gets a status row saying so. `profile` (the run profile) is the rows'
    provenance.
    """
    check_profile(profile)
    frames, covered, devices = [], set(), set()
    for path in sorted(Path(folder).glob("gpu_reference_*.json")):
        found = json.loads(path.read_text())
        env = found["env"]
        if env.get("preset") != "paper" or env["device"] == "cpu":  # a --smoke file
            continue
        devices.add(env["device"])
        where = f"{_shown(path)}: torch {env['torch']}, CUDA {env['cuda']}"
        rows = {(r["model"], r["precision"]): r for r in found["latency"] if "error" not in r}
        steps = {(r["model"], r["precision"]): r for r in found["train"] if "error" not in r}
        for key, label in REFERENCE_LABELS.items():
            fp32, bf16 = rows.get((key, "fp32")), rows.get((key, "bf16"))
            if fp32 is None:
                continue
            note = f"{where}, fp32; {fp32['label']}"
            if key == "m2ir_daclip":
                note += f" (DA-CLIP {env['daclip']})"
            if bf16 is not None:
                note += f"; bf16 autocast {bf16['latency_ms']:.0f} ms, {bf16['gpu_peak_mb']:.0f} MB"
            # w/o DA-CLIP is never trained: the plan's M²IR without weights has the MLP prior
            trained = "m2ir_mlp" if key == "m2ir_none" else key
            train = {p: steps.get((trained, p)) for p in PRECISIONS}
            if all(train.values()):
                note += (
                    f"; training step of {train['fp32']['label']} (global batch "
                    f"{train['fp32']['global_batch']}, {env['train']['patch']}²): "
                    f"{train['fp32']['step_s']:.2f} s fp32, {train['bf16']['step_s']:.2f} s bf16"
                )
            frames.append(_gpu_row(profile, seed, label, fp32, env["device"], note, path))
            covered.add(label)
    for path in sorted(Path(folder).glob("gpu_check_*.json")):
        found = json.loads(path.read_text())
        env = found["env"]
        if env["device"] in devices:  # gpu_reference.py measured this GPU again
            continue
        by_model = {}
        for row in found.get("inference", []):
            by_model.setdefault(row["model"], {})[row["dtype"]] = row
        for name, modes in by_model.items():
            fp32, bf16 = modes.get("fp32"), modes.get("bf16")
            if fp32 is None or name not in GPU_LABELS:
                continue
            note = f"{_shown(path)}: torch {env['torch']}, fp32"
            if bf16 is not None:
                note += f"; bf16 autocast {bf16['latency_ms']:.0f} ms, {bf16['gpu_peak_mb']:.0f} MB"
            frames.append(
                _gpu_row(profile, seed, GPU_LABELS[name], fp32, env["device"], note, path)
            )
            covered.add(GPU_LABELS[name])
    frames += [
        results.status_row("XIII", label, NO_REFERENCE, profile=profile, seed=seed, task="720×480")
        for label in REFERENCE_LABELS.values()
        if label not in covered
    ]
    return pd.concat(frames, ignore_index=True)


def _gpu_row(profile, seed, label, fp32, device, note, path) -> pd.DataFrame:
    values = {
        ("720×480", "latency GPU (ms)"): fp32["latency_ms"],
        ("720×480", "GPU memory (MB)"): fp32["gpu_peak_mb"],
    }
    return results.rows(
        "XIII",
        label,
        values,
        profile=profile,
        seed=seed,
        device=device,
        data="no data (random weights)",
        note=note,
        commit=_last_commit(path),
    )


def _shown(path: Path) -> str:
    """The file as the note shows it: relative to the repository when inside it."""
    path = Path(path).resolve()
    root = results.repo_root().resolve()
    return str(path.relative_to(root)) if path.is_relative_to(root) else path.name


def _last_commit(path: Path) -> str:
    """The commit that last changed `path` (the measured file's own provenance)."""
    out = subprocess.run(
        ["git", "log", "-1", "--format=%h", "--", str(path)],
        cwd=results.repo_root(),
        capture_output=True,
        text=True,
    )
    return out.stdout.strip() or "unknown"
