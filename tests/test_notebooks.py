"""The notebooks: lint (cells, imports, parameters, outputs), the driver, and the smoke runs.

The lint tests read the committed .ipynb files. nbval executes each committed notebook once,
at its default profile (smoke), in run order (pyproject.toml's testpaths and --nbval-lax;
tests/conftest.py keeps them on one xdist worker); `test_smoke_results_of` then checks the
tables a notebook wrote. papermill runs here only what nbval cannot: other parameters.
"""

import ast
import importlib.util
import re

import nbformat
import numpy as np
import pandas as pd
import papermill
import pytest

from m2ir_lib import pipeline
from m2ir_lib.workbook import results

# tools/ is a folder of scripts, not a package: load the strip tool from its file.
_spec = importlib.util.spec_from_file_location(
    "strip_notebooks", results.repo_root() / "tools" / "strip_notebooks.py"
)
strip_notebooks = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(strip_notebooks)
is_clean, strip = strip_notebooks.is_clean, strip_notebooks.strip

NOTEBOOKS = pipeline.notebooks()
IDS = [p.stem for p in NOTEBOOKS]
MAX_LINES = 15
ALLOWED_IMPORTS = {"m2ir_lib", "pandas", "seaborn", "matplotlib", "torch", "IPython", "numpy"}
REQUIRED_PARAMS = ("profile", "seed")


def load(path):
    return nbformat.read(path, as_version=4)


def code_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


def parameters(nb):
    return [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]


# ---------------------------------------------------------------------------- lint


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_committed_without_outputs(path):
    nb = load(path)
    assert is_clean(nb), f"{path.name} has outputs: run tools/strip_notebooks.py {path}"
    assert nb.metadata["kernelspec"]["name"] == "python3"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_one_typed_parameters_cell_first_profile(path):
    nb = load(path)
    cells = parameters(nb)
    assert len(cells) == 1, f"{path.name}: {len(cells)} cells tagged 'parameters'"
    assert nb.cells.index(cells[0]) == 1, "the parameters cell follows the title cell"
    tree = ast.parse(cells[0].source)
    names = []
    for stmt, line in zip(tree.body, cells[0].source.splitlines(), strict=True):
        assert isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name), line
        ast.literal_eval(stmt.value)  # a literal, never a computed value
        assert "  # " in line, f"parameter without a '# meaning' comment: {line}"
        names.append(stmt.target.id)
    assert tuple(names[:2]) == REQUIRED_PARAMS
    assert ast.literal_eval(tree.body[0].value) == "smoke"
    assert ast.literal_eval(tree.body[1].value) == 0
    # papermill --help-notebook documents each one (a quote or '=' in a comment breaks that)
    assert list(papermill.inspect_notebook(str(path))) == names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_cells_are_short_without_definitions_and_import_the_library(path):
    for cell in code_cells(load(path)):
        lines = cell.source.rstrip().splitlines()
        assert len(lines) <= MAX_LINES, f"{path.name}: {len(lines)}-line cell:\n{cell.source}"
        for node in ast.walk(ast.parse(cell.source)):
            assert not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)), (
                f"{path.name}: definition in a notebook (move it to m2ir_lib)"
            )
            if isinstance(node, ast.Import):
                roots = {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                roots = {(node.module or "").split(".")[0]}
            else:
                continue
            assert roots <= ALLOWED_IMPORTS, f"{path.name}: imports {roots - ALLOWED_IMPORTS}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_skeleton_title_prose_before_code_and_a_write_at_the_end(path):
    nb = load(path)
    title = nb.cells[0]
    assert title.cell_type == "markdown" and title.source.startswith("# ")
    for word in ("§", "Run time", "smoke", "mini", "paper", "Writes"):
        assert word in title.source, f"{path.name}: title cell lacks {word!r}"
    for i, cell in enumerate(nb.cells[3:], start=3):  # after title, parameters, imports
        if cell.cell_type == "code":
            assert nb.cells[i - 1].cell_type == "markdown", (
                f"{path.name}: code cell {i} has no markdown before it"
            )
    last = code_cells(nb)[-1].source
    assert "results.write_results(" in last or "results.write_frame(" in last
    assert any(c.cell_type == "markdown" and "\n> " in "\n" + c.source for c in nb.cells), (
        f"{path.name}: no blockquoted remark of ours"
    )


def test_one_notebook_per_table_and_numbered_in_order():
    numbers = [int(p.name[:2]) for p in NOTEBOOKS]
    assert numbers == list(range(len(NOTEBOOKS)))
    for roman in results.TABLES:
        match = [p for p in NOTEBOOKS if f"_table_{roman}_" in p.name]
        assert len(match) == 1, f"Table {roman}: notebooks {match}"
        source = "\n".join(c.source for c in code_cells(load(match[0])))
        assert f'results.paper_table("{roman}")' in source
        assert f'results.write_results(table, profile, "{roman}")' in source
    for fig in ("fig9", "fig10", "visual"):
        assert any(fig in p.name for p in NOTEBOOKS), fig


TABLE_NOTEBOOKS = [p for p in NOTEBOOKS if any(f"_table_{r}_" in p.name for r in results.TABLES)]
TYPED_SCHEDULE = re.compile(
    r"\b\d+[- ](steps?|iterations?|iters)\b|\b\d+ test (images|photographs)"
)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_no_notebook_types_a_schedule_into_its_prose(path):
    """Steps and test-image counts are the profile's: typed into prose they go stale (notebook
    01 said 600 steps while the runs took 400). A code cell prints them from the profile."""
    prose = "\n".join(c.source for c in load(path).cells if c.cell_type == "markdown")
    assert not TYPED_SCHEDULE.search(prose), TYPED_SCHEDULE.search(prose)


@pytest.mark.parametrize("path", [p for p in TABLE_NOTEBOOKS if "_XIII_" not in p.name])
def test_table_notebooks_close_with_computed_conclusions(path):
    """Tables I–XII: per-image scores read back, conclusions computed from the intervals,
    no pasted verdict and no schedule number typed into the prose (issue 10)."""
    nb = load(path)
    code = "\n".join(c.source for c in code_cells(nb))
    prose = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert (
        "results.read_per_image(profile," in code
        and "verdicts.conclusions(table, per_image" in code
    )
    assert "report.schedule_line(profile" in code
    assert "expect both networks" not in prose and "results/paper/" not in prose
    assert not TYPED_SCHEDULE.search(prose), TYPED_SCHEDULE.search(prose)


def test_training_notebook_trains_the_seeded_headline_runs():
    nb = load(next(p for p in NOTEBOOKS if p.name.startswith("02_")))
    code = "\n".join(c.source for c in code_cells(nb))
    assert "tables.workbook_plan(" in code and "seeds=seeds" in code
    assert "seeds" in papermill.inspect_notebook(str(NOTEBOOKS[2]))
    prose = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert not TYPED_SCHEDULE.search(prose), TYPED_SCHEDULE.search(prose)


def test_strip_tool_removes_outputs(tmp_path):
    nb = load(NOTEBOOKS[0])
    cell = code_cells(nb)[0]
    cell.outputs = [nbformat.v4.new_output("stream", text="hi")]
    cell.execution_count = 3
    assert not is_clean(nb)
    assert is_clean(strip(nb))
    assert parameters(nb), "stripping keeps the parameters tag"


# ---------------------------------------------------------------------------- pipeline


def test_select_by_number_name_and_resume():
    names = [p.stem for p in NOTEBOOKS]
    assert [p.stem for p in pipeline.select(NOTEBOOKS, only="3")] == [names[3]]
    assert [p.stem for p in pipeline.select(NOTEBOOKS, only=names[5])] == [names[5]]
    assert [p.stem for p in pipeline.select(NOTEBOOKS, start="17")] == names[17:]
    with pytest.raises(ValueError, match="matches 0 notebooks"):
        pipeline.select(NOTEBOOKS, only="99")
    with pytest.raises(ValueError, match="not both"):
        pipeline.select(NOTEBOOKS, only="1", start="2")


def test_parse_param():
    assert pipeline.parse_param("data_root=/data/x") == ("data_root", "/data/x")
    assert pipeline.parse_param("jobs=2") == ("jobs", 2)
    assert pipeline.parse_param("paper_macs=True") == ("paper_macs", True)
    with pytest.raises(ValueError):
        pipeline.parse_param("no-equals")


@pytest.mark.notebook
def test_pipeline_stops_at_the_first_failing_notebook(tmp_path, monkeypatch, python3_notebook):
    monkeypatch.setenv("PYTHONPATH", "")  # run() prepends the root; undone after the test
    monkeypatch.setenv("MPLBACKEND", "Agg")
    (tmp_path / "notebooks").mkdir()
    profile = nbformat.v4.new_code_cell(
        'profile: str = "smoke"  # run profile', metadata={"tags": ["parameters"]}
    )
    for name, source in (("00_ok", "x = 1"), ("01_bad", "raise RuntimeError('boom')"),
                         ("02_never", "x = 2")):  # fmt: skip
        nbformat.write(python3_notebook(profile, source), tmp_path / "notebooks" / f"{name}.ipynb")
    with pytest.raises(SystemExit) as err:
        pipeline.run("smoke", root=tmp_path)
    message = str(err.value)
    assert "FAILED: 01_bad.ipynb" in message and "cell" in message and "boom" in message
    assert "--from 01" in message
    out = tmp_path / "results" / "smoke" / "notebooks"
    assert sorted(p.name for p in out.iterdir()) == ["00_ok.ipynb", "01_bad.ipynb"]
    times = pd.read_csv(tmp_path / "results" / "smoke" / "pipeline_times.csv")
    assert list(times["status"]) == ["ok", "failed"]
    # re-running one notebook updates its row and keeps the others
    pipeline.run("smoke", only="00", root=tmp_path)
    times = pd.read_csv(tmp_path / "results" / "smoke" / "pipeline_times.csv")
    assert list(times["notebook"]) == ["00_ok.ipynb", "01_bad.ipynb"]


# ---------------------------------------------------------------------------- smoke runs


@pytest.mark.notebook
@pytest.mark.xdist_group("smoke-workbook")  # conftest.py: right after the notebook's own cells
@pytest.mark.parametrize("path", TABLE_NOTEBOOKS, ids=[p.stem for p in TABLE_NOTEBOOKS])
def test_smoke_results_of(path, nbval_passed):
    """What the nbval run of a table notebook (at its default profile, smoke) wrote: the
    paper's printed rows, a reproduced number, and n and an interval for every cell."""
    nbval_passed(path.stem)
    roman = next(r for r in results.TABLES if f"_table_{r}_" in path.name)
    table = results.read_results("smoke", roman)
    ours = table[table["source"] == "reproduced"]
    printed = table[(table["source"] == "paper") & ~table["note"].str.startswith("computed")]
    assert len(printed) == len(results.paper_table(roman))
    assert ours["value"].notna().any(), f"Table {roman}: no reproduced number at smoke"
    assert (ours["profile"] == "smoke").all()
    if roman != "XIII":
        _check_uncertainty(roman, ours)


def _check_uncertainty(roman, ours):
    """Every reproduced cell has n and (when finite) a 95 % interval, the floor row is there,
    and the per-image file joins the table: n images per cell, seeds listed in the cell."""
    cells = ours[(ours["metric"] != results.STATUS) & (ours["metric"] != "FID")]
    assert results.FLOOR in set(cells["method"]), f"Table {roman}: no degraded-input row"
    assert cells["n"].notna().all() and (cells["n"] >= 1).all()
    finite = cells[np.isfinite(cells["value"])]
    assert finite["ci_low"].notna().all() and finite["ci_high"].notna().all()
    assert (finite["ci_low"] <= finite["value"] + 1e-9).all()
    assert (finite["value"] <= finite["ci_high"] + 1e-9).all()
    flagged = cells[cells["method"] != results.FLOOR]["at_or_below_floor"]
    assert flagged.isin(["True", "False", ""]).all()
    per_image = results.read_per_image("smoke", roman)
    for _, cell in cells[cells["task"] != results.AVERAGE].iterrows():
        got = per_image[
            (per_image["method"] == cell["method"])
            & (per_image["task"] == cell["task"])
            & (per_image["metric"] == cell["metric"])
        ]
        assert set(got["seed"].astype(str)) == set(cell["seed"].split(",")), cell["method"]
        # n counts independent units (photographs), each seed scored on all of them
        units = got.groupby("seed")["unit"].nunique()
        assert units.eq(cell["n"]).all(), (cell["method"], cell["task"])


# Notebooks that read data, run against a data root with nothing in it (smoke network).
MISSING_DATA = [
    "00_data_preparation",
    "01_model_walkthrough",
    "02_training",
    "03_table_I_3d",
    "07_table_V_one_by_one",
    "09_table_VII_components",
    "16_fig9_gating",
    "17_fig10_tsne",
    "18_fig_visual_comparisons",
]


@pytest.mark.notebook
@pytest.mark.parametrize("stem", MISSING_DATA)
def test_notebook_completes_without_data_and_says_why(stem, tmp_path, monkeypatch):
    empty = tmp_path / "no-data"
    empty.mkdir()
    monkeypatch.setenv("PYTHONPATH", "")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("M2IR_RESULTS", str(tmp_path / "results"))
    done = pipeline.run("smoke", only=stem, parameters={"data_root": str(empty)})
    assert [d["status"] for d in done] == ["ok"]
    roman = next((r for r in results.TABLES if f"_table_{r}_" in stem), None)
    if roman:
        table = results.read_results("smoke", roman)
        ours = table[table["source"] == "reproduced"]
        assert ours["value"].isna().all() and (ours["metric"] == results.STATUS).all()
        assert ours["note"].str.contains("not usable under").any(), ours["note"].tolist()


def test_make_test_runs_every_committed_notebook_once_with_nbval():
    """pytest's own configuration (what `make test` runs) collects each committed notebook
    as nbval cells marked `notebook`; no papermill test runs one at its default parameters."""
    import subprocess
    import sys
    import tomllib

    ini = tomllib.loads((results.repo_root() / "pyproject.toml").read_text())["tool"]["pytest"]
    assert "notebooks" in ini["ini_options"]["testpaths"]
    assert "--nbval-lax" in ini["ini_options"]["addopts"]
    listed = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"]
        + ["-n", "0", "-m", "notebook", "notebooks"],
        cwd=results.repo_root(),
        capture_output=True,
        text=True,
    ).stdout
    for path in NOTEBOOKS:
        assert f"notebooks/{path.name}::Cell 0" in listed, f"nbval does not run {path.name}"
    assert "test_notebook_runs_at_smoke" not in globals()  # papermill's second run of each
