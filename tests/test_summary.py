"""The results summary page (issue 12): built from the files a run leaves, nothing typed."""

import json

import nbformat
import pandas as pd

from m2ir_lib.core.config import get_profile
from m2ir_lib.workbook import results, summary


def _table_vi(root):
    ours = results.rows(
        "VI",
        "M²IR (ours, smoke)",
        {("desnow", "PSNR"): 18.5},
        profile="smoke",
        seed=0,
        data="synthetic",
        commit="abc1234",
        uncertainty={("desnow", "PSNR"): {"n": 12, "ci_low": 18.0, "ci_high": 19.0}},
    )
    missing = results.status_row(
        "VI", "PromptIR (released weights)", "no checkpoint given", profile="smoke", commit="x"
    )
    table = pd.concat([results.paper_table("VI"), ours, missing])
    results.write_results(table, get_profile("smoke"), "VI", root=root)


def _executed_notebook(root, text):
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("verdicts.conclusions(table, per_image, m2ir, baseline)")
    cell.outputs = [nbformat.v4.new_output("display_data", data={"text/markdown": text})]
    nb.cells = [nbformat.v4.new_code_cell("x = 1"), cell]
    folder = results.results_dir("smoke", root) / "notebooks"
    folder.mkdir(parents=True)
    nbformat.write(nb, folder / "08_table_VI_unseen_desnow.ipynb")


def test_page_shows_paper_ours_status_conclusion_and_figures(tmp_path):
    _table_vi(tmp_path)
    _executed_notebook(tmp_path, "**Claim: M²IR beats the input.** Supported by 3.1 dB.")
    out = results.results_dir("smoke", tmp_path)
    figure = results.figure_path("smoke", "table6_unseen_desnow", tmp_path)
    figure.write_bytes(b"png")
    results.figure_path("smoke", "fig9_gating", tmp_path).write_bytes(b"png")
    pd.DataFrame(
        {"notebook": ["(training plan)", "08_table_VI_unseen_desnow.ipynb"],
         "status": ["ok", "ok"], "seconds": [30.0, 90.0], "profile": ["smoke", "smoke"]}
    ).to_csv(out / "pipeline_times.csv", index=False)  # fmt: skip

    page = summary.write_summary(get_profile("smoke"), tmp_path).read_text(encoding="utf-8")

    # the training stage is timed beside the notebooks, not counted as one of them
    assert "2.0 min in all: the training plan 0.5 min, 1 of 1 notebooks ok in 1.5 min" in page
    assert "- commit: `" in page
    section = page.split("## Table VI")[1].split("## Table VII")[0]
    assert "18.50 [18.00, 19.00]" in section and "(n=12)" in section  # ours, with interval
    assert "no checkpoint given" in section  # the status row says why
    assert "Supported by 3.1 dB" in section  # the notebook's computed conclusion
    assert "](figures/table6_unseen_desnow.png)" in section
    assert "](figures/fig9_gating.png)" in page.split("## Other figures")[1]
    assert "no `table1_3d.csv`" in page.split("## Table I:")[1].split("## Table II")[0]
    for roman in results.TABLES:
        assert f"## Table {roman}:" in page
    assert not list(out.glob(".*.tmp"))


def test_conclusion_is_read_from_the_executed_notebook_only(tmp_path):
    assert summary.notebook_conclusion(tmp_path / "missing.ipynb") is None
    _executed_notebook(tmp_path, "text")
    path = next((results.results_dir("smoke", tmp_path) / "notebooks").iterdir())
    assert summary.notebook_conclusion(path) == "text"
    nb = json.loads(path.read_text())
    nb["cells"][1]["outputs"] = []  # not executed: nothing to show, nothing invented
    path.write_text(json.dumps(nb))
    assert summary.notebook_conclusion(path) is None


def _write(root, roman, method, values, device="cpu"):
    """Table `roman` as a run writes it: the paper's rows and one reproduced row of ours."""
    ours = results.rows(
        roman, method, values, profile="smoke", seed=0, data="d", commit="x", device=device
    )
    table = pd.concat([results.paper_table(roman), ours], ignore_index=True)
    results.write_results(table, get_profile("smoke"), roman, root=root)


def _block(section, title):
    """The Markdown table under one bold heading of a section."""
    return section.split(f"**{title}**")[1].split("**")[0]


def test_the_papers_starred_rows_are_printed_too(tmp_path):
    """Tables III and V print AdaIR* and PromptIR*: their rows are the paper's, not dropped."""
    _write(tmp_path, "III", "M²IR (ours, smoke)", {("low", "PSNR"): 20.0})
    _write(tmp_path, "V", "M²IR (ours, smoke, denoise only)", {("BSD68/15", "PSNR"): 30.0})
    paper_iii = _block(
        summary.table_section(get_profile("smoke"), "III", tmp_path), "Paper (printed)"
    )
    assert "paper / AdaIR*" in paper_iii and "paper / PromptIR " in paper_iii
    paper_v = _block(summary.table_section(get_profile("smoke"), "V", tmp_path), "Paper (printed)")
    row = next(line for line in paper_v.splitlines() if "paper / PromptIR*" in line)
    assert "34.33" in row  # its BSD68/15 denoising cell, not NaN
    assert "paper / DnCNN" not in paper_v  # the other published rows stay out


def test_this_run_lists_rows_and_columns_in_the_papers_order(tmp_path):
    mine = [
        results.rows("I", m, {(t, "PSNR"): 20.0 for t in ("dehaze", "denoise-15", "derain")},
                     profile="smoke", seed=0, data="d", commit="x")
        for m in ("M²IR (ours, smoke)", "AdaIR (ours, smoke)", "Restormer-style (ours, smoke)")
    ]  # fmt: skip
    table = pd.concat([results.paper_table("I"), *mine], ignore_index=True)
    results.write_results(table, get_profile("smoke"), "I", root=tmp_path)
    ours = _block(summary.table_section(get_profile("smoke"), "I", tmp_path), "This run")
    lines = [line.split("|")[1].strip() for line in ours.splitlines() if "(ours" in line]
    assert lines == ["Restormer-style (ours, smoke)", "AdaIR (ours, smoke)", "M²IR (ours, smoke)"]
    header = next(line for line in ours.splitlines() if "PSNR" in line)
    assert header.index("dehaze") < header.index("derain") < header.index("denoise-15")


def test_table_xiii_names_the_device_of_every_latency(tmp_path):
    """A latency measured on an H200 is not set in the paper's RTX 4090 column."""
    _write(tmp_path, "XIII", "M²IR (paper config)", {("720×480", "latency GPU (ms)"): 160.0},
           device="NVIDIA H200")  # fmt: skip
    section = summary.table_section(get_profile("smoke"), "XIII", tmp_path)
    assert "latency GPU (ms) on NVIDIA RTX 4090" in _block(section, "Paper (printed)")
    ours = _block(section, "This run")
    assert "latency GPU (ms) on NVIDIA H200" in ours and "RTX 4090" not in ours
    assert "160" in ours
