"""The library's layering (README, "What is where"): the import contracts of pyproject.toml,
no import cycle anywhere, a core that loads no workbook machinery, no cycle-dodging imports
inside functions, and modules short enough to read."""

import ast
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("m2ir_lib", "data_prep")
# The only imports allowed inside a function: heavy optional dependencies, loaded when used.
OPTIONAL = ("open_clip", "pytorch_fid", "ptflops", "lpips", "torchvision", "m2ir_lib.core.daclip")
MAX_LINES = 500


def sources():
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


def test_import_contracts_are_kept():
    """lint-imports checks the layers (and the core's forbidden imports) of pyproject.toml."""
    lint = Path(sys.executable).with_name("lint-imports")
    args = [str(lint), "--no-cache"]
    done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


def test_no_module_imports_one_that_imports_it_back():
    """No cycle of any length between modules: Tarjan's strongly connected components of the
    module import graph are all single modules."""
    graph = grimp.build_graph(*PACKAGES, cache_dir=None)
    edges = {m: graph.find_modules_directly_imported_by(m) for m in graph.modules}
    index, low, stack, on, cycles, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in edges:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for m in sorted(edges):
        if m not in index:
            visit(m)
    assert cycles == []


@pytest.mark.parametrize("module", ["m2ir_lib.core.networks", "m2ir_lib.core.losses"])
def test_network_and_losses_load_no_workbook_machinery(module):
    """Importing the network or the losses (the card's "small library") pulls in no tables,
    plots or notebook runner, even through other packages."""
    probe = (
        f"import sys, {module}\n"
        "print(','.join(m for m in ('pandas', 'matplotlib', 'seaborn', 'papermill', 'IPython') "
        "if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == ""


def _nested_imports(tree):
    top = {id(n) for n in tree.body}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom) and id(node) not in top:
            yield node


def test_imports_inside_functions_are_only_heavy_optional_ones():
    """An import inside a function exists only to defer a heavy optional dependency, and the
    line (or the one above it) says so."""
    bad = []
    for path in sources():
        text = path.read_text(encoding="utf-8")
        lines = text.splitlines()
        for node in _nested_imports(ast.parse(text)):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
            optional = all(any(n == o or n.startswith(o + ".") for o in OPTIONAL) for n in names)
            first = node.lineno - 1  # the comment may head a run of such imports
            while first > 0 and lines[first - 1].strip().startswith(("import ", "from ")):
                first -= 1
            said = "optional" in " ".join(lines[first - 1 : node.lineno]).lower()
            if not (optional and said):
                bad.append(f"{path.relative_to(ROOT)}:{node.lineno}: {lines[node.lineno - 1]}")
    assert bad == []


def test_no_module_is_longer_than_500_lines():
    long = {
        str(p.relative_to(ROOT)): n
        for p in sources()
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert long == {}


def test_only_the_command_lines_look_a_profile_up():
    """A profile is resolved once, where the user names it (a notebook, a command line, a
    benchmark); below that the `Profile` object is passed down and never looked up again."""
    callers = set()
    for path in sources():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        if any(isinstance(n, ast.Name) and n.id == "get_profile" for n in ast.walk(tree)):
            callers.add(str(path.relative_to(ROOT)))
    commands = {f"m2ir_lib/{m}.py" for m in ("pipeline", "train", "summary")}
    assert callers <= commands | {"m2ir_lib/core/config.py"}
