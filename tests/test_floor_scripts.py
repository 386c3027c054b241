"""The below-the-input scripts: floor_diagnosis.py's split of an error into a global offset
and the rest, and floor_budget.py's variants."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest


def _script(name):
    path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


fd = _script("floor_diagnosis")


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


def test_budget_variants_parse_or_refuse():
    parse = _script("floor_budget").parse_variant
    assert parse("default") == ({}, None)
    train, tasks = parse("iters=1200,tasks=deblur+derain")
    assert train == {"iters": 1200, "warmup_iters": 120, "cosine_iters": 1200}
    assert tasks == ("deblur", "derain")
    for bad in ("iters=0", "iters=x", "lr=1", "tasks="):
        with pytest.raises(SystemExit, match="expected iters=N"):
            parse(bad)
