"""The environment (issue 25): environment.yml is the list a person edits, requirements.lock
pins everything it pulls in, `make setup` installs the lock, and the list names what the code
imports and nothing it does not use."""

import ast
import importlib.metadata
import importlib.util
import json
import shutil
import subprocess
import sys

import pytest

from m2ir_lib.workbook.results import repo_root

ROOT = repo_root()
ENV, LOCK = ROOT / "environment.yml", ROOT / "requirements.lock"

# tools/ is a folder of scripts, not a package: load the lock tool from its file.
_spec = importlib.util.spec_from_file_location("lock", ROOT / "tools" / "lock.py")
lock = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(lock)

# Listed packages no code imports, and why each is still needed.
NOT_IMPORTED = {
    "jupyterlab": "make lab",
    "ipykernel": "the notebooks' kernel",
    "matplotlib-inline": "the kernels' figure backend, named in m2ir_lib/pipeline.py",
    "tabulate": "pandas.to_markdown (the summary page)",
    "einops": "the authors' networks in benchmarks/rivals_vs_authors.py",
    "jupyter-client": "kernels for papermill, nbval and tests/test_lab.py",
    "pytest-timeout": "pyproject.toml's timeout",
    "pytest-xdist": "make test -n 2",
    "nbval": "make test runs the notebooks",
    "ruff": "make lint",
    "import-linter": "tests/test_layers.py runs lint-imports",
}
CODE = ["m2ir_lib", "data_prep", "tests", "tools", "benchmarks"]


def listed() -> dict[str, str]:
    """environment.yml's pip list: normalized name -> requirement."""
    reqs = lock.pip_requirements(ENV.read_text(encoding="utf-8"))
    return {lock._name(r): r for r in reqs}


def imported_roots() -> set[str]:
    """Top-level modules the library, scripts, tests and notebooks import (not ours, not
    the standard library's)."""
    sources = [p.read_text(encoding="utf-8") for d in CODE for p in (ROOT / d).rglob("*.py")]
    sources.append((ROOT / "conftest.py").read_text(encoding="utf-8"))
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = json.loads(nb.read_text(encoding="utf-8"))["cells"]
        sources += ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
    roots = set()
    for source in sources:
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Import):
                roots |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                roots.add(node.module.split(".")[0])
    tools = {p.stem for p in (ROOT / "tools").glob("*.py")}
    return roots - set(sys.stdlib_module_names) - {"m2ir_lib", "data_prep"} - tools


def test_lock_was_compiled_from_environment_yml_and_pins_its_versions():
    assert lock.stale(ENV, LOCK) is None, lock.stale(ENV, LOCK)


def test_lock_pins_every_package():
    lines = [x for x in LOCK.read_text(encoding="utf-8").splitlines() if x[:1].isalnum()]
    assert len(lines) > 100  # the whole environment, not the top-level list
    assert all("==" in x and " " not in x.strip() for x in lines), lines


def test_an_edited_list_or_pin_makes_the_lock_stale(tmp_path):
    env = tmp_path / "environment.yml"
    env.write_text(ENV.read_text().replace("tqdm==4.70.1", "tqdm==4.70.0"))
    assert "make lock" in lock.stale(env, LOCK)
    # a lock edited by hand: the header matches, the pin does not
    edited = tmp_path / "requirements.lock"
    edited.write_text(LOCK.read_text().replace("\ntqdm==4.70.1", "\ntqdm==4.69.0"))
    assert "pins tqdm==4.70.1, " in lock.stale(ENV, edited)
    checked = subprocess.run(
        [sys.executable, ROOT / "tools" / "lock.py", "--check", env, LOCK],
        capture_output=True,
        text=True,
    )
    assert checked.returncode != 0 and "make lock" in checked.stderr


def test_make_setup_installs_from_the_lock():
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    dry = subprocess.run(
        ["make", "-n", "-B", "setup"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    installs = [x for x in dry.splitlines() if " install " in x]
    assert installs[0].endswith("pip install -r requirements.lock"), dry
    assert all("--no-deps" in x for x in installs[1:]), "only the lock may pull in packages"
    assert "tools/lock.py --check" in dry  # a stale lock stops the set-up


def test_every_imported_package_is_listed():
    names = listed()
    dists = importlib.metadata.packages_distributions()
    missing = {
        root: dists.get(root)
        for root in imported_roots()
        if not any(lock._name(d) in names for d in dists.get(root, [root]))
    }
    assert not missing, f"imported but not in environment.yml (add them, then make lock): {missing}"


def test_every_listed_package_is_imported_or_says_why():
    dists = importlib.metadata.packages_distributions()
    used = {lock._name(d) for root in imported_roots() for d in dists.get(root, [])}
    unused = set(listed()) - used - set(NOT_IMPORTED)
    assert not unused, f"environment.yml lists packages nothing uses: {sorted(unused)}"
    assert not set(NOT_IMPORTED) - set(listed()), "NOT_IMPORTED names an unlisted package"
