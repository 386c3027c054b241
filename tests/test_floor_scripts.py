"""Below the input: `workbook.floor`'s split of an error into a global offset and the rest
(run by floor_diagnosis.py and the notebooks of Tables II and III), and floor_budget.py's
variants."""

import dataclasses
import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from m2ir_lib.core.config import MODEL_PRESETS, get_profile
from m2ir_lib.core.model import M2IR
from m2ir_lib.workbook import experiments, floor, results, settings, tables


def _script(name):
    path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_pure_brightness_offset_is_forgiven_and_measured():
    clean = np.random.default_rng(0).uniform(0.2, 0.7, (3, 16, 24))
    s = floor.scores(clean + 0.1, clean)
    assert s["psnr"] == pytest.approx(20.0, abs=1e-6)  # 10·log10(1 / 0.1²)
    assert s["psnr_offset_free"] > 100 and s["mean_shift"] == pytest.approx(0.1)


def test_structural_damage_is_not_forgiven():
    rng = np.random.default_rng(1)
    clean = rng.uniform(0.2, 0.7, (3, 16, 24))
    noise = rng.normal(0, 0.05, clean.shape)
    noise -= noise.mean(axis=(1, 2), keepdims=True)  # zero-mean per channel: no offset at all
    s = floor.scores(clean + noise, clean)
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


def test_diagnosis_scores_the_input_and_each_rows_first_seed_per_column(tmp_path):
    from data_prep.mini import build
    from m2ir_lib.engine.checkpoint import config_to_dict, save_checkpoint

    root = tmp_path / "smoke"
    data = settings.Data("5d", build(root, seed=0, size="smoke")["mini_5d"], root, "smoke")
    m2ir = experiments.plan("M²IR (ours, smoke)", get_profile("smoke"), data)
    seed1 = dataclasses.replace(m2ir, seed=1, label=f"{m2ir.label}{tables.SEED_TAG}1")
    untrained = experiments.plan("Restormer-style (ours, smoke)", get_profile("smoke"), data)
    net = M2IR(MODEL_PRESETS["smoke"])
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    (tmp_path / "run").mkdir()
    ckpt = save_checkpoint(tmp_path / "run" / "final.pt", net, opt, sched, 0,
                           {"model_cfg": config_to_dict(net.cfg)})  # fmt: skip
    ckpts = {m2ir.label: ckpt, seed1.label: ckpt}
    d = floor.diagnose("II", [m2ir, seed1, untrained], ckpts, profile=get_profile("smoke"))
    assert list(d.columns) == floor.COLUMNS
    columns = list(dict.fromkeys(results.paper_table("II")["task"]))
    assert list(dict.fromkeys(d["task"])) == [c for c in columns if c != results.AVERAGE]
    # the input, then M²IR once (its first seed); a row never trained is left out
    assert list(dict.fromkeys(d["method"])) == [results.FLOOR, "M²IR (ours, smoke)"]
    assert (d["n"] == get_profile("smoke").eval_max_images).all()
    assert (d["psnr_offset_free"] >= d["psnr"] - 1e-9).all()  # the best constant shift
    np.testing.assert_allclose(d["mean_shift"], d["mean"] - d["clean_mean"], atol=1e-9)
    only = floor.diagnose("II", [m2ir], ckpts, profile=get_profile("smoke"), columns=["deblur"])
    assert set(only["task"]) == {"deblur"}


def test_only_the_columns_below_the_input_are_diagnosed():
    def row(method, task, value):
        return results.rows("II", method, {(task, "PSNR"): value}, profile="smoke", seed=0,
                            data="d", commit="x")  # fmt: skip

    table = pd.concat(
        [
            results.paper_table("II"),
            row(results.FLOOR, "deblur", 25.0),
            row(results.FLOOR, "derain", 24.0),
            row("M²IR (ours, smoke)", "deblur", 24.0),  # below the input
            row("M²IR (ours, smoke)", "derain", 25.0),
            row("AdaIR (ours, smoke)", "derain", 24.001),  # the input's, at the printed digit
            row("AdaIR (ours, smoke)", results.AVERAGE, 1.0),  # no floor: never a column
        ],
        ignore_index=True,
    )
    assert floor.below_columns(table) == ["deblur", "derain"]
    assert floor.below_columns(table[table["task"] != "deblur"]) == ["derain"]
    none = floor.diagnose("II", [], {}, profile=get_profile("smoke"), columns=[])
    assert none.empty and list(none.columns) == floor.COLUMNS  # the header only
