"""What a reproduction costs (issue 9): derived schedules × measured throughput, per table."""

import json
import runpy
import sys
from pathlib import Path

import pytest

from m2ir_lib.core.config import get_profile
from m2ir_lib.workbook import cost

REPO = Path(__file__).resolve().parents[1]


def test_without_a_measurement_the_table_says_not_measured_yet(tmp_path):
    df = cost.reproduction_cost(get_profile("paper"), folder=tmp_path).set_index("table")
    assert (df["GPU-hours"] == cost.NOT_MEASURED).all()
    assert (df["2×RTX 4090 hours (extrapolated)"] == cost.NOT_MEASURED).all()
    # derived from the published counts: 3D 142,431 samples/epoch -> 4,451 it × 150 epochs
    assert df.loc["I", "iterations"] == 2 * 4451 * 150 and df.loc["I", "runs"] == 2
    assert df.loc["VII", "iterations"] == 8 * 750 * 20  # §IV-C: 20 epochs of Rain100L ×120
    assert "VI" not in df.index  # Table VI reuses Table I's runs
    assert df.loc["all", "runs"] == df.drop(index="all")["runs"].sum()


def test_committed_measurements_feed_the_table_only_when_they_exist():
    found = sorted((REPO / "benchmarks" / "measured").glob("reproduction_cost_*.json"))
    df = cost.reproduction_cost(get_profile("paper"))
    if not found:
        assert (df["GPU-hours"] == cost.NOT_MEASURED).all()
    else:
        assert df["basis"].str.startswith("measured").all()


@pytest.mark.slow
def test_cost_script_at_smoke_size_feeds_the_table(tmp_path, monkeypatch):
    argv = ["reproduction_cost.py", "--smoke", "--iters", "3", "--skip", "1",
            "--precisions", "fp32", "--out", str(tmp_path)]  # fmt: skip
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as done:
        runpy.run_path(str(REPO / "benchmarks" / "reproduction_cost.py"), run_name="__main__")
    assert done.value.code == 0
    found = json.loads((tmp_path / "reproduction_cost_cpu.json").read_text())
    run = found["runs"][0]
    assert run["precision"] == "fp32" and run["steps"] == 3 and len(run["loss"]) == 3
    assert run["global_batch"] == 2 and run["images_per_s"] > 0
    df = cost.reproduction_cost(get_profile("paper"), folder=tmp_path).set_index("table")
    images = df.loc["I", "samples (M)"] * 1e6
    assert df.loc["I", "GPU-hours"] == pytest.approx(images / run["images_per_s"] / 3600, rel=0.01)
    assert df.loc["I", "2×RTX 4090 hours (extrapolated)"] == "no scaling factor for this GPU"
    assert df.loc["I", "basis"].startswith("measured: ")


def test_a_rehearsal_does_not_shrink_the_cost_table(tmp_path, monkeypatch):
    monkeypatch.setenv("M2IR_REHEARSAL", "network=smoke,iters=1,patch=32")
    df = cost.reproduction_cost(get_profile("paper"), folder=tmp_path).set_index("table")
    assert df.loc["I", "iterations"] == 2 * 4451 * 150
