"""The reference `mini` results committed under results/mini/ (issue 12) parse and match the
schema: every table, its per-image scores, and the summary page with its figures."""

import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from m2ir_lib.workbook import results
from m2ir_lib.workbook.stats import PER_IMAGE_COLUMNS

REPO = Path(__file__).resolve().parents[1]
MINI = REPO / "results" / "mini"


def _tracked() -> set[str]:
    out = subprocess.run(
        ["git", "ls-files", "results/mini"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    return set(out.split())


@pytest.fixture(autouse=True)
def _repository_results(monkeypatch):
    monkeypatch.delenv("M2IR_RESULTS", raising=False)  # read the repository's own files


def test_every_table_its_per_image_file_and_the_summary_are_committed():
    tracked = _tracked()
    assert "results/mini/README.md" in tracked
    for roman, spec in results.TABLES.items():
        assert f"results/mini/{spec.stem}.csv" in tracked, roman
        if roman != "XIII":
            assert f"results/mini/{spec.stem}_per_image.csv" in tracked, roman
    assert not [t for t in tracked if t.startswith("results/mini/notebooks/")], "executed copies"


@pytest.mark.parametrize("roman", list(results.TABLES))
def test_table_parses_and_matches_the_schema(roman):
    table = results.read_results("mini", roman, REPO)
    assert list(table.columns) == results.COLUMNS
    assert set(table["source"]) <= {"paper", "reproduced"}
    ours = table[table["source"] == "reproduced"]
    assert not ours.empty and (ours["profile"] == "mini").all()
    # the paper's rows are the transcription's, unchanged
    paper = table[(table["source"] == "paper") & ~table["note"].str.startswith("computed")]
    printed = results.paper_table(roman)
    assert len(paper) == len(printed)
    np.testing.assert_allclose(
        paper["value"].to_numpy(float), printed["value"].to_numpy(float), equal_nan=True
    )
    status = ours["metric"] == results.STATUS
    assert ours.loc[status, "note"].str.len().gt(0).all()  # every gap says why
    if roman == "XIII":
        return
    cells = ours[~status & (ours["metric"] != "FID") & np.isfinite(ours["value"])]
    assert not cells.empty and results.FLOOR in set(cells["method"])
    assert (cells["n"] >= 1).all()
    assert (cells["ci_low"] <= cells["value"] + 1e-9).all()
    assert (cells["value"] <= cells["ci_high"] + 1e-9).all()


@pytest.mark.parametrize("roman", [r for r in results.TABLES if r != "XIII"])
def test_per_image_scores_join_their_table(roman):
    table = results.read_results("mini", roman, REPO)
    per_image = results.read_per_image("mini", roman, REPO)
    assert list(per_image.columns) == PER_IMAGE_COLUMNS
    cells = table[
        (table["source"] == "reproduced")
        & (table["metric"] != results.STATUS)
        & (table["metric"] != "FID")
        & (table["task"] != results.AVERAGE)
    ]
    for _, cell in cells.iterrows():
        got = per_image[
            (per_image["method"] == cell["method"])
            & (per_image["task"] == cell["task"])
            & (per_image["metric"] == cell["metric"])
        ]
        assert got.groupby("seed").size().eq(cell["n"]).all(), (cell["method"], cell["task"])


def test_summary_page_names_its_run_and_links_only_committed_figures():
    page = (MINI / "README.md").read_text(encoding="utf-8")
    assert re.search(r"- commit: `[0-9a-f]{7,}", page) and "- machine: " in page
    for roman in results.TABLES:
        assert f"## Table {roman}:" in page
    tracked = _tracked()
    links = re.findall(r"\]\((figures/[^)]+)\)", page)
    assert links, "the page shows no figure"
    for link in links:
        assert f"results/mini/{link}" in tracked, link


def test_the_summary_opens_with_the_claims_and_every_table_wrote_its_claims():
    from m2ir_lib.workbook import claims

    page = (MINI / "README.md").read_text(encoding="utf-8")
    first = page.index("## ")
    assert page[first:].startswith("## The paper's claims at a glance")
    found = claims.read_claims("mini", REPO)
    for roman in ("I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX", "X", "XI", "XII"):
        assert roman in set(found["source"]), roman
    assert set(found["kind"]) <= {claims.PAPER, claims.EXTRA}
    assert found["verdict"].notna().all()


def test_extra_seeds_go_only_where_a_claim_can_be_tested():
    """Issue 23: `Profile.seed_tables` at mini against the committed claims. A table that trains
    extra seeds has a paper claim (with a printed effect) that this design can test; one that
    does not has none, so more seeds there would only repeat untestable comparisons."""
    from m2ir_lib.core.config import get_profile
    from m2ir_lib.workbook import claims, tables

    found = claims.read_claims("mini", REPO)
    sized = found[(found["kind"] == claims.PAPER) & found["paper_effect"].notna()]
    seeded = get_profile("mini").seed_tables
    for roman in tables.HEADLINE:
        rows = sized[sized["source"] == roman]
        if rows.empty:  # e.g. Table VI: no printed effect to size a design against
            continue
        testable = ~rows["verdict"].astype(str).str.startswith("not testable")
        if roman in seeded:
            assert testable.any(), f"Table {roman} trains extra seeds that no claim can use"
        else:
            assert not testable.any(), f"Table {roman}'s claims could use extra seeds"
