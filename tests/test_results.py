"""The workbook's table plumbing: long rows, computed averages, atomic writes, views, and the
table definitions that map our runs onto the paper's rows (results, report, tables)."""

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest

from m2ir_lib.core import config
from m2ir_lib.core.config import get_profile
from m2ir_lib.workbook import (
    experiments,
    labels,
    plots,
    report,
    results,
    scoring,
    settings,
    stats,
    tables,
    verdicts,
)


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
    path = results.write_results(table, get_profile("smoke"), "VI", root=tmp_path)
    assert path == tmp_path / "results" / "smoke" / "table6_unseen_desnow.csv"
    back = results.read_results("smoke", "VI", root=tmp_path)
    assert list(back.columns) == results.COLUMNS
    assert back.loc[back["source"] == "reproduced", "value"].tolist() == [18.5]
    assert not list(path.parent.glob("*.tmp"))


def test_write_refuses_bad_tables(tmp_path):
    paper = results.paper_table("VI")
    with pytest.raises(ValueError, match="no reproduced row"):
        results.write_results(paper, get_profile("smoke"), "VI", root=tmp_path)
    with pytest.raises(ValueError, match="profiles"):
        results.write_results(
            pd.concat([paper, ours("VI")]), get_profile("mini"), "VI", root=tmp_path
        )
    with pytest.raises(ValueError, match="missing columns"):
        results.write_results(paper.drop(columns="note"), get_profile("smoke"), "VI", root=tmp_path)
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
    assert agree["p_value"] == pytest.approx(2 / 24)  # exact: 2 of the 4! orders are as extreme
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
    text = verdicts.summary_text(
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
            assert setting in settings.SETTINGS


def test_task_keys_name_the_papers_columns():
    assert scoring._task_key("I", "denoise", 25.0, "") == "denoise-25"
    assert scoring._task_key("V", "denoise", 15.0, "mini-synthetic") == "BSD68/15"
    assert scoring._task_key("V", "denoise", 50.0, "Kodak24") == "Kodak24/50"
    assert scoring._task_key("V", "derain", float("nan"), "") == "Rain100L"
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
    values, missing = scoring.summary_values("IV", summary)
    assert values == {("derain", "PSNR"): 30.0, ("derain", "SSIM"): 0.9}
    assert missing == ["derain LPIPS: n/a (weights unavailable)"]


def test_table_vii_rows_say_which_prior_ran_and_one_run_is_shown_once(tmp_path, monkeypatch):
    """Without DA-CLIP weights a 'DACP ✓' row ran the MLP prior and says so; the full model
    and the paper's 'DACP MLP' row are then one run, listed once with both paper rows named."""
    monkeypatch.setenv("M2IR_RUNS", str(tmp_path))
    data = settings.locate("derain", get_profile("smoke"))
    assert data.available
    shown = [r.label for r in tables.ablation_runs("VII", get_profile("smoke"), data)]
    assert not any("DACP ✓" in x for x in shown)  # nothing ran DA-CLIP
    mlp = "MST ✓ | DACP (MLP prior) | special ✓ | shared ✓"
    assert shown.count(mlp) == 1 and "MST ✓ | DACP MLP | special ✓ | shared ✓" not in shown
    assert len(shown) == len(set(shown)) == len(tables.ABLATIONS["VII"]) - 1
    runs = {r.label: r for r in tables.ablation_runs("VII", get_profile("smoke"), data)}
    assert runs[mlp].model.prior == "mlp"
    assert "'MST ✓ | DACP ✓ | special ✓ | shared ✓': the same run, shown once" in runs[mlp].note
    assert "MST ✗ | DACP (MLP prior) | special ✓ | shared ✓" in runs
    # with DA-CLIP weights, the full row is the paper's and the MLP row stays apart
    cfg = dataclasses.replace(runs[mlp].model, prior="daclip")
    assert labels.ran_label("MST ✓ | DACP ✓ | special ✓ | shared ✓", cfg) == (
        "MST ✓ | DACP ✓ | special ✓ | shared ✓"
    )
    # the seeded headline rows still train in notebook 02
    plan = [tables.method_of(r.label) for r in tables.training_plan(get_profile("smoke"), seeds=2)]
    assert plan.count(mlp) == 2


def test_paper_rows_are_matched_to_the_rows_that_ran():
    paper = results.paper_table("VII")
    mine = [
        ours("VII", "MST ✓ | DACP (MLP prior) | special ✓ | shared ✓", {("derain", "PSNR"): 31.0}),
        ours("VII", "MST ✓ | DACP (MLP prior) | special ✓ | shared ✗", {("derain", "PSNR"): 30.0}),
        ours("VII", "MST ✗ | DACP ✗ | special ✗ | shared ✗", {("derain", "PSNR"): 29.0}),
    ]
    side = report.side_by_side(pd.concat([paper, *mine]), metrics=["PSNR"])
    said = side[("this run's row", "")]
    # the MLP run answers the paper's MLP row; the DA-CLIP full row was not run
    assert side.loc["MST ✓ | DACP MLP | special ✓ | shared ✓", ("PSNR", "reproduced")] == 31.0
    assert said["MST ✓ | DACP MLP | special ✓ | shared ✓"].startswith("MST ✓ | DACP (MLP prior)")
    full = "MST ✓ | DACP ✓ | special ✓ | shared ✓"
    assert pd.isna(side.loc[full, ("PSNR", "reproduced")])
    assert said[full].startswith("not run; its stand-in: MST ✓ | DACP (MLP prior)")
    assert side.loc["MST ✓ | DACP ✓ | special ✓ | shared ✗", ("PSNR", "reproduced")] == 30.0
    assert labels.ours_for(full, ["MST ✓ | DACP (MLP prior) | special ✓ | shared ✓"])
    assert labels.paper_label("N=4", ["N=2", "N=4"]) == "N=4"
    assert labels.paper_label("mine", ["N=4"]) is None


def test_plan_falls_back_to_the_mlp_prior_and_says_so():
    data = settings.Data("derain", None, None, "test", "no data")
    run = experiments.plan("full", get_profile("paper"), data, model={"prior": "daclip"})
    assert run.model.prior == "mlp" and run.note == experiments.DACLIP_NOTE
    base = experiments.plan("base", get_profile("paper"), data, model=config.BASELINE)
    assert base.note == "" and base.model.block == "transformer"
    abl = experiments.plan("a", get_profile("mini"), data, train={"lambda1": 0.05}, ablation=True)
    assert abl.train.lambda1 == 0.05
    assert abl.train.iters == get_profile("mini").ablation_train.iters


def test_locate_reports_missing_real_data(monkeypatch):
    monkeypatch.delenv("M2IR_DATA", raising=False)
    data = settings.locate("3d", get_profile("paper"))
    assert not data.available and "M2IR_DATA" in data.reason
    assert data.summary()["status"].iloc[0] == data.reason
    with pytest.raises(ValueError, match="unknown setting"):
        settings.locate("4d", get_profile("smoke"))


@pytest.mark.slow
def test_torchrun_launcher_trains_one_run_with_ddp(tmp_path, monkeypatch):
    """The paper profile's path (several GPUs) on CPU: two gloo processes via torchrun."""
    import json

    monkeypatch.setenv("M2IR_RUNS", str(tmp_path))
    data = settings.locate("derain", get_profile("smoke"))
    run = tables.ablation_runs("IX", get_profile("smoke"), data)[0]
    ckpts = experiments.train_runs([run], get_profile("smoke"), launcher="torchrun")
    meta = json.loads((ckpts[run.label].parent / "meta.json").read_text())
    assert meta["world_size"] == 2 and ckpts[run.label].is_file()
    with pytest.raises(ValueError, match="launcher"):
        experiments.train_runs([run], get_profile("smoke"), launcher="slurm")


# ---------------------------------------------------------------------------- uncertainty & floor


def _with_floor_rows(values, floor, metric="PSNR"):
    mine = results.rows(
        "VI",
        "M²IR (ours, smoke)",
        {("desnow", metric): values},
        profile="smoke",
        seed=0,
        data="test",
        commit="abc",
    )
    base = results.rows(
        "VI",
        results.FLOOR,
        {("desnow", metric): floor},
        profile="smoke",
        seed=0,
        data="test",
        commit="abc",
    )
    flagged = results.with_floor(pd.concat([results.paper_table("VI"), mine, base]))
    return flagged.loc[flagged["method"] == "M²IR (ours, smoke)", "at_or_below_floor"].iloc[0]


def test_floor_flag_marks_cells_no_better_than_the_degraded_input():
    assert _with_floor_rows(20.0, 21.0) == "True"
    assert _with_floor_rows(21.004, 21.0) == "True"  # equal at the printed 0.01 dB
    assert _with_floor_rows(21.02, 21.0) == "False"
    assert _with_floor_rows(21.0, float("inf")) == "True"  # an untouched image: PSNR inf
    assert _with_floor_rows(0.30, 0.25, "LPIPS") == "True"  # lower is better
    assert _with_floor_rows(0.20, 0.25, "LPIPS") == "False"
    paper = results.with_floor(results.paper_table("VI"))
    assert (paper["at_or_below_floor"] == "").all()


def test_uncertainty_columns_round_trip(tmp_path):
    unc = {("desnow", "PSNR"): dict(n=12, ci_low=18.1, ci_high=18.9, n_seeds=3, seed_sd=0.2)}
    mine = results.rows(
        "VI",
        "M²IR (ours, smoke)",
        {("desnow", "PSNR"): 18.5},
        profile="smoke",
        seed="0,1,2",
        data="test",
        commit="abc",
        uncertainty=unc,
    )
    floor = results.rows(
        "VI",
        results.FLOOR,
        {("desnow", "PSNR"): 19.0},
        profile="smoke",
        seed=0,
        data="t",
        commit="abc",
    )
    results.write_results(
        pd.concat([results.paper_table("VI"), mine, floor]), get_profile("smoke"), "VI", tmp_path
    )
    back = results.read_results("smoke", "VI", root=tmp_path)
    row = back[back["method"] == "M²IR (ours, smoke)"].iloc[0]
    assert (row["n"], row["n_seeds"], row["seed"]) == (12, 3, "0,1,2")
    assert (row["ci_low"], row["ci_high"], row["seed_sd"]) == (18.1, 18.9, 0.2)
    assert row["at_or_below_floor"] == "True"  # 18.5 < 19.0, flagged when written
    assert back.loc[back["source"] == "paper", "n"].isna().all()


def _per_image_frame():
    """M²IR beats the floor by ~2 dB on t1 and loses ~1 dB on t2; 4 images each."""
    rows = []
    for task, gain in (("dehaze", 2.0), ("derain", -1.0)):
        for k in range(4):
            base = 20.0 + 3 * k
            for method, v in (
                ("M²IR (ours, smoke)", base + gain + 0.01 * k),
                (results.FLOOR, base),
            ):
                rows.append(
                    ("I", method, "r", 0, task, "", float("nan"), f"im{k}", f"im{k}", "PSNR", v)
                )
    return pd.DataFrame(rows, columns=stats.PER_IMAGE_COLUMNS)


def test_average_interval_from_per_image_rows_and_per_image_io(tmp_path):
    per_image = _per_image_frame()
    path = results.write_per_image(per_image, "smoke", "I", root=tmp_path)
    assert path.name == "table1_3d_per_image.csv"
    back = results.read_per_image("smoke", "I", root=tmp_path)
    assert len(back) == len(per_image) and back["value"].tolist() == per_image["value"].tolist()
    table = results.with_average(
        pd.concat([results.paper_table("I")]), tasks=["dehaze", "derain"], per_image=back
    )
    assert table[table["source"] == "reproduced"].empty  # nothing reproduced: no average
    mine = results.rows(
        "I",
        "M²IR (ours, smoke)",
        {("dehaze", "PSNR"): 26.515, ("derain", "PSNR"): 23.515},
        profile="smoke",
        seed=0,
        data="t",
        commit="x",
    )
    avg = results.with_average(mine, tasks=["dehaze", "derain"], per_image=back)
    avg = avg[avg["task"] == "Average"].iloc[0]
    # the same 4 photographs in both columns: 4 independent units, not 8 images
    assert avg["value"] == pytest.approx(25.015) and avg["n"] == 4
    assert avg["ci_low"] < 25.015 < avg["ci_high"]
    with pytest.raises(FileNotFoundError, match="run the table's notebook"):
        results.read_per_image("smoke", "II", root=tmp_path)


def test_per_image_rows_name_the_papers_columns_and_skip_missing_metrics():
    img = pd.DataFrame(
        {
            "task": ["denoise", "derain", "deblur"],
            "dataset": ["d", "d", "d"],
            "sigma": [25.0, float("nan"), float("nan")],
            "name": ["a", "b", "c"],
            "psnr": [30.0, 31.0, 32.0],
            "ssim": [0.9, 0.91, 0.92],
            "lpips": ["n/a (weights unavailable)"] * 3,
        }
    )
    long = scoring.per_image_rows("I", "M", "key", 2, img)
    assert list(long.columns) == stats.PER_IMAGE_COLUMNS
    assert set(long["task"]) == {"denoise-25", "derain"}  # deblur is no Table I column
    assert set(long["metric"]) == {"PSNR", "SSIM"} and (long["seed"] == 2).all()


def test_headline_rows_train_with_several_seeds_on_the_same_data():
    data = settings.Data("derain", None, None, "test", "no data")
    runs = tables.ablation_runs("VII", get_profile("smoke"), data, seed=5, seeds=3)
    labels = [r.label for r in runs]
    off = tables.HEADLINE["VII"][0]
    full = "MST ✓ | DACP (MLP prior) | special ✓ | shared ✓"  # no DA-CLIP weights: the MLP ran
    assert [r.seed for r in runs if tables.method_of(r.label) == full] == [5, 6, 7]
    assert f"{off}{tables.SEED_TAG}6" in labels
    # two rows, two extra seeds each; the full model is the paper's 'DACP MLP' run, shown once
    assert len(runs) == len(tables.ABLATIONS["VII"]) + 4 - 1
    assert tables.rows_of(runs) == [
        label.replace("DACP ✓", "DACP (MLP prior)").replace("DACP MLP", "DACP (MLP prior)")
        for label, _, _ in tables.ABLATIONS["VII"]
        if label != "MST ✓ | DACP ✓ | special ✓ | shared ✓"
    ]
    assert (
        len(tables.ablation_runs("VIII", get_profile("smoke"), data, seeds=1)) == 5
    )  # one seed: as before
    nine = tables.ablation_runs(
        "IX", get_profile("smoke"), data, seeds=3
    )  # only the full row is seeded
    assert [r.label for r in nine][:4] == ["K=1", "K=2", "K=2 · seed 1", "K=2 · seed 2"]
    two = tables.table_runs("II", get_profile("smoke"), seeds=3)  # Tables II–V: one seed
    assert [r.label for r in two] == [
        "M²IR (ours, smoke)",
        "Restormer-style (ours, smoke)",
        "PromptIR (ours, smoke)",
        "AdaIR (ours, smoke)",
    ]
    one = tables.table_runs(
        "I", get_profile("smoke"), seeds=2
    )  # rivals: one seed, after the seeded rows
    assert [r.label for r in one][-2:] == ["PromptIR (ours, smoke)", "AdaIR (ours, smoke)"]
    assert len(one) == 6
    with pytest.raises(ValueError, match="at least one"):
        tables.ablation_runs("VII", get_profile("smoke"), data, seeds=0)


def test_table_vi_tests_every_seed_table_i_trains():
    """Table VI scores Table I's 3D runs on snow: the same runs (the same configurations, so
    the same cache folders), every seed, so its cells pool the seeds Table I's do."""

    def identity(r):  # what the run cache keys a run by (`experiments.run_dir`)
        return (r.model, r.train, r.data, r.seed, r.tasks, r.repeats, r.daclip_checkpoint)

    one = tables.table_runs("I", get_profile("smoke"), seeds=3, rivals=False)  # VI: no rivals
    six = tables.table_runs("VI", get_profile("smoke"), seeds=3)
    assert [r.label for r in six] == [r.label for r in one] and len(six) == 6
    assert [r.seed for r in six] == [0, 1, 2, 0, 1, 2]
    assert [identity(r) for r in six] == [identity(r) for r in one]
    assert tables.rows_of(six) == ["M²IR (ours, smoke)", "Restormer-style (ours, smoke)"]


def test_full_rows_of_tables_viii_to_xii_are_table_viis_full_run():
    """Their seeds come from the run cache only if the configurations are identical."""
    data = settings.Data("derain", None, None, "test", "no data")
    vii = tables.ablation_runs("VII", get_profile("mini"), data)
    full = next(r for r in vii if r.label == "MST ✓ | DACP (MLP prior) | special ✓ | shared ✓")
    for table, (label,) in ((t, tables.HEADLINE[t]) for t in ("VIII", "IX", "X", "XI", "XII")):
        row = next(
            r for r in tables.ablation_runs(table, get_profile("mini"), data) if r.label == label
        )
        assert (row.model, row.train) == (full.model, full.train), table


def test_conclusions_judge_each_claim_by_its_interval():
    per_image = _per_image_frame()
    cells = stats.cell_stats(per_image)
    mine = [
        results.rows(
            "I", m, {(t, "PSNR"): v}, profile="smoke", seed=0, data="mini-synthetic", commit="x"
        )
        for m, t, v in zip(cells["method"], cells["task"], cells["value"], strict=True)
    ]
    table = pd.concat([results.paper_table("I"), *mine])
    text = verdicts.conclusions(table, per_image, "M²IR (ours, smoke)").data
    assert "| dehaze | 4 × 1 |" in text and "| derain | 4 × 1 |" in text
    line = next(x for x in text.splitlines() if x.startswith("| dehaze"))
    assert line.endswith("supports |")  # +2 dB on every image
    line = next(x for x in text.splitlines() if x.startswith("| derain"))
    assert line.endswith("contradicts |") and "-0.98 [" in line
    assert "PSNR of 2: 1 supports, 1 contradicts" in text and "stand-in" in text


def test_ablation_conclusions_compare_rows_with_the_full_model():
    rows = []
    for k in range(6):
        for method, v in (
            ("K=2", 30.0 + k),
            ("K=1", 29.5 + k),
            ("K=3", 30.0 + k + 0.01 * (-1) ** k),  # ±0.01 around the full model
            (results.FLOOR, 25.0 + k),
        ):
            rows.append(
                ("IX", method, "r", 0, "derain", "", float("nan"), f"i{k}", f"i{k}", "PSNR", v)
            )
    per_image = pd.DataFrame(rows, columns=stats.PER_IMAGE_COLUMNS)
    cells = stats.cell_stats(per_image)
    mine = [
        results.rows("IX", m, {(t, "PSNR"): v}, profile="smoke", seed=0, data="d", commit="x")
        for m, t, v in zip(cells["method"], cells["task"], cells["value"], strict=True)
    ]
    text = verdicts.conclusions(pd.concat([results.paper_table("IX"), *mine]), per_image).data
    k1 = next(x for x in text.splitlines() if x.startswith("| K=1"))
    assert "-0.50 [-0.50, -0.50]" in k1 and "supports" in k1  # paper: K=1 below K=2
    k3 = next(x for x in text.splitlines() if x.startswith("| K=3"))
    assert "cannot resolve" in k3
    assert "the degraded input: +5.00 [+5.00, +5.00] PSNR (supports)" in text


def test_plot_axes_hold_the_intervals_and_never_zoom_into_noise():
    import matplotlib

    matplotlib.use("Agg")
    unc = lambda v: {("derain", "PSNR"): dict(n=12, ci_low=v - 0.3, ci_high=v + 0.3)}  # noqa: E731
    mine = [
        results.rows(
            "IX",
            f"K={k}",
            {("derain", "PSNR"): 30.0 + 0.003 * k},
            profile="smoke",
            seed=0,
            data="d",
            commit="x",
            uncertainty=unc(30.0 + 0.003 * k),
        )
        for k in (1, 2, 3, 4)
    ]
    fig = plots.plot_paper_vs_ours(pd.concat([results.paper_table("IX"), *mine]), close=True)
    lo, hi = fig.axes[1].get_ylim()
    assert lo < 30.003 - 0.3 and hi > 30.012 + 0.3  # intervals inside the axis
    assert hi - lo >= plots.MIN_SPAN["PSNR"]  # a 0.009 dB spread is not stretched
    assert plots.method_colour("M²IR") == plots.method_colour("M²IR (ours, mini)")
    assert plots.method_colour("Restormer") == plots.method_colour("Restormer-style (ours, mini)")
    assert plots.method_colour("K=2") == plots.method_colour("M²IR")


def test_evaluations_are_cached_per_checkpoint_data_and_code(tmp_path, monkeypatch):
    monkeypatch.setenv("M2IR_RUNS", str(tmp_path))
    data = settings.locate("derain", get_profile("smoke"))
    first, summary = scoring.evaluate_run(None, data, get_profile("smoke"))
    assert list(tmp_path.glob("smoke/identity/eval-*.csv"))

    def boom(*a, **k):
        raise AssertionError("evaluated again instead of reading the cache")

    monkeypatch.setattr(scoring, "evaluate_identity", boom)
    again, summary2 = scoring.evaluate_run(None, data, get_profile("smoke"))
    pd.testing.assert_frame_equal(first.reset_index(drop=True), again, check_dtype=False)
    pd.testing.assert_frame_equal(summary, summary2, check_dtype=False)
    other = settings.locate("denoise", get_profile("smoke"))  # other tasks: another key, evaluated
    with pytest.raises(AssertionError, match="evaluated again"):
        scoring.evaluate_run(None, other, get_profile("smoke"))


def test_parallel_evaluation_fills_the_cache_with_the_sequential_numbers(
    tmp_path, monkeypatch, capfd
):
    from m2ir_lib.core.config import REHEARSAL_ENV

    monkeypatch.setenv("M2IR_RUNS", str(tmp_path))
    monkeypatch.setenv(REHEARSAL_ENV, "network=smoke,iters=1,eval_images=8")  # ≥ 8: parallel
    data = settings.locate("derain", get_profile("smoke"))
    runs = [experiments.plan(f"seed {s}", get_profile("smoke"), data, seed=s) for s in (0, 1)]
    ckpts = experiments.train_runs(runs, get_profile("smoke"), jobs=1)
    items = [(ckpts[r.label], data, "", off) for r in runs for off in (False, True)]
    assert scoring.evaluate_in_parallel(items, get_profile("smoke"), jobs=2) == 4
    # each evaluation says so on the workers' stderr: the terminal of `make reproduce`
    said = capfd.readouterr().err
    assert said.count("  evaluated derain run ") == 4 and said.count(" (ADEC off): ") == 2
    assert (
        scoring.evaluate_in_parallel(items, get_profile("smoke"), jobs=2) == 0
    )  # every score cached
    parallel = [
        scoring.evaluate_run(c, data, get_profile("smoke"), adec_off=off)[0]
        for c, _, _, off in items
    ]
    for path in tmp_path.glob("smoke/*/eval-*.csv"):
        path.unlink()
    for (ckpt, _, _, off), got in zip(items, parallel, strict=True):
        alone = scoring.evaluate_run(ckpt, data, get_profile("smoke"), adec_off=off)[0]
        np.testing.assert_allclose(got["psnr"], alone["psnr"], rtol=0, atol=1e-6)
