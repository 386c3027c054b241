"""One prepared GPU check for Table XIII (§IV-E) on a lent H100/H200: a script, not a test.

Measures at 720×480 (batch 1), fp32 and bf16 autocast, median after warm-up:
  - latency and peak GPU memory of M²IR with a random-weight DA-CLIP (only if open_clip
    imports), M²IR w/o DA-CLIP, and the Restormer-style baseline;
  - dense vs sparse expert dispatch latency (fp32);
  - training-step throughput of the paper config: batch 8, 128², AdamW, bf16 autocast;
  - params/MACs of M²IR w/o DA-CLIP when ptflops imports (one forward on the GPU).
Needs only torch and m2ir_lib (model, config, efficiency; losses if present). Prints the
device name and a JSON summary, and writes $OUT/gpu_check.json when OUT is set. A time
budget (default 200 s of measuring) skips what is left rather than overrun 4 minutes.

    python benchmarks/gpu_check.py                       # on the GPU machine
    python benchmarks/gpu_check.py --dry-run             # CPU, mini config, tiny sizes
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import importlib.util
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from m2ir_lib.core.config import baseline_config
from m2ir_lib.data.files import atomic_write_text
from m2ir_lib.engine.efficiency import build_variant, complexity_of, resolve_config
from m2ir_lib.engine.speed import measure_latency, peak_memory

HAVE_OPEN_CLIP = importlib.util.find_spec("open_clip") is not None
HAVE_PTFLOPS = importlib.util.find_spec("ptflops") is not None


class Budget:
    """Skips work once the measuring time is spent, so the whole run stays under 4 min."""

    def __init__(self, seconds):
        self.start, self.seconds = time.perf_counter(), seconds

    def left(self):
        return self.seconds - (time.perf_counter() - self.start)


def _free():
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _guarded(fn, budget, what):
    """Run one measurement; out-of-memory or any error becomes a note, not a crash."""
    if budget.left() <= 0:
        return {"skipped": f"time budget spent before {what}"}
    try:
        return fn()
    except Exception as err:  # a failed row must not lose the others' numbers
        return {"error": f"{type(err).__name__}: {err}"[:300]}
    finally:
        _free()


def check_inference(args, budget):
    cfg = resolve_config(args.config)
    variants = [
        ("M²IR (random DA-CLIP)", cfg, "daclip"),
        ("M²IR (w/o DA-CLIP)", cfg, "none"),
        ("Restormer-style baseline", baseline_config(cfg), "none"),
    ]
    rows = []
    for name, c, mode in variants:
        if mode == "daclip" and not HAVE_OPEN_CLIP:
            rows.append({"model": name, "skipped": "open_clip not installed"})
            continue
        model = build_variant(c, mode).to(args.device).eval()
        params = sum(p.numel() for p in model.parameters())
        for dtype_name, amp in (("fp32", None), ("bf16", torch.bfloat16)):

            def measure(model=model, amp=amp):
                ms = measure_latency(
                    model, args.size, args.device, args.warmup, args.repeats, amp_dtype=amp
                )
                return {"latency_ms": ms, **peak_memory(model, args.size, args.device, amp)}

            row = {"model": name, "dtype": dtype_name, "params_M": params / 1e6}
            row.update(_guarded(measure, budget, f"{name} {dtype_name}"))
            rows.append(row)
            print(row, flush=True)
        del model
        _free()
    return rows


def check_dispatch(args, budget):
    cfg = resolve_config(args.config)
    rows = []
    for dispatch in ("dense", "sparse"):

        def measure(dispatch=dispatch):
            model = build_variant(dataclasses.replace(cfg, dispatch=dispatch), "none")
            model = model.to(args.device)
            return {
                "latency_ms": measure_latency(
                    model, args.size, args.device, args.warmup, args.repeats
                )
            }

        row = {"dispatch": dispatch, **_guarded(measure, budget, f"{dispatch} dispatch")}
        rows.append(row)
        print(row, flush=True)
    return rows


def check_train(args, budget):
    try:
        from m2ir_lib.core.losses import total_loss
    except ImportError:
        total_loss = None

    def measure():
        torch.manual_seed(0)
        cfg = dataclasses.replace(resolve_config(args.config), prior="mlp")
        model = build_variant(cfg, "mlp").to(args.device).train()
        opt = torch.optim.AdamW(model.parameters(), lr=2e-4, betas=(0.9, 0.999))
        shape = (args.batch, 3, args.patch, args.patch)
        x, y = torch.rand(*shape, device=args.device), torch.rand(*shape, device=args.device)
        if args.device != "cpu":
            torch.cuda.reset_peak_memory_stats()
        times = []
        for i in range(args.train_warmup + args.train_steps):
            _sync(args.device)
            start = time.perf_counter()
            with torch.autocast(torch.device(args.device).type, dtype=torch.bfloat16):
                pred, routings = model(x, return_routing=True)
            pred = pred.float()
            loss = (
                total_loss(pred, y, routings)[0]
                if total_loss
                else torch.nn.functional.l1_loss(pred, y)
            )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            _sync(args.device)
            if i >= args.train_warmup:
                times.append(time.perf_counter() - start)
        step = statistics.median(times)
        peak = torch.cuda.max_memory_allocated() / 2**20 if args.device != "cpu" else None
        return {
            "step_ms": 1e3 * step,
            "img_per_s": args.batch / step,
            "gpu_peak_mb": peak,
            "loss": "eq. (11) total_loss" if total_loss else "L1 (losses.py missing)",
        }

    row = {
        "config": args.config,
        "batch": args.batch,
        "patch": args.patch,
        "dtype": "bf16",
        **_guarded(measure, budget, "training step"),
    }
    print(row, flush=True)
    return [row]


def check_count(args, budget):
    if not HAVE_PTFLOPS:
        return [{"skipped": "ptflops not installed"}]

    def measure():
        model = build_variant(args.config, "none").to(args.device)
        out = complexity_of(model, tuple(args.size))
        return {k: out[k] for k in ("params", "macs", "attention_macs")}

    return [{"model": "M²IR (w/o DA-CLIP)", **_guarded(measure, budget, "counting")}]


def _sync(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="paper")
    parser.add_argument("--size", type=int, nargs=2, default=(480, 720), metavar=("H", "W"))
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--patch", type=int, default=128)
    parser.add_argument("--train-warmup", type=int, default=3)
    parser.add_argument("--train-steps", type=int, default=10)
    parser.add_argument("--budget-s", type=float, default=200.0, help="measuring time budget")
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="CPU, mini config, 32×48, batch 2 of 32²: proves the script runs",
    )
    args = parser.parse_args(argv)
    if args.dry_run:
        args.device, args.config, args.size = "cpu", "mini", (32, 48)
        args.batch, args.patch, args.warmup, args.repeats = 2, 32, 0, 1
        args.train_warmup, args.train_steps = 0, 1
    elif not torch.cuda.is_available():
        sys.exit("gpu_check: no CUDA device visible (use --dry-run to test the script on CPU)")
    args.size = tuple(args.size)
    torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick its kernels

    cuda = torch.device(args.device).type == "cuda"
    env = {
        "device": torch.cuda.get_device_name() if cuda else "cpu",
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "open_clip": HAVE_OPEN_CLIP,
        "ptflops": HAVE_PTFLOPS,
        "config": args.config,
        "size": f"{args.size[1]}x{args.size[0]}",
        "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
        "tf32_cudnn": torch.backends.cudnn.allow_tf32,
        "cudnn_benchmark": True,
    }
    print("gpu_check on", env["device"], env, flush=True)
    budget = Budget(args.budget_s)
    started = time.perf_counter()
    result = {"env": env}
    for key, fn in (
        ("inference", check_inference),
        ("train", check_train),
        ("dispatch", check_dispatch),
        ("count", check_count),
    ):
        result[key] = fn(args, budget)
    result["wall_s"] = round(time.perf_counter() - started, 1)
    text = json.dumps(result, indent=1, default=str)
    print(text)
    if os.environ.get("OUT"):
        path = Path(os.environ["OUT"]) / "gpu_check.json"
        atomic_write_text(text, path)
        print("wrote", path)


if __name__ == "__main__":
    main()
