"""The photographs the installed wheels ship, the embedded benchmark's only real images.

`PHOTOS` lists each with its package, file, licence and credit (written to the build's
``sources.csv``); `photo_path` finds it inside the installed package (no import, no
download); `photo_depth` gives the stereo pair's real depth for the haze model.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from data_prep import synth


@dataclass(frozen=True)
class Photo:
    name: str
    dist: str  # distribution (for the version)
    module: str  # package whose folder holds the file
    file: str
    licence: str
    credit: str


_SK = ("scikit-image", "skimage")
PHOTOS = (  # licences as stated in skimage/data/_fetchers.py, sklearn's images/README.txt
    Photo("astronaut", *_SK, "data/astronaut.png", "public domain", "NASA (Eileen Collins)"),
    Photo("rocket", *_SK, "data/rocket.jpg", "public domain", "SpaceX (DSCOVR launch)"),
    Photo(
        "motorcycle_left",
        *_SK,
        "data/motorcycle_left.png",
        "not stated",
        "Middlebury 2014 stereo (Scharstein et al.), 4x down-sampled",
    ),
    Photo(
        "motorcycle_right",
        *_SK,
        "data/motorcycle_right.png",
        "not stated",
        "Middlebury 2014 stereo (Scharstein et al.), 4x down-sampled",
    ),
    Photo(
        "china",
        "scikit-learn",
        "sklearn",
        "datasets/images/china.jpg",
        "CC BY 2.0",
        "danielbuechele (flickr.com/photos/danielbuechele)",
    ),
    Photo("chelsea", *_SK, "data/chelsea.png", "CC0", "Stefan van der Walt"),
    Photo("coffee", *_SK, "data/coffee.png", "CC0", "Rachel Michetti (Pikolo Espresso Bar)"),
    Photo(
        "flower",
        "scikit-learn",
        "sklearn",
        "datasets/images/flower.jpg",
        "CC BY 2.0",
        "README: danielbuechele; links flickr.com/photos/vultilion",
    ),
    Photo(
        "grace_hopper",
        "matplotlib",
        "matplotlib",
        "mpl-data/sample_data/grace_hopper.jpg",
        "public domain",
        "US Navy portrait",
    ),
    Photo("camera", *_SK, "data/camera.png", "CC0", "Lav Varshney (grayscale)"),
    Photo("moon", *_SK, "data/moon.png", "CC0", "Andreas Preuss (grayscale)"),
    Photo(
        "coins",
        *_SK,
        "data/coins.png",
        "no known copyright restrictions",
        "Greek coins, Pompeii (grayscale)",
    ),
    Photo("brick", *_SK, "data/brick.png", "CC0", "CC0Textures Bricks25 (grayscale)"),
    Photo("grass", *_SK, "data/grass.png", "CC0", "CC0Textures (grayscale)"),
    Photo("gravel", *_SK, "data/gravel.png", "CC0", "CC0Textures Gravel04 (grayscale)"),
)


def photo_path(photo: Photo) -> Path:
    """The photograph's file inside its installed package (no import, no download)."""
    spec = importlib.util.find_spec(photo.module)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package {photo.module} is not installed; it ships {photo.file}")
    path = Path(spec.submodule_search_locations[0]) / photo.file
    if not path.is_file():
        raise FileNotFoundError(f"{path} missing from the installed {photo.dist}")
    return path


def photo_depth(photo: Photo, shape) -> np.ndarray | None:
    """Normalised distance of the stereo views from the real disparity, else None."""
    if not photo.name.startswith("motorcycle_"):
        return None
    disp = np.load(photo_path(photo).with_name("motorcycle_disp.npz"))["arr_0"].astype(float)
    disp[~np.isfinite(disp)] = np.nan
    if photo.name.endswith("right"):
        disp = synth.right_view_disparity(disp)
    z = synth.depth_from_disparity(np.nan_to_num(disp, nan=-1.0), **synth.MOTORCYCLE_CALIBRATION)
    if z.shape != shape[:2]:
        raise ValueError(f"disparity {z.shape} does not match {photo.name} {shape[:2]}")
    lo, hi = np.percentile(z, [1, 99])
    return np.clip((z - lo) / (hi - lo), 0, 1)
