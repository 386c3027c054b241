"""Restoring arbitrary images with a checkpoint: CLI, odd sizes, corrupt files, tiling."""

import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image

from m2ir_lib import restore as restore_cli
from m2ir_lib.core.config import PROFILES
from m2ir_lib.engine.restore import restore_tensor
from m2ir_lib.engine.runs import load_checkpoint
from m2ir_lib.engine.train import train

SMOKE = PROFILES["smoke"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from data_prep.mini import build_mini

    root = tmp_path_factory.mktemp("mini")
    manifest = build_mini(root, seed=0, size="smoke")["mini_3d"]
    cfg = dataclasses.replace(SMOKE.train, iters=1, num_workers=0)
    return train(SMOKE.model, cfg, manifest, root, root / "run", profile="smoke", progress=False)


def test_cli_restores_odd_sizes_and_reports_corrupt_files(checkpoint, tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((37, 29, 3)) * 255).astype(np.uint8)).save(src / "odd.png")
    Image.fromarray((rng.random((20, 24, 3)) * 255).astype(np.uint8)).save(src / "b.jpg")
    (src / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    out = tmp_path / "out"
    code = restore_cli.main(
        [str(src), "--checkpoint", str(checkpoint), "--out", str(out), "--device", "cpu"]
    )
    err = capsys.readouterr().err
    assert code == 1  # one input failed
    assert "broken.png" in err and "cannot read" in err
    assert Image.open(out / "odd.png").size == (29, 37)
    assert Image.open(out / "b.png").size == (24, 20)
    assert not (out / "broken.png").exists()


def test_cli_missing_input_is_a_clear_error(checkpoint, tmp_path, capsys):
    code = restore_cli.main(
        [str(tmp_path / "nope.png"), "--checkpoint", str(checkpoint), "--out", str(tmp_path / "o")]
    )
    assert code == 1 and "no such file" in capsys.readouterr().err


def test_cli_bad_checkpoint_is_a_clear_error(tmp_path, capsys):
    img = tmp_path / "a.png"
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(img)
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    code = restore_cli.main([str(img), "--checkpoint", str(bad), "--out", str(tmp_path / "o")])
    assert code == 1 and "cannot load checkpoint" in capsys.readouterr().err


def test_tiling_stitches_exactly():
    x = torch.rand(1, 3, 45, 70)
    pointwise = lambda t: 0.5 * t + 0.1  # noqa: E731  (any tiling must reproduce it exactly)
    tiled = restore_tensor(pointwise, x, tile=16, overlap=5)
    assert torch.allclose(tiled, pointwise(x), atol=1e-6)


def test_tiling_with_the_network(checkpoint):
    model, _ = load_checkpoint(checkpoint)
    x = torch.rand(1, 3, 40, 56)
    with torch.no_grad():
        whole = model(x).clamp(0, 1)
    assert torch.equal(restore_tensor(model, x, tile=64), whole)  # fits one tile: untouched
    tiled = restore_tensor(model, x, tile=32, overlap=8)
    assert tiled.shape == x.shape and torch.isfinite(tiled).all()
    # Attention is global within a tile, so tiles see less context; the seams stay small.
    assert (tiled - whole).abs().mean() < 0.02


def test_bad_tiling_arguments():
    with pytest.raises(ValueError, match="overlap"):
        restore_tensor(lambda t: t, torch.rand(1, 3, 8, 8), tile=8, overlap=8)
    with pytest.raises(ValueError, match=r"\(1, 3, H, W\)"):
        restore_tensor(lambda t: t, torch.rand(3, 8, 8))
