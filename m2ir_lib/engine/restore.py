"""Restore any image with a trained M²IR checkpoint (the all-in-one use of §I).

``python -m m2ir_lib.restore INPUT... --checkpoint CKPT --out DIR``: INPUT is image files
(PNG/JPEG/anything Pillow reads) or folders of them; each result is written as
``DIR/<stem>.png`` (``<stem>_<ext>.png`` when two inputs share a stem, e.g. ``a.png`` and
``a.jpg``). Images larger than ``--tile`` are restored in overlapping tiles blended
with a linear ramp, so memory stays bounded whatever the size. The network's attention is
global over a tile, so tiled and whole-image outputs differ slightly for images larger than a
tile; smaller images are restored whole. A photo's EXIF orientation is applied on load.

Nothing is lost: an output never replaces an input, existing outputs are refused unless
``--overwrite``, and every output is written atomically. A file that cannot be read or
restored (corrupt, too small for the network, above Pillow's decompression-bomb limit) is
named and skipped; the others are restored and the exit status is 1.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from m2ir_lib.data.datasets import ImageReadError, load_image
from m2ir_lib.data.files import atomic_path

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
MIN_TILE = 8  # the networks reflect-pad to a multiple of 8: a smaller tile cannot be padded


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

    Raises:
        ValueError: a bad shape, tile or overlap, or values outside [0, 1] (0–255 values
            would saturate to white).
        FloatingPointError: the network's output is not finite (NaN or inf).
    """
    if x.ndim != 4 or x.shape[:2] != (1, 3):
        raise ValueError(f"expected a (1, 3, H, W) tensor, got {tuple(x.shape)}")
    check_tile(tile, overlap)
    lo, hi = float(x.min()), float(x.max())
    if not 0.0 <= lo <= hi <= 1.0:  # NaN fails too
        raise ValueError(f"x must hold values in [0, 1], got {lo:g}..{hi:g} (8-bit: divide by 255)")
    _, _, h, w = x.shape
    if h <= tile and w <= tile:
        return _finite(model(x).float()).clamp(0, 1).cpu()
    out = torch.zeros(1, 3, h, w)
    norm = torch.zeros(1, 1, h, w)
    ys, xs = _starts(h, tile, tile - overlap), _starts(w, tile, tile - overlap)
    for i, top in enumerate(ys):
        for j, left in enumerate(xs):
            th, tw = min(tile, h), min(tile, w)
            piece = _finite(model(x[:, :, top : top + th, left : left + tw]).float()).cpu()
            wy = _ramp(th, overlap, i == 0, i == len(ys) - 1)
            wx = _ramp(tw, overlap, j == 0, j == len(xs) - 1)
            weight = (wy[:, None] * wx[None, :])[None, None]  # (1, 1, th, tw)
            out[:, :, top : top + th, left : left + tw] += piece * weight
            norm[:, :, top : top + th, left : left + tw] += weight
    return (out / norm).clamp(0, 1)


def check_tile(tile: int, overlap: int) -> None:
    """Refuse a tile the networks cannot restore or an overlap that leaves no stride."""
    if tile < MIN_TILE:
        raise ValueError(
            f"--tile {tile} is below {MIN_TILE} px, the smallest tile the network takes"
        )
    if not 0 <= overlap < tile:
        raise ValueError(f"need 0 <= --overlap ({overlap}) < --tile ({tile})")


def _finite(y: torch.Tensor) -> torch.Tensor:
    """`y`, or FloatingPointError: a NaN output would be saved as a black image."""
    if not torch.isfinite(y).all():
        raise FloatingPointError(
            "the network's output is not finite (NaN or inf): its weights are broken"
        )
    return y


# ---------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------


def read_image(path: str | Path, max_pixels: int | None = None) -> np.ndarray:
    """An image file as (H, W, 3) float32 RGB in [0, 1], turned upright by its EXIF
    orientation (``m2ir_lib.data.datasets.load_image``).

    Raises:
        ValueError: the file is missing, cannot be decoded, or has more than `max_pixels`
            pixels (Pillow itself refuses only above twice its limit); the message names it.
    """
    try:
        if max_pixels is not None:
            with _pixel_limit(None, off=True), Image.open(path) as im:  # the header only
                w, h = im.size
            if w * h > max_pixels:
                raise ValueError(
                    f"{path}: {w}×{h} = {w * h:,} pixels, above --max-pixels {max_pixels:,}"
                )
        return load_image(path, orient=True).astype(np.float32) / 255.0
    except ImageReadError as e:
        raise ValueError(f"cannot read {e} (PNG/JPEG expected)") from None
    except (OSError, SyntaxError) as e:  # the header, read by Image.open
        raise ValueError(f"cannot read {path}: {e}") from None


def collect_inputs(inputs) -> list[Path]:
    """Image files named directly, plus those (sorted) inside named folders; each file once.

    Raises:
        FileNotFoundError: an input does not exist.
        ValueError: a named folder holds no image (a mistyped folder is not a silent no-op).
    """
    files = []
    for item in map(Path, inputs):
        if item.is_dir():
            found = sorted(  # a dangling link is kept, to be named as unreadable
                p
                for p in item.iterdir()
                if (p.is_file() or p.is_symlink()) and p.suffix.lower() in IMAGE_SUFFIXES
            )
            if not found:
                suffixes = " ".join(sorted(IMAGE_SUFFIXES))
                raise ValueError(f"{item}: no image files ({suffixes}) in this folder")
            files += found
        elif item.exists():
            files.append(item)
        else:
            raise FileNotFoundError(f"{item}: no such file or folder")
    seen: dict[Path, Path] = {}
    for f in files:  # the same file named twice (or via a folder) is restored once
        seen.setdefault(f.resolve(), f)
    return list(seen.values())


def _check_out_dir(out_dir: Path) -> None:
    """``out_dir`` must be a folder or creatable as one: no file in its place or above it."""
    for p in (out_dir, *out_dir.parents):
        if p.exists():
            if not p.is_dir():
                what = "names an existing file" if p == out_dir else f"is under the file {p}"
                raise ValueError(f"--out {out_dir} {what}; give a folder")
            return


def plan_outputs(files: list[Path], out_dir, overwrite: bool = False) -> dict[Path, Path]:
    """The output path of every input: ``out_dir/<stem>.png``, or ``<stem>_<ext>.png`` for
    inputs that share a stem (names compared case-insensitively, as on macOS/Windows disks).

    Raises:
        ValueError: an output would replace an input, ``out_dir`` is an input folder, two
            inputs still map to one output, or outputs exist and ``overwrite`` is False.
    """
    out_dir = Path(out_dir)
    _check_out_dir(out_dir)
    real_out = out_dir.resolve()
    if any(f.resolve().parent == real_out for f in files):
        raise ValueError(
            f"--out {out_dir} is the folder of input images; restored PNGs would sit beside "
            "(and could replace) the originals. Choose another --out folder."
        )

    def key(f: Path) -> str:
        return f.stem.casefold()

    counts: dict[str, int] = {}
    for f in files:
        counts[key(f)] = counts.get(key(f), 0) + 1
    names = {
        f: f"{f.stem}_{f.suffix[1:]}.png" if counts[key(f)] > 1 else f"{f.stem}.png" for f in files
    }
    by_name: dict[str, list[Path]] = {}
    for f, name in names.items():
        by_name.setdefault(name.casefold(), []).append(f)
    clashes = [fs for fs in by_name.values() if len(fs) > 1]
    if clashes:
        raise ValueError(
            "these inputs would be written to the same output file; restore them into "
            "separate --out folders: " + "; ".join(" and ".join(map(str, fs)) for fs in clashes)
        )
    plan = {f: out_dir / name for f, name in names.items()}
    inputs = {f.resolve() for f in files}
    for f, target in plan.items():
        if target.resolve() in inputs:
            raise ValueError(f"restoring {f} would write over the input {target}; change --out")
    existing = [t for t in plan.values() if t.exists()]
    if existing and not overwrite:
        shown = ", ".join(str(t) for t in existing[:3]) + (" ..." if len(existing) > 3 else "")
        raise ValueError(
            f"{len(existing)} output file(s) already exist ({shown}); pass --overwrite to "
            "replace them, or choose another --out"
        )
    return plan


@contextlib.contextmanager
def _pixel_limit(max_pixels: int | None, off: bool = False):
    """Pillow's decompression-bomb limit set to ``max_pixels`` for the ``with`` body (none at
    all with ``off``: reading a header decodes no pixel)."""
    old = Image.MAX_IMAGE_PIXELS
    if max_pixels is not None or off:
        Image.MAX_IMAGE_PIXELS = None if off else max_pixels
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = old


def _save_png(y: np.ndarray, target: Path) -> None:
    """Write (H, W, 3) float [0, 1] as PNG atomically: an interrupted run leaves no torn file."""
    with atomic_path(target) as tmp:
        Image.fromarray(np.round(y * 255).astype(np.uint8)).save(tmp, format="PNG")


def restore_files(
    model,
    inputs,
    out_dir,
    *,
    tile: int = 512,
    overlap: int = 32,
    device="cpu",
    progress: bool = True,
    overwrite: bool = False,
    max_pixels: int | None = None,
) -> tuple[list[Path], dict[Path, str]]:
    """Restore every input image into ``out_dir`` (names as in `plan_outputs`).

    Args:
        model: the restorer (e.g. from ``m2ir_lib.engine.runs.load_checkpoint``).
        inputs: files and/or folders.
        out_dir: output folder (created).
        tile, overlap: as for ``restore_tensor``.
        device: where the model runs.
        progress: tqdm bar over the files.
        overwrite: replace existing output files (never an input).
        max_pixels: Pillow's decompression-bomb limit while reading (None: Pillow's default).

    Returns:
        ``(written, failed)``: output paths, and ``{input: reason}`` for inputs that could not
        be read or restored (each skipped; the others are still restored).

    Raises:
        ValueError: a bad tile/overlap or output plan (see `plan_outputs`), before any write.
    """
    check_tile(tile, overlap)
    plan = plan_outputs(collect_inputs(inputs), out_dir, overwrite)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    written, failed = [], {}
    bar = tqdm(plan.items(), desc="restore", unit="img", disable=not progress)
    with _pixel_limit(max_pixels):
        for path, target in bar:
            size = ""
            try:
                img = read_image(path, max_pixels)
                size = f" ({img.shape[1]}×{img.shape[0]} px)"
                x = torch.from_numpy(img).permute(2, 0, 1)[None].to(device)  # (1, 3, H, W)
                y = restore_tensor(model, x, tile, overlap)[0].permute(1, 2, 0).numpy()
            except ValueError as e:  # unreadable, or too small for the network
                failed[path] = str(e) if str(path) in str(e) else f"{path}: {e}"
                continue
            except (RuntimeError, MemoryError) as e:  # e.g. out of memory: try a smaller --tile
                failed[path] = f"{path}{size}: cannot restore: {e}; try a smaller --tile"
                continue
            _save_png(y, target)
            written.append(target)
    return written, failed
