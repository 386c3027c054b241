"""Every document the repository cites is in the repository, down to the cited section.

Users get the repository, nothing else: a docstring, error message, notebook or README that
points at a file they do not have (the team's working notes, a `docs/` page that was never
written, a section that was renumbered) sends them nowhere. Notebooks are checked by their
own test, so a notebook problem and a library problem are told apart.
"""

import json
import re
import subprocess
from pathlib import Path

import pytest

from m2ir_lib.workbook.results import repo_root

ROOT = repo_root()
# Names of the team's working notes, which live outside the repository: a bare mention of
# one is a citation of a file users do not have (`docs/data.md` is the project's own page).
# (Built from stems, so this list is not itself read as a citation by other checkers.)
TEAM_NOTES = {f"{stem}.md" for stem in ("arch", "data", "style", "env", "DESIGN")}
TEXT_SUFFIXES = {".py", ".md", ".ipynb", ".toml", ".yml", ".yaml", ".txt", ".cfg", ".sh", ""}
SKIP_DIRS = {".git", ".venv", "data", "runs", "weights", "__pycache__", ".pytest_cache"}
# A .md path standing on its own (after a space, quote, backtick or bracket), so that
# `owner/repo:path/FILE.md` peer citations, URLs and `<out>/<name>.report.md` patterns are
# not taken for repository paths; then any § numbers right after it ("§2", "§3, §4", "§2–3").
CITATION = re.compile(
    r"(?<![^\s\"'`(\[])((?:\.{1,2}/)?(?:[\w.-]+/)*[\w.-]+\.md)\b"
    r"((?:[\s`'\")]*,?\s*§\s*\d+(?:\.\d+)*(?:\s*[–-]\s*\d+(?:\.\d+)*)?)*)"
)
SECTION = re.compile(r"§\s*(\d+(?:\.\d+)*)(?:\s*[–-]\s*(\d+(?:\.\d+)*))?")
HEADING = re.compile(r"^#{1,6}\s+(\d+(?:\.\d+)*)[.\s]", re.MULTILINE)


def repository_files() -> list[Path]:
    """Tracked files (or, outside a git checkout, the tree without generated folders)."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, timeout=30
        ).stdout.decode()
        files = [ROOT / p for p in out.split("\0") if p]
    except (OSError, subprocess.SubprocessError):
        files = [
            p
            for p in ROOT.rglob("*")
            if p.is_file() and not SKIP_DIRS & set(p.relative_to(ROOT).parts)
        ]
    this = Path(__file__).resolve()
    return [
        p
        for p in files
        if p.suffix in TEXT_SUFFIXES and p.is_file() and p.resolve() != this  # names the notes
    ]


def text_of(path: Path) -> str:
    """The file's text; for a notebook, its cells' sources (not the escaped JSON)."""
    raw = path.read_text(encoding="utf-8", errors="replace")
    if path.suffix != ".ipynb":
        return raw
    cells = json.loads(raw).get("cells", [])
    return "\n\n".join(
        "".join(c["source"]) if isinstance(c["source"], list) else c["source"] for c in cells
    )


def sections(doc: Path) -> set[str]:
    """Numbers of the numbered headings of a markdown document ("## 3. Title" -> "3")."""
    return set(HEADING.findall(doc.read_text(encoding="utf-8")))


def problems(path: Path, text: str, root: Path = ROOT) -> list[str]:
    """Every citation in `text` (the contents of `path`) of a document not in `root`."""
    out = []
    for line_no, line in enumerate(text.splitlines(), 1):
        for match in CITATION.finditer(line):
            cited, after = match.group(1), match.group(2)
            where = f"{path.relative_to(root) if path.is_relative_to(root) else path}:{line_no}"
            if "/" not in cited:
                if cited in TEAM_NOTES and not (root / cited).is_file():
                    out.append(f"{where}: cites {cited}, a team note not in the repository")
                continue
            found = [p for p in (root / cited, path.parent / cited) if p.is_file()]
            if not found:
                out.append(f"{where}: cites {cited}, which is not in the repository")
                continue
            have = sections(found[0])
            for first, last in SECTION.findall(after):
                for number in filter(None, (first, last)):
                    if number not in have:
                        out.append(f"{where}: cites {cited} §{number}, which has no such section")
    return out


def _citation_problems(notebooks: bool) -> list[str]:
    files = [p for p in repository_files() if (p.suffix == ".ipynb") == notebooks]
    return [msg for p in files for msg in problems(p, text_of(p))]


def _report(found: list[str]) -> str:
    return f"{len(found)} citation(s) of documents not in the repository:\n" + "\n".join(found)


def test_library_tests_readme_cite_only_documents_in_the_repository():
    found = _citation_problems(notebooks=False)
    assert not found, _report(found)


def test_notebooks_cite_only_documents_in_the_repository():
    found = _citation_problems(notebooks=True)
    assert not found, _report(found)


def test_the_project_documents_exist_with_numbered_sections():
    for name in ("readings", "data", "results"):
        doc = ROOT / "docs" / f"{name}.md"
        assert doc.is_file(), f"{doc} is missing"
        assert sections(doc), f"{doc} has no numbered sections to cite"


@pytest.mark.parametrize(
    "text, expected",
    [
        # Split literals: the cases are citations of missing documents, not citations of ours.
        ("see research/" + "arch.md §0.2", "research/" + "arch.md, which is not"),
        ("(DESIGN" + ".md, Profiles)", "DESIGN" + ".md, a team note"),
        ("policy in `style.md`", "style.md, a team note"),
        ("docs/readings.md §99", "docs/readings.md §99, which has no such section"),
        ("docs/readings.md §1, §98", "docs/readings.md §98, which has no such section"),
        ("docs/readings.md §2–97", "docs/readings.md §97, which has no such section"),
        ("docs/nowhere" + ".md", "docs/nowhere" + ".md, which is not"),
    ],
)
def test_a_missing_document_or_section_is_reported(text, expected):
    found = problems(ROOT / "m2ir_lib" / "example.py", text)
    assert len(found) == 1 and expected in found[0], found


@pytest.mark.parametrize(
    "text",
    [
        "docs/readings.md §1, §12 and docs/data.md §5",
        "docs/readings.md §2–3",
        "the peers' notes (`c-yn/AdaIR:INSTALL.md`)",
        "writes ``<out>/<name>.report.md`` and report.md",
        "https://github.com/Im34v/M2IR/blob/main/README.md",
        "§IV-A of the paper, eq. (9)",
    ],
)
def test_citations_of_what_exists_pass(text):
    assert problems(ROOT / "m2ir_lib" / "example.py", text) == []
