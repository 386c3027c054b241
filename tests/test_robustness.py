"""Careless and unlucky users (issue 13): nothing lost, nothing silently wrong.

Each test names the issue's case it covers; "own" marks cases added beyond the issue.
"""

import dataclasses
import io
import json
import os
import subprocess
import sys
import time

import nbformat
import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from m2ir_lib import efficiency as efficiency_cli
from m2ir_lib import pipeline
from m2ir_lib import restore as restore_cli
from m2ir_lib import train as train_cli
from m2ir_lib.core.config import PROFILES, get_profile
from m2ir_lib.data.datasets import ImageReadError, load_image, read_manifest
from m2ir_lib.engine import checkpoint as ckp
from m2ir_lib.engine import efficiency, runs
from m2ir_lib.engine import train as train_mod
from m2ir_lib.workbook import results, settings

SMOKE = PROFILES["smoke"]
TCFG = dataclasses.replace(SMOKE.train, iters=4, ckpt_every=1, num_workers=0)
REPO = results.repo_root()


@pytest.fixture(scope="module")
def checkpoint(smoke_data, tmp_path_factory):
    root, manifest = smoke_data
    cfg = dataclasses.replace(TCFG, iters=1)
    out = tmp_path_factory.mktemp("run")
    return train_mod.train(SMOKE.model, cfg, manifest, root, out, profile="smoke", progress=False)


def _png(path, h=20, w=24, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    a = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    Image.fromarray(a).save(path)
    return path


def _restore(checkpoint, *args):
    return restore_cli.main([*map(str, args), "--checkpoint", str(checkpoint), "--device", "cpu"])


def _train(smoke_data, out, **kw):
    root, manifest = smoke_data
    cfg = kw.pop("cfg", TCFG)
    return train_mod.train(
        SMOKE.model, cfg, manifest, root, out, profile="smoke", progress=False, **kw
    )


# ------------------------------------------------------------------ 1, 2: restore loses nothing


def test_case1_restore_never_writes_over_its_inputs(checkpoint, tmp_path, capsys):
    src = tmp_path / "photos"
    original = _png(src / "a.png").read_bytes()
    assert _restore(checkpoint, src, "--out", src) == 1
    assert "input" in capsys.readouterr().err
    assert (src / "a.png").read_bytes() == original
    assert sorted(p.name for p in src.iterdir()) == ["a.png"]


def test_case1_restore_refuses_existing_outputs_unless_overwrite(checkpoint, tmp_path, capsys):
    _png(tmp_path / "in" / "a.png")
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.png").write_bytes(b"the user's earlier result")
    assert _restore(checkpoint, tmp_path / "in", "--out", out) == 1
    err = capsys.readouterr().err
    assert "already exist" in err and "--overwrite" in err and "a.png" in err
    assert (out / "a.png").read_bytes() == b"the user's earlier result"
    assert _restore(checkpoint, tmp_path / "in", "--out", out, "--overwrite") == 0
    assert Image.open(out / "a.png").size == (24, 20)


def test_case2_inputs_sharing_a_stem_get_one_output_each(checkpoint, tmp_path, capsys):
    a_png = _png(tmp_path / "a.png", seed=1)
    a_jpg = tmp_path / "a.jpg"
    Image.open(_png(tmp_path / "x.png", seed=2)).save(a_jpg)
    out = tmp_path / "out"
    assert _restore(checkpoint, a_png, a_jpg, "--out", out) == 0
    assert "restored 2 image(s)" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["a_jpg.png", "a_png.png"]
    assert not np.array_equal(load_image(out / "a_jpg.png"), load_image(out / "a_png.png"))


def test_case2_inputs_that_still_collide_are_refused_before_any_write(checkpoint, tmp_path, capsys):
    one, two = _png(tmp_path / "d1" / "a.png"), _png(tmp_path / "d2" / "a.png", seed=3)
    assert _restore(checkpoint, one, two, "--out", tmp_path / "out") == 1
    assert "same output" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------ 3: one owner per run folder


def test_case3_second_train_into_an_owned_folder_stops_naming_the_owner(
    smoke_data, tmp_path, capsys
):
    root, manifest = smoke_data
    out = tmp_path / "run"
    argv = ["--profile", "smoke", "--manifest", str(manifest), "--data-root", str(root)]
    argv += ["--out", str(out), "--device", "cpu"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    first = subprocess.Popen(
        [sys.executable, "-m", "m2ir_lib.train", *argv, "--iters", "20"],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        owner = out / ckp.OWNER_FILE
        for _ in range(1200):  # the first run owns the folder from its start to its end
            if owner.is_file() or first.poll() is not None:
                break
            time.sleep(0.05)
        assert owner.is_file(), "the first run never took the folder"
        second = train_cli.main(argv)  # the same command, started while the first trains
        assert first.poll() is None, "the first run ended before the second was tried"
    finally:
        first_err = first.communicate(timeout=600)[1]
    assert first.returncode == 0, first_err
    err = capsys.readouterr().err
    assert second == 1 and f"in use by pid {first.pid}" in err and "--wait" in err
    with (out / "log.csv").open() as fh:
        lines = fh.read().splitlines()
    assert lines[0].startswith("step,") and sum(x.startswith("step,") for x in lines) == 1
    assert [int(x.split(",")[0]) for x in lines[1:]] == list(range(1, 21))
    assert not owner.exists()  # given back at the end


def test_case3_the_run_cache_waits_for_the_owner(smoke_data, tmp_path, capfd):
    root, manifest = smoke_data
    key = runs.run_key(SMOKE.model, TCFG, manifest)
    out = tmp_path / "smoke" / key
    out.mkdir(parents=True)
    note = json.dumps(dict(pid="PID", host="here", since="now", command="holder"))
    holder = subprocess.Popen(  # another process owns the run folder for 3 s
        [
            sys.executable,
            "-c",
            "import os, sys, time; from filelock import FileLock;"
            f"held = FileLock({str(out / '.lock')!r}); held.acquire();"
            f"note = {note!r}.replace('PID', str(os.getpid()));"
            f"open({str(out / ckp.OWNER_FILE)!r}, 'w').write(note);"
            "print('held', flush=True); time.sleep(3)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "held"
    t0 = time.perf_counter()
    final = runs.cached_train(
        SMOKE.model, TCFG, manifest, root, profile="smoke", root=tmp_path, progress=False
    )
    holder.wait(timeout=60)
    assert time.perf_counter() - t0 > 1  # it waited for the holder
    assert f"in use by pid {holder.pid}" in capfd.readouterr().err
    assert final == out / "final.pt" and ckp.read_checkpoint(final)["step"] == 4


def test_own_a_torn_or_doubled_log_heals_on_resume(tmp_path):
    log = tmp_path / "log.csv"
    log.write_text("step,lr,loss\n1,0,0.5\nstep,lr,loss\n2,0.1,0.4\n3,0.1")
    ckp.CSVLog(log, start_step=2).close()
    assert pd.read_csv(log)["step"].tolist() == [1, 2]


def test_case3_a_log_doubled_before_the_fix_still_reads_as_numbers(tmp_path):
    from m2ir_lib.workbook import runinfo

    run = tmp_path / "run"
    run.mkdir()
    (run / "log.csv").write_text(
        "step,lr,loss,time_s\n1,0,0.5,1\nstep,lr,loss,time_s\n1,0,0.6,1\n2,0.1,0.4,2\n3,0.1"
    )
    curves = runinfo.curves({"run": run / "final.pt"})  # a second header broke it before
    assert curves["step"].tolist() == [1, 2] and curves["loss"].tolist() == [0.6, 0.4]
    assert curves["loss_smoothed"].iloc[-1] == pytest.approx(0.5)


# ------------------------------------------------------------------ 4: a mistyped data root


def test_case4_a_named_data_root_that_does_not_exist_is_an_error(tmp_path, monkeypatch):
    typo = tmp_path / "dat"
    for name in ("smoke", "mini", "paper"):
        with pytest.raises(FileNotFoundError, match=r"not a folder.*README.*Real data sets"):
            settings.locate("3d", get_profile(name), str(typo))
    monkeypatch.setenv("M2IR_DATA", str(typo))
    with pytest.raises(FileNotFoundError, match="M2IR_DATA"):
        settings.locate("3d", get_profile("paper"))
    monkeypatch.delenv("M2IR_DATA")
    nothing = settings.locate("3d", get_profile("paper"))  # nothing configured: a status
    assert not nothing.available and "no real data" in nothing.reason


@pytest.mark.notebook
def test_case4_pipeline_stops_naming_the_notebook_and_writes_nothing(
    tmp_path, monkeypatch, python3_notebook
):
    monkeypatch.setenv("PYTHONPATH", "")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.delenv("M2IR_RESULTS", raising=False)
    (tmp_path / "notebooks").mkdir()
    nb = python3_notebook(
        nbformat.v4.new_code_cell(
            'profile: str = "smoke"\ndata_root: str = ""', metadata={"tags": ["parameters"]}
        ),
        (
            f"import sys\nsys.path.insert(0, {str(REPO)!r})\n"
            "import pandas as pd\nfrom m2ir_lib.core.config import get_profile\n"
            "from m2ir_lib.workbook import results, settings\nprofile = get_profile(profile)\n"
            "data = settings.locate('3d', profile, data_root)\n"
            f"results.write_frame(pd.DataFrame({{'x': [1]}}), profile, 'table', {str(tmp_path)!r})"
        ),
    )
    nbformat.write(nb, tmp_path / "notebooks" / "03_table.ipynb")
    # Issue 24, item 8: a missing data_root is refused before any notebook runs.
    with pytest.raises(FileNotFoundError, match="data_root=.*typo: no such folder"):
        pipeline.run("smoke", parameters={"data_root": str(tmp_path / "typo")}, root=tmp_path)
    assert not (tmp_path / "results" / "smoke").exists()
    # A notebook that fails is named with its cell and the command that resumes.
    nb.cells[1].source = nb.cells[1].source.replace("settings.locate", "1/0; settings.locate")
    nbformat.write(nb, tmp_path / "notebooks" / "03_table.ipynb")
    with pytest.raises(SystemExit) as err:
        pipeline.run("smoke", parameters={"data_root": str(tmp_path)}, root=tmp_path)
    message = str(err.value)
    assert "FAILED: 03_table.ipynb" in message and "ZeroDivisionError" in message
    assert f"--from 03 -p data_root={tmp_path}" in message
    assert not (tmp_path / "results" / "smoke" / "table.csv").exists()


# ------------------------------------------------------------------ 6, 7: recovery


def _kill_during(monkeypatch, step):
    """Raise KeyboardInterrupt in the first micro-batch of optimizer step `step`."""
    real, calls = train_mod.total_loss, {"n": 0}
    first_call = (step - 1) * TCFG.grad_accum + 1  # one loss per micro-batch

    def patched(*a, **k):
        calls["n"] += 1
        if calls["n"] == first_call:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(train_mod, "total_loss", patched)


def test_case6_a_truncated_last_pt_falls_back_to_the_previous_checkpoint(
    smoke_data, tmp_path, monkeypatch
):
    straight = ckp.read_checkpoint(_train(smoke_data, tmp_path / "straight"))["model"]
    run = tmp_path / "killed"
    _kill_during(monkeypatch, 4)  # checkpoints after steps 1, 2, 3; killed in step 4
    with pytest.raises(KeyboardInterrupt):
        _train(smoke_data, run)
    monkeypatch.undo()
    assert ckp.read_checkpoint(run / "prev.pt")["step"] == 2
    data = (run / "last.pt").read_bytes()
    (run / "last.pt").write_bytes(data[: len(data) // 2])  # torn by a full disk
    with pytest.warns(UserWarning, match=r"last\.pt is unreadable.*resuming from .*prev\.pt"):
        final = _train(smoke_data, run)
    resumed = ckp.read_checkpoint(final)
    assert resumed["step"] == 4
    for k, v in straight.items():  # exact resume from step 2
        assert torch.allclose(v, resumed["model"][k], atol=1e-6, rtol=0), k
    assert pd.read_csv(run / "log.csv")["step"].tolist() == [1, 2, 3, 4]
    assert not (run / "prev.pt").exists() and not (run / "last.pt").exists()


def test_case6_no_readable_checkpoint_names_the_file_and_the_flag(smoke_data, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "last.pt").write_bytes(b"PK\x03\x04 torn")
    with pytest.raises(ckp.CheckpointError, match=r"last\.pt.*--no-resume"):
        _train(smoke_data, run)
    root, manifest = smoke_data
    argv = ["--profile", "smoke", "--manifest", str(manifest), "--data-root", str(root)]
    assert train_cli.main([*argv, "--out", str(run), "--device", "cpu"]) == 1
    err = capsys.readouterr().err
    assert "last.pt" in err and "--no-resume" in err
    assert train_cli.main([*argv, "--out", str(run), "--no-resume", "--iters", "1"]) == 0


def test_case7_the_cache_heals_a_run_without_meta_json(smoke_data, tmp_path):
    root, manifest = smoke_data
    kw = dict(profile="smoke", root=tmp_path, progress=False)
    final = runs.cached_train(SMOKE.model, TCFG, manifest, root, **kw)
    stamp = final.stat().st_mtime_ns
    (final.parent / "meta.json").unlink()  # killed between final.pt and meta.json
    assert runs.cached_train(SMOKE.model, TCFG, manifest, root, **kw) == final
    meta = json.loads((final.parent / "meta.json").read_text())
    assert meta["steps"] == 4 and meta["seed"] == 0
    assert final.stat().st_mtime_ns == stamp  # healed, not retrained


def test_own_a_failed_save_leaves_no_temporary_file_and_the_old_checkpoint(tmp_path, monkeypatch):
    target = ckp.atomic_torch_save({"step": 1}, tmp_path / "last.pt")

    def disk_full(obj, f, *a, **k):  # writes a little, then the disk is full
        fh = open(f, "wb") if isinstance(f, (str, os.PathLike)) else f
        fh.write(b"PK\x03\x04 partial")
        fh.flush()
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(OSError, match="No space"):
        ckp.atomic_torch_save({"step": 2}, target)
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]
    assert torch.load(target)["step"] == 1


# ------------------------------------------------------------------ 8: Ctrl-C in the pipeline


def test_case8_ctrl_c_names_the_notebook_and_the_resume_command(
    tmp_path, monkeypatch, capsys, python3_notebook
):
    import papermill

    (tmp_path / "notebooks").mkdir()
    nb = python3_notebook(
        nbformat.v4.new_code_cell('data_root: str = ""', metadata={"tags": ["parameters"]})
    )
    for name in ("00_a", "01_b"):
        nbformat.write(nb, tmp_path / "notebooks" / f"{name}.ipynb")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "d").mkdir()

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(papermill, "execute_notebook", interrupted)
    monkeypatch.setenv("PYTHONPATH", "")
    try:
        with pytest.raises(SystemExit) as err:
            pipeline.run("smoke", start="00", parameters={"data_root": "d"}, root=tmp_path)
    except KeyboardInterrupt:
        pytest.fail("a raw KeyboardInterrupt escaped the pipeline")
    assert err.value.code == 130
    message = capsys.readouterr().err
    # the relative path comes back absolute, so the resume command works from anywhere
    assert "00_a.ipynb" in message and f"--from 00 -p data_root={tmp_path / 'd'}" in message
    times = pd.read_csv(tmp_path / "results" / "smoke" / "pipeline_times.csv")
    assert list(times["status"]) == ["interrupted"]


# ------------------------------------------------------------------ 9, 10, 11: bad files in a batch


def test_case9_bad_files_are_named_and_skipped_the_rest_restored(
    checkpoint, tmp_path, capsys, monkeypatch
):
    src = tmp_path / "in"
    _png(src / "bomb.png", 40, 40)  # 1600 px: past twice the limit set below
    _png(src / "good.png", 20, 24)  # 480 px
    _png(src / "tiny.png", 4, 4)  # too small for the network
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 500)
    out = tmp_path / "out"
    assert _restore(checkpoint, src, "--out", out) == 1
    err = capsys.readouterr()
    assert "bomb.png" in err.err and "tiny.png" in err.err
    assert "restored 1 image(s)" in err.out and "2 skipped" in err.out
    assert sorted(p.name for p in out.iterdir()) == ["good.png"]


def test_own_max_pixels_lets_a_trusted_large_image_through_tiled(
    checkpoint, tmp_path, capsys, monkeypatch
):
    _png(tmp_path / "big.png", 40, 56)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 500)
    out = tmp_path / "out"
    args = ("--out", out, "--tile", "32", "--overlap", "8", "--max-pixels", "4000")
    assert _restore(checkpoint, tmp_path / "big.png", *args) == 0
    assert Image.MAX_IMAGE_PIXELS == 500  # the limit is restored afterwards
    monkeypatch.undo()
    assert Image.open(out / "big.png").size == (56, 40)


def _exif_jpeg(path, orientation=6):
    a = np.zeros((12, 20, 3), np.uint8)  # 20 wide, 12 high, as stored
    a[:, :10] = 255  # left half white
    im = Image.fromarray(a)
    exif = Image.Exif()
    exif[0x0112] = orientation  # 6: the camera was turned; show it rotated 90° clockwise
    im.save(path, quality=95, exif=exif)
    return path


def test_case10_exif_orientation_is_applied_on_load(checkpoint, tmp_path):
    photo = _exif_jpeg(tmp_path / "phone.jpg")
    upright = load_image(photo, orient=True)
    assert upright.shape == (20, 12, 3)  # displayed upright: 12 wide, 20 high
    assert upright[:5].mean() > 200 and upright[-5:].mean() < 50  # white half now on top
    assert load_image(photo).shape == (12, 20, 3)  # data sets are read as stored
    out = tmp_path / "out"
    assert _restore(checkpoint, photo, "--out", out) == 0
    assert Image.open(out / "phone.png").size == (12, 20)


def _jpeg_bytes(**kw):
    from skimage import data

    buf = io.BytesIO()
    Image.fromarray(data.astronaut()[::4, ::4]).save(buf, "JPEG", **kw)
    return buf.getvalue()


def test_case11_verify_full_catches_a_jpeg_with_its_middle_cut_out(tmp_path):
    from data_prep.scan import probe_image

    whole = _jpeg_bytes(quality=90)
    start = whole.index(b"\xff\xda")  # start of scan
    cut = whole[: start + (len(whole) - start) // 3] + whole[-2:]  # end marker kept
    path = tmp_path / "cut.jpg"
    path.write_bytes(cut)
    with Image.open(path) as im:
        flat = (np.asarray(im.convert("RGB")) == 128).all(axis=2).mean()
    assert flat > 0.4  # what Pillow silently returns: mostly flat gray
    with pytest.raises(ImageReadError, match="corrupt JPEG"):  # libjpeg's warning, an error
        load_image(path)
    probe_image(path, "quick")  # the cheap check cannot see it (documented)
    with pytest.raises(ImageReadError, match="cut.jpg: (truncated|corrupt) JPEG"):
        probe_image(path, "full")


@pytest.mark.parametrize(
    "kw",
    [dict(quality=90), dict(quality=75, progressive=True), dict(restart_marker_blocks=4)],
    ids=["baseline", "progressive", "restart-markers"],
)
def test_case11_verify_full_accepts_complete_jpegs(tmp_path, kw):
    from data_prep.scan import probe_image

    path = tmp_path / "ok.jpg"
    path.write_bytes(_jpeg_bytes(**kw))
    assert probe_image(path, "full").width == 128


# ------------------------------------------------------------------ 12: messages, not tracebacks


def _prep(*argv):
    from data_prep.__main__ import main

    return main([*map(str, argv)])


def test_case12_data_prep_out_under_a_regular_file(tmp_path, capsys):
    afile = tmp_path / "notes.txt"
    afile.write_text("x")
    assert _prep("rain100l", "--root", tmp_path, "--out", afile / "manifests") == 2
    assert f"is under the file {afile}" in capsys.readouterr().err


@pytest.mark.parametrize(
    "name, text, says",
    [
        ("missing.yaml", None, "cannot read"),
        ("bad.yaml", "pairs: [unclosed", "invalid YAML"),
        ("bad.json", "{'single': quotes}", "invalid JSON"),
        ("list.yaml", "- a\n- b\n", "not a mapping"),
    ],
)
def test_case12_bad_layout_files_are_named(tmp_path, capsys, name, text, says):
    layout = tmp_path / name
    if text is not None:
        layout.write_text(text)
    assert _prep("weatherbench", "--root", tmp_path, "--layout", layout) == 2
    err = capsys.readouterr().err
    assert str(layout) in err and says in err and "Traceback" not in err


def test_case12_restore_out_naming_an_existing_file(checkpoint, tmp_path, capsys):
    _png(tmp_path / "a.png")
    (tmp_path / "out.png").write_bytes(b"not a folder")
    assert _restore(checkpoint, tmp_path / "a.png", "--out", tmp_path / "out.png") == 1
    assert "names an existing file" in capsys.readouterr().err


def test_case12_efficiency_size_zero_and_empty_ptflops_reason(capsys):
    with pytest.raises(SystemExit) as err:
        efficiency_cli.main(["--config", "smoke", "--size", "0", "0"])
    assert err.value.code == 2 and "at least 5 pixels" in capsys.readouterr().err
    with pytest.raises(ValueError, match="at least 5 pixels"):
        efficiency.count_complexity("smoke", size=(0, 0))

    class Broken(torch.nn.Module):
        def forward(self, x):
            raise RuntimeError("the real reason")

    with pytest.raises(RuntimeError, match="the real reason"):
        efficiency._ptflops_macs(Broken(), (8, 8), "cpu")


def test_case12_a_bare_state_dict_is_not_a_checkpoint(checkpoint, tmp_path, capsys):
    model, _ = ckp.load_checkpoint(checkpoint)
    bare = tmp_path / "weights.pt"
    torch.save(model.state_dict(), bare)
    with pytest.raises(ValueError, match="bare state dict"):
        ckp.load_checkpoint(bare)
    _png(tmp_path / "a.png")
    code = restore_cli.main([str(tmp_path / "a.png"), "--checkpoint", str(bare), "--out", "o"])
    assert code == 1 and "not a checkpoint of m2ir_lib.train" in capsys.readouterr().err


# ------------------------------------------------------------------ 13, 14: bad numbers


@pytest.mark.parametrize("iters", [0, -3])
def test_case13_train_refuses_no_steps(smoke_data, tmp_path, capsys, iters):
    root, manifest = smoke_data
    argv = ["--profile", "smoke", "--manifest", str(manifest), "--data-root", str(root)]
    with pytest.raises(SystemExit) as err:
        train_cli.main([*argv, "--out", str(tmp_path / "run"), "--iters", str(iters)])
    assert err.value.code == 2 and "at least 1" in capsys.readouterr().err
    with pytest.raises(ValueError, match="at least one optimizer step"):
        _train(smoke_data, tmp_path / "run", cfg=dataclasses.replace(TCFG, iters=iters))
    assert not (tmp_path / "run" / "final.pt").exists()


def test_case13_iters_beyond_the_cosine_horizon_warn(smoke_data, tmp_path):
    cfg = dataclasses.replace(TCFG, iters=TCFG.cosine_iters + 1, ckpt_every=100)
    with pytest.warns(UserWarning, match="learning rate 0"):
        _train(smoke_data, tmp_path / "run", cfg=cfg)


def test_case14_negative_seed_is_refused_up_front_leaving_nothing(tmp_path):
    from data_prep.mini import build_mini

    with pytest.raises(ValueError, match="seed"):
        build_mini(tmp_path / "mini", seed=-1, size="smoke")
    assert list(tmp_path.iterdir()) == []


def test_own_a_failed_mini_build_leaves_no_half_built_folder(tmp_path, monkeypatch):
    from data_prep import mini

    def broken(*a, **k):
        raise RuntimeError("disk trouble")

    monkeypatch.setattr(mini, "_degrade", broken)
    with pytest.raises(RuntimeError, match="disk trouble"):
        mini.build(tmp_path / "mini", seed=0, size="smoke")
    assert list(tmp_path.iterdir()) == []


def test_own_train_refuses_a_negative_seed_and_an_out_that_is_a_file(smoke_data, tmp_path, capsys):
    root, manifest = smoke_data
    argv = ["--profile", "smoke", "--manifest", str(manifest), "--data-root", str(root)]
    with pytest.raises(SystemExit) as err:
        train_cli.main([*argv, "--out", str(tmp_path / "run"), "--seed", "-1"])
    assert err.value.code == 2 and "--seed -1" in capsys.readouterr().err
    afile = tmp_path / "run.txt"
    afile.write_text("x")
    assert train_cli.main([*argv, "--out", str(afile)]) == 1
    assert "is an existing file" in capsys.readouterr().err


# ------------------------------------------------------------------ 15, 16: hygiene


@pytest.mark.parametrize("bad", ["../../etc/passwd", "/etc/passwd", "a/../../x.png", "C:\\x.png"])
def test_case15_manifest_paths_that_leave_the_data_root_are_refused(bad):
    df = pd.DataFrame(
        {
            "split": ["train", "test"],
            "task": ["derain", "derain"],
            "degraded_path": ["rain/1.png", bad],
            "clean_path": ["clean/1.png", "clean/2.png"],
            "sigma": ["", ""],
        }
    )
    with pytest.raises(ValueError, match="leaves the data root"):
        read_manifest(df)
    df.loc[1, "degraded_path"] = "rain/..hidden/2.png"  # '..' inside a name is fine
    assert len(read_manifest(df)) == 2


def test_case16_results_files_are_readable_like_other_files(tmp_path):
    old = os.umask(0o022)
    try:
        path = results.write_frame(pd.DataFrame({"x": [1]}), "smoke", "t", root=tmp_path)
        pipeline._write_times(
            [dict(notebook="a", status="ok", seconds=1, profile="smoke")], tmp_path / "times.csv"
        )
    finally:
        os.umask(old)
    assert oct(path.stat().st_mode & 0o777) == oct(0o644)
    assert oct((tmp_path / "times.csv").stat().st_mode & 0o777) == oct(0o644)


# ------------------------------------------------------------------ own: restore input mistakes


def test_own_a_folder_without_images_is_an_error_not_a_silent_success(checkpoint, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("x")
    assert _restore(checkpoint, tmp_path / "empty", "--out", tmp_path / "out") == 1
    assert "no image files" in capsys.readouterr().err


def test_own_a_file_named_twice_is_restored_once(checkpoint, tmp_path, capsys):
    a = _png(tmp_path / "in" / "a.png")
    assert _restore(checkpoint, a, tmp_path / "in", "--out", tmp_path / "out") == 0
    assert "restored 1 image(s)" in capsys.readouterr().out


def test_own_bad_tile_settings_stop_before_anything_is_created(checkpoint, tmp_path, capsys):
    a = _png(tmp_path / "a.png")
    out = tmp_path / "out"
    assert _restore(checkpoint, a, "--out", out, "--tile", "16", "--overlap", "16") == 1
    assert "--overlap" in capsys.readouterr().err and not out.exists()


# ------------------------------------------------------------------ own: command-line slips


@pytest.mark.parametrize("argv", [["--only", "99"], ["-p", "data_root"], ["--from", "1", "--list"]])
def test_own_pipeline_usage_slips_are_usage_errors(argv, capsys):
    if argv[-1] == "--list":  # a valid selection still lists
        pipeline.main(argv)
        assert capsys.readouterr().out.splitlines()[0].startswith("01_")
        return
    with pytest.raises(SystemExit) as err:
        pipeline.main(argv)
    assert err.value.code == 2 and "error:" in capsys.readouterr().err


def test_own_data_prep_root_naming_a_file(tmp_path, capsys):
    afile = tmp_path / "data.zip"
    afile.write_bytes(b"PK")
    assert _prep("3d", "--root", afile, "--out", tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert "is a file, not a folder" in err and "docs/data.md" in err
    assert not (tmp_path / "out").exists()
