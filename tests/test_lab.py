"""`make lab` shows figures: its notebooks' kernels plot inline (issue 25).

The test asks make itself which environment `make lab` gives JupyterLab (a stand-in `jupyter`
records it), then runs a plotting cell in the kernel JupyterLab starts for the notebooks
(their kernelspec, `python3`: this venv's Python) under that environment. A Makefile that
exports MPLBACKEND=Agg to every target gives the kernel a backend that draws nothing.
"""

import json
import os
import shutil
import subprocess
import sys

import pytest
from nbclient import NotebookClient

from m2ir_lib.workbook.results import repo_root

ROOT = repo_root()


def lab_environment(tmp_path) -> dict:
    """The environment `make lab` starts JupyterLab with, from a shell without MPLBACKEND."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    fake = tmp_path / "bin"
    fake.mkdir()
    dump = tmp_path / "lab-env.json"
    record = "import json, os, sys; json.dump(dict(os.environ), open(sys.argv[1], 'w'))"
    (fake / "jupyter").write_text(f'#!/bin/sh\nexec {sys.executable} -c "{record}" {dump}\n')
    (fake / "jupyter").chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k not in ("MPLBACKEND", "MAKEFLAGS")}
    # -o setup: the venv is there already; BIN: our `jupyter` instead of the venv's
    subprocess.run(
        ["make", "-s", "-o", "setup", "lab", f"BIN={fake}"], cwd=ROOT, env=env, check=True
    )
    return json.loads(dump.read_text())


@pytest.mark.notebook
def test_make_lab_kernel_shows_a_figure_inline(tmp_path, python3_notebook):
    env = lab_environment(tmp_path)
    assert env.get("MPLBACKEND", "").lower() != "agg", "make lab must not export MPLBACKEND=Agg"
    nb = python3_notebook("import matplotlib.pyplot as plt\nplt.plot([0, 1])")
    client = NotebookClient(
        nb, kernel_name="python3", timeout=180, resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute(env=env)
    kinds = [k for o in nb.cells[0].outputs for k in o.get("data", {})]
    assert "image/png" in kinds, f"the plotting cell gave no figure, only {kinds}"
