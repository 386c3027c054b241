"""Looking inside a network from outside, with forward hooks: the shapes its named parts see
on a real image (notebook 01), and in a trained M²IR's ADECs (§III-C) the gates α, β and the
branch switched off.

Each ADEC returns α⊙X̃ + β⊙X̂ (eq. 3–7 give X̃; the α/β residual is our reading, AdaIR's
para1/para2). A small |α| means the expert branch barely reaches the decoder, whatever the
routing does. "Off" forces α = 0 in every ADEC (X' = β⊙X̂: the decoder sees its own
features, scaled as trained); nothing is retrained, so a difference in score is what the
trained branch contributes. `m2ir_lib.workbook.adec` turns these into the tables' reports.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pandas as pd
import torch
from torch import nn

from m2ir_lib.engine.checkpoint import load_checkpoint

POSITIONS = ("latent", "dec3", "dec2")  # where the three ADECs sit (Fig. 2, AdaIR's places)


def _first_shape(t):
    while isinstance(t, (tuple, list)) and t:
        t = t[0]
    return tuple(t.shape) if isinstance(t, torch.Tensor) else None


def hooked_shapes(net: nn.Module, run, modules: list[str]) -> dict[str, dict]:
    """Input/output shapes of the named submodules of `net` while `run()` executes."""
    named = dict(net.named_modules())
    unknown = [m for m in modules if m not in named]
    if unknown:
        raise ValueError(f"no submodule(s) {unknown} in {type(net).__name__}")
    rows: dict[str, dict] = {}

    def record(name):
        def hook(mod, args, out):  # returns None: the module's output is left as it is
            rows.setdefault(
                name,
                {
                    "module": name,
                    "class": type(mod).__name__,
                    "input": _first_shape(args),
                    "output": _first_shape(out),
                },
            )

        return hook

    hooks = [named[m].register_forward_hook(record(m)) for m in modules]
    try:
        with torch.no_grad():
            run()
    finally:
        for h in hooks:
            h.remove()
    return rows


@torch.no_grad()
def capture_input(net: nn.Module, image: torch.Tensor, module: str) -> torch.Tensor:
    """The first input tensor the named submodule of `net` receives on one forward pass of
    `image` ((3, H, W) or (1, 3, H, W)), e.g. the LN(X) that "encoder1.0.attn" (MSA) sees."""
    seen: list[torch.Tensor] = []
    target = dict(net.named_modules()).get(module)
    if target is None:
        raise ValueError(f"no submodule {module!r} in {type(net).__name__}")
    hook = target.register_forward_hook(lambda m, args, out: seen.append(args[0].detach()))
    try:
        net.eval()(image[None] if image.ndim == 3 else image)
    finally:
        hook.remove()
    return seen[0]


def trace(model: nn.Module, image: torch.Tensor, modules: list[str]) -> pd.DataFrame:
    """Input and output shapes of named submodules on one forward pass (the walkthrough's
    shape table), e.g. ["encoder1.0.attn.w_l1", "adecs.2.dgea"].

    Returns:
        DataFrame: module, class, input shape, output shape (first tensor of a tuple).
    """
    x = image[None] if image.ndim == 3 else image
    rows = hooked_shapes(model, lambda: model.eval()(x), modules)
    return pd.DataFrame([rows[m] for m in modules if m in rows])


def as_model(model_or_ckpt, device="cpu"):
    """The network itself: `model_or_ckpt` as given, or rebuilt from a checkpoint path."""
    if isinstance(model_or_ckpt, (str, os.PathLike)):
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
    model = as_model(model_or_ckpt)
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
    model = as_model(model_or_ckpt).eval()
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


def switch_off(model):
    """Set every ADEC's α to 0 for good (a freshly loaded copy scored without the branch);
    returns the model. `adec_off` does the same for a block and restores α after it.

    Raises:
        ValueError: the network has no ADEC.
    """
    if not getattr(model, "adecs", None):
        raise ValueError("this network has no ADEC (baseline or Table VII all-off row)")
    with torch.no_grad():
        for m in model.adecs:
            m.alpha.zero_()
    return model


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


SHARE_COLUMNS = ["task", "image", "unit", "adec", "position", "expert", "share", "confidence"]


@torch.no_grad()
def expert_shares(model_or_ckpt, items) -> pd.DataFrame:
    """Which specialised experts each test image selects (eq. 4–5, §III-C): per image, ADEC
    and expert E_1..E_N, the share of the image's top-K selections that went to the expert
    (over its pixels; the shares of one image and ADEC sum to 1) and its mean confidence s′.

    Args:
        model_or_ckpt: an `M2IR` with specialised experts, or the path of its checkpoint.
        items: dicts with `degraded` (3, H, W) in [0, 1], `task`, `name` and, when tiles share a
            photograph, `unit` (the photograph; default the image), e.g. `EvalDataset` items.

    Returns:
        Columns `SHARE_COLUMNS`, one row per (image, ADEC, expert); none without items.
    """
    model = as_model(model_or_ckpt).eval()
    rows = []
    for item in items:
        _, routings = model(item["degraded"][None], return_routing=True)
        if not routings:
            raise ValueError("this network routes nothing (no ADEC or no specialised experts)")
        for a, rt in enumerate(routings):
            counts = rt.selected[0].flatten(1).sum(1)  # (N,) top-K selections per expert
            share, conf = counts / counts.sum(), rt.confidence[0].flatten(1).mean(1)
            for e in range(len(counts)):
                rows.append(
                    {
                        "task": item["task"],
                        "image": item["name"],
                        "unit": item.get("unit", item["name"]),
                        "adec": a,
                        "position": POSITIONS[a] if a < len(POSITIONS) else str(a),
                        "expert": e + 1,
                        "share": share[e].item(),
                        "confidence": conf[e].item(),
                    }
                )
    return pd.DataFrame(rows, columns=SHARE_COLUMNS)
