"""Metrics of §IV under the peer and WeatherBench protocols (docs/data.md §5), on known values."""

import math

import numpy as np
import pytest
import torch
from scipy.signal import convolve2d
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from m2ir_lib.data import metrics
from m2ir_lib.data.metrics import NA_WEIGHTS, LPIPSMetric, center_crop_multiple, psnr_ssim, rgb_to_y


@pytest.fixture
def pair():
    rng = np.random.default_rng(0)
    target = rng.random((40, 56, 3))
    restored = np.clip(target + rng.normal(0, 0.05, target.shape), 0, 1)
    return restored, target


@pytest.mark.parametrize("protocol", ["peer", "weatherbench"])
def test_identical_images_give_inf_and_one(pair, protocol):
    _, target = pair
    psnr, ssim = psnr_ssim(target, target.copy(), protocol)
    assert psnr == math.inf
    assert ssim == pytest.approx(1.0)


def test_known_mse_gives_known_psnr():
    target = np.full((32, 32, 3), 0.5)
    restored = target + 0.1  # MSE = 0.01 -> PSNR = 10·log10(1/0.01) = 20 dB
    psnr, _ = psnr_ssim(restored, target)
    assert psnr == pytest.approx(20.0, abs=1e-9)


def test_peer_matches_skimage_on_cropped_rgb(pair):
    restored, target = pair
    psnr, ssim = psnr_ssim(restored, target, "peer")
    # 40x56 crops to 32x48 (centre); skimage called exactly as PromptIR/AdaIR do (channel_axis=-1).
    r, t = restored[4:36, 4:52], target[4:36, 4:52]
    assert psnr == pytest.approx(peak_signal_noise_ratio(t, r, data_range=1))
    assert ssim == pytest.approx(structural_similarity(t, r, data_range=1, channel_axis=-1))
    # The crop matters: the uncropped value differs.
    assert psnr != pytest.approx(peak_signal_noise_ratio(target, restored, data_range=1), abs=1e-6)


def test_peer_clips_to_unit_range():
    target = np.full((16, 16, 3), 1.0)
    restored = np.full((16, 16, 3), 1.3)  # clipped to 1 -> identical
    assert psnr_ssim(restored, target)[0] == math.inf


def test_center_crop_multiple_geometry():
    img = np.zeros((481, 321, 3))
    assert center_crop_multiple(img).shape == (480, 320, 3)
    with pytest.raises(ValueError, match="smaller than the crop base"):
        center_crop_multiple(np.zeros((10, 40, 3)))


def test_rgb_to_y_matlab_range():
    assert rgb_to_y(np.zeros((1, 1, 3)))[0, 0] == pytest.approx(16.0)
    assert rgb_to_y(np.ones((1, 1, 3)))[0, 0] == pytest.approx(235.0)


def _matlab_ssim(a, b):
    """BasicSR/MATLAB SSIM written out: 11×11 Gaussian σ 1.5, 'valid' convolution, 0–255."""
    x = np.arange(11) - 5
    g = np.exp(-(x**2) / (2 * 1.5**2))
    w = np.outer(g, g) / np.outer(g, g).sum()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    f = lambda z: convolve2d(z, w, mode="valid")  # noqa: E731
    mu_a, mu_b = f(a), f(b)
    va, vb, cov = f(a * a) - mu_a**2, f(b * b) - mu_b**2, f(a * b) - mu_a * mu_b
    m = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (va + vb + c2))
    return m.mean()


def test_weatherbench_is_y_crop4_matlab_ssim(pair):
    restored, target = pair
    psnr, ssim = psnr_ssim(restored, target, "weatherbench")
    q = lambda a: rgb_to_y(np.round(a * 255) / 255)[4:-4, 4:-4]  # noqa: E731
    yr, yt = q(restored), q(target)
    mse = np.mean((yr - yt) ** 2)
    assert psnr == pytest.approx(10 * np.log10(255**2 / mse))
    assert ssim == pytest.approx(_matlab_ssim(yt, yr), abs=1e-6)
    # And it is a different number from the peer protocol.
    assert psnr != pytest.approx(psnr_ssim(restored, target, "peer")[0], abs=1e-3)


def test_bad_inputs_raise(pair):
    restored, target = pair
    with pytest.raises(ValueError, match="unknown protocol"):
        psnr_ssim(restored, target, "basicsr")
    with pytest.raises(ValueError, match="shape mismatch"):
        psnr_ssim(restored[:32], target)
    with pytest.raises(ValueError, match="HWC"):
        psnr_ssim(restored[..., 0], target[..., 0])


def test_lpips_unavailable_without_local_trunk(tmp_path):
    assert LPIPSMetric.load(tmp_path / "missing.pth") is None
    assert metrics.fid([np.zeros((8, 8, 3))] * 2, [np.zeros((8, 8, 3))] * 2, None) == NA_WEIGHTS


def test_lpips_runs_from_a_local_trunk_without_download(tmp_path):
    import torchvision

    path = tmp_path / metrics.ALEXNET_FILE
    torch.save(torchvision.models.alexnet(weights=None).state_dict(), path)
    assert LPIPSMetric.load(path) is None  # random weights fail the published hash
    lp = LPIPSMetric.load(path, verify_hash=False)
    a = np.random.default_rng(0).random((32, 32, 3))
    assert lp(a, a) == pytest.approx(0.0, abs=1e-6)
    assert lp(a, 1 - a) > 0
