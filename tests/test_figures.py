"""What a reader sees: whole tables in the paper's column order, figures with different test
scenes, PSNR and zoomed crops (Figs. 6–8), colour bars on gate maps (Fig. 9), training curves
one colour per network, and Table XIII with CPU and GPU apart."""

import math

import matplotlib
import pandas as pd
import pytest
import torch

from m2ir_lib.core.config import get_profile
from m2ir_lib.workbook import labels, plots, report, results, samples, settings, visualize


def _item(task, name, value=0.5):
    clean = torch.full((3, 16, 32), value)
    return {"task": task, "name": name, "sigma": math.nan, "clean": clean, "degraded": clean}


def test_distinct_items_show_a_different_scene_per_task():
    items = [_item(t, n) for t in ("dehaze", "denoise", "derain") for n in ("a", "b", "c")]
    assert [i["name"] for i in samples.distinct_items(items)] == ["a", "b", "c"]
    two = [_item(t, n) for t in ("dehaze", "denoise", "derain") for n in ("a", "b")]
    assert [i["name"] for i in samples.distinct_items(two)] == ["a", "b", "a"]  # reuse: least shown
    got = samples.distinct_items(items, per_task=2)
    assert [(i["task"], i["name"]) for i in got][:4] == [
        ("dehaze", "a"),
        ("dehaze", "b"),
        ("denoise", "c"),
        ("denoise", "a"),
    ]


def test_sample_items_on_the_stand_in_picks_distinct_scenes():
    data = settings.locate("3d", get_profile("smoke"))
    same = samples.sample_items(data)
    assert len({i["name"] for i in same}) == 1  # the first image of every task: one scene
    spread = samples.sample_items(data, distinct=True)
    assert [i["task"] for i in spread] == [i["task"] for i in same]
    assert len({i["name"] for i in spread}) > 1


def test_fig7_shows_the_papers_seven_composites_in_its_order():
    data = settings.locate("cdd11", get_profile("smoke"))
    items = samples.sample_items(data, distinct=True, tasks=samples.FIG7_TYPES)
    assert [i["task"] for i in items] == list(samples.FIG7_TYPES)


def test_comparison_has_psnr_on_every_panel_and_zoomed_crops(tmp_path):
    clean = torch.rand(3, 24, 48)
    degraded = clean.clone()
    degraded[:, 12:20, 30:38] = 0  # the damage the crop should find
    assert visualize.crop_box(degraded, clean) == (12, 30, 8)
    rows = [
        {
            "task": "derain",
            "name": n,
            "sigma": math.nan,
            "clean": clean,
            "degraded": degraded,
            "input_psnr": 12.5,
            "outputs": {"A": (clean * 0.9, 25.0), "B": (clean, 30.0)},
        }
        for n in ("x", "y")
    ]
    path = tmp_path / "fig.png"
    fig = visualize.plot_comparison(rows, path)
    assert path.is_file()
    full = [ax for ax in fig.axes if "dB" in ax.get_title() or "GT" in ax.get_title()]
    assert len(full) == 2 * 4  # input, A, B, GT per row
    assert "12.50 dB" in full[0].get_title() and "y" in full[4].get_title()
    crops = [ax for ax in fig.axes if ax.get_title().startswith("zoom")]
    assert len(crops) == 2 * 4 and crops[0].images[0].get_array().shape[:2] == (8, 8)
    matplotlib.pyplot.close(fig)


def test_gate_maps_have_colour_bars():
    pair = {
        "task": "derain",
        "degraded": torch.rand(3, 16, 32),
        "clean": torch.rand(3, 16, 32),
        "gates_degraded": {"encoder1.0": {"gate": torch.rand(16, 32)}},
        "gates_clean": {"encoder1.0": {"gate": torch.rand(16, 32)}},
    }
    fig = visualize.plot_gates([pair, pair])
    bars = [ax for ax in fig.axes if "σ(W_l² X)" in ax.get_ylabel()]
    assert len(bars) == 1  # one scale shared by every panel, and labelled
    assert "one scale for all panels" in bars[0].get_ylabel()
    matplotlib.pyplot.close(fig)


def test_gate_maps_show_one_block_per_level_unless_asked():
    blocks = ["encoder1.0", "encoder2.0", "encoder2.1", "latent.0", "latent.1"]
    gates = {b: {"gate": torch.rand(8, 8)} for b in blocks}
    pair = dict(task="derain", degraded=torch.rand(3, 8, 8), clean=torch.rand(3, 8, 8),
                gates_degraded=gates, gates_clean=gates)  # fmt: skip
    fig = visualize.plot_gates([pair])
    titles = {ax.get_title().split()[0] for ax in fig.axes if ax.get_title()}
    assert {"encoder1.0", "encoder2.1", "latent.1"} <= titles
    assert not {"encoder2.0", "latent.0"} & titles
    matplotlib.pyplot.close(fig)
    fig = visualize.plot_gates([pair], blocks="all")
    assert len([ax for ax in fig.axes if ax.images]) == 2 * (1 + len(blocks))
    matplotlib.pyplot.close(fig)


def test_training_curves_one_colour_per_network_seeds_dashed():
    log = pd.DataFrame(
        [
            {"run": run, "step": s, "loss_smoothed": 1.0 / s}
            for run in (
                "3d: M²IR (ours, smoke)",
                "3d: M²IR (ours, smoke) · seed 1",
                "3d: Restormer-style (ours, smoke)",
                "derain: N=4",
            )
            for s in (1, 2, 3)
        ]
    )
    fig = visualize.plot_training_curves(log)
    panels = [ax for ax in fig.axes if ax.lines]
    assert [ax.get_title() for ax in panels] == ["trained on 3d", "trained on derain"]
    m2ir, seed1, restormer = panels[0].lines
    assert m2ir.get_color() == seed1.get_color() != restormer.get_color()
    assert m2ir.get_linestyle() != seed1.get_linestyle()
    assert panels[0].get_xlabel() == "iteration" and "loss" in panels[0].get_ylabel()
    matplotlib.pyplot.close(fig)


def test_tables_print_whole_in_the_papers_order_without_empty_columns():
    assert pd.get_option("display.max_columns") is None  # set when report loads
    paper = results.paper_table("III")
    mine = results.rows(
        "III",
        "M²IR (ours, smoke)",
        {("snow", "PSNR"): 20.0, ("low", "PSNR"): 21.0},
        profile="smoke",
        seed=0,
        data="d",
        commit="x",
    )
    wide = report.wide_view(pd.concat([mine, paper]))  # ours first: the order is still the paper's
    tasks = list(dict.fromkeys(wide.columns.get_level_values("task")))
    assert tasks == list(dict.fromkeys(paper["task"]))
    assert "…" not in wide.to_string() and not wide.isna().all().any()
    only_ours = report.wide_view(mine)
    assert list(only_ours.columns.get_level_values("task")) == ["low", "snow"]


def test_our_rows_are_listed_where_the_paper_row_they_answer_is():
    paper_i = list(dict.fromkeys(results.paper_table("I")["method"]))
    ours = [
        "M²IR (ours, smoke)",
        "Extra (ours, smoke)",
        "AdaIR (released weights)",
        "AdaIR (ours, smoke)",
        "Restormer-style (ours, smoke)",
    ]
    assert labels.in_paper_order(ours, paper_i) == [
        "Restormer-style (ours, smoke)",  # the Restormer architecture: the paper's Restormer
        "AdaIR (released weights)",  # two rows answering AdaIR keep the table's order
        "AdaIR (ours, smoke)",
        "M²IR (ours, smoke)",
        "Extra (ours, smoke)",  # answers no paper row: after them, in the table's order
    ]
    paper_iii = set(results.paper_table("III")["method"])
    assert labels.answers("AdaIR (ours, smoke)", paper_iii) == "AdaIR*"  # the starred row
    assert labels.answers("M²IR (ours, smoke, denoise only)", ["M²IR"]) == "M²IR"
    mlp = "MST ✓ | DACP (MLP prior) | special ✓ | shared ✓"
    assert labels.answers(mlp, results.paper_table("VII")["method"]) == (
        "MST ✓ | DACP MLP | special ✓ | shared ✓"
    )


def _xiii_rows():
    def row(method, metric, value, device):
        return results.rows(
            "XIII", method, {("720×480", metric): value}, profile="smoke", seed=0,
            device=device, data="d", commit="x",
        )  # fmt: skip

    return pd.concat(
        [
            results.paper_table("XIII"),
            row("M²IR (ours)", "Params (M)", 1.0, "CPU (2 logical cores)"),
            row("M²IR (ours)", "latency CPU (ms)", 900.0, "CPU (2 logical cores)"),
            row("M²IR (paper config)", "latency GPU (ms)", 50.0, "NVIDIA H200"),
            results.status_row("XIII", "M²IR (ours)", "latency GPU (ms): no GPU", profile="smoke"),
        ],
        ignore_index=True,
    )


def test_table_xiii_keeps_cpu_and_gpu_apart_and_names_the_device(tmp_path):
    table = _xiii_rows()
    view = report.efficiency_view(table)
    cols = list(view.columns)
    # every latency column names its device: the paper's RTX 4090 holds the paper's rows only
    paper_gpu = f"latency GPU (ms) on {labels.PAPER_DEVICE}"
    assert cols[:5] == [
        "Params (M)",
        "FLOPs (G)",
        paper_gpu,
        "latency GPU (ms) on NVIDIA H200",
        "latency CPU (ms) on CPU (2 logical cores)",
    ]
    assert cols[-1] == "measured on" and not {"latency (ms)", "latency GPU (ms)"} & set(cols)
    assert view.loc[("reproduced", "M²IR (ours)"), "measured on"] == "CPU (2 logical cores)"
    assert pd.isna(view.loc[("reproduced", "M²IR (paper config)"), paper_gpu])
    assert view.loc[("reproduced", "M²IR (paper config)"), "latency GPU (ms) on NVIDIA H200"] == 50
    assert view.loc[("paper", "M²IR (w/o DA-CLIP)"), paper_gpu] == 330
    assert view.loc[("paper", "M²IR (w/o DA-CLIP)"), "measured on"].startswith("NVIDIA RTX 4090")
    fig = plots.plot_efficiency(table, path=tmp_path / "t13.png")
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[0] == "Params (M)" and titles[1] == "FLOPs (G)"
    assert "this run: NVIDIA H200" in titles[2] and "CPU (2 logical cores)" in titles[3]
    matplotlib.pyplot.close(fig)


@pytest.mark.parametrize("metric", ["latency GPU (ms)", "Params (M)"])
def test_papers_table_xiii_latency_is_its_gpus(metric):
    assert metric in set(results.paper_table("XIII")["metric"])


def test_rivals_are_not_drawn_in_the_colours_of_m2ir_or_restormer():
    taken = {matplotlib.colors.to_hex(c) for c in matplotlib.colormaps["tab20"].colors[:4]}
    for name in ("AdaIR", "PromptIR", "MoCE-IR", "IDR", "Identity (degraded input)"):
        assert plots.method_colour(name) not in taken - {plots.GREY}, name
