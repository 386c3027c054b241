"""Measure what a full reproduction costs: the real `paper` network trained by the real loop.

    python benchmarks/reproduction_cost.py                 # GPU machine: all GPUs, fp32 + bf16
    python benchmarks/reproduction_cost.py --smoke --out /tmp/cost   # CPU, seconds (tests)

Writes a rehearsal data root (`data_prep.rehearsal`, 128² images in the published layouts),
prepares its 3D manifest, then for each precision runs ``torchrun -m m2ir_lib.train
--profile paper --setting 3d --iters N`` (fp32 default, ``--bf16``) with one process per GPU,
bounded by ``--max-seconds``. From each run's ``log.csv`` and ``meta.json`` it records the
training throughput (images/s over the steps after ``--skip`` warm-up steps, all processes
together), rank 0's peak GPU memory and the loss curve, in
``benchmarks/measured/reproduction_cost_<gpu>.json``. `m2ir_lib.workbook.cost` turns the fp32
throughput and the derived schedules into Table XIII's cost table (README, "What a
reproduction costs"). Rehearsal images are whole 128² patches, so data loading here is
lighter than on the real sets (large JPEGs with 4 loader workers per GPU).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from m2ir_lib.data.files import atomic_write_text  # noqa: E402


def device_name() -> str:
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"


def measure(run_dir: Path, skip: int) -> dict:
    """Throughput, peak memory and loss curve of one finished run folder."""
    log = pd.read_csv(run_dir / "log.csv")
    meta = json.loads((run_dir / "meta.json").read_text())
    timed = log[log["step"] > skip]
    if len(timed) < 2:
        raise ValueError(f"{run_dir}: need more than {skip + 1} steps to time (got {len(log)})")
    span = float(timed["time_s"].iloc[-1] - log.loc[log["step"] == skip, "time_s"].iloc[0]) \
        if skip > 0 else float(timed["time_s"].iloc[-1])  # fmt: skip
    steps = len(timed) if skip > 0 else len(log)
    return {
        "precision": meta["precision"],
        "world_size": meta["world_size"],
        "global_batch": meta["global_batch"],
        "accumulation": meta["accumulation"],
        "steps": int(log["step"].iloc[-1]),
        "timed_steps": steps,
        "images_per_s": steps * meta["global_batch"] / span,
        "step_s": span / steps,
        "gpu_peak_mb": meta.get("gpu_peak_mb"),
        "loss": [round(float(v), 6) for v in log["loss"]],
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--root", help="data root (default: a fresh rehearsal root in a temp dir)")
    p.add_argument("--iters", type=int, default=60, help="optimizer steps per precision")
    p.add_argument("--skip", type=int, default=10, help="warm-up steps left out of the timing")
    p.add_argument("--nproc", type=int, default=0, help="processes (0: one per GPU, else 1)")
    p.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    p.add_argument("--max-seconds", type=int, default=240, help="limit per precision")
    p.add_argument("--out", default=str(REPO / "benchmarks" / "measured"))
    p.add_argument("--smoke", action="store_true", help="smoke profile on CPU (tests)")
    a = p.parse_args(argv)

    import torch

    from data_prep.prepare import prepare
    from data_prep.rehearsal import write_rehearsal_root

    profile, device = ("smoke", "cpu") if a.smoke else ("paper", None)
    nproc = a.nproc or max(1, torch.cuda.device_count())
    work = Path(tempfile.mkdtemp(prefix="m2ir-cost-"))
    root = Path(a.root) if a.root else write_rehearsal_root(work / "root", pairs=8)
    manifest = prepare("3d", root, work / "manifests", allow_partial=True).manifests["3d"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "M2IR_RUNS": str(work / "runs")}
    env.pop("M2IR_REHEARSAL", None)  # the real network of the profile
    found = {"env": {"device": device_name() if device is None else "cpu",
                     "torch": torch.__version__, "nproc": nproc, "profile": profile,
                     "data": "rehearsal root (data_prep.rehearsal), 3D setting"},
             "runs": []}  # fmt: skip
    t0 = time.time()
    for prec in a.precisions:
        out = work / prec
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc_per_node={nproc}", "-m", "m2ir_lib.train", "--profile", profile,
               "--setting", "3d", "--manifest", str(manifest), "--data-root", str(root),
               "--out", str(out), "--iters", str(a.iters), "--no-resume"]  # fmt: skip
        cmd += ["--bf16"] if prec == "bf16" else []
        cmd += ["--device", device] if device else []
        try:
            done = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True,
                                  timeout=a.max_seconds)  # fmt: skip
        except subprocess.TimeoutExpired:
            found["runs"].append({"precision": prec, "error": f"over {a.max_seconds} s"})
            continue
        if done.returncode != 0:
            found["runs"].append({"precision": prec, "error": done.stderr[-2000:]})
            continue
        run = measure(out, min(a.skip, a.iters - 2))
        run["requested"] = prec
        found["runs"].append(run)
        print(f"{prec}: {run['images_per_s']:.1f} img/s, peak {run['gpu_peak_mb']} MB, "
              f"{run['steps']} steps")  # fmt: skip
    found["wall_s"] = round(time.time() - t0, 1)
    slug = re.sub(r"[^a-z0-9]+", "-", found["env"]["device"].lower()).strip("-")
    path = Path(a.out) / f"reproduction_cost_{slug}.json"
    atomic_write_text(json.dumps(found, indent=2), path)
    shutil.rmtree(work, ignore_errors=True)
    print(path)
    return 0 if all("error" not in r for r in found["runs"]) else 1


if __name__ == "__main__":
    sys.exit(main())
