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
        {"notebook": ["08_table_VI_unseen_desnow.ipynb"], "status": ["ok"], "seconds": [90.0],
         "profile": ["smoke"]}
    ).to_csv(out / "pipeline_times.csv", index=False)  # fmt: skip

    page = summary.write_summary(get_profile("smoke"), tmp_path).read_text(encoding="utf-8")

    assert "notebooks: 1 of 1 ok, 1.5 min" in page and "- commit: `" in page
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
