"""Dead leaves or photographs? Train the mini profile's M²IR on each training design of the
embedded benchmark and score both on the same real test photographs: an experiment script,
never a unit test (issue 22; docs/data.md §6, "Photograph vs dead-leaves training").

For each `--size` (a `data_prep.mini` size: `mini` trains on dead-leaves images, `mini-photos`
on the former 11 photographs) it builds the benchmark under `data/<size>-seed<seed>/`, trains
M²IR of the `mini` profile on the setting with the stand-in's task mix
(`settings.stand_in_repeats`, the same for both), and scores every test image that both
designs hold (the 4 photographs outside the photograph training set) with the metrics of
`benchmarks/floor_diagnosis.py`: the table's PSNR, the degraded input's PSNR, the mean shift
and the offset-free PSNR. Runs are cached like the workbook's (set `$M2IR_RUNS` to keep them
apart). About 3 min of training per size and setting on one CPU thread.

    python benchmarks/stand_in_compare.py --setting 5d
    python benchmarks/stand_in_compare.py --setting 3d --sizes mini mini-photos --json out.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere in the repo

from data_prep import mini
from m2ir_lib.core.config import get_profile
from m2ir_lib.data.datasets import EvalDataset
from m2ir_lib.data.metrics import psnr_ssim
from m2ir_lib.engine.runs import load_checkpoint
from m2ir_lib.workbook import experiments, results, settings


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / max(np.mean((a - b) ** 2), 1e-12)))


def _floor(img: np.ndarray, clean: np.ndarray) -> tuple[float, float]:
    """(offset-free PSNR, mean shift) of a (3, H, W) image, as floor_diagnosis."""
    moved = img - img.mean(axis=(1, 2), keepdims=True) + clean.mean(axis=(1, 2), keepdims=True)
    return _psnr(moved, clean), float(img.mean() - clean.mean())


def score(setting: str, size: str, seed: int, common: set[str]) -> pd.DataFrame:
    """Train (cached) and score M²IR of the mini profile on one size's build."""
    prof = get_profile("mini")
    root = results.repo_root() / "data" / f"{size}-seed{seed}"
    built = mini.build(root, seed=seed, size=size)
    s = settings.SETTINGS[setting]
    data = settings.Data(setting, Path(built[f"mini_{s.manifest}"]), root, f"{size}-synthetic")
    run = experiments.plan("M²IR", prof, data, seed=seed)
    print(f"[{size}] {run.schedule.describe()}", flush=True)
    model = load_checkpoint(experiments.train_runs([run], prof, jobs=1)["M²IR"])[0].eval()
    ds = EvalDataset(data.manifest, root, tasks=list(s.eval_tasks) if s.eval_tasks else None)
    rows = []
    with torch.no_grad():
        for i in range(len(ds)):
            item = ds[i]
            if item["name"] not in common:
                continue
            x, clean = item["degraded"], item["clean"].numpy()
            y = model(x[None])[0].clamp(0, 1).numpy()
            row = {"size": size, "task": item["task"], "name": item["name"]}
            for tag, img in (("input", x.numpy()), ("m2ir", y)):
                hwc = (img.transpose(1, 2, 0), clean.transpose(1, 2, 0))
                row[f"psnr_{tag}"] = psnr_ssim(*hwc, s.protocol)[0]
                row[f"offset_free_{tag}"], row[f"shift_{tag}"] = _floor(img, clean)
            rows.append(row)
    return pd.DataFrame(rows)


def main(argv=None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--setting", default="5d", choices=["3d", "5d", "cdd11", "weatherbench"])
    parser.add_argument("--sizes", nargs="+", default=["mini", "mini-photos"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the per-image scores here")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    common = set.intersection(*(set(mini.SIZES[z].test) for z in args.sizes))
    df = pd.concat([score(args.setting, z, args.seed, common) for z in args.sizes])
    cols = ["psnr_input", "psnr_m2ir", "shift_m2ir", "offset_free_m2ir"]
    table = df.groupby(["task", "size"])[cols].mean().round(3)
    print(f"{args.setting}: M²IR (mini profile, seed {args.seed}) on {sorted(common)}")
    print(table.to_string())
    print(df.groupby("size")[["psnr_input", "psnr_m2ir"]].mean().round(3).to_string())
    if args.json:
        args.json.write_text(json.dumps(df.to_dict("records"), indent=1) + "\n")
    return df


if __name__ == "__main__":
    main()
