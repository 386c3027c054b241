"""Is it the budget or the mix? Train a profile's M²IR and Restormer-style pair under changed
budgets or task lists, and print each column's PSNR beside the degraded input's: an
experiment script, never a unit test.

Each `--variant` is `iters=N` (N iterations, warm-up N/10, cosine over N) and/or
`tasks=a+b` (train on these tasks of the setting only; all tasks are still scored), joined by
commas; `default` is the profile's own run. One seed (`--seed`), both networks per variant,
trained two at a time on CPU and cached like the workbook's runs (set `$M2IR_RUNS` to keep
them apart).

    python benchmarks/floor_budget.py --setting 5d --variant tasks=deblur iters=1200
    python benchmarks/floor_budget.py --setting cdd11 --variant default --json out.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere in the repo

from m2ir_lib.core.config import get_profile
from m2ir_lib.workbook import scoring
from m2ir_lib.workbook.experiments import plan, restormer_baseline, schedule, train_rows, train_runs
from m2ir_lib.workbook.settings import locate


def parse_variant(text: str) -> tuple[dict, tuple[str, ...] | None]:
    """`iters=1200,tasks=deblur+derain` -> (TrainConfig overrides, training tasks or None)."""
    train, tasks = {}, None
    for part in filter(None, text.split(",")):
        key, _, value = part.partition("=")
        if key == "iters" and value.isdigit() and int(value) > 0:
            n = int(value)
            train = dict(iters=n, warmup_iters=max(1, n // 10), cosine_iters=n)
        elif key == "tasks" and value:
            tasks = tuple(value.split("+"))
        elif key != "default":
            raise SystemExit(f"--variant {text!r}: expected iters=N, tasks=a+b or default")
    return train, tasks


def main(argv=None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default="mini")
    parser.add_argument("--setting", default="5d")
    parser.add_argument("--variant", nargs="+", default=["default"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the table here")
    args = parser.parse_args(argv)
    profile = get_profile(args.profile)  # resolved once, handed down
    data = locate(args.setting, profile, seed=args.seed)
    if not data.available:
        raise SystemExit(data.reason)
    runs = []
    for v in args.variant:
        train, tasks = parse_variant(v)
        for name, model in (("M²IR", None), ("Restormer-style", restormer_baseline(profile))):
            run = plan(f"{name} [{v}]", profile, data, model=model, train=train,
                       seed=args.seed)  # fmt: skip
            if tasks:  # the schedule of the tasks kept, as the run prints it
                tcfg, sched = schedule(profile, data.setting, train_rows(data, tasks),
                                       run.repeats, run.train)  # fmt: skip
                run = dataclasses.replace(run, tasks=tasks, train=tcfg, schedule=sched)
            runs.append(run)
    ckpts = train_runs(runs, profile)
    scores = {"input": scoring.evaluate_run(None, data, profile)[1]}
    scores |= {label: scoring.evaluate_run(p, data, profile)[1] for label, p in ckpts.items()}
    table = pd.DataFrame(
        {k: s.groupby("task", sort=False)["psnr"].mean() for k, s in scores.items()}
    ).T
    table["Average"] = table.mean(axis=1)
    print(table.round(2).to_string())
    if args.json:
        args.json.write_text(json.dumps(table.round(4).to_dict(orient="index"), indent=1) + "\n")
    return table


if __name__ == "__main__":
    main()
