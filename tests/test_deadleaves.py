"""data_prep.deadleaves: the dead-leaves training images of the mini benchmark (issue 22)."""

import numpy as np

from data_prep import deadleaves


def _palette(seed=0, mean=0.4, spread=0.25, n=2048):
    rng = np.random.default_rng(seed)
    return np.clip(rng.normal(mean, spread, (n, 3)), 0, 1)


def test_same_seed_same_image_and_depth():
    pal = _palette()
    a = deadleaves.dead_leaves((48, 64), np.random.default_rng(3), pal)
    b = deadleaves.dead_leaves((48, 64), np.random.default_rng(3), pal)
    c = deadleaves.dead_leaves((48, 64), np.random.default_rng(4), pal)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_image_range_and_depth_map_in_unit_interval():
    img, depth = deadleaves.dead_leaves((64, 48), np.random.default_rng(0), _palette())
    assert img.shape == (64, 48, 3) and depth.shape == (64, 48)
    assert 0 <= img.min() and img.max() <= 1
    assert depth.min() == 0 and depth.max() == 1
    # the occlusion order is a depth order: it varies within rows, not only down the image
    assert np.std(depth - depth.mean(axis=1, keepdims=True)) > 0.02
    only_order = deadleaves.dead_leaves((64, 48), np.random.default_rng(0), _palette(), ramp=0.0)[1]
    assert len(np.unique(np.round(only_order, 3))) > 5


def test_brightness_contrast_and_colour_follow_the_palette():
    """Over a few images the mean, contrast and channel balance are the palette's."""
    rng = np.random.default_rng(1)
    for mean, spread in ((0.3, 0.2), (0.6, 0.1)):
        pal = _palette(mean=mean, spread=spread)
        pal[:, 2] *= 0.7  # a colour cast the images must keep
        imgs = [deadleaves.dead_leaves((64, 64), rng, pal)[0] for _ in range(6)]
        got = np.mean([i.mean() for i in imgs])
        assert abs(got - pal.mean()) < 0.08, (mean, got)
        assert np.mean([i.std() for i in imgs]) > 0.5 * pal.std()
        rgb = np.mean([i.reshape(-1, 3).mean(0) for i in imgs], axis=0)
        assert rgb[2] < rgb[0] and rgb[2] < rgb[1]
        assert not np.allclose(imgs[0][..., 0], imgs[0][..., 1])  # colour, not grayscale


def test_radii_follow_the_power_law_between_the_bounds():
    r = deadleaves.radii(np.random.default_rng(0), 200_000, 1.0, 100.0, alpha=3.0)
    assert r.min() >= 1.0 and r.max() <= 100.0
    # p(r) ∝ r^-3: P(r > 2) = (2^-2 − 100^-2) / (1 − 100^-2) ≈ 0.2499
    assert abs((r > 2).mean() - 0.2499) < 0.005


def test_palette_of_draws_the_image_colours():
    img = np.zeros((8, 8, 3), np.uint8)
    img[:4] = (255, 0, 0)
    pal = deadleaves.palette_of(img, np.random.default_rng(0), n=1000)
    assert set(map(tuple, pal.round(3))) <= {(1.0, 0.0, 0.0), (0.0, 0.0, 0.0)}
    assert 0.4 < pal[:, 0].mean() < 0.6
