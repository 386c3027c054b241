"""Training-batch throughput of `m2ir_lib.data.datasets.TrainDataset` on the mini benchmark.

    PYTHONPATH=. python benchmarks/bench_data.py [--data data/mini] [--manifest mini_5d]
        [--patch 128] [--batch 8] [--workers 2] [--batches 60] [--cache] [--model-step]

Reports patches/s (decode, crop, flip/rotation, on-the-fly noise, collate) with a
DataLoader of ``--workers`` processes. The data pipeline must stay far above the model's
training step rate; ``--model-step`` also times one forward/backward of the ``mini`` profile
model at the same batch for comparison. Builds the mini benchmark first if it is missing.
Numbers depend on the machine and its load: quote them with both.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from data_prep.mini import build
from m2ir_lib.data.datasets import TrainDataset


def _one_thread(_worker_id):
    torch.set_num_threads(1)


def loader_throughput(manifest, root, patch, batch, workers, batches, cache) -> float:
    """Patches per second over ``batches`` batches, after a warm-up of 5 (workers started)."""
    ds = TrainDataset(manifest, root, patch, cache=cache)
    loader = DataLoader(
        ds,
        batch_size=batch,
        shuffle=True,
        num_workers=workers,
        worker_init_fn=_one_thread,
        persistent_workers=workers > 0,
        drop_last=True,
    )
    it, n = iter(loader), 0
    for _ in range(5):
        next(it)
    t0 = time.perf_counter()
    while n < batches:
        try:
            next(it)
        except StopIteration:
            it = iter(loader)
            continue
        n += 1
    return n * batch / (time.perf_counter() - t0)


def model_step_rate(batch, patch, steps=3) -> float:
    """Patches per second of forward + backward + AdamW step of the mini profile model."""
    from m2ir_lib.core.config import get_profile
    from m2ir_lib.core.networks import build_model

    model = build_model(get_profile("mini").model)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-4)
    x = torch.rand(batch, 3, patch, patch)
    for i in range(steps + 1):
        if i == 1:
            t0 = time.perf_counter()
        loss = (model(x) - x).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return steps * batch / (time.perf_counter() - t0)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default="data/mini", help="mini benchmark folder (built if absent)")
    p.add_argument("--manifest", default="mini_5d")
    p.add_argument("--patch", type=int, default=128)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--batches", type=int, default=60)
    p.add_argument("--cache", action="store_true", help="keep decoded images in memory")
    p.add_argument("--model-step", action="store_true", help="also time a mini model step")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    paths = build(a.data)
    rate = loader_throughput(
        paths[a.manifest], Path(a.data), a.patch, a.batch, a.workers, a.batches, a.cache
    )
    print(
        f"data: {rate:.0f} patches/s ({a.manifest}, patch {a.patch}, batch {a.batch}, "
        f"{a.workers} workers, cache={a.cache})"
    )
    if a.model_step:
        step = model_step_rate(a.batch, a.patch)
        print(
            f"model (mini profile, forward+backward+AdamW): {step:.1f} patches/s; "
            f"data/model = {rate / step:.0f}x"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
