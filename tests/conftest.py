"""Shared test set-up: offline, deterministic, small."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import nbformat  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

if os.environ.get("PYTEST_XDIST_WORKER"):  # `make test`: one thread per worker, two workers
    os.environ["OMP_NUM_THREADS"] = "1"  # notebook kernels and subprocesses inherit it
    torch.set_num_threads(1)


@pytest.fixture
def python3_notebook():
    """`python3_notebook(*cells)`: a notebook on the `python3` kernel (the venv's, which the
    pipeline, nbval and `make lab` start); a str is a code cell, a cell object is kept."""

    def make(*cells):
        nb = nbformat.v4.new_notebook()
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                     "language": "python"}  # fmt: skip
        nb.cells = [nbformat.v4.new_code_cell(c) if isinstance(c, str) else c for c in cells]
        return nb

    return make


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
