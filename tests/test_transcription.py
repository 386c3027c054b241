"""The paper's transcribed numbers (`results/reported/`) survive every run at every profile.

Issue 9, defect 1: the transcription used to share its folder with the `paper` profile's
outputs, so `pipeline --profile paper --only 03` replaced it. These tests run notebooks in a
copy of the repository (its results go where a user's would, not to $M2IR_RESULTS) and
compare every committed file under `results/` before and after.
"""

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from m2ir_lib import pipeline
from m2ir_lib.core.config import PROFILES
from m2ir_lib.workbook import results

REPO = Path(__file__).resolve().parents[1]


def committed_results(root: Path) -> dict[str, str]:
    """{path: sha256} of the files git tracks under results/ of the real repository,
    read from `root` (a copy), plus any file that appeared beside them."""
    tracked = subprocess.run(
        ["git", "ls-files", "results"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    folders = {str(Path(t).parent) for t in tracked}
    found = {}
    for folder in folders:
        for p in sorted((root / folder).rglob("*")):
            if p.is_file():
                found[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    assert found, "no committed results found"
    return found


@pytest.fixture
def repo_copy(tmp_path):
    """The code, notebooks and committed results in a fresh folder (no runs, no data)."""
    dst = tmp_path / "repo"
    for name in ("m2ir_lib", "data_prep", "notebooks", "results", "benchmarks"):
        shutil.copytree(REPO / name, dst / name, ignore=shutil.ignore_patterns("__pycache__"))
    for p in list((dst / "results").iterdir()):  # only what git tracks
        if (
            not subprocess.run(
                ["git", "ls-files", "--error-unmatch", f"results/{p.name}"],
                cwd=REPO,
                capture_output=True,
            ).returncode
            == 0
        ):
            shutil.rmtree(p) if p.is_dir() else p.unlink()
    return dst


@pytest.mark.slow
@pytest.mark.parametrize("profile", ["paper", "smoke"])
def test_a_notebook_run_leaves_the_transcription_unchanged(repo_copy, profile):
    before = committed_results(repo_copy)
    env = {
        k: v for k, v in os.environ.items() if k not in ("M2IR_RESULTS", "M2IR_RUNS", "M2IR_DATA")
    }
    env.update(PYTHONPATH=str(repo_copy), OMP_NUM_THREADS="1", MPLBACKEND="Agg")
    done = subprocess.run(
        [sys.executable, "-m", "m2ir_lib.pipeline", "--profile", profile, "--only", "00"],
        cwd=repo_copy,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert (repo_copy / "results" / profile / "data_summary.csv").is_file()  # it did write
    assert committed_results(repo_copy) == before


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_no_profile_resolves_to_the_transcription(profile, monkeypatch, tmp_path):
    monkeypatch.delenv("M2IR_RESULTS", raising=False)
    reported = results.reported_dir(tmp_path).resolve()
    out = results.results_dir(profile, tmp_path).resolve()
    assert out != reported and reported not in out.parents
    fig = results.figure_path(profile, "x", tmp_path).resolve()
    assert reported not in fig.parents
    assert pipeline.notebooks()  # the pipeline writes under results_dir(profile) only


@pytest.mark.parametrize("name", ["reported", "../reported", "", "a/b"])
def test_writing_into_the_transcription_is_refused(name, tmp_path):
    with pytest.raises(ValueError):
        results.results_dir(name, tmp_path)
    with pytest.raises(ValueError):
        results.write_frame(__import__("pandas").DataFrame({"a": [1]}), name, "x", tmp_path)
