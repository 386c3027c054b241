"""Re-run issue 24's careless- and hostile-user cases (items 8–14) and count those handled.

    .venv/bin/python tools/careless_users.py        # about a minute on two cores

Each case does what a careless user did, in a temporary folder (a smoke data set and a
two-step training run are built there), and passes when the mistake is refused with a
message naming it, or handled, instead of silently giving a wrong result. Exit status 1
when any case fails. tests/test_careless_users.py holds the same cases as tests.
"""

from __future__ import annotations

import dataclasses
import io
import os
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from m2ir_lib import pipeline  # noqa: E402
from m2ir_lib.core.config import PROFILES, get_profile  # noqa: E402
from m2ir_lib.data.datasets import ImageReadError, load_image, read_manifest  # noqa: E402
from m2ir_lib.engine import checkpoint as ckp  # noqa: E402
from m2ir_lib.engine import restore  # noqa: E402
from m2ir_lib.engine import train as train_mod  # noqa: E402
from m2ir_lib.workbook import experiments, results, settings, stats  # noqa: E402

SMOKE = PROFILES["smoke"]
CASES = []


def case(item: str, what: str):
    def register(fn):
        CASES.append((item, what, fn))
        return fn

    return register


def refused(fn, *types, says=""):
    """True when `fn()` raises one of `types` with `says` in its message."""
    try:
        fn()
    except types as err:
        return says in str(err)
    return False


def cli(*args) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", *args], capture_output=True, text=True, cwd=REPO, env=env
    )


def nb(number):
    return pipeline.select(pipeline.notebooks(), only=number)


@case("8", "-p data_rot=... (typo) is refused before anything runs")
def _(tmp):
    done = cli("m2ir_lib.pipeline", "--only", "03", "-p", "data_rot=/data", "--list")
    return done.returncode == 2 and "unknown parameter 'data_rot'" in done.stderr


@case("8", "-p profile=mini under --profile smoke is refused")
def _(tmp):
    done = cli("m2ir_lib.pipeline", "--profile", "smoke", "-p", "profile=mini", "--list")
    return done.returncode == 2 and "reserved" in done.stderr


@case("8", "a run without data does not replace a table with reproduced rows")
def _(tmp):
    prof, rows = get_profile("smoke"), {("desnow", "PSNR"): 20.0}
    mine = results.rows("VI", "M²IR", rows, profile=prof, seed=0, data="t", commit="a")
    path = results.write_results(mine, prof, "VI", root=tmp)
    before = path.read_text()
    none = results.status_row("VI", "M²IR", "no data", profile=prof)
    ok = refused(lambda: results.write_results(none, prof, "VI", root=tmp), ValueError)
    return ok and path.read_text() == before


@case("9", "-p rivals=false means False")
def _(tmp):
    return pipeline.check_parameters({"rivals": "false"}, nb("03")) == {"rivals": False}


@case("9", "-p jobs=-2 is refused")
def _(tmp):
    return refused(lambda: pipeline.check_parameters({"jobs": -2}, nb("03")), ValueError)


@case("10", "a table and its per-image scores are written as one unit")
def _(tmp):
    prof = get_profile("smoke")
    row = ("VI", "M²IR", "run-a", 0, "desnow", "", np.nan, "i", "i", "PSNR", 1.0)
    results.write_per_image(pd.DataFrame([row], columns=stats.PER_IMAGE_COLUMNS), prof, "VI", tmp)
    staged = not (results.results_dir(prof, tmp) / "table6_unseen_desnow_per_image.csv").exists()
    mine = results.rows("VI", "M²IR", {("desnow", "PSNR"): 1.0}, profile=prof, seed=0, data="t")
    results.write_results(mine, prof, "VI", root=tmp)
    back = results.read_per_image(prof, "VI", root=tmp)
    return staged and back["run"].tolist() == ["run-a"]


@case("11", "a checkpoint with NaN weights is refused, named")
def _(tmp):
    ckpt = ckp.read_checkpoint(tmp / "run" / "final.pt")
    key = next(k for k, v in ckpt["model"].items() if v.is_floating_point())
    ckpt["model"][key] = ckpt["model"][key] * float("nan")
    torch.save(ckpt, tmp / "nan.pt")
    return refused(lambda: ckp.load_checkpoint(tmp / "nan.pt"), ValueError, says="nan.pt")


@case("11", "a non-finite network output is refused")
def _(tmp):
    x = torch.rand(1, 3, 16, 16)
    return refused(lambda: restore.restore_tensor(lambda t: t / 0, x, 16, 4), FloatingPointError)


@case("11", "a text file as checkpoint is named")
def _(tmp):
    (tmp / "notes.pt").write_text("hello\n101\n")
    return refused(lambda: ckp.read_checkpoint(tmp / "notes.pt"), ValueError, says="notes.pt")


@case("11", "a checkpoint of a newer code version names the file and its commit")
def _(tmp):
    ckpt = ckp.read_checkpoint(tmp / "run" / "final.pt")
    ckpt["meta"]["model_cfg"]["new_field"], ckpt["meta"]["commit"] = 1, "abc1234"
    torch.save(ckpt, tmp / "newer.pt")
    load = lambda: ckp.load_checkpoint(tmp / "newer.pt")  # noqa: E731
    return refused(load, ValueError, says="abc1234") and refused(load, ValueError, says="newer.pt")


@case("12", "a JPEG with 40 bytes overwritten is an error naming the file")
def _(tmp):
    buf = io.BytesIO()
    a = np.random.default_rng(0).integers(0, 256, (128, 128, 3), dtype=np.uint8)
    Image.fromarray(a).save(buf, "JPEG", quality=90)
    raw = bytearray(buf.getvalue())
    raw[len(raw) // 2 : len(raw) // 2 + 40] = bytes(range(100, 140))
    (tmp / "bad.jpg").write_bytes(bytes(raw))
    return refused(lambda: load_image(tmp / "bad.jpg"), ImageReadError, says="bad.jpg")


@case("13", "a test row repeated in a manifest is refused")
def _(tmp):
    row = {"split": "test", "task": "derain", "degraded_path": "r.png", "clean_path": "c.png"}
    df = pd.DataFrame([{**row, "sigma": ""}] * 2)
    return refused(lambda: read_manifest(df), ValueError, says="repeat")


@case("13", "train --iters 1 into a folder holding a 2-step run is refused")
def _(tmp):
    root, manifest = tmp / "data", tmp / "manifest"
    cfg = dataclasses.replace(SMOKE.train, iters=1, num_workers=0)
    run = lambda: train_mod.train(  # noqa: E731
        SMOKE.model, cfg, manifest.read_text(), root, tmp / "run", progress=False
    )
    return refused(run, ValueError, says="more than the 1 asked")


@case("13", "a dangling link in a restore folder is named")
def _(tmp):
    (tmp / "in").mkdir()
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp / "in" / "a.png")
    (tmp / "in" / "gone.png").symlink_to(tmp / "deleted.png")
    _, failed = restore.restore_files(lambda x: x, [tmp / "in"], tmp / "out", progress=False)
    return [p.name for p in failed] == ["gone.png"]


@case("13", "restore_tensor refuses 0–255 values")
def _(tmp):
    x = torch.full((1, 3, 8, 8), 200.0)
    return refused(lambda: restore.restore_tensor(lambda t: t, x), ValueError, says="[0, 1]")


@case("13", "a missing daclip_checkpoint at smoke is refused")
def _(tmp):
    plan = lambda: experiments.plan(  # noqa: E731
        "x", SMOKE, settings.Data("3d", None, None, ""), daclip_checkpoint=str(tmp / "no.pt")
    )
    return refused(plan, FileNotFoundError, says="daclip_checkpoint")


@case("13", "a misspelt rival_checkpoints path is refused before training")
def _(tmp):
    given = {"rival_checkpoints": str(tmp / "typo")}
    return refused(lambda: pipeline.check_parameters(given, nb("03")), FileNotFoundError)


@case("13", "a damaged cached final.pt names the file")
def _(tmp):
    (tmp / "cache").mkdir()
    torn = tmp / "cache" / "final.pt"
    torn.write_bytes((tmp / "run" / "final.pt").read_bytes()[:400])
    return refused(lambda: ckp.load_checkpoint(torn), ValueError, says=str(torn))


@case("14", "--max-pixels N refuses above N, and says N")
def _(tmp):
    Image.fromarray(np.zeros((30, 50, 3), np.uint8)).save(tmp / "big.png")
    read = lambda: restore.read_image(tmp / "big.png", max_pixels=1000)  # noqa: E731
    return refused(read, ValueError, says="above --max-pixels 1,000")


@case("14", "--tile 4 is blamed on the tile")
def _(tmp):
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp / "a.png")
    ckpt = str(tmp / "run" / "final.pt")
    done = cli("m2ir_lib.restore", str(tmp / "a.png"), "--checkpoint", ckpt,
               "--out", str(tmp / "o"), "--tile", "4", "--overlap", "0")  # fmt: skip
    return done.returncode == 1 and "--tile 4 is below" in done.stderr


@case("14", "a CLI mistake prints a message, no traceback")
def _(tmp):
    done = cli("m2ir_lib.train", "--profile", "smoke", "--setting", "3d", "--manifest",
               str(tmp / "none.csv"), "--data-root", str(tmp), "--out", str(tmp / "x"))  # fmt: skip
    return done.returncode == 2 and "Traceback" not in done.stderr and "none.csv" in done.stderr


@case("14", "efficiency --config mini --daclip daclip ends in a message")
def _(tmp):
    done = cli("m2ir_lib.efficiency", "--config", "mini", "--daclip", "daclip")
    return done.returncode == 2 and "Traceback" not in done.stderr


def main() -> int:
    from data_prep.mini import build_mini

    with tempfile.TemporaryDirectory() as base:
        base = Path(base)
        manifest = build_mini(base / "data", seed=0, size="smoke")["mini_3d"]
        (base / "manifest").write_text(str(manifest))
        cfg = dataclasses.replace(SMOKE.train, iters=2, ckpt_every=100, num_workers=0)
        train_mod.train(SMOKE.model, cfg, manifest, base / "data", base / "run", progress=False)
        failed = 0
        for i, (item, what, fn) in enumerate(CASES):
            tmp = base / f"case{i}"
            tmp.mkdir()
            for name in ("run", "data", "manifest"):
                (tmp / name).symlink_to(base / name)
            try:
                ok = bool(fn(tmp))
            except Exception:  # noqa: BLE001 (a crash is a failed case, shown)
                ok = False
                traceback.print_exc()
            failed += not ok
            print(f"{'pass' if ok else 'FAIL'}  item {item:>2}: {what}", flush=True)
    print(f"\n{len(CASES) - failed} of {len(CASES)} careless-user cases pass")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
