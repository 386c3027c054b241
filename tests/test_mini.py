"""data_prep.mini (the embedded benchmark) and data_prep.synth (its degradations)."""

import filecmp
import os

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from data_prep import mini, synth
from m2ir_lib.data.datasets import CDD11_TYPES, EvalDataset, TrainDataset, read_manifest


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("smoke") / "mini"
    return out, mini.build(out, seed=0, size="smoke")


def _all_files(root):
    return sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())


# ---------------------------------------------------------------------------------------------
# The build
# ---------------------------------------------------------------------------------------------


def test_manifests_cover_every_task_of_the_paper(smoke):
    out, paths = smoke
    assert set(paths) == set(mini.MANIFESTS)
    frames = {m: read_manifest(p) for m, p in paths.items()}
    tasks = {m: set(df["task"]) for m, df in frames.items()}
    assert tasks["mini_3d"] == {"denoise", "derain", "dehaze"}
    assert tasks["mini_5d"] == {"denoise", "derain", "dehaze", "deblur", "enhance"}
    assert tasks["mini_cdd11"] == set(CDD11_TYPES)
    assert tasks["mini_desnow"] == {"desnow"}
    assert tasks["mini_weatherbench"] == {"dehaze", "derain", "desnow"}
    for m, df in frames.items():
        assert set(df["split"]) == {"train", "test"}, m
        assert (df["dataset"] == "smoke-synthetic").all()
        assert df.groupby(["split", "task", "sigma"], dropna=False).size().min() >= 2
        for rel in set(df["clean_path"]) | set(df["degraded_path"]) - {""}:
            assert (out / rel).is_file(), rel
    test_sigmas = {
        m: sorted(df[(df.split == "test") & (df.task == "denoise")]["sigma"])
        for m, df in frames.items()
        if "denoise" in tasks[m]
    }
    assert set(test_sigmas["mini_3d"]) == {15, 25, 50} and set(test_sigmas["mini_5d"]) == {25}


def test_split_is_by_scene_and_training_is_dead_leaves(smoke):
    out, paths = smoke
    df = pd.read_csv(paths["mini_cdd11"])
    train, test = set(df[df.split == "train"]["source"]), set(df[df.split == "test"]["source"])
    assert not train & test
    assert test == set(mini.SIZES["smoke"].test) and test <= set(mini.COLOUR_SCENES)
    assert all(s.startswith("leaves") for s in train) and len(train) == 4  # each its own source
    sources = pd.read_csv(out / "sources.csv")
    assert set(sources["image"]) == test | {"dead leaves"}
    assert sources["licence"].notna().all() and sources["package"].notna().all()
    assert not sources["credit"].str.contains("grayscale").any()  # colour photographs only


def test_images_are_cropped_to_16_and_pairs_match(smoke):
    out, paths = smoke
    df = read_manifest(paths["mini_5d"])
    for r in df[df["degraded_path"] != ""].itertuples():
        d, c = Image.open(out / r.degraded_path), Image.open(out / r.clean_path)
        assert d.size == c.size and c.width % 16 == 0 and c.height % 16 == 0
        assert c.mode == "RGB" and max(c.size) <= 64


def test_same_seed_gives_identical_bytes_and_builds_are_reused(smoke, tmp_path):
    out, _ = smoke
    again = tmp_path / "again"
    mini.build(again, seed=0, size="smoke")
    files = _all_files(out)
    assert files == _all_files(again)
    match, mismatch, errors = filecmp.cmpfiles(out, again, [str(f) for f in files], shallow=False)
    assert not mismatch and not errors
    stamp = again / mini.BUILD_STAMP
    before = stamp.stat().st_mtime_ns
    mini.build(again, seed=0, size="smoke")  # complete, same stamp: nothing rewritten
    assert stamp.stat().st_mtime_ns == before
    other = tmp_path / "other"
    mini.build(other, seed=1, size="smoke")
    name = "derain/test/coffee.png"
    assert (out / name).read_bytes() != (other / name).read_bytes()
    mini.build(other, seed=0, size="smoke")  # a stale stamp is rebuilt in place
    assert (other / name).read_bytes() == (out / name).read_bytes()


def test_refuses_to_overwrite_a_foreign_folder(tmp_path):
    (tmp_path / "mine.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not a mini benchmark"):
        mini.build(tmp_path, size="smoke")
    assert (tmp_path / "mine.txt").exists()


def test_datasets_read_the_mini_manifests(smoke):
    out, paths = smoke
    train = TrainDataset(paths["mini_5d"], out, patch=32, repeats=None, seed=0)
    item = train[0]
    assert item["degraded"].shape == (3, 32, 32)
    test = EvalDataset(paths["mini_3d"], out)
    tasks = [test[i]["task"] for i in range(len(test))]
    assert tasks.count("denoise") == 6 and "dehaze" in tasks


@pytest.mark.slow
def test_full_mini_build(tmp_path):
    paths = mini.build(tmp_path / "mini", seed=0)
    df = read_manifest(paths["mini_3d"])
    test = df[(df.split == "test") & (df.task == "derain")]
    assert len(test) == 8 and test["source"].nunique() == 8  # 8 independent photographs
    for m in ("mini_5d", "mini_cdd11", "mini_weatherbench", "mini_desnow"):
        tdf = read_manifest(paths[m]).query("split == 'test'")
        assert (tdf.groupby("task")["source"].nunique() >= 8).all(), m
    assert len(df[(df.split == "train") & (df.task == "derain")]) == 48  # dead-leaves images
    # evaluation costs no more than the former 16 tiles of 256 px (669,696 pixels per task)
    pixels = sum(np.prod(Image.open(tmp_path / "mini" / p).size) for p in test["clean_path"])
    assert pixels <= 669_696


# ---------------------------------------------------------------------------------------------
# The degradations
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def img():
    return np.random.default_rng(0).random((48, 64, 3))


def _rng(seed=0):
    return np.random.default_rng(seed)


def test_every_synthesiser_is_seeded_and_in_range(img):
    fns = [
        lambda r: synth.rain(img, r),
        lambda r: synth.haze(img, synth.depth_proxy(img, r), r),
        lambda r: synth.motion_blur(img, r),
        lambda r: synth.low_light(img, r),
        lambda r: synth.snow(img, r),
    ]
    for fn in fns:
        a, b, c = fn(_rng(0)), fn(_rng(0)), fn(_rng(1))
        assert a.shape == img.shape and 0 <= a.min() and a.max() <= 1
        assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_haze_is_the_scattering_model(img):
    assert np.allclose(synth.haze(img, np.zeros(img.shape[:2]), _rng()), img)
    depth = np.full(img.shape[:2], 0.5)
    out = synth.haze(img, depth, _rng(), beta=2.0, airlight=0.8)
    t = np.exp(-2.0 * 0.5)
    assert np.allclose(out, img * t + 0.8 * (1 - t))
    capped = synth.haze(img, np.ones(img.shape[:2]), _rng(), beta=1.0, airlight=0.8)
    assert np.allclose(capped, img * np.exp(-0.7) + 0.8 * (1 - np.exp(-0.7)))  # d ≤ 0.7


def test_rain_and_snow_composites(img):
    layer = synth.rain_layer(img.shape, _rng())
    assert layer.max() > 0.2 and (layer > 0.05).mean() < 0.5
    assert np.allclose(synth.rain(img, _rng(), layer=layer), np.clip(img + layer[..., None], 0, 1))
    zero, one = np.zeros(img.shape[:2]), np.ones(img.shape[:2])
    assert np.allclose(synth.snow(img, _rng(), mask=zero), img)
    assert np.allclose(synth.snow(img, _rng(), mask=one, color=0.95), 0.95)
    mask = synth.snow_mask(img.shape, _rng())
    assert 0 <= mask.min() and mask.max() <= 1 and mask.mean() > 0


def test_motion_blur_kernel_and_low_light(img):
    k = synth.motion_kernel(_rng(), length=12)
    assert abs(k.sum() - 1) < 1e-9 and k.min() >= 0 and k.shape[0] % 2 == 1
    delta = np.zeros((5, 5))
    delta[2, 2] = 1
    assert np.allclose(synth.motion_blur(img, _rng(), kernel=delta, noise=0), img)
    dark = synth.low_light(img, _rng())
    assert dark.mean() < 0.5 * img.mean()


def test_gaussian_noise_is_the_peers_formula():
    clean = np.full((4, 4, 3), 100, np.uint8)
    rs = np.random.RandomState(0)
    expected = np.clip(clean + np.random.RandomState(0).randn(4, 4, 3) * 25, 0, 255)
    assert np.array_equal(synth.gaussian_noise(clean, 25, rs), expected.astype(np.uint8))


def test_depth_from_disparity_and_right_view():
    disp = np.array([[10.0, np.inf], [5.0, 0.0]])
    z = synth.depth_from_disparity(disp, focal=100, baseline=2)
    assert z[0, 0] == 20 and z[1, 0] == 40 and np.isfinite(z).all()  # invalid → nearest valid
    left = np.full((2, 6), 2.0)
    right = synth.right_view_disparity(left)
    assert np.isnan(right[:, 4:]).all() and (right[:, :4] == 2).all()


def test_cdd11_composites_share_one_scene_in_onerestore_order(img):
    scene = synth.make_scene(img, _rng())
    low = synth.low_light(
        img, _rng(5), gamma=scene.gamma, light=scene.light, exposure=scene.exposure
    )
    hazy_low = synth.haze(low, scene.depth, _rng(), beta=scene.beta, airlight=scene.airlight)
    assert np.allclose(synth.compose(img, "low_haze", scene, _rng(5)), hazy_low)
    rain_snow = synth.snow(
        synth.rain(img, _rng(), layer=scene.rain), _rng(), mask=scene.snow, color=1.0
    )
    hazed = synth.haze(rain_snow, scene.depth, _rng(), beta=scene.beta, airlight=scene.airlight)
    assert np.allclose(synth.compose(img, "haze_rain_snow", scene, _rng()), hazed)
    with pytest.raises(ValueError, match="fog"):
        synth.compose(img, "fog", scene, _rng())


def test_photos_come_from_installed_wheels():
    for photo in mini.PHOTOS:
        assert mini.photo_path(photo).is_file()
    assert os.path.basename(mini.photo_path(mini.PHOTOS[0])) == "astronaut.png"
