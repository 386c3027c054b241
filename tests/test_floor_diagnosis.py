"""benchmarks/floor_diagnosis.py: its split of an error into a global offset and the rest."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "floor_diagnosis.py"
_spec = importlib.util.spec_from_file_location("floor_diagnosis", _PATH)
fd = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fd)


def test_a_pure_brightness_offset_is_forgiven_and_measured():
    clean = np.random.default_rng(0).uniform(0.2, 0.7, (3, 16, 24))
    s = fd._scores(clean + 0.1, clean)
    assert s["psnr"] == pytest.approx(20.0, abs=1e-6)  # 10·log10(1 / 0.1²)
    assert s["psnr_offset_free"] > 100 and s["mean_shift"] == pytest.approx(0.1)


def test_structural_damage_is_not_forgiven():
    rng = np.random.default_rng(1)
    clean = rng.uniform(0.2, 0.7, (3, 16, 24))
    noise = rng.normal(0, 0.05, clean.shape)
    noise -= noise.mean(axis=(1, 2), keepdims=True)  # zero-mean per channel: no offset at all
    s = fd._scores(clean + noise, clean)
    assert s["psnr_offset_free"] == pytest.approx(s["psnr"], abs=1e-9)
    assert abs(s["mean_shift"]) < 1e-12
