"""The published folder trees of every real data set of the paper (docs/data.md §2).

Each part (one data set, one split) lists its accepted layouts in the order they are tried:
the PromptIR/AdaIR tree (``Train/...``, ``test/...``; also under ``data/``), MoCE-IR's tree,
OneRestore's, and the original releases' names. Counts are the published sizes (docs/data.md §2); a
layout whose size is not published (MoCE-IR's pre-cropped GoPro patches) says so in the report.

WeatherBench publishes no folder layout, so its tree comes from a JSON/YAML file
(`weatherbench_layout`); `WEATHERBENCH_DEFAULT` is our guess and is labelled as one.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from data_prep.scan import KEYS, Layout, Source
from m2ir_lib.data.datasets import CDD11_TYPES, SPLITS, TASKS

# Folder-name alternatives ({a,b}; '.' = the folder itself). Matching is case-insensitive.
_GOPRO = "{GOPRO_Large,GoPro,GOPRO_Large_all}"
_LOL = "{LOL,LOLdataset,LOLv1,LOL-v1,.}"
_SOTS = "{SOTS,RESIDE-SOTS,SOTS-outdoor,SOTS_outdoor}/{outdoor,.}"
_OTS = "{OTS,OTS_BETA,RESIDE-OTS,RESIDE_OTS}"


def _pairs(name, split, task, dataset, deg, clean, key="stem", expected=None, **kw) -> Layout:
    """A layout of one degraded ↔ clean folder pair."""
    return Layout(
        name, (Source(split, task, dataset, clean, deg, key=key, expected=expected, **kw),)
    )


def _rain100l(split: str, n: int) -> list[Layout]:
    promptir = (
        ("Train/Derain/rainy", "Train/Derain/gt")
        if split == "train"
        else ("test/derain/Rain100L/input", "test/derain/Rain100L/target")
    )
    moce = "deraining/RainTrainL" if split == "train" else "deraining/Rain100L"
    orig = (
        "{RainTrainL,rain_data_train_Light}"
        if split == "train"
        else "{Rain100L,rain_data_test_Light}"
    )
    args = (split, "derain", "Rain100L")
    return [
        _pairs("PromptIR/AdaIR", *args, *promptir, key="digits", expected=n),
        _pairs("MoCE-IR", *args, f"{moce}/rainy", f"{moce}/gt", key="digits", expected=n),
        _pairs(
            "original release (rain-N / norain-N in one folder)",
            *args,
            orig,
            orig,
            key="digits",
            expected=n,
            degraded_files=("rain-*",),
            clean_files=("norain-*",),
        ),
        _pairs(
            "original release (two folders)",
            *args,
            f"{orig}/{{rainy,rain,input}}",
            f"{orig}/{{norain,gt,target}}",
            key="digits",
            expected=n,
        ),
    ]


def _gopro(split: str, n: int) -> list[Layout]:
    args = (split, "deblur", "GoPro")
    adair = (
        ("Train/Deblur/blur", "Train/Deblur/sharp")
        if split == "train"
        else ("test/deblur/gopro/input", "test/deblur/gopro/target")
    )
    out = [_pairs("AdaIR (flattened <seq>_<frame>.png)", *args, *adair, expected=n)]
    if split == "train":
        out.append(
            _pairs(
                "MoCE-IR (pre-cropped patches; size not published)",
                *args,
                "deblurring/GoPro/crop/train/input_crops",
                "deblurring/GoPro/crop/train/target_crops",
            )
        )
    else:
        out.append(
            _pairs(
                "MoCE-IR",
                *args,
                "deblurring/GoPro/test/input",
                "deblurring/GoPro/test/target",
                expected=n,
            )
        )
    out += [
        _pairs(
            "original release (sequence folders, 'blur')",
            *args,
            f"{_GOPRO}/{split}/*/blur",
            f"{_GOPRO}/{split}/*/sharp",
            key="sequence_frame",
            expected=n,
        ),
        _pairs(
            "MPRNet-style input/target",
            *args,
            f"{_GOPRO}/{split}/input",
            f"{_GOPRO}/{split}/target",
            expected=n,
        ),
    ]
    return out


def _lol(split: str, n: int) -> list[Layout]:
    args = (split, "enhance", "LOL")
    adair = (
        ("Train/Enhance/low", "Train/Enhance/gt")
        if split == "train"
        else ("test/enhance/lol/input", "test/enhance/lol/target")
    )
    moce, orig = ("Train", "our485") if split == "train" else ("Test", "eval15")
    return [
        _pairs("AdaIR", *args, *adair, expected=n),
        _pairs(
            "MoCE-IR", *args, f"llie/LOLv1/{moce}/input", f"llie/LOLv1/{moce}/target", expected=n
        ),
        _pairs(
            f"original release ({orig}/low, high)",
            *args,
            f"{_LOL}/{orig}/low",
            f"{_LOL}/{orig}/high",
            expected=n,
        ),
    ]


def _clean_only(dataset: str, split: str, n: int, folders: list[tuple[str, str]]) -> list[Layout]:
    """Denoising sets: clean images only, noise added on the fly."""
    return [
        Layout(name, (Source(split, "denoise", dataset, folder, expected=n),))
        for name, folder in folders
    ]


def _cdd11(split: str, n: int) -> list[Layout]:
    def layout(name, base):
        return Layout(
            name,
            tuple(
                Source(split, t, "CDD11", f"{base}/clear", f"{base}/{t}", expected=n)
                for t in CDD11_TYPES
            ),
        )

    return [
        layout("OneRestore / MoCE-IR", f"{{CDD-11,CDD11,CDD_11}}/{split}"),
        layout("OneRestore (CDD-11_<split> folders)", f"{{CDD-11_{split},CDD11_{split}}}"),
    ]


def _csd(split: str) -> list[Layout]:
    args = (split, "desnow", "CSD")
    names = (
        (("Train", 8000, "full release"), ("train2500", 2500, "peers' subset"))
        if split == "train"
        else (("Test", 2000, "full release"), ("test2000", 2000, "peers"))
    )
    return [
        _pairs(f"CSD/{d}/{{Snow,Gt}} ({what})", *args, f"CSD/{d}/Snow", f"CSD/{d}/Gt", expected=n)
        for d, n, what in names
    ]


LAYOUTS: dict[str, list[Layout]] = {
    "wed-bsd400": [
        Layout(
            "PromptIR/AdaIR (one flat folder: WED *.bmp + BSD400 images)",
            (
                Source(
                    "train",
                    "denoise",
                    "WED",
                    "Train/Denoise",
                    clean_files=("*.bmp",),
                    expected=4744,
                ),
                Source(
                    "train",
                    "denoise",
                    "BSD400",
                    "Train/Denoise",
                    clean_exclude=("*.bmp",),
                    expected=400,
                ),
            ),
        ),
        Layout(
            "MoCE-IR",
            (
                Source("train", "denoise", "WED", "denoising/WaterlooED", expected=4744),
                Source("train", "denoise", "BSD400", "denoising/BSD400", expected=400),
            ),
        ),
        Layout(
            "original releases",
            (
                Source(
                    "train",
                    "denoise",
                    "WED",
                    "{WED,WaterlooED,Waterloo,exploration_database_and_code}/{pristine_images,.}",
                    expected=4744,
                ),
                Source("train", "denoise", "BSD400", "{BSD400,Train400}", expected=400),
            ),
        ),
    ],
    "rain100l-train": _rain100l("train", 200),
    "rain100l-test": _rain100l("test", 100),
    "ots": [
        _pairs(
            "PromptIR/AdaIR",
            "train",
            "dehaze",
            "RESIDE-OTS",
            "Train/Dehaze/synthetic/{part*,.}",
            "Train/Dehaze/original",
            key="id",
            one_to_one=False,
            expected=72135,
        ),
        _pairs(
            "MoCE-IR",
            "train",
            "dehaze",
            "RESIDE-OTS",
            "dehazing/RESIDE/part*",
            "dehazing/RESIDE/clear",
            key="id",
            one_to_one=False,
            expected=72135,
        ),
        _pairs(
            "original release (haze/part1..4 + clear)",
            "train",
            "dehaze",
            "RESIDE-OTS",
            f"{_OTS}/{{haze,hazy}}/{{part*,.}}",
            f"{_OTS}/{{clear,gt}}",
            key="id",
            one_to_one=False,
            expected=72135,
        ),
    ],
    "sots": [
        _pairs(
            "PromptIR/AdaIR",
            "test",
            "dehaze",
            "SOTS-outdoor",
            "test/dehaze/input",
            "test/dehaze/target",
            key="id",
            expected=500,
        ),
        _pairs(
            "MoCE-IR",
            "test",
            "dehaze",
            "SOTS-outdoor",
            "dehazing/SOTS/outdoor/hazy",
            "dehazing/SOTS/outdoor/gt",
            key="id",
            expected=500,
        ),
        _pairs(
            "original release",
            "test",
            "dehaze",
            "SOTS-outdoor",
            f"{_SOTS}/hazy",
            f"{_SOTS}/gt",
            key="id",
            expected=500,
        ),
    ],
    "gopro-train": _gopro("train", 2103),
    "gopro-test": _gopro("test", 1111),
    "lol-train": _lol("train", 485),
    "lol-test": _lol("test", 15),
    "bsd68": _clean_only(
        "BSD68",
        "test",
        68,
        [
            ("PromptIR/AdaIR", "test/denoise/bsd68"),
            ("MoCE-IR", "denoising/cBSD68/original_png"),
            ("CBSD68 release", "{CBSD68,cBSD68,BSD68}/original_png"),
            ("flat folder", "{CBSD68,BSD68}"),
        ],
    ),
    "urban100": _clean_only(
        "Urban100",
        "test",
        100,
        [
            ("PromptIR/AdaIR", "test/denoise/urban100"),
            ("MoCE-IR", "denoising/urban100"),
            ("flat folder", "Urban100"),
        ],
    ),
    "kodak24": _clean_only(
        "Kodak24",
        "test",
        24,
        [
            ("PromptIR/AdaIR", "test/denoise/kodak24"),
            ("MoCE-IR", "denoising/kodak24"),
            ("flat folder", "{Kodak24,Kodak}"),
        ],
    ),
    "cdd11-train": _cdd11("train", 1183),
    "cdd11-test": _cdd11("test", 200),
    "csd-train": _csd("train"),
    "csd-test": _csd("test"),
}

# Our guess at WeatherBench's tree (its repository documents none); override with a layout file.
WEATHERBENCH_DEFAULT = {
    "name": "WeatherBench (default guess: <split>/<weather>/{input,target})",
    "base": "WeatherBench",
    "key": "stem",
    "totals": {"train": 41402, "test": 600},
    "pairs": [
        {"split": s, "task": t, "degraded": f"{s}/{w}/input", "clean": f"{s}/{w}/target"}
        for s in SPLITS
        for t, w in (("dehaze", "haze"), ("derain", "rain"), ("desnow", "snow"))
    ],
}


def weatherbench_layout(spec: dict | str | Path | None = None) -> list[Layout]:
    """WeatherBench's tree from a mapping, a JSON/YAML file, or the default guess.

    The mapping (see `WEATHERBENCH_DEFAULT`): ``base`` (folder under the data root), ``key``
    (stem | digits | id), optional ``totals`` {split: pairs} (checked), and ``pairs``: a list
    of {split, task, degraded, clean[, expected]} with folders relative to ``base``.

    Raises:
        ValueError: an unknown key, split or task, or a missing field (names the file).
    """
    where = "default layout"
    if isinstance(spec, (str, Path)):
        where = str(spec)
        try:
            text = Path(spec).read_text()
        except OSError as err:
            raise ValueError(f"WeatherBench layout file {where}: cannot read it ({err})") from None
        if where.endswith((".yaml", ".yml")):
            try:
                spec = yaml.safe_load(text)
            except yaml.YAMLError as err:
                raise ValueError(f"WeatherBench layout file {where}: invalid YAML: {err}") from None
        else:
            try:
                spec = json.loads(text)
            except json.JSONDecodeError as err:
                raise ValueError(f"WeatherBench layout file {where}: invalid JSON: {err}") from None
        if not isinstance(spec, dict):
            raise ValueError(
                f"WeatherBench layout file {where} holds a {type(spec).__name__}, not a "
                "mapping; expected the form of data_prep.adapters.WEATHERBENCH_DEFAULT"
            )
    spec = WEATHERBENCH_DEFAULT if spec is None else spec
    try:
        base, key = spec.get("base", "."), spec.get("key", "stem")
        if key not in KEYS:
            raise ValueError(f"key {key!r} not one of {sorted(KEYS)}")
        sources = []
        for p in spec["pairs"]:
            if p["split"] not in SPLITS or p["task"] not in TASKS:
                raise ValueError(f"pair {p}: split must be in {SPLITS}, task in {TASKS}")
            sources.append(
                Source(
                    p["split"],
                    p["task"],
                    "WeatherBench",
                    f"{base}/{p['clean']}",
                    f"{base}/{p['degraded']}",
                    key=key,
                    expected=p.get("expected"),
                )
            )
        totals = tuple((s, int(n)) for s, n in spec.get("totals", {}).items())
    except (KeyError, TypeError, AttributeError) as err:
        raise ValueError(
            f"WeatherBench layout ({where}) is malformed: missing or bad {err}; "
            f"expected the form of data_prep.adapters.WEATHERBENCH_DEFAULT"
        ) from None
    except ValueError as err:
        raise ValueError(f"WeatherBench layout ({where}): {err}") from None
    return [Layout(spec.get("name", f"WeatherBench ({where})"), tuple(sources), totals)]
