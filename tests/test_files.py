"""The one way the project writes a file (m2ir_lib.data.files): whole or not at all."""

import ast
import os
import stat
import subprocess
from pathlib import Path

import pytest

from m2ir_lib.data.files import atomic_path, atomic_write_text, git_commit

ROOT = Path(__file__).resolve().parents[1]


def test_atomic_path_replaces_the_file_only_when_the_writer_finishes(tmp_path):
    target = tmp_path / "sub" / "table.csv"
    atomic_write_text("old\n", target)
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half a tab")
        raise RuntimeError("killed mid-write")
    assert target.read_text() == "old\n"  # the previous file, untouched
    assert sorted(p.name for p in target.parent.iterdir()) == ["table.csv"]  # no temp left
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp.name.startswith(".")
        tmp.write_text("new\n")
    assert target.read_text() == "new\n"
    assert sorted(p.name for p in target.parent.iterdir()) == ["table.csv"]


def test_written_files_get_the_usual_permissions(tmp_path):
    """Not mkstemp's 0600: a results CSV is as readable as any file the user writes."""
    old = os.umask(0o022)
    try:
        path = atomic_write_text("x", tmp_path / "a.txt")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_git_commit_names_the_checkout_or_says_unknown(tmp_path):
    assert git_commit(tmp_path) == "unknown"  # not a repository
    here = git_commit()
    assert here == "unknown" or len(here.removesuffix("+dirty")) == 40
    short = git_commit(short=True)
    assert short == "unknown" or len(short.removesuffix("+dirty")) < 40


def test_commit_stamp_ignores_the_results_the_pipeline_rewrites(tmp_path):
    """A run rewrites tracked files under results/; the code is still the commit's. A change
    anywhere else still marks the stamp `+dirty`."""

    def git(*args):
        config = ["-c", "user.name=t", "-c", "user.email=t@e.org", "-c", "commit.gpgsign=false"]
        subprocess.run(["git", *config, *args], cwd=tmp_path, check=True, capture_output=True)

    (tmp_path / "results" / "mini").mkdir(parents=True)
    (tmp_path / "results" / "mini" / "table1_3d.csv").write_text("a\n")
    (tmp_path / "code.py").write_text("x = 1\n")
    git("init", "-q")
    git("add", ".")
    git("commit", "-q", "-m", "first")

    def stamp():
        git_commit.cache_clear()  # read once per process: ask again
        return git_commit(tmp_path, short=True)

    (tmp_path / "results" / "mini" / "table1_3d.csv").write_text("b\n")
    assert not stamp().endswith("+dirty")
    (tmp_path / "code.py").write_text("x = 2\n")
    assert stamp().endswith("+dirty")
    git_commit.cache_clear()


# Renames that are not writes: a checkpoint rotated to prev.pt or set aside as damaged, and a
# synthetic build swapped in as a whole folder.
RENAMES_ALLOWED = {"m2ir_lib/data/files.py", "m2ir_lib/engine/checkpoint.py", "data_prep/mini.py"}


def test_every_writer_goes_through_atomic_path():
    """No module writes its own temp-file-then-rename: `os.replace` lives in files.py (and in
    the renames above that move whole files or folders)."""
    found = set()
    for pkg in ("m2ir_lib", "data_prep", "benchmarks"):
        for path in (ROOT / pkg).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Attribute) and node.attr in ("replace", "rename"):
                    if isinstance(node.value, ast.Name) and node.value.id == "os":
                        found.add(str(path.relative_to(ROOT)))
    assert found <= RENAMES_ALLOWED
