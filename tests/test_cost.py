"""What a reproduction costs (issue 9): derived schedules × measured throughput, per table."""

import json
import runpy
import sys
from pathlib import Path

import pytest

from m2ir_lib.core.config import get_profile
from m2ir_lib.workbook import cost, experiments, settings, tables

REPO = Path(__file__).resolve().parents[1]


def test_without_a_measurement_the_table_says_not_measured_yet(tmp_path):
    df = cost.reproduction_cost(get_profile("paper"), folder=tmp_path).set_index("table")
    assert (df["GPU-hours"] == cost.NOT_MEASURED).all()
    assert (df["2×RTX 4090 hours (extrapolated)"] == cost.NOT_MEASURED).all()
    # derived from the published counts: 3D 142,431 samples/epoch -> 4,451 it × 150 epochs;
    # Table I: M²IR and the Restormer-style network with 3 seeds each, PromptIR and AdaIR
    assert df.loc["I", "iterations"] == 8 * 4451 * 150 and df.loc["I", "runs"] == 8
    # §IV-C: 20 epochs of Rain100L ×120; without DA-CLIP weights the 'DACP MLP' row is the
    # full model (7 rows), whose seeds 1 and 2 and the all-off row's add 4 runs
    assert df.loc["VII", "iterations"] == 11 * 750 * 20
    assert "VI" not in df.index  # Table VI reuses Table I's runs
    assert df.loc["all", "runs"] == df.drop(index="all")["runs"].sum()


def test_the_cost_table_counts_every_run_the_default_plan_trains(tmp_path):
    """Notebook 02's plan (3 seeds, the rivals) plus the ablations of Tables VII–XII, each
    distinct run once: the table's total iterations are the plan's."""
    paper = get_profile("paper")
    derain = settings.locate("derain", paper)
    ablations = [r for t in tables.ABLATIONS
                 for r in tables.ablation_runs(t, paper, derain, seeds=3)]  # fmt: skip
    in_vii = {(r.label, r.seed) for r in ablations}  # training_plan's Table VII runs

    def key(r, ablation):  # a run's identity: its schedule depends on the ablation budget
        return (ablation, r.data.setting, r.model, r.train, r.seed, r.tasks)

    planned = {key(r, (r.label, r.seed) in in_vii) for r in tables.training_plan(paper, seeds=3)}
    planned |= {key(r, True) for r in ablations}
    assert {key(r, a) for _, r, a in cost.planned_runs(paper)} == planned

    iterations = 0
    for ablation, setting, _, train, _, _ in planned:
        reps = settings.SETTINGS[setting].repeats
        rows = cost.published_rows(setting)
        _, sched = experiments.schedule(paper, setting, rows, reps, train, ablation, cap=False)
        iterations += sched.iters
    df = cost.reproduction_cost(paper, folder=tmp_path).set_index("table")
    assert df.loc["all", "iterations"] == iterations == df.drop(index="all")["iterations"].sum()
    assert df.loc["all", "runs"] == len(planned)


def _reference(folder, speed, device="NVIDIA H100 80GB HBM3", preset="paper"):
    """A `gpu_reference_*.json` with fp32 training images/s per network."""
    train = [{"model": n, "label": n, "precision": "fp32", "images_per_s": v, "step_s": 32 / v,
              "global_batch": 32} for n, v in speed.items()]  # fmt: skip
    env = {"device": device, "preset": preset, "started": "2025-01-01T00:00:00+00:00"}
    path = folder / f"gpu_reference_{device.lower().replace(' ', '-')}.json"
    path.write_text(json.dumps({"env": env, "latency": [], "train": train}))


def test_measured_step_times_cost_each_run_at_its_network(tmp_path):
    speed = {"m2ir_mlp": 20.0, "m2ir_daclip": 18.0, "restormer": 30.0, "promptir": 25.0,
             "adair": 24.0}  # fmt: skip
    _reference(tmp_path, speed)
    df = cost.reproduction_cost(get_profile("paper"), folder=tmp_path).set_index("table")
    plan = cost.reproduction_plan(get_profile("paper"))
    table_i = plan[plan["table"] == "I"]
    hours = table_i["iterations"] * 32 / table_i["network"].map(speed) / 3600
    assert df.loc["I", "GPU-hours"] == pytest.approx(hours.sum(), abs=0.05)
    assert df.loc["I", "measured on"] == "NVIDIA H100 80GB HBM3"
    assert df.loc["I", "2×RTX 4090 hours (extrapolated)"] == pytest.approx(
        hours.sum() / cost.RTX4090_VS["NVIDIA H100 80GB HBM3"] / 2, abs=0.05
    )
    assert df["basis"].str.startswith("measured: seconds per step").all()


def test_a_network_left_unmeasured_is_named_and_a_smoke_file_ignored(tmp_path):
    _reference(tmp_path, {"m2ir_mlp": 20.0, "restormer": 30.0, "promptir": 25.0})
    df = cost.reproduction_cost(get_profile("paper"), folder=tmp_path).set_index("table")
    assert df.loc["I", "GPU-hours"] == f"{cost.NOT_MEASURED}: adair"
    assert isinstance(df.loc["III", "GPU-hours"], float)  # M²IR and Restormer-style only
    smoke = tmp_path / "smoke"
    smoke.mkdir()
    _reference(smoke, {n: 1.0 for n in cost.NETWORKS}, device="cpu", preset="smoke")
    df = cost.reproduction_cost(get_profile("paper"), folder=smoke)
    assert (df["GPU-hours"] == cost.NOT_MEASURED).all()


def test_committed_measurements_feed_the_table_only_when_they_exist():
    folder = REPO / "benchmarks" / "measured"
    found = sorted(folder.glob("reproduction_cost_*.json")) + [
        p for p in folder.glob("gpu_reference_*.json")
        if json.loads(p.read_text())["env"].get("preset") == "paper"
    ]  # fmt: skip
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
    assert df.loc["I", "iterations"] == 8 * 4451 * 150
