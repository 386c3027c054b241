"""Below the degraded input: each network's error split into a global offset and the rest.

For the first-seed run of each row of one of Tables I–IV (already trained: nothing is trained
here) and for the degraded input itself, every test image of the columns asked for (the
notebooks ask for those where some row is no better than the input, `below_columns`) is
scored against its clean image (`scores`), and the means per (method, column) are one row of
`diagnose`'s frame:

- `psnr`: the table's PSNR (RGB, [0, 1]);
- `psnr_offset_free`: PSNR once each colour channel's mean is moved to the clean image's, i.e.
  what is left when a global brightness or colour offset is forgiven;
- `mean_shift`: mean intensity of the image minus that of the clean image (+ = brighter);
- `mean`, `clean_mean`: the mean intensities themselves (the degraded input's row gives the
  input's), and `clean_mean_train`: that of the distinct clean training images
  (`clean_brightness`), since a network that cannot yet tell the degradations apart learns
  the training set's brightness.

A network far below the input whose offset-free PSNR recovers most of the gap is changing
global brightness, not failing at the local restoration; one whose offset-free PSNR stays
low is changing structure. The table notebooks of Tables II and III write it beside their
table (`<stem>_floor.csv`, docs/results.md §3); `benchmarks/floor_diagnosis.py` runs it from
the command line.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from m2ir_lib.core.config import Profile, check_profile
from m2ir_lib.data.datasets import EvalDataset, load_image, read_manifest
from m2ir_lib.engine.runs import load_checkpoint
from m2ir_lib.workbook import results, tables
from m2ir_lib.workbook.settings import SETTINGS, Data

COLUMNS = [
    "table",
    "method",
    "run",
    "task",
    "n",
    "psnr",
    "psnr_offset_free",
    "mean_shift",
    "mean",
    "clean_mean",
    "clean_mean_train",
]


SCORES = ["psnr", "psnr_offset_free", "mean_shift", "mean", "clean_mean"]  # of `scores`


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / max(np.mean((a - b) ** 2), 1e-12)))


def scores(img: np.ndarray, clean: np.ndarray) -> dict:
    """(3, H, W) arrays in [0, 1]: PSNR, offset-free PSNR, mean shift and the two means."""
    mean = clean.mean(axis=(1, 2), keepdims=True)
    moved = img - img.mean(axis=(1, 2), keepdims=True) + mean
    return {
        "psnr": _psnr(img, clean),
        "psnr_offset_free": _psnr(moved, clean),
        "mean_shift": float(img.mean() - clean.mean()),
        "mean": float(img.mean()),
        "clean_mean": float(clean.mean()),
    }


def clean_brightness(data: Data, split: str, limit: int = 256) -> float:
    """Mean intensity of the distinct clean images of one split of `data`: of at most `limit`
    of them, evenly spaced in the manifest's order (a real training set holds tens of
    thousands of photographs; the mean of a few hundred is within a percent of theirs)."""
    df = read_manifest(data.manifest)
    paths = df.loc[df["split"] == split, "clean_path"].unique()
    paths = paths[np.linspace(0, len(paths) - 1, min(limit, len(paths))).astype(int)]
    return float(np.mean([load_image(Path(data.root) / p).mean() / 255 for p in paths]))


def below_columns(table: pd.DataFrame, metric: str = "PSNR") -> list[str]:
    """The columns (Average aside) where some row of ours is no better than the degraded input
    (`results.with_floor`): the cells a diagnosis is for, so a run whose every cell beats the
    input (the paper profile, one hopes) evaluates nothing more."""
    d = results.with_floor(table)
    d = d[(d["source"] == "reproduced") & (d["metric"] == metric) & (d["task"] != results.AVERAGE)]
    return list(dict.fromkeys(d.loc[d["at_or_below_floor"] == "True", "task"]))


def _column(task: str, sigma: float) -> str:
    """The paper's column of a test image of Tables I–IV (noise: one column per sigma)."""
    return f"denoise-{int(sigma)}" if task == "denoise" else task


def diagnose(
    table: str,
    runs: list,
    ckpts: dict,
    *,
    profile: Profile,
    columns: list[str] | None = None,
    max_images: int | None = None,
) -> pd.DataFrame:
    """`COLUMNS` per (method, column) of Table `table`: the degraded input first, then the
    first-seed run of each row that was trained (`ckpts`, from `experiments.train_runs`).

    Args:
        table: "I" … "IV" (a table tested on its training setting).
        runs: the table's planned runs (`tables.table_runs`); extra seeds are left out.
        ckpts: {run label: checkpoint}; rows without one are left out.
        profile: the run profile; its test-image cap applies unless `max_images` is given.
        columns: only these of the table's columns (default: all, in the paper's order).
    """
    check_profile(profile)
    if columns is not None and not columns:
        return pd.DataFrame(columns=COLUMNS)
    first = {}
    for r in runs:
        first.setdefault(tables.method_of(r.label), r)
    data = runs[0].data
    if not data.available:
        return pd.DataFrame(columns=COLUMNS)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    models = {results.FLOOR: ("", None)}
    for method, r in first.items():
        if r.label in ckpts:
            net = load_checkpoint(ckpts[r.label], r.daclip_checkpoint or None, device)[0]
            models[method] = (Path(ckpts[r.label]).parent.name, net)
    wanted = list(dict.fromkeys(results.paper_table(table)["task"]))  # the paper's order
    wanted = [c for c in wanted if columns is None or c in columns]
    if not wanted:
        return pd.DataFrame(columns=COLUMNS)
    setting = SETTINGS[data.setting]
    cap = profile.eval_max_images if max_images is None else max_images
    ds = EvalDataset(data.manifest, data.root, tasks=setting.eval_tasks, max_images=cap)
    acc: dict[tuple, list] = {}
    with torch.no_grad():
        for item in ds:
            column = _column(item["task"], item["sigma"])
            if column not in wanted:
                continue
            clean = item["clean"].numpy()
            for method, (_, net) in models.items():
                x = item["degraded"]
                img = x if net is None else net(x[None].to(device))[0].clamp(0, 1).cpu()
                acc.setdefault((method, column), []).append(scores(img.numpy(), clean))
    train_mean = clean_brightness(data, "train")
    rows = [
        {
            "table": table,
            "method": method,
            "run": models[method][0],
            "task": column,
            "n": len(acc[method, column]),
            **{k: float(np.mean([s[k] for s in acc[method, column]])) for k in SCORES},
            "clean_mean_train": train_mean,
        }
        for column in wanted
        for method in models
        if (method, column) in acc
    ]
    return pd.DataFrame(rows, columns=COLUMNS)


def write_floor(frame: pd.DataFrame, profile: Profile, table: str) -> Path:
    """Write `diagnose`'s frame beside the table: `results/<profile>/<stem>_floor.csv`."""
    check_profile(profile)
    return results.write_frame(frame, profile, f"{results.spec(table).stem}_floor")
