"""The workbook's table plumbing: long rows, computed averages, atomic writes, views, and the
table definitions that map our runs onto the paper's rows (results, report, tables)."""

import math

import pandas as pd
import pytest

from m2ir_lib import experiments, report, results, tables
from m2ir_lib.config import get_profile


def ours(table="I", method="M²IR (ours, smoke)", values=None, note=""):
    values = values or {
        ("dehaze", "PSNR"): 20.0,
        ("derain", "PSNR"): 30.0,
        ("denoise-15", "PSNR"): 31.0,
        ("denoise-25", "PSNR"): 29.0,
        ("denoise-50", "PSNR"): 25.0,
    }
    return results.rows(
        table, method, values, profile="smoke", seed=0, data="test", note=note, commit="abc"
    )


# ---------------------------------------------------------------------------- rows & averages


def test_average_is_computed_over_the_papers_columns():
    table = results.with_average(pd.concat([results.paper_table("I"), ours()]))
    avg = table[(table["source"] == "reproduced") & (table["task"] == "Average")]
    assert avg["value"].tolist() == [pytest.approx((20 + 30 + 31 + 29 + 25) / 5)]
    assert "mean of 5" in avg["note"].iloc[0]


def test_no_average_over_a_partial_row_or_where_the_paper_prints_none():
    partial = ours(values={("dehaze", "PSNR"): 20.0, ("derain", "PSNR"): 30.0})
    table = results.with_average(pd.concat([results.paper_table("I"), partial]))
    assert table[(table["source"] == "reproduced") & (table["task"] == "Average")].empty
    abl = results.with_average(
        pd.concat([results.paper_table("VII"), ours("VII", "x", {("derain", "PSNR"): 30.0})])
    )
    assert "Average" not in set(abl["task"])


def test_missing_paper_average_is_computed_and_marked():
    table = results.with_average(results.paper_table("I"))
    row = table[(table["method"] == "M²IR") & (table["task"] == "Average")]
    assert len(row) == 2  # PSNR and SSIM
    psnr = row[row["metric"] == "PSNR"]
    assert psnr["value"].iloc[0] == pytest.approx(33.228)
    assert "computed here" in psnr["note"].iloc[0]
    # recomputing keeps exactly one
    again = results.with_average(table)
    assert len(again[(again["method"] == "M²IR") & (again["task"] == "Average")]) == 2


def test_status_row_needs_a_reason():
    row = results.status_row("IV", "M²IR (ours)", "LPIPS: n/a", profile="smoke", commit="x")
    assert row["metric"].iloc[0] == results.STATUS and math.isnan(row["value"].iloc[0])
    with pytest.raises(ValueError, match="reason"):
        results.status_row("IV", "M²IR (ours)", "", profile="smoke", commit="x")
    with pytest.raises(ValueError, match="unknown table"):
        results.status_row("XX", "m", "r", profile="smoke", commit="x")


# ---------------------------------------------------------------------------- writing


def test_write_and_read_back(tmp_path):
    table = pd.concat([results.paper_table("VI"), ours("VI", values={("desnow", "PSNR"): 18.5})])
    path = results.write_results(table, "smoke", "VI", root=tmp_path)
    assert path == tmp_path / "results" / "smoke" / "table6_unseen_desnow.csv"
    back = results.read_results("smoke", "VI", root=tmp_path)
    assert list(back.columns) == results.COLUMNS
    assert back.loc[back["source"] == "reproduced", "value"].tolist() == [18.5]
    assert not list(path.parent.glob("*.tmp"))


def test_write_refuses_bad_tables(tmp_path):
    paper = results.paper_table("VI")
    with pytest.raises(ValueError, match="no reproduced row"):
        results.write_results(paper, "smoke", "VI", root=tmp_path)
    with pytest.raises(ValueError, match="profiles"):
        results.write_results(pd.concat([paper, ours("VI")]), "mini", "VI", root=tmp_path)
    with pytest.raises(ValueError, match="missing columns"):
        results.write_results(paper.drop(columns="note"), "smoke", "VI", root=tmp_path)
    with pytest.raises(ValueError, match="bare file stem"):
        results.write_frame(paper, "smoke", "a/b", root=tmp_path)


# ---------------------------------------------------------------------------- views


def test_views_margins_and_rank_agreement():
    paper = results.paper_table("IX")
    mine = pd.concat(
        [
            ours("IX", f"K={k}", {("derain", "PSNR"): v, ("derain", "SSIM"): 0.9})
            for k, v in ((1, 30.0), (2, 31.0), (3, 30.5), (4, 29.0))
        ]
    )
    table = pd.concat([paper, mine])
    side = report.side_by_side(table)
    assert list(side.index) == ["K=1", "K=2", "K=3", "K=4"]
    assert side.loc["K=2", ("PSNR", "paper")] == 38.93
    agree = report.rank_agreement(table)
    assert agree["best_paper"] == agree["best_ours"] == "K=2"
    assert agree["kendall_tau"] == pytest.approx(1.0)  # same order as the paper (38.83 < 38.86)
    gap = report.margins(table, "K=2")
    assert gap.loc["K=4", "derain"] == pytest.approx(-2.0)
    with pytest.raises(ValueError, match="no reproduced"):
        report.margins(table, "K=9")


def test_wide_view_rounds_like_the_paper():
    wide = report.wide_view(pd.concat([results.paper_table("I"), ours()]), metrics=["PSNR"])
    assert ("reproduced", "M²IR (ours, smoke)") in wide.index
    assert wide.loc[("paper", "M²IR"), ("derain", "PSNR")] == 39.36


def test_summary_text_states_both_sides():
    table = results.with_average(
        pd.concat([results.paper_table("I"), ours(), ours(method="Identity (degraded input)")])
    )
    text = report.summary_text(
        table, "M²IR (ours, smoke)", ["Identity (degraded input)"], paper_references=["MIRAGE"]
    ).data
    assert "+0.32 over MIRAGE" in text and "+0.00 over Identity" in text


# ---------------------------------------------------------------------------- table definitions


@pytest.mark.parametrize("table", list(tables.ABLATIONS))
def test_ablation_rows_are_the_papers_rows(table):
    labels = [label for label, _, _ in tables.ABLATIONS[table]]
    assert labels == list(dict.fromkeys(results.paper_table(table)["method"]))


def test_table_runs_cover_tables_i_to_vi():
    assert list(tables.TABLE_RUNS) == ["I", "II", "III", "IV", "V", "VI"]
    for runs in tables.TABLE_RUNS.values():
        for setting, _, _ in runs:
            assert setting in experiments.SETTINGS


def test_task_keys_name_the_papers_columns():
    assert tables._task_key("I", "denoise", 25.0, "") == "denoise-25"
    assert tables._task_key("V", "denoise", 15.0, "mini-synthetic") == "BSD68/15"
    assert tables._task_key("V", "denoise", 50.0, "Kodak24") == "Kodak24/50"
    assert tables._task_key("V", "derain", float("nan"), "") == "Rain100L"
    summary = pd.DataFrame(
        [
            {
                "task": "derain",
                "sigma": float("nan"),
                "psnr": 30.0,
                "ssim": 0.9,
                "lpips": "n/a (weights unavailable)",
            }
        ]
    )
    values, missing = tables.summary_values("IV", summary)
    assert values == {("derain", "PSNR"): 30.0, ("derain", "SSIM"): 0.9}
    assert missing == ["derain LPIPS: n/a (weights unavailable)"]


def test_plan_falls_back_to_the_mlp_prior_and_says_so():
    data = experiments.Data("derain", None, None, "test", "no data")
    run = experiments.plan("full", "paper", data, model={"prior": "daclip"})
    assert run.model.prior == "mlp" and run.note == experiments.DACLIP_NOTE
    base = experiments.plan("base", "paper", data, model=experiments.BASELINE)
    assert base.note == "" and base.model.block == "transformer"
    abl = experiments.plan("a", "mini", data, train={"lambda1": 0.05}, ablation=True)
    assert abl.train.lambda1 == 0.05
    assert abl.train.iters == get_profile("mini").ablation_train.iters


def test_locate_reports_missing_real_data(monkeypatch):
    monkeypatch.delenv("M2IR_DATA", raising=False)
    data = experiments.locate("3d", "paper")
    assert not data.available and "M2IR_DATA" in data.reason
    assert data.summary()["status"].iloc[0] == data.reason
    with pytest.raises(ValueError, match="unknown setting"):
        experiments.locate("4d", "smoke")


@pytest.mark.slow
def test_torchrun_launcher_trains_one_run_with_ddp(tmp_path, monkeypatch):
    """The paper profile's path (several GPUs) on CPU: two gloo processes via torchrun."""
    import json

    monkeypatch.setenv("M2IR_RUNS", str(tmp_path))
    data = experiments.locate("derain", "smoke")
    run = tables.ablation_runs("IX", "smoke", data)[0]
    ckpts = experiments.train_runs([run], "smoke", launcher="torchrun")
    meta = json.loads((ckpts[run.label].parent / "meta.json").read_text())
    assert meta["world_size"] == 2 and ckpts[run.label].is_file()
    with pytest.raises(ValueError, match="launcher"):
        experiments.train_runs([run], "smoke", launcher="slurm")
