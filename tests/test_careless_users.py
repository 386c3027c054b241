"""Issue 24, items 8–14 (careless and hostile users) and issue 25, item 5 (the CLIs' logging).

Each test names its item; each failed before the change it covers."""

import dataclasses
import io
import os
import subprocess
import sys
import threading
import time

import nbformat
import numpy as np
import pandas as pd
import pytest
import torch
from filelock import FileLock
from PIL import Image

from m2ir_lib import efficiency as efficiency_cli
from m2ir_lib import pipeline
from m2ir_lib import train as train_cli
from m2ir_lib.core.config import PROFILES, get_profile
from m2ir_lib.data.datasets import ImageReadError, load_image, read_manifest
from m2ir_lib.engine import checkpoint as ckp
from m2ir_lib.engine import restore as restore_mod
from m2ir_lib.engine import train as train_mod
from m2ir_lib.workbook import experiments, results, settings, stats

SMOKE = PROFILES["smoke"]
TCFG = dataclasses.replace(SMOKE.train, iters=2, ckpt_every=100, num_workers=0)
REPO = results.repo_root()


@pytest.fixture(scope="module")
def checkpoint(smoke_data, tmp_path_factory):
    root, manifest = smoke_data
    out = tmp_path_factory.mktemp("run")
    return train_mod.train(SMOKE.model, TCFG, manifest, root, out, profile="smoke", progress=False)


def _table_notebook(number="03"):
    return pipeline.select(pipeline.notebooks(), only=number)


# ------------------------------------------------------------------ 8, 9: notebook parameters


def test_item8_a_misspelt_parameter_is_refused_before_anything_runs(capsys):
    with pytest.raises(ValueError, match="unknown parameter 'data_rot'.*known: .*data_root"):
        pipeline.check_parameters({"data_rot": "/data"}, _table_notebook())
    with pytest.raises(SystemExit) as err:
        pipeline.main(["--only", "03", "-p", "data_rot=/data", "--list"])
    assert err.value.code == 2 and "data_rot" in capsys.readouterr().err


def test_item8_profile_is_reserved_for_the_profile_option(capsys):
    with pytest.raises(SystemExit) as err:
        pipeline.main(["--profile", "smoke", "-p", "profile=mini", "--list"])
    assert err.value.code == 2 and "reserved; set it with --profile" in capsys.readouterr().err


def test_item9_values_are_read_as_their_declared_types(tmp_path):
    nb = _table_notebook()
    got = pipeline.check_parameters({"rivals": "false", "jobs": 2, "seed": 3}, nb)
    assert got == {"rivals": False, "jobs": 2, "seed": 3}
    assert pipeline.check_parameters({"rivals": "True"}, nb) == {"rivals": True}
    for bad, says in [
        ({"rivals": "maybe"}, "expected True or False"),
        ({"jobs": -2}, "at least 0"),
        ({"seeds": 0}, "at least 1"),
        ({"seed": 1.5}, "whole number"),
        ({"jobs": True}, "whole number"),
    ]:
        with pytest.raises(ValueError, match=says):
            pipeline.check_parameters(bad, nb)
    with pytest.raises(ValueError, match="one of yes, no, auto"):
        pipeline.check_parameters({"paper_macs": True}, _table_notebook("15"))


def test_item13_path_parameters_are_checked_and_made_absolute(tmp_path, monkeypatch):
    nb = _table_notebook()
    with pytest.raises(FileNotFoundError, match="rival_checkpoints"):
        pipeline.check_parameters({"rival_checkpoints": "promptir=/no/such.ckpt"}, nb)
    with pytest.raises(FileNotFoundError, match="daclip_checkpoint"):
        pipeline.check_parameters({"daclip_checkpoint": str(tmp_path / "missing.pt")}, nb)
    (tmp_path / "w.pt").write_bytes(b"x")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("M2IR_CALLER_CWD", raising=False)  # left by an earlier pipeline.run
    got = pipeline.check_parameters({"daclip_checkpoint": "w.pt", "data_root": "."}, nb)
    assert got == {"daclip_checkpoint": str(tmp_path / "w.pt"), "data_root": str(tmp_path)}


# ------------------------------------------------------------------ 8, 10: results written as one


def _rows(value, commit="run-a"):
    return results.rows(
        "VI", "M²IR (ours, smoke)", {("desnow", "PSNR"): value},
        profile="smoke", seed=0, data="t", commit=commit,
    )  # fmt: skip


def _per_image(value, run="run-a"):
    row = ("VI", "M²IR (ours, smoke)", run, 0, "desnow", "", np.nan, "im0", "im0", "PSNR", value)
    return pd.DataFrame([row], columns=stats.PER_IMAGE_COLUMNS)


def test_item8_a_run_without_data_keeps_a_table_with_reproduced_rows(tmp_path):
    prof = get_profile("smoke")
    results.write_per_image(_per_image(20.0), prof, "VI", root=tmp_path)
    path = results.write_results(_rows(20.0), prof, "VI", root=tmp_path)
    before = path.read_text(), path.with_name("table6_unseen_desnow_per_image.csv").read_text()
    empty = pd.DataFrame(columns=stats.PER_IMAGE_COLUMNS)
    results.write_per_image(empty, prof, "VI", root=tmp_path)
    none = results.status_row("VI", "M²IR (ours, smoke)", "no CSD test set", profile=prof)
    with pytest.raises(ValueError, match="reproduced no number.*no CSD test set.*keeps the 1"):
        results.write_results(none, prof, "VI", root=tmp_path)
    after = path.read_text(), path.with_name("table6_unseen_desnow_per_image.csv").read_text()
    assert after == before


def test_item10_a_table_and_its_per_image_scores_are_written_together(tmp_path):
    prof = get_profile("smoke")
    results.write_per_image(_per_image(20.0, "run-a"), prof, "VI", root=tmp_path)
    folder = results.results_dir(prof, tmp_path)
    assert not (folder / "table6_unseen_desnow_per_image.csv").exists()  # staged, not written
    assert results.read_per_image(prof, "VI", root=tmp_path)["run"].tolist() == ["run-a"]
    # Another run of the same table finishes in between (another process, other seed).
    folder.mkdir(parents=True, exist_ok=True)
    _rows(30.0, "run-b").to_csv(folder / "table6_unseen_desnow.csv", index=False)
    _per_image(30.0, "run-b").to_csv(folder / "table6_unseen_desnow_per_image.csv", index=False)
    results.write_results(_rows(20.0), prof, "VI", root=tmp_path)
    table = results.read_results(prof, "VI", root=tmp_path)
    per_image = results.read_per_image(prof, "VI", root=tmp_path)
    assert set(table["commit"]) == {"run-a"} and per_image["run"].tolist() == ["run-a"]


def test_item10_the_write_waits_for_the_results_lock(tmp_path):
    prof = get_profile("smoke")
    folder = results.results_dir(prof, tmp_path)
    folder.mkdir(parents=True)
    taken = threading.Event()

    def other_writer():  # another process's write, here a thread with its own lock object
        with FileLock(folder / ".results.lock"):
            taken.set()
            time.sleep(0.6)

    thread = threading.Thread(target=other_writer)
    thread.start()
    taken.wait()
    t0 = time.perf_counter()
    results.write_results(_rows(20.0), prof, "VI", root=tmp_path)
    assert time.perf_counter() - t0 > 0.4
    thread.join()


# ------------------------------------------------------------------ 11: broken weights


def test_item11_nan_weights_are_refused_naming_the_checkpoint(checkpoint, tmp_path):
    ckpt = ckp.read_checkpoint(checkpoint)
    name = next(k for k, v in ckpt["model"].items() if v.is_floating_point())
    ckpt["model"][name] = torch.full_like(ckpt["model"][name], float("nan"))
    bad = tmp_path / "nan.pt"
    torch.save(ckpt, bad)
    with pytest.raises(ValueError, match=rf"{bad}.*non-finite weights.*{name}"):
        ckp.load_checkpoint(bad)
    from m2ir_lib import restore as restore_cli

    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / "a.png")
    argv = [str(tmp_path / "a.png"), "--checkpoint", str(bad), "--out", str(tmp_path / "o")]
    assert restore_cli.main([*argv, "--device", "cpu"]) == 1
    assert not (tmp_path / "o").exists()


def test_item11_a_non_finite_output_is_refused():
    x = torch.rand(1, 3, 16, 16)
    with pytest.raises(FloatingPointError, match="not finite"):
        restore_mod.restore_tensor(lambda t: t * float("nan"), x, tile=16, overlap=4)
    with pytest.raises(FloatingPointError, match="not finite"):  # tiled
        restore_mod.restore_tensor(lambda t: t / 0.0, torch.rand(1, 3, 40, 40), 16, 4)


def test_item11_a_text_file_and_a_newer_checkpoint_are_named(checkpoint, tmp_path):
    text = tmp_path / "notes.pt"
    text.write_text("hello\n101\n")
    with pytest.raises(ValueError, match=rf"cannot load checkpoint {text} \(KeyError"):
        ckp.read_checkpoint(text)
    ckpt = ckp.read_checkpoint(checkpoint)
    ckpt["meta"]["model_cfg"]["gates_v2"] = 1  # a field of a later version of the code
    ckpt["meta"]["commit"] = "abc1234"
    newer = tmp_path / "newer.pt"
    torch.save(ckpt, newer)
    with pytest.raises(ValueError, match=rf"{newer} was written by .*commit abc1234.*gates_v2"):
        ckp.load_checkpoint(newer)


def test_item13_a_damaged_cached_final_pt_names_the_file(checkpoint, tmp_path):
    torn = tmp_path / "0123abcd" / "final.pt"
    torn.parent.mkdir()
    torn.write_bytes(checkpoint.read_bytes()[:500])
    with pytest.raises(ValueError, match=r"0123abcd/final\.pt .*damaged"):
        ckp.load_checkpoint(torn)


# ------------------------------------------------------------------ 12: corrupt JPEGs


def _jpeg(path, damage=False):
    from skimage import data

    buf = io.BytesIO()
    Image.fromarray(data.astronaut()[::2, ::2]).save(buf, "JPEG", quality=90)
    raw = bytearray(buf.getvalue())
    if damage:  # 40 bytes overwritten mid-file: the case
        mid = len(raw) // 2
        raw[mid : mid + 40] = np.random.default_rng(1).integers(0, 256, 40, np.uint8).tobytes()
    path.write_bytes(bytes(raw))
    return path


def test_item12_a_corrupt_jpeg_is_an_error_naming_the_file(tmp_path, capfd):
    good = load_image(_jpeg(tmp_path / "good.jpg"))
    bad = _jpeg(tmp_path / "bad.jpg", damage=True)
    with Image.open(bad) as im:  # what Pillow alone returns, silently: garbled pixels
        assert np.abs(np.asarray(im.convert("RGB"), float) - good).mean() > 5
    with pytest.raises(ImageReadError, match=r"bad\.jpg: corrupt JPEG \(Corrupt JPEG data"):
        load_image(bad)
    assert "Corrupt JPEG" not in capfd.readouterr().err  # libjpeg's line became the error
    from data_prep.scan import probe_image

    with pytest.raises(ImageReadError, match="bad.jpg"):
        probe_image(bad, "full")  # data preparation's verification
    with pytest.raises(ValueError, match="bad.jpg"):
        restore_mod.read_image(bad)  # restore; training and scoring read through load_image


def test_item12_a_jpeg_is_checked_once_per_file_and_again_when_it_changes(tmp_path, monkeypatch):
    from m2ir_lib.data import images

    calls = []
    check = images.jpeg_damage
    monkeypatch.setattr(images, "jpeg_damage", lambda data: calls.append(1) or check(data))
    path = _jpeg(tmp_path / "drawn.jpg")
    for _ in range(3):  # training draws a file many times: the second decode runs once
        load_image(path)
    assert len(calls) == 1
    _jpeg(path, damage=True)  # damaged in place afterwards: the same size, a new mtime
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    with pytest.raises(ImageReadError, match="drawn.jpg: corrupt JPEG"):
        load_image(path)
    assert len(calls) == 2


# ------------------------------------------------------------------ 13: quietly accepted


def test_item13_a_repeated_manifest_row_is_refused():
    df = pd.DataFrame(
        {
            "split": ["test", "test", "test"],
            "task": ["derain"] * 3,
            "degraded_path": ["r/1.png", "r/2.png", "r/1.png"],
            "clean_path": ["c/1.png", "c/2.png", "c/1.png"],
            "sigma": ["", "", ""],
        }
    )
    with pytest.raises(ValueError, match=r"1 row\(s\) repeat an earlier one.*r/1\.png"):
        read_manifest(df)


def test_item13_fewer_iters_into_a_longer_run_is_refused(smoke_data, checkpoint):
    root, manifest = smoke_data
    fewer = dataclasses.replace(TCFG, iters=1)
    with pytest.raises(ValueError, match="finished run of 2 steps, more than the 1 asked"):
        train_mod.train(SMOKE.model, fewer, manifest, root, checkpoint.parent, progress=False)
    assert ckp.read_checkpoint(checkpoint)["step"] == 2


def test_item13_a_dangling_link_in_a_restore_folder_is_named(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(src / "a.png")
    (src / "gone.png").symlink_to(tmp_path / "deleted.png")
    written, failed = restore_mod.restore_files(
        lambda x: x, [src], tmp_path / "out", progress=False
    )
    assert [p.name for p in written] == ["a.png"]
    assert [p.name for p in failed] == ["gone.png"] and "gone.png" in failed[src / "gone.png"]


def test_item13_restore_tensor_refuses_0_255_values():
    with pytest.raises(ValueError, match=r"\[0, 1\].*divide by 255"):
        restore_mod.restore_tensor(lambda x: x, torch.full((1, 3, 8, 8), 200.0))


def test_item13_a_daclip_checkpoint_at_smoke_is_checked_and_said_unused(tmp_path):
    prof = get_profile("smoke")
    data = settings.Data("3d", None, None, "")
    with pytest.raises(FileNotFoundError, match="daclip_checkpoint"):
        experiments.plan("x", prof, data, daclip_checkpoint=str(tmp_path / "missing.pt"))
    given = tmp_path / "daclip.pt"
    given.write_bytes(b"x")
    run = experiments.plan("x", prof, data, daclip_checkpoint=str(given))
    assert experiments.DACLIP_UNUSED in run.note and experiments.DACLIP_NOTE not in run.note


# ------------------------------------------------------------------ 14: limits and messages


def test_item14_max_pixels_is_the_limit_not_twice_it(tmp_path):
    path = tmp_path / "big.png"
    Image.fromarray(np.zeros((30, 50, 3), np.uint8)).save(path)  # 1500 px
    with pytest.raises(ValueError, match="50×30 = 1,500 pixels, above --max-pixels 1,000"):
        restore_mod.read_image(path, max_pixels=1000)  # under 2×1000: Pillow only warned
    assert restore_mod.read_image(path, max_pixels=1500).shape == (30, 50, 3)


def test_item14_a_tiny_tile_is_blamed_on_the_tile(tmp_path):
    with pytest.raises(ValueError, match="--tile 4 is below 8 px"):
        restore_mod.restore_files(lambda x: x, [], tmp_path / "o", tile=4, overlap=0)


def test_item14_cli_mistakes_are_one_line_with_status_2(tmp_path, capsys):
    argv = ["--profile", "smoke", "--setting", "3d", "--data-root", str(tmp_path)]
    with pytest.raises(SystemExit) as err:
        train_cli.main([*argv, "--manifest", str(tmp_path / "none.csv"), "--out", "o"])
    out = capsys.readouterr().err
    assert err.value.code == 2 and "Traceback" not in out and "none.csv not found" in out
    with pytest.raises(SystemExit) as err:
        efficiency_cli.main(["--config", "mini", "--daclip", "daclip"])
    assert err.value.code == 2 and "use --config paper" in capsys.readouterr().err


# ------------------------------------------------------------------ issue 25, item 5: logging


def test_cli_logging_messages_carry_their_level():
    code = (
        "import logging; from m2ir_lib.data.files import cli_logging; cli_logging(); "
        "logging.getLogger('m2ir_lib.x').warning('hi'); logging.getLogger('y').info('hidden')"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert done.stderr.strip() == "WARNING m2ir_lib.x: hi"


@pytest.mark.slow
def test_log_output_streams_the_cells_output(tmp_path, python3_notebook):
    (tmp_path / "notebooks").mkdir()
    nb = python3_notebook("print('hello from the cell')")
    nbformat.write(nb, tmp_path / "notebooks" / "00_a.ipynb")
    code = (
        "import sys; from m2ir_lib import pipeline; from m2ir_lib.data.files import cli_logging\n"
        f"cli_logging(True); pipeline.run('smoke', root={str(tmp_path)!r}, log_output=True)"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "hello from the cell" in done.stdout + done.stderr
    assert "INFO papermill" in done.stderr
