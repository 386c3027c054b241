"""Why a trained network scores below the degraded input: a diagnosis, not a unit test.

For the seed-0 runs of one of Tables I–IV (already trained: `make reproduce`, or the table's
notebook, puts them in the run cache; nothing is trained here) it scores every test image of
the table's data three ways, per task and method (the degraded input is the first method):

- `psnr`: the table's PSNR (RGB, [0, 1]);
- `psnr_offset_free`: PSNR after moving each colour channel's mean to the clean image's, i.e.
  what is left once a global brightness or colour offset is forgiven;
- `mean_shift`: mean intensity of the image minus that of the clean image (+ = brighter).

A network far below the input whose `psnr_offset_free` recovers most of the gap is changing
global brightness, not failing at the local restoration; one whose offset-free PSNR stays
low is changing structure. The script also prints the mean intensity of the clean training
and test images, since a network that cannot yet tell the degradation apart learns the
training set's brightness.

    python benchmarks/floor_diagnosis.py --table II                 # the mini reference runs
    python benchmarks/floor_diagnosis.py --table III --tasks rain snow --json out.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere in the repo

from m2ir_lib.core.config import Profile, get_profile
from m2ir_lib.workbook import experiments, settings, tables


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / max(np.mean((a - b) ** 2), 1e-12)))


def _scores(img: np.ndarray, clean: np.ndarray) -> dict:
    """(3, H, W) arrays in [0, 1]: PSNR, offset-free PSNR and mean shift against `clean`."""
    mean = clean.mean(axis=(1, 2), keepdims=True)
    moved = img - img.mean(axis=(1, 2), keepdims=True) + mean
    return {
        "psnr": _psnr(img, clean),
        "psnr_offset_free": _psnr(moved, clean),
        "mean_shift": float(img.mean() - clean.mean()),
    }


def clean_brightness(data: settings.Data) -> dict:
    """Mean intensity of the distinct clean images of the train and test splits."""
    from m2ir_lib.data.datasets import load_image, read_manifest

    df = read_manifest(data.manifest)
    out = {}
    for split in ("train", "test"):
        paths = df.loc[df["split"] == split, "clean_path"].unique()
        out[split] = float(np.mean([load_image(Path(data.root) / p).mean() / 255 for p in paths]))
    return out


def diagnose(table: str, profile: Profile, tasks=None, max_images: int | None = None) -> dict:
    """Per (method, task): n and the means of `_scores` over the table's test images."""
    import torch

    from m2ir_lib.data.datasets import EvalDataset
    from m2ir_lib.engine.runs import load_checkpoint

    runs = tables.table_runs(table, profile, seeds=1)
    data = runs[0].data
    if not data.available:
        raise SystemExit(f"Table {table}: {data.reason}")
    models = {"Identity (degraded input)": None}
    for run in runs:
        ckpt = experiments.run_dir(run, profile) / "final.pt"
        if not ckpt.is_file():
            raise SystemExit(
                f"{run.label}: not trained yet ({ckpt}); run the table's notebook first, e.g. "
                f"python -m m2ir_lib.pipeline --profile {profile.name} --only 01"
            )
        models[run.label] = load_checkpoint(ckpt)[0]
    s = settings.SETTINGS[data.setting]
    want = tasks or (list(s.eval_tasks) if s.eval_tasks else None)
    ds = EvalDataset(data.manifest, data.root, tasks=want, max_images=max_images)
    acc: dict[tuple, list] = {}
    with torch.no_grad():
        for item in ds:
            clean = item["clean"].numpy()
            for label, model in models.items():
                x = item["degraded"]
                img = x if model is None else model(x[None])[0].clamp(0, 1)
                acc.setdefault((label, item["task"]), []).append(_scores(img.numpy(), clean))
    rows = [
        {
            "method": m,
            "task": t,
            "n": len(v),
            **{k: float(np.mean([r[k] for r in v])) for k in v[0]},
        }
        for (m, t), v in acc.items()
    ]
    return {
        "table": table,
        "profile": profile.name,
        "clean_mean": clean_brightness(data),
        "rows": rows,
    }


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--table", default="II", choices=["I", "II", "III", "IV"])
    parser.add_argument("--profile", default="mini")
    parser.add_argument("--tasks", nargs="*", help="only these tasks (default: the table's)")
    parser.add_argument("--images", type=int, default=None, help="at most this many per task")
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args(argv)
    out = diagnose(args.table, get_profile(args.profile), args.tasks, args.images)
    cm = out["clean_mean"]
    print(f"Table {args.table} ({args.profile}): clean images' mean intensity, "
          f"train {cm['train']:.3f}, test {cm['test']:.3f}")  # fmt: skip
    print(f"{'method':34s} {'task':14s} {'n':>3s} {'PSNR':>6s} {'offset-free':>11s} {'shift':>7s}")
    for r in sorted(
        out["rows"], key=lambda r: (r["task"], r["method"] != "Identity (degraded input)")
    ):
        print(f"{r['method'][:34]:34s} {r['task']:14s} {r['n']:3d} {r['psnr']:6.2f} "
              f"{r['psnr_offset_free']:11.2f} {r['mean_shift']:+7.3f}")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n")
    return out


if __name__ == "__main__":
    main()
