"""Training and evaluation data: manifests in, (degraded, clean) tensors out (§IV-A).

Training and evaluation read manifests only (docs/data.md §1); `data_prep` writes
them. A manifest is a CSV with columns ``split, task, degraded_path, clean_path, sigma`` (plus
optional ones such as ``dataset``); paths are relative to a data root, and ``degraded_path``
is empty where Gaussian noise is added on the fly (task ``denoise``, sigma 15/25/50).

The peers' conventions (docs/data.md §3, §4) are kept on purpose:

* every image is centre-cropped to a multiple of 16 first (PromptIR ``crop_img(base=16)``);
* training draws one 128² crop at the same place in degraded and clean, then one of the 7
  non-identity flips/rotations (the peers' ``random_augmentation`` never draws the identity),
  then the noise, ``clip(x + N(0, 1)·σ, 0, 255).astype(uint8)``;
* test noise comes from one ``RandomState(0)`` stream, files sorted, σ = 15 → 25 → 50 per data
  set, so our BSD68 inputs equal the peers' (who use ``os.listdir`` order, sorted on most disks).

Every image is read with Pillow and converted to 8-bit RGB by `load_image`:
grayscale and palette images are replicated to three channels, an alpha channel is dropped
(not composited), 16-bit images keep their high byte (what Pillow itself does for 16-bit RGB
PNGs), and 32-bit float images are refused.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset, get_worker_info

from m2ir_lib.data.images import ImageReadError, load_image  # noqa: F401 (re-exported)

MANIFEST_COLUMNS = ("split", "task", "degraded_path", "clean_path", "sigma")
SPLITS = ("train", "test")
# Written by `data_prep.mini` beside a synthetic build's `manifests/`: seed, size, generator code
# and package versions. Its manifests name the same files after a rebuild, so the stamp is what
# tells a run trained on yesterday's images from one trained on today's (`runs.run_key`).
BUILD_STAMP = ".stamp.json"
# Task names of docs/data.md §1; CDD11 types use OneRestore's folder names.
BASE_TASKS = ("denoise", "derain", "dehaze", "deblur", "enhance", "desnow")
CDD11_TYPES = (
    "low",
    "haze",
    "rain",
    "snow",
    "low_haze",
    "low_rain",
    "low_snow",
    "haze_rain",
    "haze_snow",
    "low_haze_rain",
    "low_haze_snow",
)
TASKS = BASE_TASKS + CDD11_TYPES
NOISE_SIGMAS = (15, 25, 50)  # §IV-A, on the 0-255 scale

# Per-task repetition of the training pairs in one epoch (docs/data.md §3): AdaIR's factors for
# 3D/5D, MoCE-IR's ×2 per CDD11 type. Desnowing (CSD) is never trained on in the paper: 1.
PAPER_REPEATS: dict[str, int] = {
    "denoise": 3,
    "derain": 120,
    "dehaze": 1,
    "deblur": 5,
    "enhance": 20,
    "desnow": 1,
    **{t: 2 for t in CDD11_TYPES},
}

# The peers' augmentation modes 1..7 of `dihedral` (identity excluded, docs/data.md §3).
AUGMENT_MODES = tuple(range(1, 8))


# ---------------------------------------------------------------------------------------------
# Images (`load_image`, the one decoder, lives in `m2ir_lib.data.images`)
# ---------------------------------------------------------------------------------------------


def crop_to_multiple(img: np.ndarray, base: int = 16) -> np.ndarray:
    """Centre crop of an (H, W, ...) array to multiples of ``base`` (PromptIR ``crop_img``)."""
    h, w = img.shape[:2]
    top, left = (h % base) // 2, (w % base) // 2
    return img[top : top + h - h % base, left : left + w - w % base]


def dihedral(img: np.ndarray, mode: int) -> np.ndarray:
    """One of the 8 flips/rotations of an (H, W, C) array: mode 0 identity, 1-3 rot90 ×k,
    4 vertical flip, 5-7 vertical flip then rot90 ×(mode-4)."""
    if not 0 <= mode <= 7:
        raise ValueError(f"dihedral mode {mode} not in 0..7")
    if mode >= 4:
        img = img[::-1]
    return np.ascontiguousarray(np.rot90(img, k=mode % 4))


def add_gaussian_noise(clean: np.ndarray, sigma: float, rng) -> np.ndarray:
    """Peer Gaussian noise, docs/data.md §3: ``clip(x + N(0, 1)·σ, 0, 255).astype(uint8)``.

    The cast truncates (PromptIR ``_add_gaussian_noise``). With a legacy ``RandomState`` the
    draw is ``rng.randn(*shape)``, bit-identical to the peers' ``np.random.randn``.

    Args:
        clean: (H, W, 3) uint8 image.
        sigma: standard deviation on the 0-255 scale (15, 25, 50 in the paper).
        rng: ``np.random.Generator`` or ``np.random.RandomState``.
    """
    if isinstance(rng, np.random.RandomState):
        noise = rng.randn(*clean.shape)
    else:
        noise = rng.standard_normal(clean.shape)
    return np.clip(clean + noise * sigma, 0, 255).astype(np.uint8)


def to_tensor(img: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 → (3, H, W) float32 in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))).float().div_(255.0)


# ---------------------------------------------------------------------------------------------
# Manifests
# ---------------------------------------------------------------------------------------------


def read_manifest(path: str | os.PathLike | pd.DataFrame) -> pd.DataFrame:
    """A validated manifest: path columns as str (empty degraded = noise on the fly), sigma float.

    Args:
        path: manifest CSV, or a DataFrame to validate the same way.

    Raises:
        FileNotFoundError: no such manifest.
        ValueError: a missing column, unknown split/task, empty clean path, a path that leaves
            the data root (absolute or through '..'), a row without degraded image that is
            not a denoising row with sigma > 0, or a row repeated.
    """
    if isinstance(path, pd.DataFrame):
        df, where = path.copy(), "manifest DataFrame"
    else:
        if not Path(path).is_file():
            raise FileNotFoundError(
                f"manifest {path} not found (build it with `python -m "
                "data_prep ...` or `python -m data_prep.mini`)"
            )
        text_cols = {"degraded_path": str, "clean_path": str, "split": str, "task": str}
        df = pd.read_csv(path, dtype=text_cols, keep_default_na=False, na_values={"sigma": [""]})
        where = str(path)
    missing = [c for c in MANIFEST_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(
            f"{where}: missing column(s) {missing}; found {list(df.columns)}; "
            f"a manifest needs {list(MANIFEST_COLUMNS)}"
        )
    df["degraded_path"] = df["degraded_path"].fillna("").astype(str)
    df["clean_path"] = df["clean_path"].fillna("").astype(str)
    try:
        df["sigma"] = pd.to_numeric(df["sigma"].replace("", np.nan)).astype(float)
    except (ValueError, TypeError) as err:
        raise ValueError(f"{where}: column sigma is not numeric ({err})") from None
    for col, allowed in (("split", SPLITS), ("task", TASKS)):
        bad = sorted(set(df[col].astype(str)) - set(allowed))
        if bad:
            raise ValueError(f"{where}: unknown {col} value(s) {bad}; expected {list(allowed)}")
    if (df["clean_path"] == "").any():
        raise ValueError(
            f"{where}: rows {list(df.index[df['clean_path'] == ''][:5])} have no clean_path"
        )
    for col in ("degraded_path", "clean_path"):
        outside = df[col].map(_leaves_root)
        if outside.any():
            rows = list(df.index[outside][:5])
            raise ValueError(
                f"{where}: {col} of rows {rows} (e.g. {df.loc[rows[0], col]!r}) leaves the data "
                "root (absolute, or through '..'); manifest paths are relative to the data root"
            )
    on_the_fly = df["degraded_path"] == ""
    bad = on_the_fly & ~((df["task"] == "denoise") & (df["sigma"] > 0))
    if bad.any():
        raise ValueError(
            f"{where}: rows {list(df.index[bad][:5])} have no degraded_path; only "
            "denoise rows with sigma > 0 may (noise added on the fly)"
        )
    # A repeated row would be trained on twice as often, or scored twice (n counts it twice).
    key = ["split", "task", "degraded_path", "clean_path", "sigma"]
    dup = df.duplicated(key, keep="first")
    if dup.any():
        first = df[dup].iloc[0]
        raise ValueError(
            f"{where}: {int(dup.sum())} row(s) repeat an earlier one (e.g. row "
            f"{df.index[dup][0]}: {first['split']} {first['task']} "
            f"{first['degraded_path'] or first['clean_path']!r}); remove the repeats"
        )
    return df.reset_index(drop=True)


def _leaves_root(rel: str) -> bool:
    """True for a manifest path that is absolute (POSIX or Windows) or climbs out with '..'."""
    if not rel:
        return False
    if rel.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", rel):
        return True
    return ".." in re.split(r"[\\/]", rel)


def _resolve_root(root) -> Path:
    root = root or os.environ.get("M2IR_DATA")  # "" counts as not given, never as cwd
    if not root:
        raise ValueError("no data root: pass root=... or set M2IR_DATA")
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"data root {root} is not a folder")
    return root


def _sigma(value) -> float:
    return float(value) if value == value else math.nan  # NaN where the task has none


def _select(manifest, split: str, tasks) -> pd.DataFrame:
    where = "manifest DataFrame" if isinstance(manifest, pd.DataFrame) else str(manifest)
    df = read_manifest(manifest)
    df = df[df["split"] == split]
    if tasks is not None:
        unknown = sorted(set(tasks) - set(TASKS))
        if unknown:
            raise ValueError(f"unknown task(s) {unknown}; expected some of {list(TASKS)}")
        df = df[df["task"].isin(list(tasks))]
    if df.empty:
        raise ValueError(f"{where}: no {split!r} rows for tasks={tasks}")
    return df


# ---------------------------------------------------------------------------------------------
# Training set
# ---------------------------------------------------------------------------------------------


class TrainDataset(Dataset):
    """Random ``patch``² training crops of a manifest's train rows (§IV-A, docs/data.md §3).

    Item ``i`` (or ``(i, seed)``) is a dict: ``degraded`` and ``clean`` (3, p, p) float32 in
    [0, 1], ``task`` (str), ``sigma`` (float, NaN unless denoising).

    Randomness (crop place, flip/rotation, noise) comes from one ``np.random.Generator``:
    with an int key, the per-worker generator seeded by ``(seed, worker id, the worker's torch
    seed)``, so a run is deterministic given ``seed``, ``torch.manual_seed`` and the worker
    count; with an ``(index, sample_seed)`` key, a fresh generator from ``sample_seed`` alone,
    so the item is a pure function of the key (resumable, worker-independent).

    Args:
        manifest: manifest path or DataFrame (`read_manifest`).
        root: data root the manifest's paths are relative to (default: ``M2IR_DATA``).
        patch: crop side (128 in the paper).
        augment: draw one of the 7 non-identity flips/rotations per item.
        repeats: per-task repetition factor in one epoch (e.g. `PAPER_REPEATS`); None = 1 each.
            Every task present must be listed.
        tasks: keep only these tasks (None = all).
        seed: seed of the per-worker generators.
        cache: keep decoded images in memory (per worker); for small sets such as the mini
            benchmark.
        split: manifest split to read.
    """

    def __init__(
        self,
        manifest,
        root=None,
        patch: int = 128,
        *,
        augment: bool = True,
        repeats: Mapping[str, int] | None = None,
        tasks: Sequence[str] | None = None,
        seed: int = 0,
        cache: bool = False,
        split: str = "train",
    ):
        df = _select(manifest, split, tasks)
        self.root, self.patch, self.augment, self.seed = _resolve_root(root), patch, augment, seed
        self.rows = df[["task", "degraded_path", "clean_path", "sigma"]].to_dict("records")
        factors = np.ones(len(self.rows), dtype=np.int64)
        if repeats is not None:
            missing = sorted(set(df["task"]) - set(repeats))
            if missing:
                raise ValueError(f"repeats has no factor for task(s) {missing}")
            factors = np.array([int(repeats[r["task"]]) for r in self.rows], dtype=np.int64)
        self.index = np.repeat(np.arange(len(self.rows)), factors)  # epoch position → row
        self._cache = {} if cache else None
        self._rng, self._rng_key = None, None

    def __len__(self) -> int:
        return len(self.index)

    def _generator(self) -> np.random.Generator:
        info = get_worker_info()
        key = (self.seed,) if info is None else (self.seed, info.id, info.seed % 2**63)
        if key != self._rng_key:
            self._rng, self._rng_key = np.random.default_rng(list(key)), key
        return self._rng

    def _load(self, rel: str) -> np.ndarray:
        if self._cache is not None and rel in self._cache:
            return self._cache[rel]
        img = crop_to_multiple(load_image(self.root / rel))
        if self._cache is not None:
            self._cache[rel] = img
        return img

    def __getitem__(self, key) -> dict:
        if isinstance(key, tuple):
            index, rng = key[0], np.random.default_rng(int(key[1]))
        else:
            index, rng = key, self._generator()
        row = self.rows[self.index[index]]
        clean = self._load(row["clean_path"])
        degraded = self._load(row["degraded_path"]) if row["degraded_path"] else None
        if degraded is not None and degraded.shape != clean.shape:
            raise ValueError(
                f"{row['degraded_path']} {degraded.shape[:2]} and "
                f"{row['clean_path']} {clean.shape[:2]} differ in size"
            )
        h, w = clean.shape[:2]
        p = self.patch
        if h < p or w < p:
            raise ValueError(
                f"{row['clean_path']} is {h}×{w} after the crop to a multiple of "
                f"16, smaller than the {p}² training patch"
            )
        y, x = int(rng.integers(0, h - p + 1)), int(rng.integers(0, w - p + 1))
        clean = clean[y : y + p, x : x + p]
        degraded = None if degraded is None else degraded[y : y + p, x : x + p]
        if self.augment:
            mode = int(rng.choice(AUGMENT_MODES))
            clean = dihedral(clean, mode)
            degraded = None if degraded is None else dihedral(degraded, mode)
        sigma = _sigma(row["sigma"])
        if degraded is None:
            degraded = add_gaussian_noise(clean, sigma, rng)
        return {
            "degraded": to_tensor(degraded),
            "clean": to_tensor(clean),
            "task": row["task"],
            "sigma": sigma,
        }


# ---------------------------------------------------------------------------------------------
# Evaluation set
# ---------------------------------------------------------------------------------------------


class EvalDataset(Dataset):
    """Full test images, both centre-cropped to a multiple of 16 (docs/data.md §4, §5).

    Item ``i`` is a dict: ``degraded`` and ``clean`` (3, H, W) float32 in [0, 1], ``task``,
    ``sigma`` (NaN unless denoising), ``name`` (file stem) and ``dataset`` (the manifest's
    ``dataset`` column, or "").

    Order: tasks in order of first appearance; within a task, ``dataset`` in order of first
    appearance, then sigma ascending, then file path sorted. Noisy inputs of rows without a
    degraded file follow the peers exactly: one ``RandomState(noise_seed)`` stream over the
    denoising rows in that order (σ = 15 → 25 → 50 for each data set), each image drawing
    ``randn(H, W, 3)`` after the crop. The stream is replayed at construction (only the
    generator states are kept), so items are independent of DataLoader workers and order.

    ``unit`` names the independent test unit of each image: the manifest's ``source`` column
    where it has one (the photograph a stand-in tile was cut from), else the image's ``name``
    (every image of a real test set is its own unit). Intervals resample units, not tiles.

    Args:
        manifest: manifest path or DataFrame.
        root: data root (default ``M2IR_DATA``).
        tasks: keep only these tasks (None = all).
        split: manifest split to read ("test").
        noise_seed: seed of the test-noise stream (0, as the peers).
        sigmas: keep only denoising rows with these sigmas (e.g. ``(25,)`` for Table II).
            The stream then covers the kept rows only, as when the peers test one sigma.
        max_images: keep the first ``n`` items per (task, dataset, sigma); applied after the
            stream, so kept inputs equal those of a full run.
    """

    def __init__(
        self,
        manifest,
        root=None,
        tasks: Sequence[str] | None = None,
        *,
        split: str = "test",
        noise_seed: int = 0,
        sigmas: Sequence[float] | None = None,
        max_images: int | None = None,
    ):
        df = _select(manifest, split, tasks)
        if sigmas is not None:
            df = df[(df["task"] != "denoise") | df["sigma"].isin([float(s) for s in sigmas])]
        self.root = _resolve_root(root)
        df = df.copy()
        df["dataset"] = df["dataset"].astype(str) if "dataset" in df.columns else ""
        df["source"] = df["source"].fillna("").astype(str) if "source" in df.columns else ""
        order = {c: {v: i for i, v in enumerate(pd.unique(df[c]))} for c in ("task", "dataset")}
        df["_t"], df["_d"] = df["task"].map(order["task"]), df["dataset"].map(order["dataset"])
        df["_s"] = df["sigma"].fillna(-1.0)
        df["_p"] = np.where(df["degraded_path"] == "", df["clean_path"], df["degraded_path"])
        df = df.sort_values(["_t", "_d", "_s", "_p"], kind="stable")
        cols = ["task", "degraded_path", "clean_path", "sigma", "dataset", "source"]
        self.rows = df[cols].to_dict("records")
        self._noise_states = self._replay_noise(noise_seed)
        if max_images is not None:
            seen: dict = {}
            keep = []
            for i, r in enumerate(self.rows):
                k = (r["task"], r["dataset"], _sigma(r["sigma"]))
                seen[k] = seen.get(k, 0) + 1
                if seen[k] <= max_images:
                    keep.append(i)
            self.rows = [self.rows[i] for i in keep]
            self._noise_states = [self._noise_states[i] for i in keep]

    def _replay_noise(self, noise_seed: int) -> list:
        """Generator state before each on-the-fly noisy row (None for rows with a file)."""
        rs, states = np.random.RandomState(noise_seed), []
        for r in self.rows:
            if r["degraded_path"]:
                states.append(None)
                continue
            path = self.root / r["clean_path"]
            try:
                with Image.open(path) as im:
                    w, h = im.size
            except (OSError, UnidentifiedImageError) as err:
                raise ImageReadError(f"{path}: cannot read image ({err})") from err
            states.append(rs.get_state())
            rs.randn((h - h % 16) * (w - w % 16) * 3)  # advance exactly as the peers' draw
        return states

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict:
        row, state = self.rows[i], self._noise_states[i]
        clean = crop_to_multiple(load_image(self.root / row["clean_path"]))
        if row["degraded_path"]:
            degraded = crop_to_multiple(load_image(self.root / row["degraded_path"]))
            if degraded.shape != clean.shape:
                raise ValueError(
                    f"{row['degraded_path']} {degraded.shape[:2]} and "
                    f"{row['clean_path']} {clean.shape[:2]} differ in size after "
                    "the crop to a multiple of 16"
                )
        else:
            rs = np.random.RandomState()
            rs.set_state(state)
            degraded = add_gaussian_noise(clean, row["sigma"], rs)
        name = Path(row["degraded_path"] or row["clean_path"]).stem
        return {
            "degraded": to_tensor(degraded),
            "clean": to_tensor(clean),
            "task": row["task"],
            "sigma": _sigma(row["sigma"]),
            "name": name,
            "dataset": row["dataset"],
            "unit": row["source"] or name,
        }
