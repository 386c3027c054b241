"""Why a trained network scores below the degraded input: a diagnosis, not a unit test.

For the seed-0 runs of one of Tables I–IV (already trained: `make reproduce`, or the table's
notebook, puts them in the run cache; nothing is trained here) it prints, per column and
method (the degraded input first), the table's PSNR, the PSNR once a global brightness or
colour offset is forgiven, and the mean shift (`m2ir_lib.workbook.floor`, which says how to
read them); the notebooks of Tables II and III write the same frame beside their tables
(`results/<profile>/<stem>_floor.csv`).

    python benchmarks/floor_diagnosis.py --table II                 # the mini reference runs
    python benchmarks/floor_diagnosis.py --table III --tasks rain snow --csv out.csv
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere in the repo

from m2ir_lib.core.config import Profile, get_profile
from m2ir_lib.data.files import atomic_path
from m2ir_lib.workbook import experiments, floor, tables


def diagnose(table: str, profile: Profile, tasks=None, max_images: int | None = None):
    """`floor.diagnose` on the table's cached seed-0 runs; stops naming a run not trained."""
    runs = tables.table_runs(table, profile, seeds=1)
    if not runs[0].data.available:
        raise SystemExit(f"Table {table}: {runs[0].data.reason}")
    ckpts = {}
    for run in runs:
        ckpt = experiments.run_dir(run, profile) / "final.pt"
        if not ckpt.is_file():
            raise SystemExit(
                f"{run.label}: not trained yet ({ckpt}); run the table's notebook first, e.g. "
                f"python -m m2ir_lib.pipeline --profile {profile.name} --only 02"
            )
        ckpts[run.label] = ckpt
    return floor.diagnose(table, runs, ckpts, profile=profile, columns=tasks, max_images=max_images)


def main(argv=None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--table", default="II", choices=["I", "II", "III", "IV"])
    parser.add_argument("--profile", default="mini")
    parser.add_argument("--tasks", nargs="*", help="only these columns (default: the table's)")
    parser.add_argument("--images", type=int, default=None, help="at most this many per task")
    parser.add_argument("--csv", type=Path, help="also write the result here")
    args = parser.parse_args(argv)
    out = diagnose(args.table, get_profile(args.profile), args.tasks, args.images)
    print(out.drop(columns=["table", "run"]).round(3).to_string(index=False))
    if args.csv:
        with atomic_path(args.csv) as tmp:
            out.to_csv(tmp, index=False)
    return out


if __name__ == "__main__":
    main()
