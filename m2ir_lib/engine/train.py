"""Training of §IV-A: AdamW, linear warm-up then cosine annealing, the loss of eq. (11).

One plain loop (nanoGPT style) that runs as a single process or under ``torchrun`` (DDP;
gloo on CPU, NCCL on GPU; fp32, bf16 autocast on GPU when asked). The peers' per-epoch schedule
(PromptIR/AdaIR ``LinearWarmupCosineAnnealingLR``, docs/readings.md §12) is in iterations, so a
shortened profile keeps its shape.

Exact resume: the data stream is a pure function of (seed, sample counter). Sample ``g`` of
the global stream is item ``perm_e[g mod n]`` of epoch ``e = g // n`` (a seeded permutation
per epoch, rank ``r`` taking its slice of each global batch as DistributedSampler does), and
its crop, flip and noise draw from a generator seeded by ``(seed, g)`` alone (the
``TrainDataset`` key ``(index, sample_seed)``). A checkpoint therefore only
needs the step count beside weights, optimizer, scheduler and RNG states, whatever the number
of data-loader workers.

Its command line is ``python -m m2ir_lib.train`` (`m2ir_lib/train.py`), which plans the run
as the notebooks do.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.optim.lr_scheduler import LambdaLR
from torch.utils.data import DataLoader, Sampler
from tqdm import tqdm

from m2ir_lib.core.config import M2IRConfig, TrainConfig
from m2ir_lib.core.losses import total_loss
from m2ir_lib.core.networks import build_model
from m2ir_lib.data.datasets import TrainDataset
from m2ir_lib.data.files import atomic_write_text
from m2ir_lib.engine.checkpoint import (
    CSVLog,
    check_same_run,
    expert_counts,
    heal_meta,
    load_checkpoint,
    lock_run_folder,
    param_checksum,
    release_run_folder,
    resume_point,
    run_meta,
    save_checkpoint,
    set_rng_state,
)

__all__ = [
    "StreamSampler",
    "WarmupCosine",
    "accumulation",
    "load_checkpoint",
    "lr_at",
    "train",
]


# ---------------------------------------------------------------------------------------------
# Learning-rate schedule
# ---------------------------------------------------------------------------------------------


class WarmupCosine:
    """LR factor of PromptIR's LinearWarmupCosineAnnealingLR (closed form), in iterations.

    ``it < warmup``: ``it / (warmup - 1)`` (0 at the first step, as the peers' epoch 0);
    then ``½(1 + cos(π (it - warmup) / (horizon - warmup)))`` with ``horizon`` = cosine_iters,
    beyond the iterations trained so the LR never reaches 0 (AdaIR: warm-up 15, horizon 180,
    150 epochs trained). A class, not a lambda, so LambdaLR's state dict can save it.
    """

    def __init__(self, warmup_iters: int, cosine_iters: int):
        if not 0 <= warmup_iters < cosine_iters:
            raise ValueError(
                f"need 0 <= warmup_iters ({warmup_iters}) < cosine_iters ({cosine_iters})"
            )
        self.warmup_iters, self.cosine_iters = warmup_iters, cosine_iters

    def __call__(self, it: int) -> float:
        w, t = self.warmup_iters, self.cosine_iters
        if it < w:
            return it / max(1, w - 1)
        return 0.5 * (1.0 + math.cos(math.pi * min(it - w, t - w) / (t - w)))


def lr_at(it: int, cfg: TrainConfig) -> float:
    """The learning rate used by optimizer step ``it`` (0-based)."""
    return cfg.lr * WarmupCosine(cfg.warmup_iters, cfg.cosine_iters)(it)


# ---------------------------------------------------------------------------------------------
# Deterministic, resumable data stream
# ---------------------------------------------------------------------------------------------


def sample_seed(seed: int, g: int) -> int:
    """The RNG seed of global sample ``g`` of a run with ``seed``."""
    return int(np.random.SeedSequence([seed, g]).generate_state(1)[0])


class StreamSampler(Sampler):
    """This rank's ``(index, sample seed)`` pairs for optimizer steps ``start .. iters - 1``."""

    def __init__(self, n, seed, rank, world, batch, accum, start, iters):
        if n == 0:
            raise ValueError("the training set is empty")
        self.n, self.seed, self.rank, self.world = n, seed, rank, world
        self.batch, self.accum, self.start, self.iters = batch, accum, start, iters
        self._epoch, self._perm = -1, None

    def __len__(self):
        return (self.iters - self.start) * self.accum * self.batch

    def _index(self, g):
        epoch, pos = divmod(g, self.n)
        if epoch != self._epoch:
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._epoch, self._perm = epoch, torch.randperm(self.n, generator=gen).tolist()
        return self._perm[pos]

    def __iter__(self):
        for micro in range(self.start * self.accum, self.iters * self.accum):
            for j in range(self.batch):
                g = (micro * self.world + self.rank) * self.batch + j
                yield self._index(g), sample_seed(self.seed, g)


def make_train_dataset(manifest, data_root, patch, tasks=None, repeats=None, cache=False):
    """The training set; items are keyed ``(index, sample seed)`` (``TrainDataset`` contract)."""
    return TrainDataset(manifest, data_root, patch, tasks=tasks, repeats=repeats, cache=cache)


# ---------------------------------------------------------------------------------------------
# Distributed set-up
# ---------------------------------------------------------------------------------------------


def _distributed(device):
    """(rank, world, device) — initialises the process group under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device is None:
        device = f"cuda:{local}" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return rank, world, device


def _report(label, step, start, iters, row, every, last) -> float:
    """Print a progress line when `every` seconds passed since `last` (or at the end); return
    the time of the last line."""
    now = time.perf_counter()
    if not every or (now - last < every and step < iters):
        return last
    per_step = row["time_s"] / max(1, step - start)
    print(
        f"  train {label}: step {step}/{iters}, {per_step:.2f} s/step, loss {row['loss']:.4f}, "
        f"~{per_step * (iters - step) / 60:.1f} min left",
        file=sys.stderr,
        flush=True,
    )
    return now


def accumulation(tc: TrainConfig, world: int) -> int:
    """Micro-batches per optimizer step on each of ``world`` processes, so that every step
    sees ``tc.global_batch`` samples however many GPUs train (the peers' 32).

    Raises:
        ValueError: the global batch is not a multiple of ``world × batch_size``; the message
            names a per-process batch, or else a process count, that works.
    """
    per_round = world * tc.batch_size
    if tc.global_batch % per_round:
        raise ValueError(batch_advice(tc, world))
    return tc.global_batch // per_round


def batch_advice(tc: TrainConfig, world: int) -> str:
    """Why ``tc``'s batch does not split over ``world`` processes, and the command that works:
    a smaller per-process batch with the same global batch (`config.with_batch_size`), else
    the largest process count below ``world`` that the global batch splits over."""
    g = tc.global_batch
    head = (
        f"global batch {g} (batch_size {tc.batch_size} × grad_accum {tc.grad_accum}) does not "
        f"split over {world} process(es) of batch_size {tc.batch_size}"
    )
    fits = [b for b in range(tc.batch_size - 1, 0, -1) if g % (world * b) == 0]
    if fits:
        b = fits[0]
        return (
            f"{head}; give each process {b} samples (same global batch {g}, accumulation "
            f"{g // (world * b)} on each of {world}): `--batch-size {b}` for "
            f"`python -m m2ir_lib.train`, or M2IR_BATCH_SIZE={b} in the environment of the "
            "pipeline and notebooks"
        )
    n = max(k for k in range(1, world) if g % k == 0)
    return (
        f"{head}; {g} samples do not split evenly over {world} processes: train on {n} "
        f"(`torchrun --nproc_per_node={n} -m m2ir_lib.train ...`, or "
        f"CUDA_VISIBLE_DEVICES={','.join(map(str, range(n)))} for the pipeline and notebooks)"
    )


def _all_ranks(flag: bool, world: int, device) -> bool:
    """True when ``flag`` holds on every rank (one all-reduce)."""
    if world == 1:
        return flag
    t = torch.tensor([0.0 if flag else 1.0], device=device)
    dist.all_reduce(t)
    return t.item() == 0


def make_optimizer(params, tc: TrainConfig, device) -> torch.optim.AdamW:
    """AdamW of §IV-A. Fused (one kernel over all tensors) where torch has it: the
    per-tensor loop cost ~15 % of a `mini` step (benchmarks/bench_model.py --only train)."""
    fused = torch.device(device).type in ("cpu", "cuda")
    return torch.optim.AdamW(
        params, lr=tc.lr, betas=tc.betas, weight_decay=tc.weight_decay, fused=fused or None
    )


# ---------------------------------------------------------------------------------------------
# The loop
# ---------------------------------------------------------------------------------------------


def train(
    model_cfg: M2IRConfig,
    train_cfg: TrainConfig,
    manifest,
    data_root,
    out_dir,
    *,
    seed: int = 0,
    profile: str = "mini",
    device=None,
    resume: bool = True,
    daclip_checkpoint: str | None = None,
    tasks=None,
    repeats=None,
    progress: bool = True,
    cache_images: bool = False,
    lock_timeout: float = -1,
    report_every: float = 0.0,
    label: str = "",
) -> Path:
    """Train M²IR (§IV-A) and return the path of its final checkpoint.

    Writes ``last.pt`` every ``ckpt_every`` steps, then ``final.pt``, ``log.csv`` (each loss
    term, lr and each ADEC's expert selection shares per step) and ``meta.json`` in
    ``out_dir``. Runs single-process or under ``torchrun`` (env RANK / WORLD_SIZE).

    Args:
        model_cfg: the network.
        train_cfg: optimisation (iterations, schedule, batch per process, loss weights).
        manifest: data manifest CSV (split 'train' rows are used).
        data_root: folder the manifest paths are relative to.
        out_dir: run folder.
        seed: initialisation and data-stream seed.
        profile: profile name, recorded as provenance.
        device: torch device; default CUDA (this rank's GPU) if available, else CPU.
        resume: continue from ``out_dir/last.pt`` (or return ``final.pt``) when present.
        daclip_checkpoint: DA-CLIP file for prior='daclip'.
        tasks: train only on these tasks (default all in the manifest).
        repeats: per-task repetition of the training pairs (AdaIR's data balancing).
        progress: show a tqdm bar on rank 0.
        cache_images: keep decoded training images in memory (small sets such as ``mini``).
        lock_timeout: seconds to wait while another process owns ``out_dir`` (-1: as long as
            it takes; 0: stop at once). One process at a time writes into a run folder.
        report_every: without a bar, print one line (step, s/step, time left) to stderr at
            most every this many seconds (0: never): readable when several worker processes
            share one terminal, where tqdm bars overwrite each other.
        label: the run's name in those lines.

    Raises:
        ValueError: iters < 1 or a negative seed.
        RunFolderBusy: ``out_dir`` stayed owned by another process (named in the message).
        CheckpointError: no readable checkpoint to resume from (names the file and the flag).
        FloatingPointError: the loss became NaN/inf (message names the iteration; the last
            good checkpoint is left in place).
    """
    out, tc = Path(out_dir), train_cfg
    if tc.iters < 1:
        raise ValueError(f"iters={tc.iters}: a run needs at least one optimizer step")
    if seed < 0:
        raise ValueError(f"seed={seed}: seeds are integers >= 0")
    if tc.iters > tc.cosine_iters:
        warnings.warn(
            f"iters={tc.iters} is beyond the cosine horizon cosine_iters={tc.cosine_iters}: "
            f"steps {tc.cosine_iters + 1}..{tc.iters} train at learning rate 0",
            stacklevel=2,
        )
    rank, world, device = _distributed(device)
    lock = None
    try:
        accum = accumulation(tc, world)
        meta = run_meta(
            model_cfg, tc, manifest, data_root, seed, profile, tasks, repeats, daclip_checkpoint
        )
        lock = lock_run_folder(out, lock_timeout) if rank == 0 else None
        use_amp = tc.amp and device.type == "cuda"  # bf16 autocast on GPU only
        meta.update(
            world_size=world,
            device=str(device),
            global_batch=tc.global_batch,
            accumulation=accum,
            micro_batch=tc.batch_size,
            precision="bf16 autocast" if use_amp else "fp32",
        )
        final, last = out / "final.pt", out / "last.pt"
        ckpt_path, ckpt = resume_point(out) if resume else (None, None)
        if ckpt is not None:
            check_same_run(ckpt["meta"], meta, ckpt_path)
            if ckpt_path == final and ckpt["step"] > tc.iters:  # steps cannot be taken back
                raise ValueError(
                    f"{out} holds a finished run of {ckpt['step']} steps, more than the "
                    f"{tc.iters} asked; train into another folder, or start afresh there "
                    "(--no-resume, resume=False)"
                )
            if ckpt_path == final and ckpt["step"] == tc.iters:
                if rank == 0:
                    heal_meta(out, ckpt)
                return final

        torch.manual_seed(seed)  # same initial weights on every rank
        model = build_model(model_cfg, daclip_checkpoint).to(device)
        params = [p for p in model.parameters() if p.requires_grad]
        opt = make_optimizer(params, tc, device)
        sched = LambdaLR(opt, WarmupCosine(tc.warmup_iters, tc.cosine_iters))
        start = 0
        if ckpt is not None:
            model.load_state_dict(ckpt["model"], strict=False)
            opt.load_state_dict(ckpt["optimizer"])
            sched.load_state_dict(ckpt["scheduler"])
            set_rng_state(ckpt["rng"])
            start = ckpt["step"]
        net = model
        if world > 1:
            ids = [device.index] if device.type == "cuda" else None
            # Sparse dispatch leaves unselected experts out of the graph; some rivals have
            # parameters without gradient too (RivalConfig.unused_parameters).
            unused = getattr(model_cfg, "dispatch", "") == "sparse" or getattr(
                model_cfg, "unused_parameters", False
            )
            net = DDP(model, device_ids=ids, find_unused_parameters=unused)

        data = make_train_dataset(manifest, data_root, tc.patch, tasks, repeats, cache_images)
        sampler = StreamSampler(len(data), seed, rank, world, tc.batch_size, accum, start, tc.iters)
        pin = device.type == "cuda"
        loader = DataLoader(
            data, tc.batch_size, sampler=sampler, num_workers=tc.num_workers, pin_memory=pin
        )
        batches = iter(loader)
        amp = torch.autocast("cuda", dtype=torch.bfloat16) if use_amp else contextlib.nullcontext()
        loss_kw = {k: getattr(tc, k) for k in ("lambda1", "lambda2", "charbonnier")}
        loss_kw.update(use_balance=tc.use_balance, use_fft=tc.use_fft)

        def save(path, step):
            sums = [param_checksum(model)] * world
            if world > 1:
                dist.all_gather_object(sums, sums[0])
                if len(set(sums)) != 1:
                    raise RuntimeError(f"DDP ranks disagree at step {step}: checksums {sums}")
            if rank == 0:
                save_checkpoint(path, model, opt, sched, step, {**meta, "rank_checksums": sums})
            if world > 1:
                dist.barrier()

        if rank == 0:
            out.mkdir(parents=True, exist_ok=True)
            if progress:
                print(
                    f"train {profile}: {tc.iters} optimizer steps of global batch "
                    f"{tc.global_batch} = {world} process(es) × {tc.batch_size} × accumulation "
                    f"{accum}; {len(data)} samples per epoch; warm-up {tc.warmup_iters}, "
                    f"cosine horizon {tc.cosine_iters}; {meta['precision']}",
                    flush=True,
                )
        log = CSVLog(out / "log.csv", start) if rank == 0 else None
        show = progress and rank == 0
        bar = tqdm(range(start, tc.iters), initial=start, total=tc.iters, disable=not show)
        bar.set_description(f"train {profile}")
        net.train()
        t0 = reported = time.perf_counter()
        stepped, per_step = 0, set()  # samples the optimizer steps were taken on (all ranks)
        for it in bar:
            seen = 0
            for micro in range(accum):
                batch = next(batches)
                x = batch["degraded"].to(device, non_blocking=True)  # (B, 3, p, p)
                y = batch["clean"].to(device, non_blocking=True)
                seen += x.shape[0]
                last_micro = micro == accum - 1
                sync = contextlib.nullcontext() if world == 1 or last_micro else net.no_sync()
                with sync:
                    with amp:
                        pred, routings = net(x, return_routing=True)
                    loss, terms = total_loss(pred.float(), y, routings, **loss_kw)  # eq. (11)
                    if not _all_ranks(bool(torch.isfinite(loss)), world, device):
                        good = last if last.is_file() else "none (no checkpoint written yet)"
                        raise FloatingPointError(
                            f"non-finite loss ({loss.item()}) at iteration {it + 1} of "
                            f"{tc.iters}; run stopped, last good checkpoint: {good}"
                        )
                    (loss / accum).backward()
            lr = opt.param_groups[0]["lr"]
            opt.step()
            opt.zero_grad(set_to_none=True)
            sched.step()
            # Statistics of the last micro-batch, averaged over ranks in one all-reduce.
            stats = torch.tensor([loss.item(), *terms.values()], dtype=torch.float64)
            stats = torch.cat([stats, expert_counts(routings).double().cpu()])
            stats = torch.cat([stats, torch.tensor([float(seen)], dtype=torch.float64)])
            if world > 1:
                stats = stats.to(device)
                dist.all_reduce(stats)
                stats = stats.cpu()
                stats[: 1 + len(terms)] /= world
            n_seen, stats = int(stats[-1]), stats[:-1]  # this step's samples, all ranks
            stepped += n_seen
            per_step.add(n_seen)
            if rank == 0:
                row = log.step_row(
                    it + 1, lr, stats, list(terms), len(routings), time.perf_counter() - t0
                )
                if (it + 1) % tc.log_every == 0 or it + 1 == tc.iters:
                    bar.set_postfix(loss=f"{row['loss']:.4f}", lr=f"{lr:.2e}")
                reported = _report(label or profile, it + 1, start, tc.iters, row, report_every,
                                   reported)  # fmt: skip
            if (it + 1) % tc.ckpt_every == 0 and it + 1 < tc.iters:
                save(last, it + 1)
        bar.close()
        save(final, tc.iters)
        if rank == 0:
            log.close()
            last.unlink(missing_ok=True)
            (out / "prev.pt").unlink(missing_ok=True)
            summary = {
                **meta,
                "steps": tc.iters,
                "resumed_from": start,
                # counted in the loop, not derived from the config (tests/test_rehearsal.py)
                "samples_stepped": stepped,
                "samples_per_step": sorted(per_step),
                "wall_s_this_session": time.perf_counter() - t0,
                "threads": torch.get_num_threads(),
            }
            if device.type == "cuda":  # this rank's peak (benchmarks/reproduction_cost.py)
                summary["gpu_peak_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
            atomic_write_text(json.dumps(summary, indent=2, sort_keys=True), out / "meta.json")
        return final
    finally:
        if lock is not None:
            release_run_folder(lock, out)
        if world > 1 and dist.is_initialized():
            dist.destroy_process_group()
