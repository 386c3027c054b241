"""Speed benchmarks of M²IR on CPU (or one GPU): a script, never a unit test.

Sections (pick with --only):
  dispatch  dense vs sparse expert execution: same output (checked), latency ratio
  latency   M²IR (w/o DA-CLIP; --daclip adds the random-weight DA-CLIP row) vs the
            Restormer-style baseline at --size (default 480×720, Table XIII's input)
  train     one optimisation step (forward, eq. (11) loss, backward, AdamW) at --batch × --patch²
            for each of --train-configs
  profile   torch.profiler: the top operators of one M²IR forward

Timings are medians after warm-up, with `torch.set_num_threads(--threads)`. Run it on an
otherwise idle machine: with 2 threads, any other busy process inflates every number.

    python benchmarks/bench_model.py                               # everything, paper config
    python benchmarks/bench_model.py --config smoke --size 64 96 --batch 2 --patch 32 \\
        --train-configs smoke --repeats 1                          # a few seconds
    python benchmarks/bench_model.py --only latency --compile --channels-last --json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere in the repo

from m2ir_lib.config import MODEL_PRESETS  # noqa: E402
from m2ir_lib.efficiency import (  # noqa: E402
    baseline_config,
    build_variant,
    measure_latency,
    resolve_config,
)
from m2ir_lib.losses import total_loss  # noqa: E402

SECTIONS = ("dispatch", "latency", "train", "profile")


def _steer(model):
    """α = 1 in every ADEC: at init α = 0 hides the experts, so dense = sparse trivially."""
    with torch.no_grad():
        for adec in getattr(model, "adecs", []):
            adec.alpha.fill_(1.0)
    return model


def _prepare(model, args):
    model = model.to(args.device).eval()
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return torch.compile(model) if args.compile else model


def _latency(model, args, size):
    amp = torch.bfloat16 if args.bf16 else None
    return measure_latency(
        model,
        size,
        args.device,
        args.warmup,
        args.repeats,
        amp_dtype=amp,
        channels_last=args.channels_last,
    )


def bench_dispatch(args):
    cfg = resolve_config(args.config)
    torch.manual_seed(0)
    dense = _steer(build_variant(dataclasses.replace(cfg, dispatch="dense"), "none"))
    sparse = build_variant(dataclasses.replace(cfg, dispatch="sparse"), "none")
    sparse.load_state_dict(dense.state_dict())
    x = torch.rand(1, 3, *args.size, generator=torch.Generator().manual_seed(0)).to(args.device)
    dense, sparse = dense.to(args.device).eval(), sparse.to(args.device).eval()
    with torch.no_grad():
        diff = (dense(x) - sparse(x)).abs().max().item()
    ms = {name: _latency(m, args, args.size) for name, m in (("dense", dense), ("sparse", sparse))}
    return [
        {
            "section": "dispatch",
            "model": f"{args.config} {name}",
            "size": _size(args.size),
            "ms": t,
            "ratio_vs_dense": t / ms["dense"],
            "max_abs_diff": diff,
        }
        for name, t in ms.items()
    ]


def bench_latency(args):
    cfg = resolve_config(args.config)
    variants = [
        ("M²IR (w/o DA-CLIP)", cfg, "none"),
        ("Restormer-style baseline", baseline_config(cfg), "none"),
    ]
    if args.daclip:
        variants.insert(0, ("M²IR (random DA-CLIP)", cfg, "daclip"))
    rows = []
    for name, c, mode in variants:
        model = _prepare(build_variant(c, mode), args)
        rows.append(
            {
                "section": "latency",
                "model": name,
                "size": _size(args.size),
                "ms": _latency(model, args, args.size),
                "params_M": sum(p.numel() for p in model.parameters()) / 1e6,
            }
        )
    base = rows[-1]["ms"]
    for row in rows:
        row["ratio_vs_baseline"] = row["ms"] / base
    return rows


def bench_train(args):
    rows = []
    for name in args.train_configs:
        torch.manual_seed(0)
        model = build_variant(dataclasses.replace(resolve_config(name), prior="mlp"), "mlp")
        model = model.to(args.device).train()
        if args.channels_last:
            model = model.to(memory_format=torch.channels_last)
        opt = torch.optim.AdamW(model.parameters(), lr=2e-4, betas=(0.9, 0.999))
        gen = torch.Generator().manual_seed(0)
        shape = (args.batch, 3, args.patch, args.patch)
        x, y = (torch.rand(*shape, generator=gen).to(args.device) for _ in range(2))
        times = []
        for i in range(args.warmup + args.repeats):
            _sync(args.device)
            start = time.perf_counter()
            with torch.autocast(torch.device(args.device).type, torch.bfloat16, enabled=args.bf16):
                pred, routings = model(x, return_routing=True)
                loss, _ = total_loss(pred.float(), y, routings)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            _sync(args.device)
            if i >= args.warmup:
                times.append(time.perf_counter() - start)
        step = statistics.median(times)
        rows.append(
            {
                "section": "train",
                "model": name,
                "size": f"{args.batch}x{args.patch}²",
                "ms": 1e3 * step,
                "img_per_s": args.batch / step,
            }
        )
    return rows


def bench_profile(args):
    from torch.profiler import ProfilerActivity, profile

    model = build_variant(resolve_config(args.config), "none").to(args.device).eval()
    x = torch.rand(1, 3, *args.size, generator=torch.Generator().manual_seed(0)).to(args.device)
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if args.device != "cpu" else [])
    with torch.no_grad():
        model(x)  # warm-up outside the trace
        with profile(activities=acts) as prof:
            model(x)
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events) or 1
    return [
        {
            "section": "profile",
            "model": e.key,
            "size": _size(args.size),
            "ms": e.self_cpu_time_total / 1e3,
            "share": e.self_cpu_time_total / total,
            "calls": e.count,
        }
        for e in events[: args.top]
    ]


def _sync(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def _size(size):
    return f"{size[1]}x{size[0]}"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--config",
        default="paper",
        choices=sorted(MODEL_PRESETS),
        help="model for dispatch/latency/profile",
    )
    parser.add_argument("--size", type=int, nargs=2, default=(480, 720), metavar=("H", "W"))
    parser.add_argument("--only", nargs="+", choices=SECTIONS, default=SECTIONS)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=8, help="training batch")
    parser.add_argument("--patch", type=int, default=128, help="training patch size")
    parser.add_argument(
        "--train-configs", nargs="+", default=["mini", "paper"], choices=sorted(MODEL_PRESETS)
    )
    parser.add_argument(
        "--daclip",
        action="store_true",
        help="add a random-weight DA-CLIP row to the latency section",
    )
    parser.add_argument("--compile", action="store_true", help="torch.compile (latency only)")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast")
    parser.add_argument("--top", type=int, default=15, help="profiler rows")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    rows = []
    for section in SECTIONS:
        if section in args.only:
            rows += globals()[f"bench_{section}"](args)
    meta = {
        "threads": args.threads,
        "device": args.device,
        "torch": torch.__version__,
        "compile": args.compile,
        "channels_last": args.channels_last,
        "bf16": args.bf16,
    }
    if args.json:
        print(json.dumps({"meta": meta, "rows": rows}, indent=1))
        return
    import pandas as pd

    print(meta)
    table = pd.DataFrame(rows)
    for section, part in table.groupby("section", sort=False):
        print(f"\n== {section}")
        print(
            part.drop(columns="section")
            .dropna(axis=1, how="all")
            .to_string(index=False, float_format=lambda v: f"{v:.4g}")
        )


if __name__ == "__main__":
    main()
