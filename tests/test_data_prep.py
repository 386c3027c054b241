"""data_prep adapters on small fake trees built in each published layout (docs/data.md §2)."""

import dataclasses

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from data_prep import adapters
from data_prep.__main__ import main
from data_prep.prepare import COMMANDS, FAMILIES, prepare
from data_prep.scan import BadImageError, CountError, LayoutError, PartialDataWarning
from m2ir_lib.data.datasets import CDD11_TYPES, read_manifest

N = 3  # pairs per fake data set; the published counts are shrunk to this


def _img(path, size=(40, 34), mode="RGB", seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    a = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(a).convert(mode).save(path)


def _tree(root, pairs, **kw):
    """Write (degraded, clean) file pairs; clean-only entries have degraded None."""
    for i, (deg, clean) in enumerate(pairs):
        if not (root / clean).exists():
            _img(root / clean, seed=i, **kw)
        if deg is not None:
            _img(root / deg, seed=i, **kw)


@pytest.fixture
def shrink(monkeypatch):
    """Published counts → n for the named parts (fake trees are small)."""

    def apply(*parts, n=N):
        for part in parts:
            layouts = [
                dataclasses.replace(
                    lay,
                    sources=tuple(
                        dataclasses.replace(s, expected=n if s.expected else None)
                        for s in lay.sources
                    ),
                )
                for lay in adapters.LAYOUTS[part]
            ]
            monkeypatch.setitem(adapters.LAYOUTS, part, layouts)

    return apply


def _run(root, tmp_path, command, **kw):
    kw.setdefault("patch", 16)
    return prepare(command, root, tmp_path / "out", **kw)


R = range(1, N + 1)
# (part, layout name prefix, file pairs) in each published naming
TREES = [
    (
        "rain100l-train",
        "PromptIR",
        [(f"Train/Derain/rainy/rain-{i}.png", f"Train/Derain/gt/norain-{i}.png") for i in R],
    ),
    (
        "rain100l-train",
        "MoCE",
        [
            (f"deraining/RainTrainL/rainy/rain-{i}.png", f"deraining/RainTrainL/gt/norain-{i}.png")
            for i in R
        ],
    ),
    (
        "rain100l-train",
        "original release (rain-N",
        [(f"RainTrainL/rain-{i}.png", f"RainTrainL/norain-{i}.png") for i in R]
        + [(f"RainTrainL/rainstreak-{i}.png", f"RainTrainL/norain-{i}.png") for i in R],
    ),
    (
        "rain100l-test",
        "PromptIR",
        [
            (f"test/derain/Rain100L/input/{i}.png", f"test/derain/Rain100L/target/{i}.png")
            for i in R
        ],
    ),
    (
        "rain100l-test",
        "PromptIR",
        [
            (
                f"data/test/derain/Rain100L/input/rain-{i:03d}.png",
                f"data/test/derain/Rain100L/target/norain-{i:03d}.png",
            )
            for i in R
        ],
    ),
    (
        "rain100l-test",
        "original release (rain-N",
        [(f"Rain100L/rain-{i:03d}.png", f"Rain100L/norain-{i:03d}.png") for i in R],
    ),
    (
        "sots",
        "PromptIR",
        [(f"test/dehaze/input/{i:04d}_0.8_0.2.jpg", f"test/dehaze/target/{i:04d}.png") for i in R],
    ),
    (
        "sots",
        "MoCE",
        [
            (
                f"dehazing/SOTS/outdoor/hazy/{i:04d}_1_0.16.jpg",
                f"dehazing/SOTS/outdoor/gt/{i:04d}.png",
            )
            for i in R
        ],
    ),
    (
        "sots",
        "original",
        [(f"SOTS/outdoor/hazy/{i:04d}_0.9_0.08.jpg", f"SOTS/outdoor/gt/{i:04d}.png") for i in R],
    ),
    (
        "ots",
        "MoCE",
        [
            (f"dehazing/RESIDE/part{i}/{i:04d}_0.8_0.2.jpg", f"dehazing/RESIDE/clear/{i:04d}.jpg")
            for i in R
        ],
    ),
    (
        "ots",
        "original",
        [(f"OTS_BETA/haze/part1/{i:04d}_1_0.04.jpg", f"OTS_BETA/clear/{i:04d}.jpg") for i in R],
    ),
    (
        "gopro-train",
        "MoCE-IR (pre-cropped",
        [
            (
                f"deblurring/GoPro/crop/train/input_crops/{i}.png",
                f"deblurring/GoPro/crop/train/target_crops/{i}.png",
            )
            for i in R
        ],
    ),
    (
        "gopro-train",
        "AdaIR",
        [
            (
                f"Train/Deblur/blur/GOPR0372_07_00_{i:06d}.png",
                f"Train/Deblur/sharp/GOPR0372_07_00_{i:06d}.png",
            )
            for i in R
        ],
    ),
    (
        "gopro-test",
        "MoCE",
        [
            (
                f"deblurring/GoPro/test/input/GOPR0384_11_00_{i:06d}.png",
                f"deblurring/GoPro/test/target/GOPR0384_11_00_{i:06d}.png",
            )
            for i in R
        ],
    ),
    (
        "gopro-test",
        "MPRNet",
        [(f"GoPro/test/input/{i}.png", f"GoPro/test/target/{i}.png") for i in R],
    ),
    (
        "lol-train",
        "AdaIR",
        [(f"Train/Enhance/low/{i}.png", f"Train/Enhance/gt/{i}.png") for i in R],
    ),
    (
        "lol-train",
        "original",
        [(f"LOLdataset/our485/low/{i}.png", f"LOLdataset/our485/high/{i}.png") for i in R],
    ),
    (
        "lol-test",
        "MoCE",
        [(f"llie/LOLv1/Test/input/{i}.png", f"llie/LOLv1/Test/target/{i}.png") for i in R],
    ),
    ("lol-test", "original", [(f"eval15/low/{i}.png", f"eval15/high/{i}.png") for i in R]),
    ("bsd68", "PromptIR", [(None, f"test/denoise/bsd68/{3000 + i}.jpg") for i in R]),
    (
        "bsd68",
        "CBSD68 release",
        [(None, f"CBSD68/original_png/{i:04d}.png") for i in R]
        + [(None, f"CBSD68/noisy25/{i:04d}.png") for i in R],
    ),
    ("urban100", "PromptIR", [(None, f"test/denoise/urban100/img_{i:03d}.png") for i in R]),
    ("kodak24", "flat", [(None, f"Kodak24/kodim{i:02d}.png") for i in R]),
    (
        "csd-train",
        "CSD/train2500",
        [(f"CSD/train2500/Snow/{i}.tif", f"CSD/train2500/Gt/{i}.tif") for i in R],
    ),
    ("csd-train", "CSD/Train", [(f"CSD/Train/Snow/{i}.png", f"CSD/Train/Gt/{i}.png") for i in R]),
    ("csd-test", "CSD/Test", [(f"CSD/Test/Snow/{i}.tif", f"CSD/Test/Gt/{i}.tif") for i in R]),
]


def _t(part, layout):
    """The fake tree of TREES for (part, layout)."""
    return next(pairs for p, lay, pairs in TREES if p == part and lay == layout)


@pytest.mark.filterwarnings("ignore::data_prep.scan.PartialDataWarning")
@pytest.mark.parametrize("part,layout,pairs", TREES, ids=[f"{p}:{lay}" for p, lay, _ in TREES])
def test_each_published_layout_is_recognised(tmp_path, shrink, part, layout, pairs):
    _tree(tmp_path, pairs)
    shrink(part)
    family = next(c for c in FAMILIES if part in COMMANDS[c].required + COMMANDS[c].optional)
    # the family's other parts are absent here: allow_missing lets this one through
    res = prepare(
        family, tmp_path, tmp_path / "out", patch=16, allow_partial=True, allow_missing=True
    )
    found = res.parts[part]
    assert layout in found.layout.name and len(found.pairs) == N
    rows = res.counts[res.counts["part"] == part]
    assert rows["status"].isin(["ok", "not published"]).all()
    manifest = read_manifest(res.manifests[family])
    assert manifest["clean_path"].map(lambda p: (tmp_path / p).is_file()).all()
    assert not manifest["clean_path"].str.startswith("/").any()  # relative to the root


def test_ots_pairs_every_hazy_file_with_its_scene(tmp_path, shrink):
    hazy = [
        (
            f"Train/Dehaze/synthetic/part{1 + i % 4}/{i:04d}_{a}_{b}.jpg",
            f"Train/Dehaze/original/{i:04d}.jpg",
        )
        for i in R
        for a, b in (("0.8", "0.2"), ("1", "0.04"))
    ]
    sots = [
        (f"test/dehaze/input/{i:04d}_0.8_0.2.jpg", f"test/dehaze/target/{i:04d}.png") for i in R
    ]
    _tree(tmp_path, hazy + sots)
    shrink("sots")
    shrink("ots", n=2 * N)
    res = _run(tmp_path, tmp_path, "reside")
    df = read_manifest(res.manifests["reside"])
    train = df[df["split"] == "train"]
    assert len(train) == 2 * N and train["clean_path"].str.contains("original/0001.jpg").sum() == 2
    assert (
        train["degraded_path"].str.split("/").str[-1].str[:4]
        == train["clean_path"].str.split("/").str[-1].str[:4]
    ).all()


DENOISE_TREES = {  # WED and BSD400 (names with and without the list's 'a' prefix)
    "PromptIR": (
        "Train/Denoise/{:05d}.bmp",
        ["Train/Denoise/a247012.jpg", "Train/Denoise/6046.jpg", "Train/Denoise/2018.jpg"],
    ),
    "MoCE-IR": ("denoising/WaterlooED/{:05d}.bmp", [f"denoising/BSD400/{i}.jpg" for i in R]),
    "original": (
        "exploration_database_and_code/pristine_images/{:05d}.bmp",
        [f"BSD400/test_{i:03d}.png" for i in R],
    ),
}


@pytest.mark.parametrize("layout", DENOISE_TREES)
def test_denoise_training_set_keeps_bsd400_and_wed_and_three_sigmas(tmp_path, shrink, layout):
    wed, bsd = DENOISE_TREES[layout]
    _tree(tmp_path, [(None, wed.format(i)) for i in R] + [(None, f) for f in bsd])
    shrink("wed-bsd400")
    res = _run(tmp_path, tmp_path, "denoise-train")
    assert layout in res.parts["wed-bsd400"].layout.name
    df = read_manifest(res.manifests["denoise-train"])
    assert sorted(df["dataset"].unique()) == ["BSD400", "WED"]
    assert len(df) == 2 * N * 3 and sorted(df["sigma"].unique()) == [15, 25, 50]
    assert (df["degraded_path"] == "").all()


def test_gopro_sequence_folders_pair_by_sequence_and_frame(tmp_path, shrink):
    pairs = [
        (f"GOPRO_Large/train/{seq}/blur/{f:06d}.png", f"GOPRO_Large/train/{seq}/sharp/{f:06d}.png")
        for seq in ("GOPR0372_07_00", "GOPR0374_11_00")
        for f in (1, 2)
    ]
    pairs += [
        (
            "GOPRO_Large/train/GOPR0372_07_00/blur_gamma/000001.png",
            "GOPRO_Large/train/GOPR0372_07_00/sharp/000001.png",
        )
    ]
    pairs += [
        (
            f"GOPRO_Large/test/GOPR0384_11_00/blur/{f:06d}.png",
            f"GOPRO_Large/test/GOPR0384_11_00/sharp/{f:06d}.png",
        )
        for f in R
    ]
    _tree(tmp_path, pairs)
    shrink("gopro-train", n=4)
    shrink("gopro-test")
    df = read_manifest(_run(tmp_path, tmp_path, "gopro").manifests["gopro"])
    train = df[df["split"] == "train"]
    assert len(train) == 4 and not train["degraded_path"].str.contains("gamma").any()
    assert (train["degraded_path"].str.replace("/blur/", "/sharp/") == train["clean_path"]).all()


def test_cdd11_all_types_train_and_test(tmp_path, shrink):
    pairs = [
        (f"{base}/{t}/{i:06d}.png", f"{base}/clear/{i:06d}.png")
        for base in ("cdd11/train", "CDD-11_test")
        for t in CDD11_TYPES
        for i in R
    ]
    _tree(tmp_path, pairs)
    shrink("cdd11-train", "cdd11-test")
    res = _run(tmp_path, tmp_path, "cdd11")
    assert "CDD-11_<split>" in res.parts["cdd11-test"].layout.name
    df = read_manifest(res.manifests["cdd11"])
    assert df.groupby(["split", "task"]).size().eq(N).all() and df["task"].nunique() == 11


def test_cdd11_missing_type_is_refused(tmp_path, shrink):
    pairs = [
        (f"CDD-11/test/{t}/{i:06d}.png", f"CDD-11/test/clear/{i:06d}.png")
        for t in CDD11_TYPES[:-1]
        for i in R
    ]
    _tree(tmp_path, pairs)
    shrink("cdd11-test")
    with pytest.raises(LayoutError, match="low_haze_snow"):
        prepare("cdd11", tmp_path, tmp_path / "out")


def test_3d_and_5d_settings(tmp_path, shrink):
    parts = {
        "wed-bsd400": [(None, f"Train/Denoise/{i:05d}.bmp") for i in R]
        + [(None, f"Train/Denoise/{i}.jpg") for i in R],
        "rain100l-train": _t("rain100l-train", "PromptIR"),
        "rain100l-test": _t("rain100l-test", "original release (rain-N"),
        "ots": [
            (
                f"Train/Dehaze/synthetic/part1/{i:04d}_1_0.2.jpg",
                f"Train/Dehaze/original/{i:04d}.jpg",
            )
            for i in R
        ],
        "sots": _t("sots", "PromptIR"),
        "bsd68": _t("bsd68", "PromptIR"),
        "gopro-train": _t("gopro-train", "AdaIR"),
        "gopro-test": [
            (f"test/deblur/gopro/input/{i}.png", f"test/deblur/gopro/target/{i}.png") for i in R
        ],
        "lol-train": _t("lol-train", "AdaIR"),
        "lol-test": [
            (f"test/enhance/lol/input/{i}.png", f"test/enhance/lol/target/{i}.png") for i in R
        ],
    }
    for part, pairs in parts.items():
        _tree(tmp_path, pairs)
        shrink(part)
    d3 = read_manifest(_run(tmp_path, tmp_path, "3d").manifests["3d"])
    assert sorted(d3["task"].unique()) == ["dehaze", "denoise", "derain"]
    assert sorted(d3[(d3["split"] == "test") & (d3["task"] == "denoise")]["sigma"].unique()) == [
        15,
        25,
        50,
    ]
    d5 = read_manifest(_run(tmp_path, tmp_path, "5d").manifests["5d"])
    assert {"deblur", "enhance"} <= set(d5["task"])
    assert d5[(d5["split"] == "test") & (d5["task"] == "denoise")]["sigma"].unique().tolist() == [
        25
    ]


def test_weatherbench_default_and_custom_layouts(tmp_path):
    pairs = [
        (f"WeatherBench/{s}/{w}/input/{i}.jpg", f"WeatherBench/{s}/{w}/target/{i}.png")
        for s in ("train", "test")
        for w in ("haze", "rain", "snow")
        for i in R
    ]
    _tree(tmp_path, pairs)
    with pytest.warns(PartialDataWarning):  # 18 pairs, not the published 41,402 + 600
        res = _run(tmp_path, tmp_path, "weatherbench", allow_partial=True)
    assert len(read_manifest(res.manifests["weatherbench"])) == 18
    (tmp_path / "wb.yaml").write_text(
        "base: WeatherBench\nkey: stem\ntotals: {test: 3}\npairs:\n"
        "  - {split: test, task: desnow, degraded: test/snow/input, clean: test/snow/target}\n"
    )
    res = _run(tmp_path, tmp_path, "weatherbench", layout=tmp_path / "wb.yaml")
    df = read_manifest(res.manifests["weatherbench"])
    assert df["task"].unique().tolist() == ["desnow"] and len(df) == N
    (tmp_path / "bad.json").write_text('{"pairs": [{"split": "test"}]}')
    with pytest.raises(ValueError, match="bad.json"):
        _run(tmp_path, tmp_path, "weatherbench", layout=tmp_path / "bad.json")


# ---------------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------------


def test_missing_root_and_folders_show_the_expected_tree(tmp_path, capsys):
    with pytest.raises(LayoutError, match="does not exist"):
        prepare("rain100l", tmp_path / "nowhere", tmp_path / "out")
    with pytest.raises(LayoutError, match=r"(?s)Train/Derain/rainy.*deraining/RainTrainL"):
        prepare("rain100l", tmp_path, tmp_path / "out")
    _img(tmp_path / "Train/Derain/rainy/rain-1.png")
    with pytest.raises(LayoutError, match=r"(?s)Partly present.*Train/Derain/gt/ \(no such"):
        prepare("rain100l", tmp_path, tmp_path / "out")
    assert main(["rain100l", "--root", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "test/derain/Rain100L/input" in capsys.readouterr().err


def _rain_tree(root, n=N):
    _tree(
        root,
        [
            (f"Train/Derain/rainy/rain-{i}.png", f"Train/Derain/gt/norain-{i}.png")
            for i in range(1, n + 1)
        ]
        + [
            (f"test/derain/Rain100L/input/{i}.png", f"test/derain/Rain100L/target/{i}.png")
            for i in range(1, n + 1)
        ],
    )


def test_unpaired_files_are_reported_and_counts_refused(tmp_path, shrink):
    _rain_tree(tmp_path)
    shrink("rain100l-train", "rain100l-test")
    _img(tmp_path / "Train/Derain/rainy/rain-9.png")  # no clean image
    _img(tmp_path / "test/derain/Rain100L/target/7.png")  # no degraded image
    (tmp_path / "test/derain/Rain100L/input/Thumbs.db").write_text("x")
    res = _run(tmp_path, tmp_path, "rain100l")  # the N real pairs still match the counts
    report = res.report.read_text()
    assert "unpaired: `" in report and "rain-9.png" in report and "7.png" in report
    assert "ignored 1 non-image" in report
    (tmp_path / "Train/Derain/gt/norain-3.png").unlink()
    with pytest.raises(CountError, match="found 2, published 3"):
        _run(tmp_path, tmp_path, "rain100l")
    with pytest.warns(PartialDataWarning, match="rain100l-train"):
        res = _run(tmp_path, tmp_path, "rain100l", allow_partial=True)
    assert "WARNINGS" in res.report.read_text()


@pytest.mark.parametrize("damage", ["garbage", "truncated-png", "truncated-jpg"])
def test_corrupt_images_stop_or_skip(tmp_path, shrink, damage):
    _rain_tree(tmp_path)
    shrink("rain100l-train", "rain100l-test")
    bad = tmp_path / "test/derain/Rain100L/input/2.png"
    if damage == "garbage":
        bad.write_bytes(b"\x89PNG not really")
    elif damage == "truncated-png":
        bad.write_bytes(bad.read_bytes()[:200])
    else:
        bad.unlink()
        bad = bad.with_suffix(".jpg")
        _img(bad, size=(64, 64))
        bad.write_bytes(bad.read_bytes()[:-300])
    with pytest.raises(BadImageError, match=rf"(?s){bad.name}.*corrupt.*on_bad=stop"):
        _run(tmp_path, tmp_path, "rain100l")
    with pytest.warns(PartialDataWarning):
        res = _run(tmp_path, tmp_path, "rain100l", on_bad="skip", allow_partial=True)
    assert len(res.parts["rain100l-test"].pairs) == N - 1
    assert f"corrupt: `{bad}`" in res.report.read_text()


def test_size_mismatch_and_too_small_images(tmp_path, shrink):
    _rain_tree(tmp_path)
    shrink("rain100l-train", "rain100l-test")
    _img(tmp_path / "test/derain/Rain100L/target/1.png", size=(41, 34))
    with pytest.raises(BadImageError, match=r"(?s)input/1.png.*size-mismatch.*41×34"):
        _run(tmp_path, tmp_path, "rain100l")
    _img(tmp_path / "test/derain/Rain100L/target/1.png")
    with pytest.raises(BadImageError, match=r"norain-1.png.*too-small.*32×32 after the crop"):
        _run(tmp_path, tmp_path, "rain100l", patch=128)
    # every training pair too small: the task would be gone, refused unless allow_missing
    with pytest.raises(LayoutError, match=r"(?s)rain100l-train: no pairs for train/derain"):
        _run(tmp_path, tmp_path, "rain100l", patch=128, on_bad="skip", allow_partial=True)
    with pytest.warns(PartialDataWarning):
        res = _run(tmp_path, tmp_path, "rain100l", patch=128, on_bad="skip", allow_partial=True,
                   allow_missing=True)  # fmt: skip
    assert res.parts["rain100l-train"].pairs == [] and "too-small" in res.report.read_text()


def test_gray_rgba_and_16bit_are_accepted_and_reported(tmp_path, shrink):
    _rain_tree(tmp_path)
    shrink("rain100l-train", "rain100l-test")
    _img(tmp_path / "test/derain/Rain100L/input/1.png", mode="L")
    _img(tmp_path / "test/derain/Rain100L/input/2.png", mode="RGBA")
    _img(tmp_path / "test/derain/Rain100L/input/3.png", mode="I;16")
    report = _run(tmp_path, tmp_path, "rain100l", verify="full").report.read_text()
    for kind in ("grayscale", "alpha", "16-bit"):
        assert f"converted to 8-bit RGB on load ({kind}): 1 image(s)" in report


def test_all_does_what_is_present_and_lists_the_rest(tmp_path, shrink, capsys):
    _rain_tree(tmp_path)
    _tree(tmp_path, _t("lol-train", "AdaIR") + _t("lol-test", "MoCE"))
    shrink("rain100l-train", "rain100l-test", "lol-train", "lol-test")
    code = main(["all", "--root", str(tmp_path), "--out", str(tmp_path / "out"), "--patch", "16"])
    assert code == 0
    out = tmp_path / "out"
    assert sorted(p.name for p in out.glob("*.csv")) == ["lol.csv", "rain100l.csv"]
    report = (out / "all.report.md").read_text()
    assert "## Data sets not present" in report and "- cdd11" in report and "- 3d" in report
    assert "not present:" in capsys.readouterr().out
    df = pd.read_csv(out / "lol.csv")
    assert set(df["split"]) == {"train", "test"}
