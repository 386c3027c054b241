"""Evaluation throughput on CPU: one two-thread process against `scoring.evaluate_in_parallel`
(two one-thread processes), on the same checkpoints and test images, same numbers.

A script, never a unit test. It trains (or takes from the run cache) `--runs` short `mini`
runs of one setting, then scores them twice from an empty evaluation cache: sequentially,
as the notebooks did before (torch's default threads), and in parallel. It prints
images/s of both, the ratio, and the largest PSNR difference between the two.

    python benchmarks/bench_eval.py                       # 5D, 4 runs of 20 iterations
    python benchmarks/bench_eval.py --setting 3d --runs 2 --json

Run it on an otherwise idle machine; `$M2IR_RUNS` keeps its runs apart from the workbook's.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere in the repo

from m2ir_lib.core.config import get_profile
from m2ir_lib.workbook import experiments, scoring, settings


def _clear(ckpts) -> None:
    for ckpt in ckpts:
        for path in Path(ckpt).parent.glob("eval-*.csv"):
            path.unlink()


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default="mini")
    parser.add_argument("--setting", default="5d")
    parser.add_argument("--runs", type=int, default=4, help="checkpoints scored")
    parser.add_argument("--iters", type=int, default=20, help="training iterations per run")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    profile = get_profile(args.profile)  # resolved once, handed down

    import torch

    data = settings.locate(args.setting, profile)
    short = dict(iters=args.iters, warmup_iters=1, cosine_iters=args.iters)
    runs = [
        experiments.plan(f"seed {s}", profile, data, seed=s, train=short) for s in range(args.runs)
    ]
    ckpts = list(experiments.train_runs(runs, profile).values())
    items = [(c, data, "", False) for c in ckpts]

    _clear(ckpts)
    start = time.perf_counter()
    alone = [scoring.evaluate_run(c, data, profile)[0] for c in ckpts]
    t_seq = time.perf_counter() - start
    images = sum(len(a) for a in alone)

    _clear(ckpts)
    start = time.perf_counter()
    n = scoring.evaluate_in_parallel(items, profile)
    t_par = time.perf_counter() - start
    both = [scoring.evaluate_run(c, data, profile)[0] for c in ckpts]
    drift = max(
        float((a["psnr"] - b["psnr"]).abs().max()) for a, b in zip(alone, both, strict=True)
    )

    out = {
        "setting": args.setting,
        "checkpoints": len(ckpts),
        "images": images,
        "sequential_threads": torch.get_num_threads(),
        "sequential_s": round(t_seq, 1),
        "parallel_jobs": min(os.cpu_count() or 1, n),
        "parallel_s": round(t_par, 1),
        "images_per_s_sequential": round(images / t_seq, 2),
        "images_per_s_parallel": round(images / t_par, 2),
        "speedup": round(t_seq / t_par, 2),
        "max_psnr_difference_db": drift,
    }
    if args.json:
        print(json.dumps(out))
    else:
        for key, value in out.items():
            print(f"{key:26} {value}")
    return out


if __name__ == "__main__":
    main()
