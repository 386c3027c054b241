"""Image-quality metrics of §IV under the two protocols the paper's tables use (docs/data.md §5).

- ``peer`` (Tables I–III, V, VI): the PromptIR/AdaIR convention. RGB float in [0, 1], clipped,
  no uint8 rounding, centre-cropped to a multiple of 16, skimage PSNR (data_range=1) and skimage
  SSIM with its default 7×7 uniform window, averaged over channels (``channel_axis=-1``).
- ``weatherbench`` (Table IV): WeatherBench's ``evaluation.py`` convention, which follows
  BasicSR. The images are 8-bit files there, so values are rounded to uint8 first. PSNR and
  SSIM are computed on the Y channel (BT.601, MATLAB ``rgb2ycbcr``) on the 0–255 scale, with
  4 border pixels cropped. SSIM is MATLAB-style: an 11×11 Gaussian window with σ = 1.5 and
  population covariance, averaged over the 'valid' region only (window centres at least
  5 px from the border). skimage's ``gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False`` computes exactly this (it crops the 5-px half window before
  averaging); ``tests/test_metrics.py`` checks it against a direct 'valid' convolution.
  LPIPS (AlexNet, v0.1) and FID need pretrained weights. They are computed only when those
  weights are on this machine, and nothing is ever downloaded; otherwise the value is
  ``NA_WEIGHTS``.
"""

from __future__ import annotations

import functools
import hashlib
import os
import warnings
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

Protocol = Literal["peer", "weatherbench"]
PROTOCOLS = ("peer", "weatherbench")
NA_WEIGHTS = "n/a (weights unavailable)"
# torchvision's ImageNet AlexNet, the trunk of LPIPS-alex; the name carries its sha256 prefix.
ALEXNET_FILE = "alexnet-owt-7be5be79.pth"
PEER_CROP_BASE = 16  # PromptIR utils/image_utils.py::crop_img(base=16)
WEATHERBENCH_CROP = 4  # WeatherBench evaluation.py crop_border


# ---------------------------------------------------------------------------------------------
# Geometry and colour
# ---------------------------------------------------------------------------------------------


def center_crop_multiple(img: np.ndarray, base: int = PEER_CROP_BASE) -> np.ndarray:
    """Centre-crop an HWC (or CHW-free HW) array so H and W are multiples of ``base``.

    Same arithmetic as PromptIR's ``crop_img``: the odd pixel goes to the bottom/right.
    """
    h, w = img.shape[:2]
    hc, wc = h - h % base, w - w % base
    if hc == 0 or wc == 0:
        raise ValueError(f"image {h}x{w} is smaller than the crop base {base}")
    top, left = (h - hc) // 2, (w - wc) // 2
    return img[top : top + hc, left : left + wc]


def rgb_to_y(img: np.ndarray) -> np.ndarray:
    """BT.601 luma of RGB in [0, 1] on the 0–255 scale (MATLAB ``rgb2ycbcr``: Y in [16, 235])."""
    return 16.0 + img @ np.array([65.481, 128.553, 24.966])


def _check_pair(restored: np.ndarray, target: np.ndarray) -> None:
    for name, a in (("restored", restored), ("target", target)):
        if a.ndim != 3 or a.shape[-1] != 3:
            raise ValueError(f"{name} must be an HWC RGB array, got shape {a.shape}")
    if restored.shape != target.shape:
        raise ValueError(f"shape mismatch: restored {restored.shape} vs target {target.shape}")


# ---------------------------------------------------------------------------------------------
# PSNR / SSIM
# ---------------------------------------------------------------------------------------------


def psnr_ssim(
    restored: np.ndarray, target: np.ndarray, protocol: Protocol = "peer"
) -> tuple[float, float]:
    """PSNR (dB) and SSIM of one image pair under a table's protocol (§IV-A, docs/data.md §5).

    Args:
        restored: (H, W, 3) float array, nominally in [0, 1] (clipped here).
        target: (H, W, 3) float array in [0, 1], same shape.
        protocol: ``"peer"`` or ``"weatherbench"`` (see the module docstring).

    Returns:
        ``(psnr, ssim)`` as floats; PSNR is ``inf`` for identical images.
    """
    _check_pair(restored, target)
    restored = np.clip(np.asarray(restored, dtype=np.float64), 0.0, 1.0)
    target = np.clip(np.asarray(target, dtype=np.float64), 0.0, 1.0)
    if protocol == "peer":
        restored, target = center_crop_multiple(restored), center_crop_multiple(target)
        with np.errstate(divide="ignore"):  # identical images: skimage returns inf
            psnr = peak_signal_noise_ratio(target, restored, data_range=1.0)
        ssim = structural_similarity(target, restored, data_range=1.0, channel_axis=-1)
        return float(psnr), float(ssim)
    if protocol == "weatherbench":
        # The script reads 8-bit image files: round, then Y on the 0–255 scale, then crop 4.
        c = WEATHERBENCH_CROP
        y_r = rgb_to_y(np.round(restored * 255.0) / 255.0)[c:-c, c:-c]
        y_t = rgb_to_y(np.round(target * 255.0) / 255.0)[c:-c, c:-c]
        with np.errstate(divide="ignore"):
            psnr = peak_signal_noise_ratio(y_t, y_r, data_range=255.0)
        ssim = structural_similarity(
            y_t,
            y_r,
            data_range=255.0,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
        )
        return float(psnr), float(ssim)
    raise ValueError(f"unknown protocol {protocol!r}; expected one of {PROTOCOLS}")


# ---------------------------------------------------------------------------------------------
# LPIPS (AlexNet, v0.1), only from local weights
# ---------------------------------------------------------------------------------------------


def alexnet_weights_path() -> Path:
    """Local file of the AlexNet trunk: ``$TORCH_HOME/hub/checkpoints/`` (never fetched)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / ALEXNET_FILE


def _sha256_prefix_ok(path: Path) -> bool:
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return digest.startswith(ALEXNET_FILE.rsplit("-", 1)[1].split(".")[0])


class LPIPSMetric:
    """LPIPS-alex v0.1 (WeatherBench ``evaluation.py``), built without any network access.

    The linear heads ship inside the ``lpips`` wheel; the AlexNet trunk is read from
    ``weights_path`` (default: torchvision's cache). Use ``LPIPSMetric.load()``, which returns
    ``None`` when the trunk is missing or does not match its published hash.
    """

    def __init__(self, net):
        self.net = net

    @classmethod
    def load(
        cls,
        weights_path: str | os.PathLike | None = None,
        device: str = "cpu",
        verify_hash: bool = True,
    ) -> LPIPSMetric | None:
        """The metric, or ``None`` if the AlexNet weights are not available locally.

        Args:
            weights_path: torchvision ``alexnet`` state dict; default ``alexnet_weights_path()``.
            device: where to run it.
            verify_hash: check the file's sha256 against the prefix in its published name.
        """
        path = Path(weights_path) if weights_path else alexnet_weights_path()
        if not path.is_file() or (verify_hash and not _sha256_prefix_ok(path)):
            return None
        # heavy optional dependencies (lpips, torchvision): only for WeatherBench's LPIPS
        import lpips
        import torchvision

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # lpips passes torchvision's deprecated `pretrained`
            net = lpips.LPIPS(net="alex", version="0.1", pnet_rand=True, verbose=False)
        alex = torchvision.models.alexnet(weights=None)
        alex.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        # lpips splits alexnet.features into slices whose children keep their feature index.
        for piece in net.net.children():
            for idx, layer in piece.named_children():
                layer.load_state_dict(alex.features[int(idx)].state_dict())
        return cls(net.to(device).eval())

    def __call__(self, restored: np.ndarray, target: np.ndarray) -> float:
        """LPIPS distance of two (H, W, 3) arrays in [0, 1] (full image, RGB)."""
        _check_pair(restored, target)
        dev = next(self.net.parameters()).device

        def to_t(a):  # (H, W, 3) -> (1, 3, H, W)
            t = torch.from_numpy(np.clip(a, 0, 1).astype(np.float32)).permute(2, 0, 1)[None]
            return t.to(dev)

        with torch.no_grad():
            return float(self.net(to_t(restored), to_t(target), normalize=True).item())


# ---------------------------------------------------------------------------------------------
# FID, only from a local Inception file
# ---------------------------------------------------------------------------------------------


# The standard FID network's weights (pytorch-fid's port of TF-Inception, 2015-12-05).
FID_WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"
FID_TOO_FEW = "n/a (FID needs at least two images per set)"
FID_BATCH = 32  # images per Inception forward pass (pytorch-fid's own default is 50)


def fid_inception(weights: str | os.PathLike, device: str = "cpu"):
    """pytorch-fid's ``InceptionV3`` (pool3, 2048-d) with weights read from ``weights``.

    The file is the state dict pytorch-fid itself downloads (``FID_WEIGHTS_FILE``); the user
    gives its path. pytorch-fid's constructor fetches the weights from a URL, so its fetch is
    pointed at the local file for the duration of the call: nothing downloads.

    Raises:
        FileNotFoundError: no file at ``weights``.
        RuntimeError: the file is not a state dict of the FID Inception network.
    """

    path = Path(weights)
    if not path.is_file():
        raise FileNotFoundError(
            f"FID Inception weights {path} not found; give the path of {FID_WEIGHTS_FILE} "
            "(pytorch-fid's weights; README, 'Real data sets')"
        )
    return _fid_network(str(path.resolve()), path.stat().st_mtime_ns, str(device))


@functools.lru_cache(maxsize=2)
def _fid_network(path: str, mtime_ns: int, device: str):
    """One network per weights file and device (one per table, not one per task)."""
    from pytorch_fid import inception as fid_net  # heavy optional dependency: FID only

    state = torch.load(path, map_location="cpu", weights_only=True)
    fetch = fid_net.load_state_dict_from_url
    fid_net.load_state_dict_from_url = lambda *a, **k: state
    try:
        net = fid_net.InceptionV3([fid_net.InceptionV3.BLOCK_INDEX_BY_DIM[2048]])
    finally:
        fid_net.load_state_dict_from_url = fetch
    return net.to(device).eval()


def fid_features(net, images: list[np.ndarray], batch_size: int = FID_BATCH, device="cpu"):
    """The (N, 2048) pool3 features of (H, W, 3) images in [0, 1], `batch_size` at a time.

    Images of any sizes share a batch: each is resized to 299×299 first, exactly as the
    network's own input resize (bilinear, align_corners=False) would, so a batch gives the
    features one image at a time gives (up to float rounding).
    """
    out = []
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            batch = [
                F.interpolate(
                    torch.from_numpy(np.clip(a, 0, 1).astype(np.float32)).permute(2, 0, 1)[None],
                    size=(299, 299),
                    mode="bilinear",
                    align_corners=False,
                )
                for a in images[start : start + batch_size]
            ]
            feats = net(torch.cat(batch).to(device))[0]  # (B, 2048, 1, 1)
            out.append(feats.flatten(1).double().cpu().numpy())
    return np.concatenate(out)


def fid(
    restored: list[np.ndarray],
    target: list[np.ndarray],
    inception_weights: str | os.PathLike | None,
    device: str = "cpu",
    batch_size: int = FID_BATCH,
) -> float | str:
    """Fréchet Inception Distance between two image sets, or ``NA_WEIGHTS`` without weights.

    The standard FID network: pytorch-fid's InceptionV3 (the TF-Inception port of the
    original FID code) at 299×299, its own resizing and [-1, 1] scaling, pool3 features, and
    pytorch-fid's Fréchet distance. The paper does not name its FID code (docs/data.md §5); this is
    the usual one. With 200 images per weather type it is a weak statistic: treat it as
    secondary.

    Args:
        restored: list of (H, W, 3) arrays in [0, 1].
        target: list of (H, W, 3) arrays in [0, 1].
        inception_weights: path to pytorch-fid's weights (``FID_WEIGHTS_FILE``), or ``None``.
        device: where to run the network.
        batch_size: images per forward pass (`fid_features`).
    """
    if not inception_weights:
        return NA_WEIGHTS
    from pytorch_fid.fid_score import calculate_frechet_distance  # heavy optional dependency

    net = fid_inception(inception_weights, device)
    if len(restored) < 2 or len(target) < 2:
        return FID_TOO_FEW

    f1 = fid_features(net, restored, batch_size, device)
    f2 = fid_features(net, target, batch_size, device)
    mu1, mu2 = f1.mean(0), f2.mean(0)
    s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    return float(calculate_frechet_distance(mu1, s1, mu2, s2))
