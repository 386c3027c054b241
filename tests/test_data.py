"""m2ir_lib.data.datasets: image decoding, manifests, training crops, the peers' test noise."""

import struct
import zlib

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from m2ir_lib.data.datasets import (
    PAPER_REPEATS,
    EvalDataset,
    ImageReadError,
    TrainDataset,
    add_gaussian_noise,
    crop_to_multiple,
    dihedral,
    load_image,
    read_manifest,
)

COLS = ["split", "task", "degraded_path", "clean_path", "sigma", "dataset"]


def _png16(path, a):
    """A 16-bit PNG written by hand (Pillow cannot write 16-bit RGB)."""
    h, w, c = a.shape
    raw = b"".join(b"\x00" + a[y].astype(">u2").tobytes() for y in range(h))

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))

    ihdr = struct.pack(">IIBBBBB", w, h, 16, {1: 0, 3: 2}[c], 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def _rgb(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


# ---------------------------------------------------------------------------------------------
# Images
# ---------------------------------------------------------------------------------------------


def test_load_image_converts_gray_rgba_palette_and_16bit(tmp_path):
    gray = np.arange(48, dtype=np.uint8).reshape(6, 8)
    Image.fromarray(gray).save(tmp_path / "g.png")
    assert (load_image(tmp_path / "g.png") == gray[..., None]).all()
    rgba = np.dstack([_rgb(6, 8), np.full((6, 8), 7, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    assert (load_image(tmp_path / "a.png") == rgba[..., :3]).all()  # alpha dropped
    Image.fromarray(gray).convert("P").save(tmp_path / "p.png")
    assert load_image(tmp_path / "p.png").shape == (6, 8, 3)
    v16 = np.array([[65535, 32896, 300, 0]], np.uint16)
    _png16(tmp_path / "g16.png", v16[..., None])
    assert load_image(tmp_path / "g16.png")[0, :, 0].tolist() == [255, 128, 1, 0]  # high byte
    _png16(tmp_path / "c16.png", np.dstack([v16, v16, v16]))
    out = load_image(tmp_path / "c16.png")
    assert out.dtype == np.uint8 and out[0, :, 1].tolist() == [255, 128, 1, 0]


def test_load_image_names_corrupt_truncated_and_missing_files(tmp_path):
    (tmp_path / "bad.png").write_bytes(b"not an image")
    Image.fromarray(_rgb(64, 64)).save(tmp_path / "ok.png")
    data = (tmp_path / "ok.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    Image.fromarray(_rgb(64, 64)).save(tmp_path / "ok.jpg")
    data = (tmp_path / "ok.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    for name in ("bad.png", "cut.png", "missing.png", "cut.jpg"):
        with pytest.raises(ImageReadError, match=name):
            load_image(tmp_path / name)


def test_crop_to_multiple_is_the_peers_centre_crop():
    img = np.arange(321 * 481).reshape(321, 481)
    assert crop_to_multiple(img).shape == (320, 480)
    lol = np.arange(400 * 600).reshape(400, 600)
    assert (crop_to_multiple(lol) == lol[:, 4:596]).all()  # 600 % 16 = 8 → 4 each side


def test_dihedral_gives_eight_distinct_views():
    img = np.arange(12).reshape(3, 4, 1)
    views = {dihedral(img, m).tobytes() + bytes(dihedral(img, m).shape) for m in range(8)}
    assert len(views) == 8 and (dihedral(img, 0) == img).all()
    with pytest.raises(ValueError):
        dihedral(img, 8)


def test_noise_formula_truncates_like_the_peers():
    class Fixed(np.random.RandomState):
        def randn(self, *shape):
            return np.full(shape, 0.9)

    clean = np.array([[[10, 250, 0]]], np.uint8)
    # 10 + 0.9·1 = 10.9 → 10 (truncating cast); 250 + 0.9·10 = 259 → clipped 255
    assert add_gaussian_noise(clean, 1, Fixed()).tolist() == [[[10, 250, 0]]]
    assert add_gaussian_noise(clean, 10, Fixed()).tolist() == [[[19, 255, 9]]]


# ---------------------------------------------------------------------------------------------
# Manifests
# ---------------------------------------------------------------------------------------------


def _write(tmp_path, rows, name="m.csv"):
    path = tmp_path / name
    pd.DataFrame(rows, columns=COLS).to_csv(path, index=False)
    return path


def test_read_manifest_validates(tmp_path):
    ok = _write(
        tmp_path,
        [("train", "denoise", "", "c.png", 25, "x"), ("test", "derain", "d.png", "c.png", "", "x")],
    )
    df = read_manifest(ok)
    assert df["degraded_path"].tolist() == ["", "d.png"]
    assert df["sigma"].iloc[0] == 25 and np.isnan(df["sigma"].iloc[1])
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        read_manifest(tmp_path / "nope.csv")
    pd.DataFrame({"split": ["train"]}).to_csv(tmp_path / "cols.csv", index=False)
    with pytest.raises(ValueError, match="missing column"):
        read_manifest(tmp_path / "cols.csv")
    bad = _write(tmp_path, [("train", "dewarp", "d.png", "c.png", "", "x")], "t.csv")
    with pytest.raises(ValueError, match="unknown task"):
        read_manifest(bad)
    bad = _write(tmp_path, [("train", "derain", "", "c.png", "", "x")], "n.csv")
    with pytest.raises(ValueError, match="no degraded_path"):
        read_manifest(bad)


# ---------------------------------------------------------------------------------------------
# Training set
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def pairs(tmp_path):
    """Two 70×90 images (cropped to 64×80), a derain pair whose degraded file is the clean
    image itself (so alignment is checkable) and a denoising row."""
    for i in range(2):
        Image.fromarray(_rgb(70, 90, i)).save(tmp_path / f"c{i}.png")
    rows = [
        ("train", "derain", "c0.png", "c0.png", "", "x"),
        ("train", "denoise", "", "c1.png", 50, "x"),
        ("test", "derain", "c0.png", "c0.png", "", "x"),
    ]
    return tmp_path, _write(tmp_path, rows)


def test_train_items_are_aligned_crops_in_unit_range(pairs):
    root, manifest = pairs
    ds = TrainDataset(manifest, root, patch=32, seed=3)
    assert len(ds) == 2
    item = ds[0]
    assert item["degraded"].shape == (3, 32, 32) and item["degraded"].dtype == torch.float32
    assert torch.equal(item["degraded"], item["clean"])  # same place, same flip/rotation
    assert item["task"] == "derain" and np.isnan(item["sigma"])
    noisy = ds[1]
    diff = (noisy["degraded"] - noisy["clean"]) * 255
    assert noisy["sigma"] == 50 and 30 < diff.std() < 55 and noisy["clean"].max() <= 1


def test_train_randomness_is_seeded(pairs):
    root, manifest = pairs
    a, b = TrainDataset(manifest, root, 32, seed=1), TrainDataset(manifest, root, 32, seed=1)
    c = TrainDataset(manifest, root, 32, seed=2)
    xa, xb, xc = a[1]["degraded"], b[1]["degraded"], c[1]["degraded"]
    assert torch.equal(xa, xb) and not torch.equal(xa, xc)
    # (index, sample seed) keys are a pure function of the key
    assert torch.equal(a[(1, 7)]["degraded"], c[(1, 7)]["degraded"])


def test_train_loader_with_two_workers_is_deterministic(pairs):
    root, manifest = pairs
    ds = TrainDataset(manifest, root, 32, repeats={"derain": 3, "denoise": 2})
    assert len(ds) == 5

    def first_batch():
        torch.manual_seed(0)
        loader = torch.utils.data.DataLoader(ds, batch_size=5, num_workers=2, shuffle=True)
        return next(iter(loader))["degraded"]

    assert torch.equal(first_batch(), first_batch())


def test_train_repeats_and_bad_inputs(pairs, tmp_path):
    root, manifest = pairs
    assert len(TrainDataset(manifest, root, 32, repeats=PAPER_REPEATS)) == 120 + 3
    with pytest.raises(ValueError, match="no factor"):
        TrainDataset(manifest, root, 32, repeats={"derain": 2})
    with pytest.raises(ValueError, match="smaller than the 128"):
        TrainDataset(manifest, root, 128)[0]
    Image.fromarray(_rgb(40, 90)).save(root / "small.png")
    bad = _write(tmp_path, [("train", "derain", "small.png", "c0.png", "", "x")], "s.csv")
    with pytest.raises(ValueError, match="differ in size"):
        TrainDataset(bad, root, 32)[0]


def test_root_is_required(pairs, monkeypatch):
    _, manifest = pairs
    monkeypatch.delenv("M2IR_DATA", raising=False)
    with pytest.raises(ValueError, match="M2IR_DATA"):
        TrainDataset(manifest, None, 32)


# ---------------------------------------------------------------------------------------------
# Evaluation set
# ---------------------------------------------------------------------------------------------


def _peer_noisy(root, files, sigmas):
    """What PromptIR's test.py feeds the network: one np.random stream after seed(0)."""
    np.random.seed(0)
    out = {}
    for sigma in sigmas:
        for f in sorted(files):
            clean = crop_to_multiple(np.array(Image.open(root / f).convert("RGB")))
            out[f, sigma] = np.clip(clean + np.random.randn(*clean.shape) * sigma, 0, 255).astype(
                np.uint8
            )
    return out


@pytest.fixture
def bsd(tmp_path):
    files = ["b.png", "a.png", "c.png"]
    for i, (f, (h, w)) in enumerate(zip(files, [(33, 50), (40, 17), (21, 64)], strict=True)):
        Image.fromarray(_rgb(h, w, i)).save(tmp_path / f)
    rows = [("test", "denoise", "", f, s, "BSD68") for s in (50, 15, 25) for f in files]
    rows.append(("test", "derain", "b.png", "b.png", "", "Rain100L"))
    return tmp_path, files, _write(tmp_path, rows)


def test_eval_noise_equals_the_peers_stream(bsd):
    root, files, manifest = bsd
    expected = _peer_noisy(root, files, (15, 25, 50))
    ds = EvalDataset(manifest, root, tasks=["denoise"])
    assert [(it["name"], it["sigma"]) for it in ds][:3] == [("a", 15), ("b", 15), ("c", 15)]
    for i in reversed(range(len(ds))):  # any access order gives the same inputs
        it = ds[i]
        got = np.round(it["degraded"].numpy().transpose(1, 2, 0) * 255).astype(np.uint8)
        assert (got == expected[f"{it['name']}.png", it["sigma"]]).all()
        assert it["clean"].shape[1] % 16 == 0 and it["clean"].shape[2] % 16 == 0


def test_eval_sigma_subset_restarts_the_stream_and_caps_keep_inputs(bsd):
    root, files, manifest = bsd
    expected = _peer_noisy(root, files, (25,))
    ds = EvalDataset(manifest, root, tasks=["denoise"], sigmas=(25,))
    assert len(ds) == 3
    got = np.round(ds[0]["degraded"].numpy().transpose(1, 2, 0) * 255).astype(np.uint8)
    assert (got == expected["a.png", 25]).all()
    full, capped = EvalDataset(manifest, root), EvalDataset(manifest, root, max_images=1)
    assert len(capped) == 4
    assert torch.equal(capped[1]["degraded"], full[3]["degraded"])  # first σ=25 image
    rain = full[len(full) - 1]
    assert rain["task"] == "derain" and np.isnan(rain["sigma"]) and rain["dataset"] == "Rain100L"
    assert torch.equal(rain["degraded"], rain["clean"])
    with pytest.raises(IndexError):
        full[len(full)]
