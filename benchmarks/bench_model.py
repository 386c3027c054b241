"""Speed benchmarks of M²IR on CPU (or one GPU): a script, never a unit test.

Sections (pick with --only):
  dispatch  dense vs grouped vs sparse expert execution in the whole network: same output
            (checked), latency ratio
  stage     one DGEA at each ADEC position, the paper's widths, --size input: the three
            dispatches side by side (issue 14: sparse can win at most (N+1)/(K+1))
  latency   M²IR (w/o DA-CLIP; --daclip adds the random-weight DA-CLIP row) vs the
            Restormer-style baseline at --size (default 480×720, Table XIII's input)
  train     one optimisation step (forward, eq. (11) loss, backward, AdamW) at --batch × --patch²
            for each of --train-configs: the step before issue 14 beside each variant tried
            and the preset's (speed-up, output and weight drift); --compile adds torch.compile
  placement 2 cores: one 2-thread process vs two 1-thread processes, images/s
  profile   torch.profiler: the top operators of a training step, before and now

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

from m2ir_lib.core.config import (
    MODEL_PRESETS,  # noqa: E402
    baseline_config,
)
from m2ir_lib.core.losses import total_loss  # noqa: E402
from m2ir_lib.engine.efficiency import build_variant, resolve_config
from m2ir_lib.engine.speed import measure_latency

SECTIONS = ("dispatch", "stage", "latency", "train", "placement", "profile")


def _steer(model, alpha=1.0):
    """α ≠ 0 in every ADEC: at init α = 0 hides the experts, so dense = sparse trivially."""
    with torch.no_grad():
        for adec in getattr(model, "adecs", []):
            adec.alpha.fill_(alpha)
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
    x = torch.rand(1, 3, *args.size, generator=torch.Generator().manual_seed(0)).to(args.device)
    models, outs, ms = {}, {}, {}
    for mode in ("dense", "grouped", "sparse"):
        torch.manual_seed(0)
        model = _steer(build_variant(dataclasses.replace(cfg, dispatch=mode), "none"))
        models[mode] = model.to(args.device).eval()
        with torch.no_grad():
            outs[mode] = models[mode](x)
        ms[mode] = _latency(models[mode], args, args.size)
    return [
        {
            "section": "dispatch",
            "model": f"{args.config} {mode}",
            "size": _size(args.size),
            "ms": t,
            "ratio_vs_dense": t / ms["dense"],
            "max_abs_diff": (outs[mode] - outs["dense"]).abs().max().item(),
        }
        for mode, t in ms.items()
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


# The training step before issue 14 (sparse dispatch, per-tensor AdamW loop) and the steps
# tried against it; "preset" is what `m2ir_lib.train` runs today for --train-configs.
TRAIN_VARIANTS = {
    "before: sparse, AdamW loop": {"dispatch": "sparse", "fused": False},
    "dense loop, fused AdamW": {"dispatch": "dense", "fused": True},
    "sparse, fused AdamW": {"dispatch": "sparse", "fused": True},
    "grouped, fused AdamW": {"dispatch": "grouped", "fused": True},
    "grouped, fused, channels-last": {"dispatch": "grouped", "fused": True, "cl": True},
    "preset": {"dispatch": None, "fused": None},
}


def _train_setup(name, variant, args):
    """Model, optimizer and data of one training-step variant, same seed for all."""
    from m2ir_lib.core.config import TrainConfig
    from m2ir_lib.engine.train import make_optimizer

    cfg = dataclasses.replace(resolve_config(name), prior="mlp")
    if variant["dispatch"]:
        cfg = dataclasses.replace(cfg, dispatch=variant["dispatch"])
    torch.manual_seed(0)
    model = _steer(build_variant(cfg, "mlp"), 0.1).to(args.device).train()
    gen = torch.Generator().manual_seed(0)
    shape = (args.batch, 3, args.patch, args.patch)
    x, y = (torch.rand(*shape, generator=gen).to(args.device) for _ in range(2))
    if variant.get("cl") or args.channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    if variant["fused"] is None:  # exactly what training builds
        opt = make_optimizer(model.parameters(), TrainConfig(lr=2e-4), args.device)
    else:
        opt = torch.optim.AdamW(model.parameters(), lr=2e-4, fused=variant["fused"] or None,
                                foreach=False if not variant["fused"] else None)  # fmt: skip
    net = torch.compile(model) if variant.get("compile") else model
    return cfg, model, net, opt, x, y


def _train_steps(net, opt, x, y, steps, device):
    """`steps` optimizer steps of eq. (11); returns per-step seconds and the first output."""
    times, first = [], None
    for _ in range(steps):
        _sync(device)
        start = time.perf_counter()
        with torch.autocast(torch.device(device).type, torch.bfloat16, enabled=False):
            pred, routings = net(x, return_routing=True)
            loss, _ = total_loss(pred.float(), y, routings)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        _sync(device)
        times.append(time.perf_counter() - start)
        first = pred.detach().float().cpu() if first is None else first
    return times, first


def bench_train(args):
    """Each variant of the training step from the same weights and batch: median step time,
    speed-up over the step before issue 14, and how far its output and weights drift from
    it (first forward output; weights after warm-up + repeats steps)."""
    rows = []
    variants = dict(TRAIN_VARIANTS)
    if args.compile:
        variants["grouped, fused, torch.compile"] = {
            "dispatch": "grouped", "fused": True, "compile": True
        }  # fmt: skip
    for name in args.train_configs:
        ref = None
        for label, variant in variants.items():
            cfg, model, net, opt, x, y = _train_setup(name, variant, args)
            start = time.perf_counter()
            times, out = _train_steps(net, opt, x, y, args.warmup + args.repeats, args.device)
            total = time.perf_counter() - start
            step = statistics.median(times[args.warmup :])
            weights = torch.cat([p.detach().float().flatten().cpu() for p in model.parameters()])
            tag = f" = {cfg.dispatch}" if variant["dispatch"] is None else ""
            ref = ref or {"step": step, "out": out, "weights": weights}
            rows.append(
                {
                    "section": "train",
                    "model": f"{name}: {label}{tag}",
                    "size": f"{args.batch}x{args.patch}²",
                    "ms": 1e3 * step,
                    "first_step_s": times[0],
                    "all_steps_s": total,
                    "speedup": ref["step"] / step,
                    "img_per_s": args.batch / step,
                    "max_abs_diff": (out - ref["out"]).abs().max().item(),
                    "max_weight_diff": (weights - ref["weights"]).abs().max().item(),
                }
            )
    return rows


def _placement_worker(conn, name, threads, steps, batch, patch):
    torch.set_num_threads(threads)
    args = argparse.Namespace(device="cpu", batch=batch, patch=patch, channels_last=False)
    _, _, net, opt, x, y = _train_setup(name, TRAIN_VARIANTS["preset"], args)
    _train_steps(net, opt, x, y, 2, "cpu")  # warm-up
    conn.recv()  # start together
    times, _ = _train_steps(net, opt, x, y, steps, "cpu")
    conn.send(sum(times))


def bench_placement(args):
    """Two cores, many independent runs: one process of 2 threads, or 2 processes of 1
    thread each (what `experiments.train_runs` does on CPU). Throughput in images/s."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    steps = max(args.repeats, 5)
    rows = []
    name = args.train_configs[0]
    for procs, threads in ((1, 2), (2, 1), (1, 1)):
        pipes = [ctx.Pipe() for _ in range(procs)]
        workers = [
            ctx.Process(target=_placement_worker,
                        args=(child, name, threads, steps, args.batch, args.patch))
            for _, child in pipes
        ]  # fmt: skip
        for w in workers:
            w.start()
        start = time.perf_counter()
        for parent, _ in pipes:
            parent.send("go")
        busy = [parent.recv() for parent, _ in pipes]
        wall = time.perf_counter() - start
        for w in workers:
            w.join()
        rows.append(
            {
                "section": "placement",
                "model": f"{name}: {procs} process(es) × {threads} thread(s)",
                "size": f"{args.batch}x{args.patch}²",
                "ms": 1e3 * max(busy) / steps,
                "img_per_s": procs * steps * args.batch / wall,
            }
        )
    return rows


def bench_stage(args):
    """One DGEA (eq. 4–6) with the paper's widths at each ADEC position for a --size input,
    forward only: dense (eq. 6 expert by expert), grouped (two matmuls) and sparse (each
    pixel's K+1 experts) on the same weights and routing."""
    from m2ir_lib.core.config import PAPER
    from m2ir_lib.core.model import DGEA

    rows = []
    h, w = args.size
    for level, (factor, pos) in enumerate(((8, "latent"), (4, "dec3"), (2, "dec2"))):
        dim = PAPER.dim * factor
        torch.manual_seed(0)
        dgea = DGEA(dim, PAPER, with_prior=True).to(args.device).eval()
        gen = torch.Generator().manual_seed(level)
        shape = (1, dim, h // factor, w // factor)
        x_hat, p = (torch.randn(*shape, generator=gen).to(args.device) for _ in range(2))
        with torch.no_grad():
            weights = dgea.route(x_hat, p).weights
            outs, ms = {}, {}
            for mode in ("dense", "grouped", "sparse"):
                dgea.dispatch = mode
                outs[mode] = dgea.mix(x_hat, weights)
                times = []
                for _ in range(args.warmup + args.repeats):
                    _sync(args.device)
                    start = time.perf_counter()
                    dgea.mix(x_hat, weights)
                    _sync(args.device)
                    times.append(time.perf_counter() - start)
                ms[mode] = 1e3 * statistics.median(times[args.warmup :])
        n, k = PAPER.num_experts, PAPER.top_k
        for mode in ms:
            rows.append(
                {
                    "section": "stage",
                    "model": f"DGEA {pos} (C={dim}, N={n}, K={k}): {mode}",
                    "size": f"{w // factor}x{h // factor}",
                    "ms": ms[mode],
                    "speedup": ms["dense"] / ms[mode],
                    "max_abs_diff": (outs[mode] - outs["dense"]).abs().max().item(),
                }
            )
    return rows


def bench_profile(args):
    """torch.profiler: the top operators (self CPU time) of --profile-steps training steps
    of the first of --train-configs, for the step before issue 14 and for the preset's."""
    from torch.profiler import ProfilerActivity, profile

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if args.device != "cpu" else [])
    name, rows = args.train_configs[0], []
    for label in ("before: sparse, AdamW loop", "preset"):
        _, _, net, opt, x, y = _train_setup(name, TRAIN_VARIANTS[label], args)
        _train_steps(net, opt, x, y, 2, args.device)  # warm-up outside the trace
        with profile(activities=acts) as prof:
            _train_steps(net, opt, x, y, args.profile_steps, args.device)
        events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
        total = sum(e.self_cpu_time_total for e in events) or 1
        rows += [
            {
                "section": "profile",
                "model": f"{name}: {label}: {e.key}",
                "size": f"{args.batch}x{args.patch}²",
                "ms": e.self_cpu_time_total / 1e3 / args.profile_steps,  # per step
                "share": e.self_cpu_time_total / total,
                "calls": e.count // args.profile_steps,
            }
            for e in events[: args.top]
        ]
    return rows


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
    parser.add_argument("--profile-steps", type=int, default=3, help="training steps traced")
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
