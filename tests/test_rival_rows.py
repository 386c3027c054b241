"""The rivals in the tables: PromptIR and AdaIR trained beside M²IR (Tables I–IV), the authors'
released weights scored under the same protocol (Tables I–II), and the run plumbing that must
accept a rival's config (notebook 02's description, the torchrun entry point)."""

import dataclasses
import json
from pathlib import Path

import pandas as pd
import pytest
import torch

from m2ir_lib.core.config import get_profile
from m2ir_lib.core.rivals import RivalConfig
from m2ir_lib.engine import runs
from m2ir_lib.workbook import (
    plots,
    results,
    runinfo,
    scoring,
    stats,
    table_xiii,
    tables,
    verdicts,
)

KEYS = json.loads((Path(__file__).parent / "fixtures" / "released_keys.json").read_text())


def test_rivals_train_like_m2ir_in_tables_i_and_ii_and_on_request_in_iii_iv():
    runs = tables.table_runs("I", get_profile("smoke"), seed=4)
    m2ir, base, promptir, adair = runs
    assert (promptir.label, adair.label) == ("PromptIR (ours, smoke)", "AdaIR (ours, smoke)")
    for r in (promptir, adair):
        assert isinstance(r.model, RivalConfig) and not r.model.unused_layers
        assert (r.train, r.seed, r.tasks, r.data) == (m2ir.train, 4, m2ir.tasks, m2ir.data)
    assert "Restormer architecture" in base.note  # the baseline row says what it is
    assert len(tables.table_runs("III", get_profile("smoke"))) == 2
    assert [
        r.model.arch for r in tables.table_runs("IV", get_profile("smoke"), rivals=True)[2:]
    ] == [
        "promptir",
        "adair",
    ]
    assert len(tables.table_runs("I", get_profile("smoke"), rivals=False)) == 2
    assert len(tables.table_runs("VI", get_profile("smoke"), rivals=True)) == 2  # only Tables I–IV
    planned = {
        r.label for r in tables.training_plan(get_profile("smoke")) if r.data.setting == "5d"
    }
    assert {"PromptIR (ours, smoke)", "AdaIR (ours, smoke)"} <= planned


def test_describe_names_the_rival_network():
    described = runinfo.describe(
        tables.table_runs("II", get_profile("smoke")), get_profile("smoke")
    )
    assert list(described["block"])[2:] == ["PromptIR (transformer)", "AdaIR (transformer)"]
    assert list(described["experts"])[2:] == ["no ADEC", "no ADEC"]


def test_torchrun_entry_point_rebuilds_a_rival_config(tmp_path, monkeypatch):
    run = tables.table_runs("I", get_profile("smoke"))[3]
    seen = {}
    monkeypatch.setattr("m2ir_lib.engine.runs.cached_train", lambda **spec: seen.update(spec))
    spec = {
        "model_cfg": dataclasses.asdict(run.model),
        "train_cfg": dataclasses.asdict(run.train),
    }
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    runs.main([str(path)])
    assert seen["model_cfg"] == run.model and seen["train_cfg"] == run.train


def _released_restormer(path, fill=torch.zeros):
    """A file laid out as the authors' Restormer release (BasicSR `params`): names, shapes."""
    spec = KEYS["networks"]["restormer"]
    torch.save({spec["container"]: {k: fill(*s) for k, s in spec["keys"].items()}}, path)
    return path


def test_released_checkpoints_parameter(tmp_path):
    assert scoring.released_checkpoints("") == {}
    a, b = tmp_path / "promptir.ckpt", tmp_path / "restormer.pth"
    a.write_bytes(b"x")
    b.write_bytes(b"x")
    assert scoring.released_checkpoints(f"promptir={a}, restormer={b}") == {
        "promptir": a,
        "restormer": b,
    }
    assert scoring.released_checkpoints(str(tmp_path)) == {"promptir": a, "restormer": b}
    with pytest.raises(FileNotFoundError, match="no adair weights file at .*nope.ckpt"):
        scoring.released_checkpoints(f"promptir={a},adair={tmp_path / 'nope.ckpt'}")
    with pytest.raises(ValueError, match="unknown rival 'swinir'"):
        scoring.released_checkpoints(f"swinir={a}")
    with pytest.raises(FileNotFoundError, match="no such folder"):
        scoring.released_checkpoints(str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="holds none of"):
        scoring.released_checkpoints(str(tmp_path / "empty"))


def test_released_weights_are_scored_beside_the_table(tmp_path, monkeypatch):
    """A paper-size Restormer file with all-zero weights restores nothing (output = input), so
    its row must equal the degraded input's image for image, under the same protocol."""
    monkeypatch.setenv("M2IR_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("M2IR_RESULTS", str(tmp_path / "results"))
    torch.set_num_threads(1)
    runs = tables.table_runs("I", get_profile("smoke"), rivals=False)
    released = scoring.released_checkpoints(f"restormer={_released_restormer(tmp_path / 'r.pth')}")
    rows = scoring.score_rows("I", runs, {}, profile=get_profile("smoke"), released=released)
    mine = rows[rows["method"] == "Restormer (released weights)"]
    floor = rows[rows["method"] == results.FLOOR]
    assert len(mine) and (mine["metric"] != results.STATUS).all()
    assert mine["note"].str.contains("released weights").all() and (mine["n"] > 0).all()
    merged = mine.merge(floor, on=["task", "metric"])
    assert (merged["value_x"] - merged["value_y"]).abs().max() < 1e-4
    per_image = results.read_per_image("smoke", "I")
    assert set(per_image.loc[per_image["method"] == "Restormer (released weights)", "run"]) == {
        "r.pth"
    }
    cache = list((tmp_path / "runs" / "smoke" / "released" / "restormer").glob("eval-*.csv"))
    assert len(cache) == 1  # a second scoring reads it; a changed file gets a new key
    again = scoring.score_rows(
        "I", runs, {}, profile=get_profile("smoke"), released=released, write=False
    )
    assert again.equals(rows)


def test_conclusions_compare_m2ir_with_named_rivals():
    rows = []
    for task, gain in (("dehaze", 2.0), ("derain", 1.0)):
        for k in range(4):
            base = 20.0 + 3 * k
            for method, v in (
                ("M²IR (ours, smoke)", base + gain + 0.01 * k),
                ("AdaIR (ours, smoke)", base + 0.5 * gain),
                (results.FLOOR, base),
            ):
                rows.append(
                    ("I", method, "r", 0, task, "", float("nan"), f"im{k}", f"im{k}", "PSNR", v)
                )
    per_image = pd.DataFrame(rows, columns=stats.PER_IMAGE_COLUMNS)
    cells = stats.cell_stats(per_image)
    mine = [
        results.rows("I", m, {(t, "PSNR"): v}, profile="smoke", seed=0, data="mini-synthetic")
        for m, t, v in zip(cells["method"], cells["task"], cells["value"], strict=True)
    ]
    table = results.with_average(pd.concat([results.paper_table("I"), *mine]))
    text = verdicts.conclusions(
        table, per_image, "M²IR (ours, smoke)", rivals=["AdaIR (ours, smoke)", "PromptIR (x)"]
    ).data
    line = next(x for x in text.split("\n\n") if x.startswith("**Claim: M²IR beats AdaIR"))
    assert "PSNR of 2: 2 supports" in line and "(Average: supports)" in line
    assert "PromptIR" not in text  # no per-image scores: no sentence
    assert "only the rivals above are" in text


def test_table_xiii_measures_the_rivals_beside_m2ir(monkeypatch):
    monkeypatch.setattr(table_xiii, "PAPER_SIZE", (32, 48))  # the rows, not the paper's size
    torch.set_num_threads(1)
    rows = table_xiii.efficiency_rows(get_profile("smoke"), repeats=1)
    got = rows[rows["metric"] != results.STATUS].pivot_table(
        index="method", columns="metric", values="value"
    )
    latency = "latency GPU (ms)" if torch.cuda.is_available() else "latency CPU (ms)"
    for name in ("Restormer", "PromptIR", "AdaIR"):
        assert got.loc[f"{name} (ours, smoke config)", latency] > 0
    # CPU and GPU milliseconds never share a column; the device not present is a status row
    assert "latency (ms)" not in got.columns
    if not torch.cuda.is_available():
        assert "latency GPU (ms)" not in got.columns
        lost = rows.loc[
            (rows["metric"] == results.STATUS)
            & (rows["method"] == "M²IR (ours, smoke config, w/o DA-CLIP)"),
            "note",
        ]
        assert any(n.startswith("latency GPU (ms): not measured: no GPU") for n in lost)
        measured = rows[(rows["metric"] == "latency CPU (ms)")]
        assert measured["device"].str.startswith("CPU").all()
        assert got.loc[f"{name} (ours, smoke config)", "FLOPs (G)"] > 0
    paper = got.loc["PromptIR (authors' config)"]
    assert paper["Params (M)"] == pytest.approx(35.592263)
    note = rows.loc[rows["method"] == "PromptIR (authors' config)", "note"].iloc[0]
    assert "34.1M / 745G" in note
    assert (
        not table_xiii.efficiency_rows(get_profile("smoke"), repeats=1, rivals=False)["method"]
        .str.contains("AdaIR")
        .any()
    )


def test_rival_rows_share_the_papers_colour():
    assert plots.method_colour("AdaIR (ours, mini)") == plots.method_colour("AdaIR")
    assert plots.method_colour("PromptIR (released weights)") == plots.method_colour("PromptIR")
