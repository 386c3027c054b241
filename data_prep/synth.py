"""Synthetic degradations of the embedded mini benchmark (docs/data.md §6).

One small function per degradation, usable on any image. Images are float arrays (H, W, 3)
in [0, 1] (except `gaussian_noise`, which keeps the peers' uint8 formula); every random draw
comes from the ``rng`` argument (``np.random.Generator``), and every parameter left ``None``
is drawn from the range in the docstring. Lengths are given for a 480-px long side (the size
of Rain100L and BSD68) and scale with the image: ``s = max(H, W) / 480``.

The formulas are the published ones where there is one (noise: PromptIR; haze: atmospheric
scattering with OneRestore's ranges; motion blur: Boracchi & Foi random trajectories as in
DeblurGAN; low light: OneRestore's Retinex darkening; snow: OneRestore's mask composite;
CDD11: OneRestore's order low → rain → snow → haze). Rain streaks and snow masks are our own
procedural stand-ins for the pre-rendered masks the real data sets use.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage, signal

from m2ir_lib.data.datasets import add_gaussian_noise

REF_SIDE = 480  # the long side at which the pixel lengths below hold


def _scale(shape) -> float:
    return max(shape[:2]) / REF_SIDE


def _draw(rng, lo, hi, value):
    return float(rng.uniform(lo, hi)) if value is None else float(value)


def _convolve(img: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Convolution with reflected borders (no dark frame), channel by channel."""
    ph, pw = kernel.shape[0] // 2, kernel.shape[1] // 2
    pad = ((ph, kernel.shape[0] - 1 - ph), (pw, kernel.shape[1] - 1 - pw))
    pad += ((0, 0),) * (img.ndim - 2)
    k = kernel if img.ndim == 2 else kernel[..., None]
    return signal.fftconvolve(np.pad(img, pad, mode="reflect"), k, mode="valid", axes=(0, 1))


def _splat(xy: np.ndarray, weights: np.ndarray, size: int) -> np.ndarray:
    """Bilinear accumulation of points (x, y) (centred on 0) onto a size × size grid."""
    grid = np.zeros((size, size))
    x, y = xy[:, 0] + size // 2, xy[:, 1] + size // 2
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    fx, fy = x - x0, y - y0
    for dx, dy, w in (
        (0, 0, (1 - fx) * (1 - fy)),
        (1, 0, fx * (1 - fy)),
        (0, 1, (1 - fx) * fy),
        (1, 1, fx * fy),
    ):
        xi, yi = x0 + dx, y0 + dy
        ok = (xi >= 0) & (xi < size) & (yi >= 0) & (yi < size)
        np.add.at(grid, (yi[ok], xi[ok]), (w * weights)[ok])
    return grid


def line_kernel(length: float, angle: float) -> np.ndarray:
    """An anti-aliased line of ``length`` px at ``angle`` degrees from vertical; each pixel it
    crosses gets weight ≈ 1 (not normalised: a streak keeps its seed's amplitude)."""
    size = int(np.ceil(length)) | 1
    t = np.arange(-length / 2, length / 2 + 1e-9, 0.25)
    a = np.deg2rad(angle)
    return _splat(np.stack([t * np.sin(a), t * np.cos(a)], 1), np.full(len(t), 0.25), size + 2)


# ---------------------------------------------------------------------------------------------
# Noise
# ---------------------------------------------------------------------------------------------


def gaussian_noise(clean_u8: np.ndarray, sigma: float, rng) -> np.ndarray:
    """Gaussian noise, the peers' exact formula: ``clip(x + N(0, 1)·σ, 0, 255).astype(uint8)``
    on the uint8 image, σ ∈ {15, 25, 50} (the one implementation is
    `m2ir_lib.data.datasets.add_gaussian_noise`, also used on the fly in training and testing)."""
    return add_gaussian_noise(clean_u8, sigma, rng)


# ---------------------------------------------------------------------------------------------
# Depth (for haze)
# ---------------------------------------------------------------------------------------------

# skimage `stereo_motorcycle`: calibration of the 4× down-sampled Middlebury 2014 pair.
MOTORCYCLE_CALIBRATION = {"focal": 994.978, "baseline": 193.001, "doffs": 31.086}


def depth_from_disparity(
    disp: np.ndarray, focal: float, baseline: float, doffs: float = 0.0
) -> np.ndarray:
    """Metric depth of a disparity map, Middlebury's ``Z = f·B / (d + doffs)`` (mm); pixels
    without a valid disparity (inf, NaN, ≤ 0) take the nearest valid value."""
    valid = np.isfinite(disp) & (disp > 0)
    idx = ndimage.distance_transform_edt(~valid, return_distances=False, return_indices=True)
    disp = disp[tuple(idx)]
    return focal * baseline / (disp + doffs)


def right_view_disparity(disp_left: np.ndarray) -> np.ndarray:
    """The right view's disparity by forward-warping the left one (x_r = x_l − d); where two
    pixels land on one, the nearer (larger disparity) wins; holes are left as NaN."""
    h, w = disp_left.shape
    out = np.full((h, w), -np.inf)
    ys, xs = np.nonzero(np.isfinite(disp_left))
    d = disp_left[ys, xs]
    xr = np.round(xs - d).astype(int)
    ok = (xr >= 0) & (xr < w)
    np.maximum.at(out, (ys[ok], xr[ok]), d[ok])
    out[~np.isfinite(out)] = np.nan
    return out


def depth_proxy(img: np.ndarray, rng) -> np.ndarray:
    """A normalised distance map in [0, 1] for photos without depth (our design, docs/data.md §6):
    ``norm(0.6·(1 − row/H) + 0.4·blur(luminance) + 0.1·low-frequency noise)``; upper and bright,
    smooth regions (sky) count as far. Blur σ = H/8."""
    h, w = img.shape[:2]
    rows = np.repeat(1 - np.arange(h)[:, None] / max(h - 1, 1), w, axis=1)
    lum = ndimage.gaussian_filter(img @ np.array([0.299, 0.587, 0.114]), sigma=h / 8)
    noise = ndimage.gaussian_filter(rng.standard_normal((h, w)), sigma=h / 6)
    d = 0.6 * rows + 0.4 * lum + 0.1 * noise / (noise.std() + 1e-8)
    return normalize(d)


def normalize(x: np.ndarray) -> np.ndarray:
    """Min–max scaling to [0, 1]."""
    return (x - x.min()) / max(float(x.max() - x.min()), 1e-8)


# ---------------------------------------------------------------------------------------------
# Haze
# ---------------------------------------------------------------------------------------------


def haze(img, depth01, rng, beta=None, airlight=None, max_depth: float = 0.7):
    """Atmospheric scattering: ``I = J·t + A·(1 − t)``, ``t = exp(−β·d)``,
    ``d = min(depth01, 0.7)`` (OneRestore ``syn_haze``: β ~ U[1, 2], A ~ U[0.6, 0.9]).

    Args:
        img: clean image J.
        depth01: normalised distance in [0, 1] (0 near), e.g. `depth_proxy` or real depth.
        rng: generator for β and A.
        beta, airlight: fixed values instead of draws.
        max_depth: cap on d (OneRestore's 0.7: the farthest transmission is exp(−0.7β)).
    """
    beta, a = _draw(rng, 1.0, 2.0, beta), _draw(rng, 0.6, 0.9, airlight)
    t = np.exp(-beta * np.minimum(depth01, max_depth))[..., None]
    return np.clip(img * t + a * (1 - t), 0, 1)


# ---------------------------------------------------------------------------------------------
# Rain
# ---------------------------------------------------------------------------------------------


def rain_layer(shape, rng, density=None, length=None, angle=None, width=None, peak=None):
    """Streak layer S of the additive model ``O = B + S`` (JORDER family; Rain100L-like light,
    one-direction rain), our procedural stand-in for rendered masks:
    seeds on a fraction ``density`` ~ U[0.2 %, 0.6 %] of pixels with amplitude U[0.3, 1],
    smeared by a line of ``length`` ~ U[10, 30]·s px at ``angle`` ~ U[−25°, 25°] from vertical,
    widened by a Gaussian of σ = ``width`` ~ U[0.3, 0.7]·s, scaled so its 99th percentile is
    ``peak`` ~ U[0.3, 0.6] (tuned so that the inputs score ≈ 22–27 dB,
    near Rain100L's). Returns (H, W) in [0, 1]."""
    h, w = shape[:2]
    s = _scale(shape)
    density = _draw(rng, 0.002, 0.006, density)
    length, angle = _draw(rng, 10, 30, length) * s, _draw(rng, -25, 25, angle)
    width, peak = max(_draw(rng, 0.3, 0.7, width) * s, 0.3), _draw(rng, 0.3, 0.6, peak)
    seeds = (rng.random((h, w)) < density) * rng.uniform(0.3, 1.0, (h, w))
    streaks = ndimage.gaussian_filter(_convolve(seeds, line_kernel(max(length, 2), angle)), width)
    on = streaks[streaks > 1e-3]
    ref = np.percentile(on, 99) if on.size else 1.0
    return np.clip(streaks / max(ref, 1e-6) * peak, 0, 1)


def rain(img, rng, layer=None):
    """Rain streaks, ``O = clip(B + S, 0, 1)`` with S from `rain_layer` (drawn if None)."""
    layer = rain_layer(img.shape, rng) if layer is None else layer
    return np.clip(img + layer[..., None], 0, 1)


# ---------------------------------------------------------------------------------------------
# Motion blur
# ---------------------------------------------------------------------------------------------


def motion_kernel(rng, length=None, size=None, iters: int = 2000, exposure=None):
    """A random camera-shake PSF (Boracchi & Foi 2012 trajectories, DeblurGAN's parameters).

    A particle of speed ``length / iters`` per step takes ``iters`` steps; its velocity drifts
    by ``expl·(shake·N(0, 1) − centripetal·x)`` and is renormalised each step, with impulsive
    reversals (probability ``big_shake·expl``); centripetal ~ 0.7·U, big_shake ~ 0.2·U,
    shake ~ 10·U, start angle ~ 360°·U, expl = 0.005. The first ``exposure`` ~ U[0.5, 1] of
    the path is splatted bilinearly and normalised to sum 1.

    Args:
        rng: generator.
        length: path length in px (default U[8, 24], at the image scale given by the caller).
        size: kernel side (default: odd, ≥ length + 3).
        iters: trajectory steps.
        exposure: fraction of the path used.
    """
    length = _draw(rng, 8, 24, length)
    size = size or (int(np.ceil(length)) + 3) | 1
    exposure = _draw(rng, 0.5, 1.0, exposure)
    centripetal, big_shake, shake = 0.7 * rng.random(), 0.2 * rng.random(), 10 * rng.random()
    expl, step = 0.005, length / (iters - 1)
    u, n = rng.random(iters), rng.standard_normal((iters, 2))
    jolt = rng.random(iters) - 0.5
    v = complex(np.exp(1j * np.deg2rad(360 * rng.random()))) * step
    x = np.zeros(iters, dtype=complex)
    for t in range(iters - 1):
        reverse = 2 * v * np.exp(1j * (np.pi + jolt[t])) if u[t] < big_shake * expl else 0
        dv = reverse + expl * (shake * complex(n[t, 0], n[t, 1]) - centripetal * x[t]) * step
        v = (v + dv) / abs(v + dv) * step
        x[t + 1] = x[t] + v
    x = x[: max(2, int(exposure * iters))]
    x -= (x.real.max() + x.real.min()) / 2 + 1j * (x.imag.max() + x.imag.min()) / 2
    k = _splat(np.stack([x.real, x.imag], 1), np.ones(len(x)), size)
    return k / k.sum()


# Path length (px at the 480-px reference side) of the camera-shake PSF, calibrated on input
# PSNR to the set it stands for: GoPro's blurry test frames score about 25.6 dB against their
# sharp frames (the figure commonly quoted for its 1,111 test pairs; the set is not on this
# machine to re-measure). On the former test set (16 tiles of 4 photographs at a 256-px long
# side) U[30, 90] gave 25.55 dB; on the 8 whole photographs at 320 px it gives 23.06 dB (they
# hold more fine detail per pixel), and U[9.5, 28.5] gives 25.7 dB (U[10, 30]: 25.38; U[9, 27]:
# 25.98), measured with the build's own draws (docs/data.md §6).
BLUR_LENGTH = (9.5, 28.5)


def motion_blur(img, rng, kernel=None, noise=None):
    """Camera-shake blur ``B = k ⊛ I + n``: k from `motion_kernel` (length U[`BLUR_LENGTH`]·s
    px), reflected borders, n ~ N(0, σ²) with σ = ``noise`` ~ U[0, 1/255]."""
    if kernel is None:
        kernel = motion_kernel(rng, length=rng.uniform(*BLUR_LENGTH) * _scale(img.shape))
    sigma = _draw(rng, 0.0, 1 / 255, noise)
    return np.clip(_convolve(img, kernel) + rng.normal(0, sigma, img.shape), 0, 1)


# ---------------------------------------------------------------------------------------------
# Low light
# ---------------------------------------------------------------------------------------------


def light_map(img, sigma=None):
    """Illumination L: the channel maximum (LIME's initial estimate) smoothed by a Gaussian of
    σ = 6·s px (a stand-in for LIME's guided filter)."""
    sigma = 6 * _scale(img.shape) if sigma is None else sigma
    return np.clip(ndimage.gaussian_filter(img.max(axis=2), sigma), 0, 1)


def low_light(img, rng, gamma=None, light=None, exposure=None, photons=None, read_noise=None):
    """Low light by Retinex darkening (OneRestore ``syn_low``), then sensor noise:
    ``R = I / (L + ε)``, ``I_low = α·R·L^γ`` with γ ~ U[2, 3.5] and an exposure α ~ U[0.3, 0.6]
    (ours: LOL's low images are darker than γ alone makes them), then Poisson–Gaussian noise
    ``Poisson(k·I_low)/k + N(0, σ_r²)``, k ~ U[100, 500] photons at white, σ_r ~ U[0.005, 0.015]
    (our choice; OneRestore adds plain Gaussian noise).

    Args:
        img: clean image.
        rng: generator.
        gamma: darkening exponent.
        light: illumination map L (default `light_map`); CDD11 scenes share one.
        exposure: α.
        photons, read_noise: k and σ_r.
    """
    light = light_map(img) if light is None else light
    gamma, alpha = _draw(rng, 2.0, 3.5, gamma), _draw(rng, 0.3, 0.6, exposure)
    k, sr = _draw(rng, 100, 500, photons), _draw(rng, 0.005, 0.015, read_noise)
    eps = 1e-3
    dark = alpha * img / (light[..., None] + eps) * (light[..., None] + eps) ** gamma
    dark = np.clip(dark, 0, 1)
    noisy = rng.poisson(dark * k) / k + rng.normal(0, sr, img.shape)
    return np.clip(noisy, 0, 1)


# ---------------------------------------------------------------------------------------------
# Snow
# ---------------------------------------------------------------------------------------------


def snow_mask(shape, rng, layers=None, angle=None):
    """Snow mask M in [0, 1] from 2–3 flake layers (near → far), our procedural stand-in for
    Snow100K masks: per layer, flake centres on a fraction U[0.05 %, 0.5 %] of pixels, discs of
    radius U[0.5, 4]·s px, a Gaussian blur σ = r/2, a short fall streak (length 2r at ``angle``
    ~ U[−30°, 30°] from vertical), opacity U[0.6, 1]; ``M = 1 − Π(1 − M_layer)``."""
    h, w = shape[:2]
    s = _scale(shape)
    layers = int(rng.integers(2, 4)) if layers is None else layers
    angle = _draw(rng, -30, 30, angle)
    keep = np.ones((h, w))
    for _ in range(layers):
        r = max(rng.uniform(0.5, 4.0) * s, 0.5)
        centres = (rng.random((h, w)) < rng.uniform(0.0005, 0.005)).astype(float)
        g = int(np.ceil(r)) + 1
        yy, xx = np.mgrid[-g : g + 1, -g : g + 1]
        disc = np.clip(r + 0.5 - np.hypot(yy, xx), 0, 1)
        flake = signal.fftconvolve(disc, line_kernel(max(2 * r, 1.0), angle))
        flake = ndimage.gaussian_filter(flake / flake.max(), r / 2)
        layer = np.clip(_convolve(centres, flake / flake.max()), 0, 1) * rng.uniform(0.6, 1.0)
        keep *= 1 - layer
    return 1 - keep


def snow(img, rng, mask=None, color=None):
    """Snow composite ``I = J·(1 − M) + c·M`` (OneRestore; DesnowNet's model with a grey
    chromatic map), c ~ U[0.9, 1], M from `snow_mask` (drawn if None)."""
    mask = snow_mask(img.shape, rng) if mask is None else mask
    c = _draw(rng, 0.9, 1.0, color)
    return np.clip(img * (1 - mask[..., None]) + c * mask[..., None], 0, 1)


# ---------------------------------------------------------------------------------------------
# CDD11 composites
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scene:
    """What the 11 CDD11 variants of one image share: one depth, light map and masks, and
    one draw of every parameter (so variants differ only in which degradations apply)."""

    depth: np.ndarray
    light: np.ndarray
    rain: np.ndarray
    snow: np.ndarray
    gamma: float
    exposure: float
    beta: float
    airlight: float


def make_scene(img, rng, depth01=None) -> Scene:
    """Draw a `Scene` for ``img`` (depth: ``depth01`` or `depth_proxy`)."""
    depth01 = depth_proxy(img, rng) if depth01 is None else depth01
    return Scene(
        depth01,
        light_map(img),
        rain_layer(img.shape, rng),
        snow_mask(img.shape, rng),
        gamma=rng.uniform(2.0, 3.5),
        exposure=rng.uniform(0.3, 0.6),
        beta=rng.uniform(1.0, 2.0),
        airlight=rng.uniform(0.6, 0.9),
    )


def compose(img, kind: str, scene: Scene, rng):
    """CDD11 type ``kind`` (e.g. ``low_haze_rain``) in OneRestore's order low → rain → snow →
    haze, from one `Scene`; ``rng`` draws only the low-light sensor noise."""
    parts = set(kind.split("_"))
    if not parts <= {"low", "haze", "rain", "snow"}:
        raise ValueError(f"unknown CDD11 type {kind!r}")
    out = img
    if "low" in parts:
        out = low_light(out, rng, gamma=scene.gamma, light=scene.light, exposure=scene.exposure)
    if "rain" in parts:
        out = rain(out, rng, layer=scene.rain)
    if "snow" in parts:
        out = snow(out, rng, mask=scene.snow, color=1.0)
    if "haze" in parts:
        out = haze(out, scene.depth, rng, beta=scene.beta, airlight=scene.airlight)
    return out
