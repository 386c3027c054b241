"""Latency and peak memory of Table XIII (§IV-E), and the table that puts them beside the
parameter and MAC counts of `m2ir_lib.engine.efficiency`.

Latency is the median of timed forward passes after warm-up (CUDA-synchronised on a GPU);
CPU memory is the peak resident set of a fresh process that builds the network and runs one
forward pass, so nothing the caller holds is counted; GPU memory is torch's peak allocation.
CPU and GPU numbers are different quantities and are kept in separate columns.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import json
import os
import statistics
import subprocess
import sys
import time

import pandas as pd
import torch
from torch import nn
from torch.utils.benchmark import Timer

from m2ir_lib.core.config import M2IRConfig, TrainConfig
from m2ir_lib.core.losses import total_loss
from m2ir_lib.core.rivals import RivalConfig
from m2ir_lib.data.files import REPO_ROOT
from m2ir_lib.engine.efficiency import (
    _image,
    build_network,
    complexity_of,
    resolve_config,
    table_xiii_models,
)
from m2ir_lib.engine.train import accumulation, make_optimizer


def _autocast(device, amp_dtype):
    return torch.autocast(torch.device(device).type, amp_dtype, enabled=amp_dtype is not None)


def measure_latency(
    model: nn.Module,
    size=(480, 720),
    device="cpu",
    warmup: int = 1,
    repeats: int = 3,
    batch: int = 1,
    amp_dtype: torch.dtype | None = None,
    channels_last: bool = False,
) -> float:
    """Median forward time in ms (no_grad, eval; CUDA synchronised around each call).

    Args:
        model: the network, already on `device` ('cpu' or CUDA); size: (H, W) of the input.
        warmup, repeats: untimed calls first (allocator, cuDNN tuning), then timed calls.
        batch: images per call. amp_dtype: e.g. torch.bfloat16 for autocast; None = fp32.
        channels_last: feed an NHWC-strided input (convert the model yourself).
    """
    if repeats < 1:
        raise ValueError("repeats must be >= 1")
    model.eval()
    x = _image(size, device, batch)
    x = x.contiguous(memory_format=torch.channels_last) if channels_last else x
    cuda, times = torch.device(device).type == "cuda", []
    with torch.no_grad(), _autocast(device, amp_dtype):
        for i in range(warmup + repeats):
            if cuda:
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            model(x)
            if cuda:
                torch.cuda.synchronize(device)
            if i >= warmup:
                times.append(1e3 * (time.perf_counter() - start))
    return statistics.median(times)


def measure_train_step(
    model: nn.Module,
    tc: TrainConfig,
    device="cpu",
    amp_dtype: torch.dtype | None = None,
    steps: int = 3,
    warmup: int = 1,
) -> dict:
    """Seconds per optimizer step of `m2ir_lib.engine.train.train` on one process: the
    `tc.global_batch` samples as `accumulation` micro-batches of `tc.batch_size` random
    `tc.patch`² crops, eq. (11) with `tc`'s switches, the loop's AdamW and step. Data loading
    is left out (fixed tensors), so this is the network's cost, not the input pipeline's.

    Returns: step_s (mean over `steps` timed steps, torch.utils.benchmark, synchronised),
    images_per_s, micro_batch, accumulation, global_batch and, on a GPU, gpu_peak_mb
    (torch.cuda.max_memory_allocated over the timed steps, weights and AdamW state included).
    """
    accum = accumulation(tc, 1)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]  # DA-CLIP is frozen
    opt = make_optimizer(params, tc, device)
    x, y = (_image((tc.patch, tc.patch), device, tc.batch_size, seed) for seed in (0, 1))
    loss_kw = dict(lambda1=tc.lambda1, lambda2=tc.lambda2, charbonnier=tc.charbonnier,
                   use_balance=tc.use_balance, use_fft=tc.use_fft)  # fmt: skip

    def step():  # the body of train()'s loop for world size 1
        for _ in range(accum):
            with _autocast(device, amp_dtype):
                pred, routings = model(x, return_routing=True)
            loss, _ = total_loss(pred.float(), y, routings, **loss_kw)
            (loss / accum).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(warmup):  # allocator, cuDNN autotuning, AdamW state
        step()
    cuda = torch.device(device).type == "cuda"
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    seconds = Timer("step()", globals={"step": step}).timeit(steps).mean
    out = {
        "step_s": seconds,
        "images_per_s": tc.global_batch / seconds,
        "micro_batch": tc.batch_size,
        "accumulation": accum,
        "global_batch": tc.global_batch,
        "timed_steps": steps,
    }
    if cuda:
        out["gpu_peak_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    return out


def _proc_status_mb(field: str) -> float | None:
    try:  # Linux only; elsewhere the CPU numbers are left out
        with open("/proc/self/status") as f:
            return next(int(ln.split()[1]) / 1024 for ln in f if ln.startswith(field + ":"))
    except (OSError, StopIteration):
        return None


def peak_memory(
    model: nn.Module, size=(480, 720), device="cpu", amp_dtype: torch.dtype | None = None
) -> dict:
    """Peak memory of one no_grad forward in this process, in MB (and its increase).

    CPU: VmHWM, reset just before the call (tracemalloc cannot see torch's allocator); the
    whole process counts, so tables use `cpu_peak_rss_mb` (a fresh process) instead.
    GPU: torch.cuda.max_memory_allocated during the call, weights included.
    """
    model.eval()
    x = _image(size, device)
    gc.collect()
    cuda = torch.device(device).type == "cuda"
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device) / 2**20
    else:
        with contextlib.suppress(OSError), open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # proc(5): resets VmHWM to the current RSS
        before = _proc_status_mb("VmRSS")
    with torch.no_grad(), _autocast(device, amp_dtype):
        model(x)
    if cuda:
        torch.cuda.synchronize(device)
        peak = torch.cuda.max_memory_allocated(device) / 2**20
        return {"gpu_peak_mb": peak, "gpu_forward_mb": peak - before}
    peak = _proc_status_mb("VmHWM")
    return {} if None in (peak, before) else {"cpu_peak_mb": peak, "cpu_forward_mb": peak - before}


_RSS_PROBE = """import json, sys, torch
from m2ir_lib.core.config import M2IRConfig, TrainConfig
from m2ir_lib.core.losses import total_loss
from m2ir_lib.core.rivals import RivalConfig
from m2ir_lib.engine.efficiency import _image, build_network
from m2ir_lib.engine.speed import _proc_status_mb
a = json.loads(sys.argv[1]); torch.set_num_threads(a["threads"])
kind = RivalConfig if "arch" in a["cfg"] else M2IRConfig
cfg = kind(**{k: tuple(v) if isinstance(v, list) else v for k, v in a["cfg"].items()})
model = build_network(cfg, a["daclip"], a["daclip_cfg"]).eval()
with torch.no_grad():
    model(_image(a["size"]))
print(_proc_status_mb("VmHWM"))
"""  # not ru_maxrss: Linux carries the parent's peak into it across fork + exec


def cpu_peak_rss_mb(
    cfg_or_name: M2IRConfig | RivalConfig | str,
    daclip: str = "none",
    size=(480, 720),
    daclip_cfg: str | dict | None = None,
    threads: int = 1,
) -> float:
    """Peak resident memory (MB) of a fresh Python process that builds the model (random
    weights) and runs one no_grad CPU forward: Table XIII's "CPU" column, runtime included."""
    arg = json.dumps(
        {
            "cfg": dataclasses.asdict(
                cfg_or_name if isinstance(cfg_or_name, RivalConfig) else resolve_config(cfg_or_name)
            ),
            "daclip": daclip,
            "daclip_cfg": daclip_cfg,
            "size": list(size),
            "threads": threads,
        }
    )
    root = str(REPO_ROOT)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-c", _RSS_PROBE, arg],
        capture_output=True,
        text=True,
        env=env,
        cwd=root,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"memory probe failed: {done.stderr[-2000:]}")
    return float(done.stdout.split()[-1])


def efficiency_table(
    models: dict | None = None,
    size=(480, 720),
    device="cpu",
    repeats: int = 3,
    warmup: int = 1,
    count: bool = True,
    amp_dtype: torch.dtype | None = None,
    daclip_cfg: str | dict | None = None,
):
    """Table XIII for our models: Params, MACs, attention MACs, latency, CPU/GPU memory.

    Args:
        models: name -> (config or preset name, daclip mode); default `table_xiii_models()`;
            `table_xiii_models(preset, rivals=True)` adds Restormer, PromptIR and AdaIR.
        size: (H, W); the paper uses 480×720.
        device: where latency and memory are measured; CPU memory is the peak RSS of a
            fresh process (`cpu_peak_rss_mb`), GPU memory `peak_memory`'s.
        repeats, warmup: latency repetitions (median). amp_dtype: autocast dtype or None.
        count: also count params/MACs (ptflops on the same model; slow at paper size on CPU).
        daclip_cfg: open_clip config for DA-CLIP rows (None = ViT-B-32).

    Returns:
        DataFrame, one row per model: method, daclip, params_M, macs_G, attention_macs_G
        (FLOPs column = MACs, as the paper reports them), latency_ms_cpu, latency_ms_gpu
        (the one not measured on is None), cpu_mb, gpu_mb, device (its name), ...
    """
    rows = []
    for name, (cfg, mode) in (models or table_xiii_models()).items():
        model = build_network(cfg, mode, daclip_cfg).to(device).eval()
        row = {
            "method": name,
            "daclip": mode,
            "params_M": sum(p.numel() for p in model.parameters()) / 1e6,
        }
        if count:  # FLOPs column = MACs, as the paper reports them (docs/readings.md §1)
            c = complexity_of(model, tuple(size))
            row.update(macs_G=c["macs"] / 1e9, attention_macs_G=c["attention_macs"] / 1e9)
        latency = measure_latency(model, size, device, warmup, repeats, amp_dtype=amp_dtype)
        cuda = torch.device(device).type == "cuda"
        # CPU and GPU milliseconds are different quantities: each has its own column, and
        # the device not measured on stays empty (never filled in).
        row["latency_ms_cpu"] = None if cuda else latency
        row["latency_ms_gpu"] = latency if cuda else None
        row["cpu_mb"] = (
            None if cuda else cpu_peak_rss_mb(cfg, mode, size, daclip_cfg, torch.get_num_threads())
        )
        row["gpu_mb"] = peak_memory(model, size, device, amp_dtype)["gpu_peak_mb"] if cuda else None
        row.update(
            device=_device_name(device),
            threads=torch.get_num_threads(),
            size=f"{size[1]}x{size[0]}",
            dtype=str(amp_dtype or torch.float32),
        )
        rows.append(row)
        del model
        gc.collect()
    return pd.DataFrame(rows)


def _device_name(device) -> str:
    if torch.device(device).type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({os.cpu_count()} logical cores)"
