"""The paper path's edges (issue 24, items 1–7): real-data manifests, partial data, the
WeatherBench layout and bad images from the notebooks, relative paths, batch and process
counts, the loop's own sample count, the CLI's printed schedule and the docs."""

import json
import re
import shutil
from pathlib import Path

import pytest

from data_prep.prepare import prepare
from data_prep.rehearsal import write_rehearsal_root
from data_prep.scan import LayoutError, PartialDataWarning
from m2ir_lib import train as cli
from m2ir_lib.core.config import PROFILES, get_profile, with_batch_size
from m2ir_lib.engine.train import accumulation
from m2ir_lib.workbook import experiments, results, scoring, settings

pytestmark = pytest.mark.filterwarnings("ignore::data_prep.scan.PartialDataWarning")
PAPER = PROFILES["paper"]
REHEARSAL = "network=smoke,iters=1,patch=32,eval_images=2"


@pytest.fixture(scope="module")
def fake_root(tmp_path_factory):
    """The published layouts with 2 pairs per data set (`data_prep.rehearsal`)."""
    return write_rehearsal_root(tmp_path_factory.mktemp("fake") / "root", pairs=2)


@pytest.fixture
def root(fake_root, tmp_path):
    """A private copy of the fake root (tests move folders around in it)."""
    return Path(shutil.copytree(fake_root, tmp_path / "root"))


@pytest.fixture(autouse=True)
def _env(tmp_path, monkeypatch):
    for k in ("M2IR_ALLOW_PARTIAL", "M2IR_LAYOUT", "M2IR_ON_BAD", "M2IR_BATCH_SIZE",
              "M2IR_CALLER_CWD", "M2IR_REHEARSAL", "M2IR_DATA"):  # fmt: skip
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("M2IR_MANIFESTS", str(tmp_path / "manifest-cache"))


# ------------------------------------------------------------------ 1. cached manifests


def test_a_partial_manifest_is_not_reused_without_the_flag(root, monkeypatch):
    monkeypatch.setenv("M2IR_ALLOW_PARTIAL", "1")
    data = settings.locate("cdd11", PAPER, str(root))
    assert data.available and "PARTIAL" in data.label  # every row's data column says so
    facts = json.loads(data.manifest.with_suffix(".json").read_text())
    assert facts["partial"] and facts["rows"]["train/haze"] == 2
    monkeypatch.delenv("M2IR_ALLOW_PARTIAL")
    again = settings.locate("cdd11", PAPER, str(root))
    assert not again.available and "allow-partial" in again.reason
    assert not data.manifest.exists()  # the partial manifest is gone, not kept for later


def test_a_cached_manifest_is_rescanned_when_the_data_changes(root, monkeypatch):
    monkeypatch.setenv("M2IR_ALLOW_PARTIAL", "1")
    first = settings.locate("derain", PAPER, str(root))
    rows = len(experiments.read_manifest(first.manifest))
    for folder, name in (("Train/Derain/rainy", "rain-3.png"), ("Train/Derain/gt", "norain-3.png")):
        shutil.copy(root / folder / name.replace("3", "1"), root / folder / name)
    second = settings.locate("derain", PAPER, str(root))
    assert len(experiments.read_manifest(second.manifest)) == rows + 1
    shutil.rmtree(root / "Train/Derain")  # a moved-away data set is noticed too
    assert not settings.locate("derain", PAPER, str(root)).available


# ------------------------------------------------------------------ 2. whole parts missing


@pytest.mark.parametrize(
    "command,moved,part,tree",
    [("3d", "Train/Dehaze", "ots", "Train/Dehaze/synthetic"),
     ("5d", "Train/Deblur", "gopro-train", "Train/Deblur/blur")],
)  # fmt: skip
def test_a_missing_part_is_refused_even_with_allow_partial(root, tmp_path, command, moved, part,
                                                           tree):  # fmt: skip
    shutil.move(root / moved, tmp_path / "away")
    with pytest.raises(LayoutError, match=rf"(?s){part}: no accepted layout.*{tree}"):
        prepare(command, root, tmp_path / "out", allow_partial=True, patch=32)
    with pytest.warns(PartialDataWarning, match=f"part {part} missing"):  # explicit: accepted
        res = prepare(command, root, tmp_path / "out", allow_partial=True, allow_missing=True,
                      patch=32)  # fmt: skip
    assert f"part {part} missing" in res.report.read_text()


def test_the_notebooks_never_train_on_a_setting_with_a_task_missing(root, tmp_path, monkeypatch):
    monkeypatch.setenv("M2IR_ALLOW_PARTIAL", "1")
    shutil.move(root / "Train/Dehaze", tmp_path / "away")
    data = settings.locate("3d", PAPER, str(root))
    assert not data.available and "ots" in data.reason and "Train/Dehaze" in data.reason


# ------------------------------------------------------------------ 3. layout, bad images


def test_the_weatherbench_layout_reaches_the_notebooks(root, tmp_path, monkeypatch):
    layout = tmp_path / "wb.yaml"
    layout.write_text(
        "base: WeatherBench\nkey: stem\ntotals: {test: 2}\npairs:\n"
        "  - {split: test, task: desnow, degraded: test/snow/input, clean: test/snow/target}\n"
    )
    monkeypatch.setenv("M2IR_LAYOUT", str(layout))
    data = settings.locate("weatherbench", PAPER, str(root))
    assert set(experiments.read_manifest(data.manifest)["task"]) == {"desnow"}
    monkeypatch.delenv("M2IR_LAYOUT")  # another layout: scanned again, not reused
    monkeypatch.setenv("M2IR_ALLOW_PARTIAL", "1")
    data = settings.locate("weatherbench", PAPER, str(root))
    assert set(experiments.read_manifest(data.manifest)["task"]) == {"dehaze", "derain", "desnow"}


def test_one_corrupt_image_can_be_skipped_from_the_notebooks(root, monkeypatch):
    monkeypatch.setenv("M2IR_ALLOW_PARTIAL", "1")
    bad = root / "test/derain/Rain100L/input/1.png"
    bad.write_bytes(b"\x89PNG not really")
    data = settings.locate("derain", PAPER, str(root))
    assert not data.available and "1.png" in data.reason and "on_bad" in data.reason
    monkeypatch.setenv("M2IR_ON_BAD", "skip")
    data = settings.locate("derain", PAPER, str(root))
    test = experiments.read_manifest(data.manifest).query("split == 'test'")
    assert data.available and len(test) == 1
    monkeypatch.setenv("M2IR_ON_BAD", "sikp")
    with pytest.raises(ValueError, match="M2IR_ON_BAD='sikp'"):
        settings.locate("derain", PAPER, str(root))


# ------------------------------------------------------------------ 4. relative paths


@pytest.fixture
def repo(tmp_path, monkeypatch):
    """A repository root with weights/, rivals/, a data root and notebooks/ (the kernel's cwd)."""
    top = tmp_path / "repo"
    (top / "notebooks").mkdir(parents=True)
    (top / "weights").mkdir()
    (top / "weights" / "daclip_ViT-B-32.pt").write_bytes(b"weights")
    (top / "rivals").mkdir()
    (top / "rivals" / "promptir.ckpt").write_bytes(b"weights")
    monkeypatch.setattr(results, "REPO_ROOT", top)
    return top


@pytest.mark.parametrize("cwd", [".", "notebooks"])
def test_relative_paths_work_from_the_root_and_from_notebooks(repo, root, monkeypatch, cwd):
    monkeypatch.chdir(repo / cwd)
    daclip = str(repo / "weights" / "daclip_ViT-B-32.pt")
    assert settings.user_path("weights/daclip_ViT-B-32.pt", "daclip_checkpoint") == daclip
    run = experiments.plan("x", PAPER, settings.Data("3d", None, None, ""),
                           daclip_checkpoint="weights/daclip_ViT-B-32.pt")  # fmt: skip
    assert run.daclip_checkpoint == daclip  # absolute: torchrun workers run from the root
    assert scoring.released_checkpoints("rivals") == {"promptir": repo / "rivals/promptir.ckpt"}
    assert scoring.released_checkpoints("promptir=rivals/promptir.ckpt")["promptir"].is_file()
    shutil.move(root, repo / "data-root")
    monkeypatch.setenv("M2IR_ALLOW_PARTIAL", "1")
    located = settings.locate("derain", PAPER, "data-root")
    assert located.available and located.root.resolve() == (repo / "data-root").resolve()
    with pytest.raises(FileNotFoundError, match=r"daclip_checkpoint='weight/x.pt': no such"):
        settings.user_path("weight/x.pt", "daclip_checkpoint")


def test_relative_paths_follow_where_the_pipeline_was_started(repo, tmp_path, monkeypatch):
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "fid.pth").write_bytes(b"x")
    monkeypatch.chdir(repo / "notebooks")
    monkeypatch.setenv("M2IR_CALLER_CWD", str(tmp_path / "elsewhere"))
    assert settings.user_path("fid.pth", "inception_weights") == str(tmp_path / "elsewhere/fid.pth")


# ------------------------------------------------------------------ 5. batch and processes


def _follow(advice: str, tc, world: int):
    """The TrainConfig and process count the error's advice leads to."""
    if m := re.search(r"--batch-size (\d+)", advice):
        return with_batch_size(PAPER, int(m.group(1))).train, world
    return tc, int(re.search(r"--nproc_per_node=(\d+)", advice).group(1))


@pytest.mark.parametrize("world", [1, 2, 3, 4, 8, 16])
def test_every_process_count_trains_the_global_batch_or_names_a_working_command(world):
    tc, procs = PAPER.train, world
    try:
        accum = accumulation(tc, world)
    except ValueError as err:
        assert world in (3, 8, 16), err
        tc, procs = _follow(str(err), tc, world)
        accum = accumulation(tc, procs)  # the advice works
    assert procs * tc.batch_size * accum == 32 == tc.global_batch
    assert procs == (2 if world == 3 else world)


def test_the_batch_size_is_settable_from_the_environment(monkeypatch):
    monkeypatch.setenv("M2IR_BATCH_SIZE", "4")
    prof = get_profile("paper")
    assert (prof.train.batch_size, prof.train.grad_accum, prof.train.global_batch) == (4, 8, 32)
    assert prof.ablation_train.global_batch == 32
    monkeypatch.setenv("M2IR_BATCH_SIZE", "5")
    with pytest.raises(ValueError, match=r"M2IR_BATCH_SIZE='5'.*\[1, 2, 4, 8, 16, 32\]"):
        get_profile("paper")


def test_three_gpus_are_refused_before_any_run_starts(root, monkeypatch):
    monkeypatch.setenv("M2IR_ALLOW_PARTIAL", "1")
    run = experiments.plan("x", PAPER, settings.locate("derain", PAPER, str(root)))
    monkeypatch.setattr(experiments.torch.cuda, "device_count", lambda: 3)
    monkeypatch.setattr(experiments, "_torchrun", lambda *a: pytest.fail("torchrun started"))
    with pytest.raises(ValueError, match="CUDA_VISIBLE_DEVICES=0,1"):
        experiments.train_runs([run], PAPER)


# ------------------------------------------------------- 6, 7. the CLI trainer, rehearsed


def test_cli_trainer_rehearsed_counts_its_samples_and_prints_the_tasks_schedule(
    root, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("M2IR_REHEARSAL", REHEARSAL)
    res = prepare("3d", root, tmp_path / "manifests", allow_partial=True, patch=32)
    code = cli.main(["--profile", "paper", "--manifest", str(res.manifests["3d"]),
                     "--data-root", str(root), "--out", str(tmp_path / "run"),
                     "--tasks", "derain", "--batch-size", "4"])  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    # the printed schedule is the one trained: derain's 2 rows × 120, not the 3D mix
    assert "240 samples/epoch (derain 2×120)" in out and "denoise" not in out.split("\n")[0]
    meta = json.loads((tmp_path / "run" / "meta.json").read_text())
    assert meta["tasks"] == ["derain"] and (meta["micro_batch"], meta["accumulation"]) == (4, 8)
    assert meta["samples_per_step"] == [32] and meta["samples_stepped"] == 32 * meta["steps"]
    with pytest.raises(SystemExit):  # a misspelt task is refused, not silently left out
        cli.main(["--profile", "paper", "--manifest", str(res.manifests["3d"]),
                  "--data-root", str(root), "--out", str(tmp_path / "r2"),
                  "--tasks", "derain", "dehze"])  # fmt: skip


def test_docs_describe_the_code_as_it_is():
    root = results.repo_root()
    data_md = (root / "docs/data.md").read_text()
    readings = (root / "docs/readings.md").read_text()
    gpu = (root / "docs/gpu.md").read_text()
    assert "PAPER_REPEATS" not in data_md  # the factors live in settings.SETTINGS
    assert "`settings.SETTINGS`" in data_md and "M2IR_LAYOUT" in data_md
    assert "naming a batch size that does" not in readings  # the advice names a command
    assert "M2IR_BATCH_SIZE" in readings and "M2IR_BATCH_SIZE" in gpu
