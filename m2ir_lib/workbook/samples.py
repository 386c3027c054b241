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
from skimage.data import astronaut

from m2ir_lib.core.config import Profile, check_profile
from m2ir_lib.data.datasets import EvalDataset, crop_to_multiple, to_tensor
from m2ir_lib.data.metrics import psnr_ssim
from m2ir_lib.engine.runs import load_checkpoint
from m2ir_lib.workbook import experiments, settings

# Fig. 7's rows, top to bottom as the paper's caption lists them: the seven composites of CDD11.
FIG7_TYPES = ("low_haze", "low_rain", "low_snow", "haze_rain", "haze_snow", "low_haze_rain",
              "low_haze_snow")  # fmt: skip


def sample_items(
    data: settings.Data, per_task: int = 1, distinct: bool = False, tasks=None
) -> list[dict]:
    """The first `per_task` test items of every evaluated task (of `tasks` only, in that
    order, when given; [] when the data is missing); denoising contributes one noise level.

    With `distinct`, each task shows a photograph not yet shown for an earlier task, as long
    as the test set has one (`distinct_items`): a figure with one row per task then shows
    several scenes instead of the same one degraded in different ways.
    """
    if not data.available:
        return []
    s = settings.SETTINGS[data.setting]
    wanted = tasks or s.eval_tasks
    ds = EvalDataset(
        data.manifest,
        data.root,
        tasks=list(wanted) if wanted else None,
        max_images=per_task if not distinct else max(per_task, DISTINCT_POOL),
    )
    seen: dict[tuple, int] = {}
    out = []
    for item in ds:
        key = (item["task"], item["sigma"] if item["sigma"] == item["sigma"] else None)
        if key[0] == "denoise" and any(k[0] == "denoise" for k in seen) and key not in seen:
            continue  # one noise level is enough for a picture
        seen[key] = seen.get(key, 0) + 1
        out.append(item)
    if tasks:
        out.sort(key=lambda item: list(tasks).index(item["task"]))  # stable: keeps image order
    return distinct_items(out, per_task) if distinct else out


DISTINCT_POOL = 12  # test images per task read to find scenes not shown yet


def distinct_items(items: list[dict], per_task: int = 1) -> list[dict]:
    """`per_task` items of every task (in the order the tasks first appear), each one a scene
    (`name`) shown least often so far, the first such in test-set order: the tasks share no
    photograph while the test set has enough of them."""
    shown: dict[str, int] = {}
    out = []
    for task in dict.fromkeys(i["task"] for i in items):
        pool = [i for i in items if i["task"] == task]
        for _ in range(min(per_task, len(pool))):
            k = min(
                range(len(pool)), key=lambda j: shown.get(pool[j]["name"], 0)
            )  # first least shown
            pick = pool.pop(k)
            shown[pick["name"]] = shown.get(pick["name"], 0) + 1
            out.append(pick)
    return out


def load_trained(ckpts: dict, run: experiments.Run, profile: Profile):
    """The trained network of `run`, or, when it could not be trained (no data), the seeded
    untrained network with a printed warning, so figure notebooks still complete."""
    check_profile(profile)
    if run.label in ckpts:
        return load_checkpoint(ckpts[run.label], run.daclip_checkpoint or None)[0]
    print(
        f"WARNING: no trained model for {run.label!r} ({run.data.reason or 'not trained'}); "
        "showing the untrained network instead"
    )
    return experiments.fresh_model(profile, run.seed, run.daclip_checkpoint)


def example_item(data: settings.Data, task: str) -> dict:
    """The first test item of `task`, or a clean wheel photograph when the data is missing."""
    if data.available:
        for item in sample_items(data):
            if item["task"] == task:
                return item

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


INPUT = "degraded input"


@torch.no_grad()
def restorations(models: dict, items: list[dict]) -> tuple[list[dict], pd.DataFrame]:
    """Every model's output on every item, with PSNR/SSIM (peer protocol): rows for
    `plot_comparison` (each with the input's own `input_psnr`) and a table (task, name,
    method, psnr, ssim), the degraded input first as method `INPUT`."""
    rows, scores = [], []
    if not items:
        print("no test images (data missing): nothing restored")
    for item in items:
        psnr, ssim = psnr_ssim(_hwc(item["degraded"]), _hwc(item["clean"]), "peer")
        scores.append(
            {
                "task": item["task"],
                "name": item["name"],
                "method": INPUT,
                "psnr": psnr,
                "ssim": ssim,
            }
        )
        item = {**item, "input_psnr": psnr}
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
