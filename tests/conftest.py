"""Shared test set-up: offline, deterministic, small."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest  # noqa: E402
import torch  # noqa: E402

if os.environ.get("PYTEST_XDIST_WORKER"):  # `make test`: one thread per worker, two workers
    os.environ["OMP_NUM_THREADS"] = "1"  # notebook kernels and subprocesses inherit it
    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seeded():
    """Every test starts from the same RNG state."""
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="module")
def smoke_data(tmp_path_factory):
    """(root, manifest) of the smoke stand-in's 3D setting, built once per test module."""
    from data_prep.mini import build_mini

    root = tmp_path_factory.mktemp("mini")
    return root, build_mini(root, seed=0, size="smoke")["mini_3d"]
