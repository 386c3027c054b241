"""A fake data root in the published layouts, for rehearsing the paper-scale path without data.

    python -m data_prep.rehearsal --out /tmp/m2ir-rehearsal [--pairs 2]

Every data set of §IV-A is written in the PromptIR/AdaIR tree (names and folders as the
peers publish them; CDD11 as OneRestore, WeatherBench in our documented guess, CSD as the
peers' desnowing repos): 3D (BSD400+WED, Rain100L, RESIDE OTS; BSD68, Rain100L, SOTS), 5D
(+ GoPro, LOL), CDD11, WeatherBench, CSD, Urban100 and Kodak24. The images are small random
textures (training images just hold one 128² patch) and the counts are `pairs` per data set,
not the published ones, so `data_prep` needs ``--allow-partial`` (the experiments read
``M2IR_ALLOW_PARTIAL=1``). Nothing here is real data: numbers trained or scored on it mean
nothing; it proves the code path (README, "Real data sets: rehearsal").
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from m2ir_lib.data.datasets import CDD11_TYPES
from m2ir_lib.data.files import cli_logging, user_errors

TRAIN_SIZE = (128, 128)  # (W, H): one 128² training patch after the crop to 16
TEST_SIZE = (64, 48)


def _texture(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    """A smooth random colour field plus fine noise, (H, W, 3) uint8."""
    w, h = size
    coarse = rng.random((h // 8 + 2, w // 8 + 2, 3))
    field = np.kron(coarse, np.ones((8, 8, 1)))[:h, :w]
    return np.clip(255 * (0.8 * field + 0.2 * rng.random((h, w, 3))), 0, 255).astype(np.uint8)


def _degrade(clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A visibly different degraded copy (haze-like veil plus streak noise)."""
    veil = 0.6 * clean + 0.4 * 200
    streaks = (rng.random(clean.shape[:2]) > 0.97)[..., None] * 80
    return np.clip(veil + streaks, 0, 255).astype(np.uint8)


def _save(path: Path, img: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path)


def _pairs(root, rng, deg_dir, clean_dir, names, size, deg_names=None):
    """Write degraded/clean pairs named `deg_names[i]` / `names[i]` under the two folders."""
    for i, name in enumerate(names):
        clean = _texture(rng, size)
        _save(root / clean_dir / name, clean)
        if deg_dir is not None:
            _save(root / deg_dir / (deg_names or names)[i], _degrade(clean, rng))


def write_rehearsal_root(out: str | Path, pairs: int = 2, seed: int = 0) -> Path:
    """Write the fake data root; returns its path.

    Args:
        out: the folder to create (it may exist; files are overwritten).
        pairs: image pairs (clean images for denoising) per data set and split.
        seed: seed of the random textures.
    """
    if pairs < 2:
        raise ValueError("pairs must be >= 2 (FID and the per-task summaries need two)")
    root, rng = Path(out), np.random.default_rng(seed)
    ids = range(1, pairs + 1)
    tr, te = TRAIN_SIZE, TEST_SIZE
    # 3D training (PromptIR/AdaIR): one flat denoise folder (WED *.bmp + BSD400), Rain100L
    # rain-N/norain-N, OTS hazy <id>_<A>_<beta>.jpg in part folders beside the clear scenes.
    _pairs(root, rng, None, "Train/Denoise", [f"{i:05d}.bmp" for i in ids], tr)
    _pairs(root, rng, None, "Train/Denoise", [f"{i}.jpg" for i in range(100, 100 + pairs)], tr)
    _pairs(
        root, rng, "Train/Derain/rainy", "Train/Derain/gt",
        [f"norain-{i}.png" for i in ids], tr, [f"rain-{i}.png" for i in ids],
    )  # fmt: skip
    for i in ids:
        clean = _texture(rng, tr)
        _save(root / f"Train/Dehaze/original/{i:04d}.jpg", clean)
        for a, beta in ((0.8, 0.04), (1.0, 0.2)):
            hazy = _degrade(clean, rng)
            _save(root / f"Train/Dehaze/synthetic/part1/{i:04d}_{a}_{beta}.jpg", hazy)
    # 3D tests: Rain100L, SOTS-outdoor, BSD68; Table V adds Urban100 and Kodak24.
    _pairs(root, rng, "test/derain/Rain100L/input", "test/derain/Rain100L/target",
           [f"{i}.png" for i in ids], te)  # fmt: skip
    _pairs(root, rng, "test/dehaze/input", "test/dehaze/target", [f"{i:04d}.png" for i in ids],
           te, [f"{i:04d}_0.8_0.2.jpg" for i in ids])  # fmt: skip
    for folder in ("bsd68", "urban100", "kodak24"):
        _pairs(root, rng, None, f"test/denoise/{folder}", [f"img_{i:03d}.png" for i in ids], te)
    # 5D: GoPro (AdaIR's flattened names) and LOL.
    names = [f"GOPR0372_07_00_{i:06d}.png" for i in ids]
    _pairs(root, rng, "Train/Deblur/blur", "Train/Deblur/sharp", names, tr)
    _pairs(root, rng, "test/deblur/gopro/input", "test/deblur/gopro/target", names, te)
    _pairs(root, rng, "Train/Enhance/low", "Train/Enhance/gt", [f"{i}.png" for i in ids], tr)
    _pairs(root, rng, "test/enhance/lol/input", "test/enhance/lol/target",
           [f"{i}.png" for i in ids], te)  # fmt: skip
    # CDD11 (OneRestore): <split>/<type>/<scene>.png beside <split>/clear/<scene>.png.
    for split, size in (("train", tr), ("test", te)):
        for i in ids:
            clean = _texture(rng, size)
            _save(root / f"CDD-11/{split}/clear/{i:06d}.png", clean)
            for t in CDD11_TYPES:
                _save(root / f"CDD-11/{split}/{t}/{i:06d}.png", _degrade(clean, rng))
    # WeatherBench (data_prep's default layout guess) and CSD (the peers' test2000).
    for split, size in (("train", tr), ("test", te)):
        for w in ("haze", "rain", "snow"):
            base = f"WeatherBench/{split}/{w}"
            _pairs(root, rng, f"{base}/input", f"{base}/target", [f"{i}.png" for i in ids], size)
    _pairs(root, rng, "CSD/test2000/Snow", "CSD/test2000/Gt", [f"{i}.jpg" for i in ids], te)
    (root / "REHEARSAL.txt").write_text(
        f"Fake data root written by data_prep.rehearsal (seed {seed}, {pairs} pairs per set).\n"
        "Random textures in the published folder layouts: not real data.\n"
    )
    return root


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m data_prep.rehearsal", description=__doc__)
    p.add_argument("--out", required=True, help="folder of the fake data root")
    p.add_argument("--pairs", type=int, default=2, help="pairs per data set and split")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    cli_logging()
    with user_errors(p.prog):  # e.g. --pairs 1
        print(write_rehearsal_root(a.out, a.pairs, a.seed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
