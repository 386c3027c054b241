"""The training plan's cost, predicted from measured step times (m2ir_lib.workbook.budget) and
the pipeline's one bar in predicted seconds (issue 23)."""

import json

import pandas as pd
import pytest

from m2ir_lib import pipeline
from m2ir_lib.core.config import get_profile
from m2ir_lib.workbook import budget, experiments, settings, tables


def test_makespan_schedules_longest_first_on_free_workers():
    assert budget.makespan([3, 3, 2, 2, 2], 1) == 12
    assert budget.makespan([3, 3, 2, 2, 2], 2) == 7  # 3+2+2 | 3+2
    assert budget.makespan([5, 1, 1, 1], 4) == 5  # the longest run bounds any pool
    assert budget.makespan([], 8) == 0


def _runs(profile):
    data = settings.locate("derain", profile)  # the smoke stand-in, built on first use
    return [
        experiments.plan("a", profile, data, seed=0),
        experiments.plan("b", profile, data, seed=1),
        experiments.plan("c", profile, data, seed=2, train={"iters": 40}),
    ]


def test_prediction_reads_own_logs_then_the_reference_table_then_the_median(tmp_path, monkeypatch):
    profile = get_profile("smoke")
    monkeypatch.setenv("M2IR_RUNS", str(tmp_path / "runs"))
    runs = _runs(profile)
    own = experiments.run_dir(runs[0], profile)
    own.mkdir(parents=True)
    iters = runs[0].train.iters
    pd.DataFrame({"step": [iters], "lr": [0.0], "loss": [0.1], "time_s": [12.0]}).to_csv(
        own / "log.csv", index=False
    )
    ref = tmp_path / "results" / "smoke"
    ref.mkdir(parents=True)
    ref_key = experiments.run_dir(runs[1], profile).name
    pd.DataFrame(
        {
            "run": ["b", "renamed"],
            "cache": [ref_key, "old-key"],
            "steps": [runs[1].train.iters, 10],
            "train_minutes": [0.5, 1.0],
        }
    ).to_csv(ref / budget.REFERENCE, index=False)
    pred = budget.predicted_seconds(runs, profile, root=tmp_path).set_index("run")
    moved = experiments.plan("renamed", profile, runs[0].data, seed=5, train={"iters": 20})
    by_name = budget.predicted_seconds([moved], profile, root=tmp_path)
    assert by_name["seconds"].iloc[0] == 120.0 and "same run name" in by_name["source"].iloc[0]
    assert pred.loc["a", "seconds"] == 12.0 and pred.loc["a", "source"] == "this run's log"
    assert pred.loc["b", "seconds"] == 30.0 and "reference" in pred.loc["b", "source"]
    per_iter = (12.0 / iters + 30.0 / runs[1].train.iters) / 2
    assert pred.loc["c", "seconds"] == pytest.approx(40 * per_iter)
    assert "median" in pred.loc["c", "source"]
    order = [r.label for r in budget.longest_first(runs, pred.reset_index())]
    assert order == list(pred["seconds"].sort_values(ascending=False).index)
    line = budget.plan_line(pred.reset_index())
    assert line.startswith("3 training runs, predicted") and "on 8" in line


def test_the_workbook_plan_holds_every_notebooks_runs():
    profile = get_profile("smoke")
    plan = {(r.label, r.seed) for r in tables.workbook_plan(profile, seeds=2)}
    data = settings.locate("derain", profile)
    for t in tables.ABLATIONS:
        ablation = {(r.label, r.seed) for r in tables.ablation_runs(t, profile, data, seeds=2)}
        assert ablation <= plan, t
    trained = {(r.label, r.seed) for r in tables.training_plan(profile, seeds=2)}
    assert trained <= plan


def test_clock_counts_predicted_seconds_and_never_runs_past_a_stage():
    clock = pipeline.Clock({"train": 3.0, "nb": 2.0}, "test")
    try:
        clock.start("train")
        clock.limit = 1.0  # as if the stage ended early on the bar
        clock.bar.update(1.0)
        assert clock.bar.n == 1.0 and clock.bar.total == 5
        clock.done("train")
        assert clock.bar.n == 3.0
        clock.start("nb")
        clock.done("nb")
        assert clock.bar.n == 5.0
    finally:
        clock.close()


def test_notebook_parameters_are_the_cells_defaults_then_the_given_ones():
    nb = pipeline.notebooks()[2]
    got = pipeline.notebook_parameters(nb, {"seeds": 5})
    assert got["profile"] == "smoke" and got["seeds"] == 5 and got["data_root"] == ""
    assert json.dumps(got)  # plain values, as papermill injects them


def test_a_whole_run_trains_the_plan_first_with_notebook_02s_parameters(tmp_path, monkeypatch):
    import nbformat

    calls = []
    (tmp_path / "notebooks").mkdir()
    for name in ("00_data.ipynb", "02_training.ipynb", "03_table.ipynb"):
        nb = nbformat.v4.new_notebook()
        nb.metadata["kernelspec"] = {"name": "python3", "language": "python"}
        cell = 'profile: str = "smoke"\nseeds: int = 3\nseed: int = 0'
        nb.cells = [nbformat.v4.new_code_cell(cell, metadata={"tags": ["parameters"]})]
        nbformat.write(nb, tmp_path / "notebooks" / name)
    monkeypatch.setattr(pipeline, "train_plan", lambda prof, params, walk: calls.append(params))
    monkeypatch.setattr(pipeline.pm, "execute_notebook", lambda *a, **k: calls.append(a[0]))
    monkeypatch.setattr(pipeline.summary, "write_summary", lambda *a, **k: "page")
    pipeline.run("smoke", root=tmp_path, parameters={"seed": 1})
    assert calls[0] == {"profile": "smoke", "seeds": 3, "seed": 1}  # before any notebook
    assert [str(c).rsplit("/", 1)[-1] for c in calls[1:]] == [
        "00_data.ipynb",
        "02_training.ipynb",
        "03_table.ipynb",
    ]
    times = pd.read_csv(tmp_path / "results" / "smoke" / "pipeline_times.csv")
    assert times["notebook"].iloc[0] == pipeline.TRAINING
    calls.clear()
    pipeline.run("smoke", root=tmp_path, only="03")  # one notebook: it trains what it needs
    assert len(calls) == 1
