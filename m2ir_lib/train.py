"""``python -m m2ir_lib.train``: one training run from the command line (§IV-A).

    python -m m2ir_lib.train --profile mini --manifest M --data-root D --out DIR
    torchrun --nproc_per_node=2 -m m2ir_lib.train ...      # DDP, same global batch

The run is planned by `m2ir_lib.workbook.experiments.plan`, as the notebooks plan theirs
(setting, repeats, schedule), printed, then trained by `m2ir_lib.engine.train.train`.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path

from m2ir_lib.core.config import get_profile, with_batch_size
from m2ir_lib.data.files import cli_logging, user_errors
from m2ir_lib.engine.checkpoint import CheckpointError, RunFolderBusy
from m2ir_lib.engine.train import train
from m2ir_lib.workbook import experiments, settings


def main(argv=None) -> int:
    """`_main` with the command lines' logging, and a mistake in one line, exit status 2."""
    cli_logging()
    with user_errors("python -m m2ir_lib.train"):
        return _main(argv)


def _main(argv=None) -> int:
    """``python -m m2ir_lib.train`` (also under torchrun): plans the run with
    `m2ir_lib.workbook.experiments.plan`, as the notebooks do (repeats, schedule), prints the plan,
    then trains."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--profile", default="mini", help="smoke | mini | paper")
    p.add_argument("--manifest", required=True, help="data manifest CSV")
    p.add_argument(
        "--data-root",
        default=os.environ.get("M2IR_DATA"),
        help="root of the manifest's paths (default $M2IR_DATA)",
    )
    p.add_argument(
        "--setting",
        default=None,
        help="training setting: 3d | 5d | cdd11 | weatherbench | denoise | dehaze | derain "
        "(fixes tasks, repeats and epochs; default: the manifest's name, e.g. 3d.csv -> 3d)",
    )
    p.add_argument("--out", required=True, help="run folder")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None)
    p.add_argument("--daclip", default=None, help="daclip_ViT-B-32.pt for prior='daclip'")
    p.add_argument("--ablation", action="store_true", help="use the profile's ablation budget")
    p.add_argument("--iters", type=int, default=None, help="override the planned iterations")
    p.add_argument("--bf16", action="store_true", help="bf16 autocast on GPU (default fp32)")
    p.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="samples per process and micro-batch; the global batch stays the profile's "
        "(paper: 32; 8 GPUs need 4). Default: the profile's, or $M2IR_BATCH_SIZE",
    )
    p.add_argument("--no-resume", action="store_true")
    p.add_argument("--tasks", nargs="*", default=None)
    p.add_argument(
        "--wait", action="store_true", help="wait while another process trains into --out"
    )
    a = p.parse_args(argv)
    if a.data_root is None:
        p.error("give --data-root or set M2IR_DATA")
    if a.iters is not None and a.iters < 1:
        p.error(f"--iters {a.iters}: give at least 1")
    if a.seed < 0:
        p.error(f"--seed {a.seed}: give an integer >= 0")
    setting = a.setting or Path(a.manifest).stem.removeprefix("mini_")
    if setting not in settings.SETTINGS:
        p.error(f"give --setting (one of {sorted(settings.SETTINGS)}); {setting!r} is none")
    try:
        prof = get_profile(a.profile)  # resolved once; everything below is handed the object
        prof = with_batch_size(prof, a.batch_size) if a.batch_size is not None else prof
    except ValueError as err:
        p.error(str(err))
    data = settings.Data(
        setting, Path(a.manifest), Path(a.data_root), a.manifest, real=prof.data == "real"
    )
    train_kw = {"amp": True} if a.bf16 else {}
    try:  # --tasks is planned too: the printed schedule counts the rows trained on
        run = experiments.plan(
            "cli",
            prof,
            data,
            train=train_kw,
            ablation=a.ablation,
            seed=a.seed,
            daclip_checkpoint=a.daclip or "",
            tasks=a.tasks or None,
        )
    except (ValueError, FileNotFoundError) as err:
        p.error(str(err))
    tcfg, tasks = run.train, run.tasks
    if a.iters is not None:
        tcfg = dataclasses.replace(tcfg, iters=a.iters)
    if int(os.environ.get("RANK", "0")) == 0:
        print(run.schedule.describe() if run.schedule else "no schedule", flush=True)
        if a.iters is not None:
            print(f"--iters {a.iters}: trains {a.iters} iterations instead", flush=True)
    try:
        path = train(
            run.model,
            tcfg,
            a.manifest,
            a.data_root,
            a.out,
            seed=a.seed,
            profile=prof.name,
            device=a.device,
            resume=not a.no_resume,
            daclip_checkpoint=run.daclip_checkpoint or None,
            tasks=list(tasks) if tasks else None,
            repeats=run.repeats,
            lock_timeout=-1 if a.wait else 0,
        )
    except (RunFolderBusy, CheckpointError, ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if int(os.environ.get("RANK", "0")) == 0:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
