"""Inputs and outputs of the figures: test images of a setting, trained networks from the
run cache, and each network's restorations with their scores (Figs. 6–10, notebook 01).

Missing data or an untrained run never stops a figure notebook: `sample_items` returns no
images, `example_item` a clean photograph, `load_trained` the untrained network, each with a
printed warning.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from m2ir_lib import experiments


def sample_items(data: experiments.Data, per_task: int = 1) -> list[dict]:
    """The first `per_task` test items of every evaluated task ([] when the data is missing);
    denoising contributes one noise level only."""
    from m2ir_lib.data import EvalDataset

    if not data.available:
        return []
    s = experiments.SETTINGS[data.setting]
    ds = EvalDataset(
        data.manifest,
        data.root,
        tasks=list(s.eval_tasks) if s.eval_tasks else None,
        max_images=per_task,
    )
    seen: dict[tuple, int] = {}
    out = []
    for item in ds:
        key = (item["task"], item["sigma"] if item["sigma"] == item["sigma"] else None)
        if key[0] == "denoise" and any(k[0] == "denoise" for k in seen) and key not in seen:
            continue  # one noise level is enough for a picture
        seen[key] = seen.get(key, 0) + 1
        out.append(item)
    return out


def load_trained(ckpts: dict, run: experiments.Run, profile: str):
    """The trained network of `run`, or, when it could not be trained (no data), the seeded
    untrained network with a printed warning, so figure notebooks still complete."""
    from m2ir_lib.runs import load_checkpoint

    if run.label in ckpts:
        return load_checkpoint(ckpts[run.label], run.daclip_checkpoint or None)[0]
    print(
        f"WARNING: no trained model for {run.label!r} ({run.data.reason or 'not trained'}); "
        "showing the untrained network instead"
    )
    return experiments.fresh_model(profile, run.seed, run.daclip_checkpoint)


def example_item(data: experiments.Data, task: str) -> dict:
    """The first test item of `task`, or a clean wheel photograph when the data is missing."""
    if data.available:
        for item in sample_items(data):
            if item["task"] == task:
                return item
    from skimage.data import astronaut

    from m2ir_lib.data import crop_to_multiple, to_tensor

    img = crop_to_multiple(np.ascontiguousarray(astronaut()[::4, ::4]))  # (128, 128, 3)
    print(
        f"WARNING: no {task} test image ({data.reason or 'task not in the data'}); "
        "using a clean photograph (skimage astronaut) as input and target"
    )
    return {
        "degraded": to_tensor(img),
        "clean": to_tensor(img),
        "task": "clean photo",
        "sigma": float("nan"),
        "name": "astronaut",
        "dataset": "",
    }


@torch.no_grad()
def restorations(models: dict, items: list[dict]) -> tuple[list[dict], pd.DataFrame]:
    """Every model's output on every item, with PSNR/SSIM (peer protocol): rows for
    `plot_comparison` and a table (task, name, method, psnr, ssim)."""
    from m2ir_lib.metrics import psnr_ssim

    rows, scores = [], []
    if not items:
        print("no test images (data missing): nothing restored")
    for item in items:
        outputs = {}
        for label, model in models.items():
            out = model.eval()(item["degraded"][None])[0].clamp(0, 1)  # (3, H, W)
            psnr, ssim = psnr_ssim(_hwc(out), _hwc(item["clean"]), "peer")
            outputs[label] = (out, psnr)
            scores.append(
                {
                    "task": item["task"],
                    "name": item["name"],
                    "method": label,
                    "psnr": psnr,
                    "ssim": ssim,
                }
            )
        rows.append({**item, "outputs": outputs})
    return rows, pd.DataFrame(scores, columns=["task", "name", "method", "psnr", "ssim"])


def _hwc(image: torch.Tensor) -> np.ndarray:
    return image.detach().clamp(0, 1).permute(1, 2, 0).cpu().numpy()
