"""nbval's run of the committed notebooks, beside tests/ (pyproject.toml: testpaths, --nbval-lax).

At the repository root so that it applies to `pytest notebooks` too, not only to a run that
collects tests/ (whose conftest.py sets up the environment the kernels inherit).
"""

from pathlib import Path

import pytest

SMOKE_GROUP = "smoke-workbook"  # xdist group: the notebooks in order, on one worker
LONGEST = "test_rehearsal.py"  # the paper-profile rehearsal: notebooks 00-18, ~5 min
RESULT_CHECKS = "smoke_results_of"  # tests that read what one notebook's nbval run wrote
_COLLECTED: set[str] = set()  # notebooks whose cells this session (this worker) collected
_OUTCOMES: dict[str, str] = {}  # notebook stem -> "passed" / "failed", as its cells ran


def _notebook(item) -> str | None:
    """The stem of the notebook an nbval cell belongs to (None for other tests)."""
    return item.path.stem if item.path.suffix == ".ipynb" else None


@pytest.hookimpl(tryfirst=True)  # before -m deselects and xdist reads the group marks
def pytest_collection_modifyitems(config, items):
    """`make test` runs the committed notebooks with nbval (testpaths, --nbval-lax): mark
    their cells `notebook` (`make test-fast` skips them) and put them in one xdist group, in
    run order, since later notebooks reuse the data and runs of earlier ones. Each
    `test_smoke_results_of` check moves to just after the last cell of its notebook."""
    cells = [i for i in items if _notebook(i)]
    _COLLECTED.update(_notebook(i) for i in cells)
    for item in cells:
        item.add_marker(pytest.mark.notebook)
        item.add_marker(pytest.mark.xdist_group(SMOKE_GROUP))
    checks = {i: i.callspec.id for i in items if i.name.startswith(f"test_{RESULT_CHECKS}[")}
    order = [i for i in items if i not in checks]
    for check, stem in checks.items():
        last = max((n for n, i in enumerate(order) if _notebook(i) == stem), default=None)
        order.insert(len(order) if last is None else last + 1, check)
    # The rehearsal, then the other slow tests, first (a stable sort: the notebooks keep their
    # order): xdist hands out the big notebook group first and then single tests in this
    # order, and the 5-minute rehearsal started late left one worker running it alone.
    items[:] = sorted(
        order, key=lambda i: (not i.get_closest_marker("slow"), LONGEST not in i.nodeid)
    )
    if getattr(config.option, "loadgroup", False):  # on xdist workers under --dist loadgroup
        _group_node_ids(items)


def _group_node_ids(items) -> None:
    """Give grouped items their xdist group in the node id ("nodeid@group"), which is what
    `--dist loadgroup` schedules by. pytest-xdist 3.8 sets `item._nodeid`, which pytest 9 no
    longer reads (`Node.nodeid` is `str(item._id)`): without this every cell of a notebook
    could run on another worker, in another kernel, and no group is kept together."""
    for item in items:
        groups = sorted({str(m.args[0]) for m in item.iter_markers("xdist_group") if m.args})
        if groups and "@" not in item.nodeid and hasattr(item, "_id"):
            item._id = type(item._id).parse(f"{item.nodeid}@{'_'.join(groups)}")


def pytest_runtest_logreport(report):
    """Remember whether each notebook's cells passed, for the checks that read its results."""
    path = Path(report.nodeid.split("::")[0])
    if path.suffix == ".ipynb":
        if report.failed or _OUTCOMES.get(path.stem) == "failed":
            _OUTCOMES[path.stem] = "failed"
        elif report.when == "call":
            _OUTCOMES[path.stem] = "passed"


@pytest.fixture
def nbval_passed():
    """`nbval_passed(stem)`: fail unless that notebook ran cleanly under nbval in this session
    (a check must not read results an earlier run left behind); skip when it was not
    collected, as in `pytest tests/test_notebooks.py` alone."""

    def check(stem: str) -> None:
        if stem not in _COLLECTED:
            pytest.skip(f"notebooks/{stem}.ipynb is not in this run: pytest notebooks tests")
        outcome = _OUTCOMES.get(stem)
        assert outcome == "passed", (
            f"notebooks/{stem}.ipynb {outcome or 'did not run before this check'} under nbval "
            "(its failing cell is reported above); its results were not checked"
        )

    return check
