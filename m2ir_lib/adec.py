"""How much a trained M²IR uses its ADECs (§III-C): the gates α, β and what the branch adds.

Each ADEC returns α⊙X̃ + β⊙X̂ (eq. 3–7 give X̃; the α/β residual is our reading, AdaIR's
para1/para2). A small |α| means the expert branch barely reaches the decoder, whatever the
routing does, so a table that credits ADEC should show both numbers:

    gates = adec.adec_gates(ckpt)                          # |α|, β per ADEC
    share = adec.branch_share(ckpt, images)                # ‖α⊙X̃‖ / ‖β⊙X̂‖ per ADEC
    per_image, summary = adec.adec_ablation(ckpt, data)    # PSNR with the branch on and off

"Off" forces α = 0 in every ADEC (X' = β⊙X̂: the decoder sees its own features, scaled as
trained); nothing is retrained, so the difference is what the trained branch contributes.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pandas as pd
import torch

POSITIONS = ("latent", "dec3", "dec2")  # where the three ADECs sit (Fig. 2, AdaIR's places)


def _model(model_or_ckpt, device="cpu"):
    if isinstance(model_or_ckpt, (str, os.PathLike)):
        from m2ir_lib.checkpoint import load_checkpoint

        return load_checkpoint(Path(model_or_ckpt), device=device)[0]
    return model_or_ckpt


def adec_gates(model_or_ckpt) -> pd.DataFrame:
    """One row per ADEC: position, channels, mean and max |α|, mean β and mean |β − 1|.

    Args:
        model_or_ckpt: an `M2IR` or the path of a checkpoint written by training.

    Returns:
        Columns adec, position, channels, alpha_abs_mean, alpha_abs_max, beta_mean,
        beta_dev; no rows for a network without ADEC (Table VII's first rows, the baseline).
    """
    model = _model(model_or_ckpt)
    rows = []
    for i, m in enumerate(getattr(model, "adecs", [])):
        a, b = m.alpha.detach().float().flatten(), m.beta.detach().float().flatten()
        rows.append(
            {
                "adec": i,
                "position": POSITIONS[i] if i < len(POSITIONS) else str(i),
                "channels": a.numel(),
                "alpha_abs_mean": a.abs().mean().item(),
                "alpha_abs_max": a.abs().max().item(),
                "beta_mean": b.mean().item(),
                "beta_dev": (b - 1).abs().mean().item(),
            }
        )
    cols = ["adec", "position", "channels", "alpha_abs_mean", "alpha_abs_max", "beta_mean"]
    return pd.DataFrame(rows, columns=[*cols, "beta_dev"])


def branch_share(model_or_ckpt, images) -> pd.DataFrame:
    """How large the expert branch is beside the features it is added to: per ADEC, the
    mean over images of ‖α⊙X̃‖ / ‖β⊙X̂‖. |α| alone can mislead, since X̃'s scale is learnt
    too (a mini model trained from α = 1 kept |α| ≈ 0.98 with a share of only 5–8 %).

    Args:
        model_or_ckpt: an `M2IR` or the path of a checkpoint.
        images: iterable of (3, H, W) or (1, 3, H, W) tensors in [0, 1], e.g. the "degraded"
            entries of an `EvalDataset`.

    Returns:
        Columns adec, position, share (NaN rows never happen: no images raises).
    """
    model = _model(model_or_ckpt).eval()
    if not getattr(model, "adecs", None):
        raise ValueError("this network has no ADEC (baseline or Table VII all-off row)")
    shares = [[] for _ in model.adecs]

    def hook(i):
        def record(mod, inp, out):
            kept = mod.beta * inp[0]
            shares[i].append(((out[0] - kept).norm() / kept.norm().clamp_min(1e-12)).item())

        return record

    handles = [m.register_forward_hook(hook(i)) for i, m in enumerate(model.adecs)]
    try:
        with torch.no_grad():
            for img in images:
                model(img if img.ndim == 4 else img[None])
    finally:
        for h in handles:
            h.remove()
    if not shares[0]:
        raise ValueError("no images given")
    return pd.DataFrame(
        {
            "adec": range(len(shares)),
            "position": [
                POSITIONS[i] if i < len(POSITIONS) else str(i) for i in range(len(shares))
            ],
            "share": [sum(v) / len(v) for v in shares],
        }
    )


@contextlib.contextmanager
def adec_off(model):
    """Within the block every ADEC's α is 0 (its expert branch is switched off); the
    trained values come back afterwards, even on error."""
    saved = [m.alpha.detach().clone() for m in model.adecs]
    try:
        with torch.no_grad():
            for m in model.adecs:
                m.alpha.zero_()
        yield model
    finally:
        with torch.no_grad():
            for m, a in zip(model.adecs, saved, strict=True):
                m.alpha.copy_(a)


def adec_ablation(
    model_or_ckpt,
    data,
    *,
    protocol: str | None = None,
    data_root=None,
    tasks=None,
    sigmas=None,
    max_images: int | None = None,
    device="cpu",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """PSNR/SSIM on a test split with the ADEC branch on (as trained) and off (α = 0).

    Args:
        model_or_ckpt: an `M2IR` with ADECs or the path of a checkpoint.
        data: an `experiments.Data` (its setting fixes tasks and protocol) or a manifest path.
        protocol: metrics protocol; default the setting's (or "peer" for a manifest path).
        data_root, tasks, sigmas, max_images, device: as for `evaluate.evaluate`
            (taken from `data` when it is a `Data` and they are not given).

    Returns:
        ``(per_image, summary)``. per_image: task, dataset, sigma, name, psnr_on, psnr_off,
        ssim_on, ssim_off, delta_psnr (= on − off). summary: one row per (task, dataset,
        sigma) with n and the means of those columns. A positive delta_psnr means the
        trained branch helps.

    Raises:
        ValueError: the network has no ADEC (nothing to switch off).
    """
    from m2ir_lib.evaluate import evaluate

    model = _model(model_or_ckpt, device)
    if not getattr(model, "adecs", None):
        raise ValueError("this network has no ADEC (baseline or Table VII all-off row)")
    manifest = data
    if hasattr(data, "manifest"):  # experiments.Data
        from m2ir_lib.experiments import SETTINGS

        if not data.available:
            raise ValueError(f"data of setting {data.setting!r} unavailable: {data.reason}")
        s = SETTINGS[data.setting]
        manifest, data_root = data.manifest, data_root or data.root
        protocol = protocol or s.protocol
        tasks = tasks or (list(s.eval_tasks) if s.eval_tasks else None)
    kw = dict(data_root=data_root, tasks=tasks, sigmas=sigmas, max_images=max_images)
    protocol = protocol or "peer"
    on, _ = evaluate(model, manifest, protocol, device=device, **kw)
    with adec_off(model):
        off, _ = evaluate(model, manifest, protocol, device=device, **kw)
    keys = ["task", "dataset", "sigma", "name"]
    per_image = on[[*keys, "psnr", "ssim"]].merge(
        off[[*keys, "psnr", "ssim"]], on=keys, suffixes=("_on", "_off"), validate="1:1"
    )
    per_image["delta_psnr"] = per_image["psnr_on"] - per_image["psnr_off"]
    metrics = ["psnr_on", "psnr_off", "ssim_on", "ssim_off", "delta_psnr"]
    summary = per_image.groupby(keys[:3], sort=False, dropna=False)[metrics].mean().reset_index()
    summary.insert(3, "n", per_image.groupby(keys[:3], sort=False, dropna=False).size().values)
    return per_image, summary
