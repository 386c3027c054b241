"""Restore any image with a trained M²IR checkpoint (the all-in-one use of §I).

``python -m m2ir_lib.restore INPUT... --checkpoint CKPT --out DIR``: INPUT is image files
(PNG/JPEG/anything Pillow reads) or folders of them; each result is written as
``DIR/<stem>.png``. Images larger than ``--tile`` are restored in overlapping tiles blended
with a linear ramp, so memory stays bounded whatever the size. The network's attention is
global over a tile, so tiled and whole-image outputs differ slightly for images larger than a
tile; smaller images are restored whole.
"""

from __future__ import annotations

import argparse
import pickle
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}


# ---------------------------------------------------------------------------------------------
# Tiled inference
# ---------------------------------------------------------------------------------------------


def _starts(size: int, tile: int, stride: int) -> list[int]:
    if size <= tile:
        return [0]
    starts = list(range(0, size - tile, stride))
    return starts + [size - tile]


def _ramp(n: int, overlap: int, at_start: bool, at_end: bool) -> torch.Tensor:
    """1-D blending weight: rises over ``overlap`` px where a neighbouring tile overlaps."""
    w = torch.ones(n)
    if overlap > 0:
        r = torch.arange(1, overlap + 1, dtype=torch.float32) / (overlap + 1)
        if not at_start:
            w[:overlap] = r
        if not at_end:
            w[-overlap:] = r.flip(0)
    return w


@torch.no_grad()
def restore_tensor(model, x: torch.Tensor, tile: int = 512, overlap: int = 32) -> torch.Tensor:
    """Restore ``x`` (1, 3, H, W) in [0, 1], tile by tile when larger than ``tile``.

    Args:
        model: callable (1, 3, h, w) -> (1, 3, h, w).
        x: the image batch of one, on the model's device.
        tile: tile side in pixels (the whole image when it fits).
        overlap: pixels shared by neighbouring tiles, blended linearly.

    Returns:
        (1, 3, H, W) output, clipped to [0, 1], on the CPU.
    """
    if x.ndim != 4 or x.shape[:2] != (1, 3):
        raise ValueError(f"expected a (1, 3, H, W) tensor, got {tuple(x.shape)}")
    if not 0 <= overlap < tile:
        raise ValueError(f"need 0 <= overlap ({overlap}) < tile ({tile})")
    _, _, h, w = x.shape
    if h <= tile and w <= tile:
        return model(x).float().clamp(0, 1).cpu()
    out = torch.zeros(1, 3, h, w)
    norm = torch.zeros(1, 1, h, w)
    ys, xs = _starts(h, tile, tile - overlap), _starts(w, tile, tile - overlap)
    for i, top in enumerate(ys):
        for j, left in enumerate(xs):
            th, tw = min(tile, h), min(tile, w)
            piece = model(x[:, :, top : top + th, left : left + tw]).float().cpu()  # (1, 3, th, tw)
            wy = _ramp(th, overlap, i == 0, i == len(ys) - 1)
            wx = _ramp(tw, overlap, j == 0, j == len(xs) - 1)
            weight = (wy[:, None] * wx[None, :])[None, None]  # (1, 1, th, tw)
            out[:, :, top : top + th, left : left + tw] += piece * weight
            norm[:, :, top : top + th, left : left + tw] += weight
    return (out / norm).clamp(0, 1)


# ---------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------


def read_image(path: str | Path) -> np.ndarray:
    """An image file as (H, W, 3) float32 RGB in [0, 1] (``m2ir_lib.data.load_image``).

    Raises:
        ValueError: the file is missing or cannot be decoded; the message names it.
    """
    from m2ir_lib.data import ImageReadError, load_image

    try:
        return load_image(path).astype(np.float32) / 255.0
    except ImageReadError as e:
        raise ValueError(f"cannot read {e} (PNG/JPEG expected)") from None


def collect_inputs(inputs) -> list[Path]:
    """Image files named directly, plus those (sorted) inside named folders."""
    files = []
    for item in map(Path, inputs):
        if item.is_dir():
            files += sorted(p for p in item.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        elif item.exists():
            files.append(item)
        else:
            raise FileNotFoundError(f"{item}: no such file or folder")
    return files


def restore_files(
    model,
    inputs,
    out_dir,
    *,
    tile: int = 512,
    overlap: int = 32,
    device="cpu",
    progress: bool = True,
) -> tuple[list[Path], dict[Path, str]]:
    """Restore every input image into ``out_dir/<stem>.png``.

    Args:
        model: the restorer (e.g. from ``m2ir_lib.runs.load_checkpoint``).
        inputs: files and/or folders.
        out_dir: output folder (created).
        tile, overlap: as for ``restore_tensor``.
        device: where the model runs.
        progress: tqdm bar over the files.

    Returns:
        ``(written, failed)``: output paths, and ``{input: reason}`` for unreadable inputs.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written, failed = [], {}
    for path in tqdm(collect_inputs(inputs), desc="restore", unit="img", disable=not progress):
        try:
            img = read_image(path)
        except ValueError as e:
            failed[path] = str(e)
            continue
        x = torch.from_numpy(img).permute(2, 0, 1)[None].to(device)  # (1, 3, H, W)
        y = restore_tensor(model, x, tile, overlap)[0].permute(1, 2, 0).numpy()  # (H, W, 3)
        target = out_dir / f"{path.stem}.png"
        Image.fromarray(np.round(y * 255).astype(np.uint8)).save(target)
        written.append(target)
    return written, failed


def main(argv=None) -> int:
    """CLI entry point; exit status 1 when any input could not be read."""
    from m2ir_lib.checkpoint import load_checkpoint

    p = argparse.ArgumentParser(description="Restore images with an M²IR checkpoint.")
    p.add_argument("inputs", nargs="+", help="image files and/or folders")
    p.add_argument("--checkpoint", required=True, help="final.pt of a training run")
    p.add_argument("--out", required=True, help="output folder (PNG files)")
    p.add_argument("--tile", type=int, default=512, help="tile side for large images")
    p.add_argument("--overlap", type=int, default=32, help="tile overlap in pixels")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--daclip", default=None, help="daclip_ViT-B-32.pt if the model needs it")
    a = p.parse_args(argv)
    try:
        collect_inputs(a.inputs)  # fail on a missing input before loading the network
        try:
            model, _ = load_checkpoint(a.checkpoint, a.daclip, a.device)
        except (OSError, RuntimeError, EOFError, KeyError, pickle.UnpicklingError) as e:
            raise ValueError(f"cannot load checkpoint {a.checkpoint}: {e}") from None
        written, failed = restore_files(
            model, a.inputs, a.out, tile=a.tile, overlap=a.overlap, device=a.device
        )
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    for reason in failed.values():
        print(f"error: {reason}", file=sys.stderr)
    print(
        f"restored {len(written)} image(s) into {a.out}"
        + (f"; {len(failed)} unreadable" if failed else "")
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
