"""Evaluation of §IV: a restorer on a manifest's test split, per image and per task.

The same code measures every row of a table: M²IR, the Restormer-style all-off network of
Table VII (``config.baseline_config``) and the degraded input itself (``evaluate_identity``),
so each table carries honest reference rows at any profile. Protocols are those of
``m2ir_lib.data.metrics``; input and target are centre-cropped to a multiple of 16 before the
network runs (PromptIR/AdaIR ``crop_img``, done by ``EvalDataset``).
"""

from __future__ import annotations

import math
import os

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Subset
from tqdm import tqdm

from m2ir_lib.data.datasets import EvalDataset
from m2ir_lib.data.metrics import NA_WEIGHTS, PROTOCOLS, LPIPSMetric, fid, psnr_ssim


def _to_hwc(t: torch.Tensor) -> np.ndarray:
    return t.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy()  # (3,H,W) -> (H,W,3)


def _group(task, dataset, sigma) -> tuple:
    """A hashable (task, dataset, sigma) key; NaN sigmas (no noise level) compare equal."""
    return task, dataset, None if sigma != sigma else float(sigma)


def _sigma_value(s):
    if s is None or (isinstance(s, float) and math.isnan(s)) or s == "":
        return np.nan
    return float(s)


def evaluate(
    model,
    manifest,
    protocol: str = "peer",
    *,
    data_root=None,
    tasks=None,
    max_images: int | None = None,
    sigmas=None,
    device="cpu",
    progress: bool = False,
    lpips_weights=None,
    inception_weights=None,
    shard: tuple[int, int] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """PSNR/SSIM (and, for WeatherBench, LPIPS/FID) of ``model`` on a manifest's test split.

    Batch 1, ``no_grad``, eval mode, the full (cropped) image; the network pads internally.

    Args:
        model: a callable (B, 3, H, W) -> (B, 3, H, W) in [0, 1], e.g. ``M2IR``.
        manifest: manifest CSV path (or what ``m2ir_lib.data.datasets.EvalDataset`` accepts).
        protocol: ``"peer"`` or ``"weatherbench"`` (``m2ir_lib.data.metrics``).
        data_root: root of the manifest's paths.
        tasks: evaluate only these tasks.
        max_images: at most this many images per (task, dataset, sigma); the test-noise
            stream is that of the full set, so kept inputs equal a full run's.
        sigmas: denoising sigmas to keep (e.g. ``(25,)`` for Table II); default all.
        device: where the model runs.
        progress: show a tqdm bar.
        lpips_weights: AlexNet trunk for LPIPS (default torchvision's cache; never downloaded).
        inception_weights: pytorch-fid's Inception weights file for FID (default: none).
        shard: ``(k, n)`` scores only the images ``k, k+n, k+2n, ...`` of the (capped) test
            set, each with the input it has in a full run (``merge_shards`` puts the ``n``
            parts back in order); for parallel workers. Not with FID, a whole-set statistic.

    Returns:
        ``(per_image, summary)``: per_image has columns task, dataset, sigma, name, unit
        (the independent unit: the photograph a tile was cut from, else the image), psnr,
        ssim (+ lpips); summary one row per task (per task, dataset and sigma where the
        manifest has several) with n, psnr, ssim (+ lpips, fid). Metrics without local
        weights read ``NA_WEIGHTS``.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; expected one of {PROTOCOLS}")
    weather = protocol == "weatherbench"
    lp = LPIPSMetric.load(lpips_weights, device=str(device)) if weather else None
    # EvalDataset already centre-crops both images to a multiple of 16 (PromptIR crop_img);
    # WeatherBench's script sees full images, so its numbers lose up to 15 border px here.
    data = EvalDataset(manifest, data_root, tasks=tasks, max_images=max_images, sigmas=sigmas)
    if shard is not None and inception_weights:
        raise ValueError("FID is a statistic of the whole test set: evaluate it unsharded")
    k, n = shard or (0, 1)
    if not 0 <= k < n:
        raise ValueError(f"shard={shard}: expected (k, n) with 0 <= k < n")
    if hasattr(model, "eval"):
        model.eval()
    rows, pairs = [], {}
    # A worker process decodes the next images while the network runs on this one; sharded
    # evaluations are already one process per core, so they decode in place.
    workers = 0 if shard is not None or (os.cpu_count() or 1) < 2 else 1
    items = DataLoader(
        Subset(data, range(k, len(data), n)),
        batch_size=None,  # items as the dataset gives them: one full image, no collation
        num_workers=workers,
        prefetch_factor=2 if workers else None,
    )
    with torch.no_grad():
        for item in tqdm(items, desc=f"evaluate {protocol}", disable=not progress, unit="img"):
            key = (item["task"], item.get("dataset", ""), _sigma_value(item.get("sigma")))
            out = model(item["degraded"][None].to(device))[0]  # (3, H, W)
            restored, target = _to_hwc(out), _to_hwc(item["clean"])
            psnr, ssim = psnr_ssim(restored, target, protocol)
            row = {
                "task": key[0],
                "dataset": key[1],
                "sigma": key[2],
                "name": item["name"],
                "unit": item.get("unit", item["name"]),
                "psnr": psnr,
                "ssim": ssim,
            }
            if weather:
                row["lpips"] = lp(restored, target) if lp is not None else NA_WEIGHTS
                if inception_weights:
                    pairs.setdefault(_group(*key), []).append((restored, target))
            rows.append(row)
    if not rows:
        if shard is not None:  # fewer images than shards: this one has none
            return pd.DataFrame(), pd.DataFrame()
        raise ValueError(f"no test images in {manifest} for tasks={tasks}")
    per_image = pd.DataFrame(rows)
    return per_image, summarize(per_image, pairs, inception_weights, weather, str(device))


def summarize(
    per_image: pd.DataFrame, pairs=None, inception_weights=None, weather=False, device="cpu"
) -> pd.DataFrame:
    """Mean metrics per (task, dataset, sigma), in first-seen order."""
    out = []
    keys = ["task", "dataset", "sigma"]
    for (task, ds, sigma), grp in per_image.groupby(keys, sort=False, dropna=False):
        row = {
            "task": task,
            "dataset": ds,
            "sigma": sigma,
            "n": len(grp),
            "psnr": grp["psnr"].mean(),
            "ssim": grp["ssim"].mean(),
        }
        if weather:
            lp = grp["lpips"]
            row["lpips"] = NA_WEIGHTS if (lp == NA_WEIGHTS).any() else float(lp.mean())
            got = (pairs or {}).get(_group(task, ds, sigma), [])
            row["fid"] = (
                fid([r for r, _ in got], [t for _, t in got], inception_weights, device)
                if inception_weights
                else NA_WEIGHTS
            )
        out.append(row)
    return pd.DataFrame(out)


def merge_shards(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """The per-image frames of ``evaluate(..., shard=(k, n))`` for k = 0..n-1, in the order of
    an unsharded run (image i is row i // n of part i % n)."""
    n = len(parts)
    placed = [p.set_axis(pd.RangeIndex(len(p)) * n + k) for k, p in enumerate(parts) if len(p)]
    return pd.concat(placed).sort_index().reset_index(drop=True)


def evaluate_identity(manifest, protocol: str = "peer", **kw) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The degraded input scored as the restoration: every table's floor (same code path).

    Args:
        manifest: manifest CSV path.
        protocol: as for ``evaluate``.
        **kw: other ``evaluate`` keywords (data_root, tasks, max_images, ...).
    """
    return evaluate(torch.nn.Identity(), manifest, protocol, **kw)
