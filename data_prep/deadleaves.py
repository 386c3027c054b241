"""Dead-leaves training images with natural-image statistics (docs/data.md §6).

The dead-leaves model (Matheron 1968; Lee, Mumford & Huang 2001) stacks random opaque shapes
whose radii follow a power law ``p(r) ∝ r^−α`` on ``[r_min, r_max]``; with α ≈ 3 the image is
scale invariant, with the occlusion edges and the 1/f² power spectrum of natural photographs.
Achddou, Gousseau & Ladjal ("Synthetic images as a regularity prior for image restoration
neural networks", SSVM 2021) train denoisers on such images alone and come close to training
on photographs; their later work on fully synthetic training adds textured leaves and blur.
This module follows that recipe at the mini benchmark's scale:

* leaves fall front to back ("falling leaves"): each new shape only covers pixels not yet
  covered, until under 0.1 % are left (the rest take the last leaf);
* shapes: discs, and rotated rectangles for straight edges (``rect_share``); radii from the
  power law with α = 3, r_min = 1 px, r_max = the image's long side;
* colours: drawn per leaf from a ``palette`` (an (N, 3) array of RGB colours in [0, 1]); the
  mini build passes the pixels of one real photograph per image, so that the training set's
  colour, brightness and contrast follow the test photographs' (only their colour histogram
  is used, never their structure);
* texture: a share ``texture_share`` of the leaves carries a sinusoidal grating (amplitude
  U[0, 0.25] of the colour, period U[4, 32] px, any orientation);
* rendered at 2× and averaged down (anti-aliased edges), then a Gaussian blur of σ ~ U[0, 0.6] px
  (the optics of a photograph: its edges are not one pixel sharp);
* depth: the occlusion order is a depth order (a leaf that falls later lies behind the ones
  already there). Each visible leaf's rank is turned into the share of the image covered by
  nearer leaves (so depths spread over [0, 1]) and blended half and half with a vertical ramp
  (the upper part of a scene is usually farther), then normalised to [0, 1]: the depth map of
  the haze model, as OneRestore's ``syn_haze`` uses a depth estimate.

Every draw comes from the ``rng`` argument, so a seed gives the same image bit for bit.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

ALPHA = 3.0  # radius density ∝ r^-α: scale invariance (Lee, Mumford & Huang 2001; Achddou et al.)
COVERAGE = 0.999  # stop when this share of the pixels is covered
SUPERSAMPLE = 2


def radii(rng, n: int, rmin: float, rmax: float, alpha: float = ALPHA) -> np.ndarray:
    """``n`` radii from ``p(r) ∝ r^−α`` on [rmin, rmax] (inverse CDF)."""
    u = rng.random(n)
    a = 1.0 - alpha
    return (rmin**a + u * (rmax**a - rmin**a)) ** (1.0 / a)


def dead_leaves(
    shape,
    rng,
    palette: np.ndarray,
    *,
    rmin: float = 1.0,
    rmax: float | None = None,
    alpha: float = ALPHA,
    rect_share: float = 0.3,
    texture_share: float = 0.3,
    blur: tuple[float, float] = (0.0, 0.6),
    ramp: float = 0.5,
) -> tuple[np.ndarray, np.ndarray]:
    """A dead-leaves image and its depth map.

    Args:
        shape: (H, W) of the output.
        rng: ``np.random.Generator``; every draw comes from it.
        palette: (N, 3) colours in [0, 1] the leaves draw from (uniformly, with replacement).
        rmin, rmax: radius range in output pixels (rmax default: the long side).
        alpha: power-law exponent of the radii.
        rect_share: share of rotated rectangles (the others are discs).
        texture_share: share of leaves with a sinusoidal grating.
        blur: range of the final Gaussian blur σ (output pixels).
        ramp: weight of the vertical ramp in the depth map (0: occlusion order only).

    Returns:
        (image (H, W, 3) float in [0, 1], depth (H, W) float in [0, 1], 0 = near).
    """
    h, w = int(shape[0]), int(shape[1])
    ss = SUPERSAMPLE
    hh, ww = h * ss, w * ss
    rmax = float(max(h, w)) if rmax is None else float(rmax)
    palette = np.asarray(palette, dtype=float).reshape(-1, 3)
    label = np.full((hh, ww), -1, dtype=np.int32)
    left = hh * ww
    stop = (1.0 - COVERAGE) * hh * ww
    leaves, chunk = 0, 4096
    while left > stop and leaves < 200_000:
        r = radii(rng, chunk, rmin * ss, rmax * ss, alpha)
        cy, cx = rng.uniform(-0.1 * hh, 1.1 * hh, chunk), rng.uniform(-0.1 * ww, 1.1 * ww, chunk)
        rect = rng.random(chunk) < rect_share
        theta, aspect = rng.uniform(0, np.pi, chunk), rng.uniform(0.3, 1.0, chunk)
        for i in range(chunk):
            ri = r[i]
            y0, y1 = max(int(cy[i] - ri), 0), min(int(cy[i] + ri) + 2, hh)
            x0, x1 = max(int(cx[i] - ri), 0), min(int(cx[i] + ri) + 2, ww)
            if y0 >= y1 or x0 >= x1:
                continue
            win = label[y0:y1, x0:x1]
            free = win < 0
            if not free.any():
                continue
            dy = np.arange(y0, y1)[:, None] + 0.5 - cy[i]
            dx = np.arange(x0, x1)[None, :] + 0.5 - cx[i]
            if rect[i]:
                c, s = np.cos(theta[i]), np.sin(theta[i])
                inside = (np.abs(c * dx + s * dy) <= ri) & (
                    np.abs(-s * dx + c * dy) <= ri * aspect[i]
                )
            else:
                inside = dx * dx + dy * dy <= ri * ri
            hit = inside & free
            n = int(hit.sum())
            if n:
                win[hit] = leaves + i
                left -= n
                if left <= stop:
                    break
        leaves += chunk
    last = int(label.max())
    label[label < 0] = last  # the last gaps take the last visible leaf
    # one colour and texture per leaf id that is visible
    ids, inverse = np.unique(label, return_inverse=True)
    inverse = inverse.reshape(label.shape)
    k = len(ids)
    colour = palette[rng.integers(0, len(palette), k)]
    textured = rng.random(k) < texture_share
    amp = np.where(textured, rng.uniform(0, 0.25, k), 0.0)
    period = rng.uniform(4, 32, k) * ss
    ang = rng.uniform(0, 2 * np.pi, k)
    phase = rng.uniform(0, 2 * np.pi, k)
    yy, xx = np.mgrid[0:hh, 0:ww]
    fy, fx = np.sin(ang) / period, np.cos(ang) / period
    grating = 1 + amp[inverse] * np.sin(
        2 * np.pi * (fx[inverse] * xx + fy[inverse] * yy) + phase[inverse]
    )
    img = np.clip(colour[inverse] * grating[..., None], 0, 1)
    # occlusion order → depth: share of the image covered by nearer leaves (mid-rank)
    area = np.bincount(inverse.ravel(), minlength=k).astype(float)
    nearer = (np.cumsum(area) - area / 2) / area.sum()  # ids are sorted = fall order
    occ = nearer[inverse]
    # back to the output size (area average) and the optics' blur
    img = img.reshape(h, ss, w, ss, 3).mean(axis=(1, 3))
    occ = occ.reshape(h, ss, w, ss).mean(axis=(1, 3))
    sigma = float(rng.uniform(*blur))
    if sigma > 0:
        img = ndimage.gaussian_filter(img, (sigma, sigma, 0))
    rows = np.repeat(1 - np.arange(h)[:, None] / max(h - 1, 1), w, axis=1)
    depth = (1 - ramp) * occ + ramp * rows
    depth = (depth - depth.min()) / max(float(depth.max() - depth.min()), 1e-8)
    return np.clip(img, 0, 1), depth


def palette_of(img_u8: np.ndarray, rng, n: int = 4096) -> np.ndarray:
    """``n`` colours drawn from the pixels of an RGB uint8 image (its colour histogram)."""
    flat = img_u8.reshape(-1, 3)
    return flat[rng.integers(0, len(flat), n)] / 255.0
