"""Strip outputs from notebooks before committing them (they are reviewed as code).

    python tools/strip_notebooks.py notebooks/*.ipynb          # strip in place
    python tools/strip_notebooks.py --check notebooks/*.ipynb  # exit 1 if any has outputs

Removes outputs and execution counts, papermill's injected-parameters cell, papermill's and
nbval's per-cell metadata and the notebook-level execution metadata; keeps cell tags (the
`parameters` tag) and the kernelspec, so a notebook saved from JupyterLab or copied from
results/<profile>/notebooks/ strips back to its committed form.
"""

from __future__ import annotations

import argparse
import sys

import nbformat

KEEP_CELL_METADATA = ("tags",)
KEEP_NB_METADATA = ("kernelspec", "language_info")


def is_clean(nb) -> bool:
    """True when no code cell has outputs or an execution count."""
    return all(
        not c.get("outputs") and c.get("execution_count") is None
        for c in nb.cells
        if c.cell_type == "code"
    )


def strip(nb):
    """Return `nb` without outputs, execution counts, run metadata and papermill's
    injected-parameters cell (in place)."""
    nb.cells = [c for c in nb.cells if "injected-parameters" not in c.metadata.get("tags", [])]
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        cell.metadata = {k: v for k, v in cell.metadata.items() if k in KEEP_CELL_METADATA}
        if nb.nbformat_minor < 5:  # cell ids exist from nbformat 4.5 on
            cell.pop("id", None)
    nb.metadata = {k: v for k, v in nb.metadata.items() if k in KEEP_NB_METADATA}
    if "language_info" in nb.metadata:
        nb.metadata["language_info"] = {"name": nb.metadata["language_info"].get("name", "python")}
    return nb


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+")
    parser.add_argument("--check", action="store_true", help="only report; exit 1 if unclean")
    args = parser.parse_args(argv)
    dirty = []
    for path in args.paths:
        nb = nbformat.read(path, as_version=4)
        if args.check:
            if not is_clean(nb):
                dirty.append(path)
            continue
        nbformat.write(strip(nb), path)
    for path in dirty:
        print(f"{path}: has outputs (run tools/strip_notebooks.py {path})")
    return 1 if dirty else 0


if __name__ == "__main__":
    sys.exit(main())
