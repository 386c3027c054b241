"""DDP path of the training loop (§IV-A: 2 GPUs): two gloo processes under torchrun on CPU."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from m2ir_lib.engine.checkpoint import read_checkpoint

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_two_process_gloo_ranks_agree(smoke_data, tmp_path):
    root, manifest = smoke_data
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "m2ir_lib.train",
        "--profile",
        "smoke",
        "--manifest",
        str(manifest),
        "--data-root",
        str(root),
        "--out",
        str(tmp_path),
        "--device",
        "cpu",
    ]
    done = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    ckpt = read_checkpoint(tmp_path / "final.pt")
    meta = ckpt["meta"]
    assert meta["world_size"] == 2 and ckpt["step"] == 4
    # Both ranks saw different data (disjoint sampler slices) yet hold the same weights.
    sums = meta["rank_checksums"]
    assert len(sums) == 2 and sums[0] == sums[1]
    log = pd.read_csv(tmp_path / "log.csv")
    assert list(log["step"]) == [1, 2, 3, 4]  # rank 0 alone writes the log
    assert "Traceback" not in done.stderr
    # Issue 9, defect 2: one process trains on the same global batch and schedule.
    one = tmp_path / "one"
    cmd1 = [sys.executable, "-m", "m2ir_lib.train"] + cmd[cmd.index("m2ir_lib.train") + 1 :]
    cmd1[cmd1.index("--out") + 1] = str(one)
    done1 = subprocess.run(cmd1, env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done1.returncode == 0, done1.stderr[-3000:]
    meta1 = read_checkpoint(one / "final.pt")["meta"]
    assert meta1["world_size"] == 1 and meta1["global_batch"] == meta["global_batch"] == 2
    assert (meta1["accumulation"], meta["accumulation"]) == (2, 1)
    assert list(pd.read_csv(one / "log.csv")["lr"]) == list(log["lr"])
    assert "global batch 2 = 2 process(es) × 1 × accumulation 1" in done.stdout
    # Issue 24: the samples each step was taken on, counted in the loop (summed over ranks).
    for folder in (tmp_path, one):
        done_meta = json.loads((folder / "meta.json").read_text())
        assert done_meta["samples_per_step"] == [2] and done_meta["samples_stepped"] == 8
