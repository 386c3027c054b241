"""Run cache: each distinct training run of the workbook happens once per profile (§IV).

A run is keyed by a stable hash of everything that decides its weights (network and training
configs, manifest content, the synthetic build's stamp, seed, tasks, repeats, DA-CLIP file) and
kept under ``runs/<profile>/<key>/`` as ``final.pt``, ``log.csv`` and ``meta.json``
(``m2ir_lib.engine.checkpoint``). The ~30 training runs behind Tables I–XII therefore train once,
a partial run resumes, and ``train_many`` runs independent ones side by side. Two processes
that need the same run (a notebook open in JupyterLab while ``make reproduce`` runs) take
turns: the run folder is locked, the second waits and then reuses the first one's result.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import torch

from m2ir_lib.core.config import M2IRConfig, TrainConfig
from m2ir_lib.data.datasets import BUILD_STAMP
from m2ir_lib.data.files import REPO_ROOT
from m2ir_lib.engine.checkpoint import (
    FREE_TRAIN_FIELDS,
    config_from_dict,
    config_to_dict,
    file_sha256,
    load_checkpoint,
    model_config_from_dict,
    read_checkpoint,
)
from m2ir_lib.engine.train import train

__all__ = [
    "cached_train",
    "load_checkpoint",
    "read_checkpoint",
    "run_key",
    "runs_root",
    "train_many",
]
# Bump when a code change makes cached runs stale (e.g. a different network for the same config).
CACHE_VERSION = 2  # 2: fused AdamW


# ---------------------------------------------------------------------------------------------
# Run cache
# ---------------------------------------------------------------------------------------------


def runs_root() -> Path:
    """Where cached runs live: ``$M2IR_RUNS`` or ``<repo>/runs`` (git-ignored)."""
    return Path(os.environ.get("M2IR_RUNS", REPO_ROOT / "runs"))


def run_key(
    model_cfg: M2IRConfig,
    train_cfg: TrainConfig,
    manifest: str | os.PathLike,
    *,
    seed: int = 0,
    tasks=None,
    repeats=None,
    daclip_checkpoint=None,
) -> str:
    """16-hex stable hash of everything that decides a run's weights.

    Logging/checkpoint cadence and worker count do not change the weights, so they are left out.
    """
    train = config_to_dict(train_cfg)
    for k in FREE_TRAIN_FIELDS[1:]:
        train.pop(k)
    spec = {
        "v": CACHE_VERSION,
        "model": config_to_dict(model_cfg),
        "train": train,
        "manifest": file_sha256(manifest),
        "seed": seed,
        "tasks": sorted(tasks) if tasks else None,
        "repeats": dict(sorted(repeats.items())) if repeats else None,
        "daclip": file_sha256(daclip_checkpoint) if daclip_checkpoint else None,
    }
    stamp = Path(manifest).resolve().parent.parent / BUILD_STAMP
    if stamp.is_file():  # real data sets have none and keep their keys
        spec["build"] = file_sha256(stamp)
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def cached_train(
    model_cfg: M2IRConfig,
    train_cfg: TrainConfig,
    manifest,
    data_root=None,
    *,
    profile: str = "mini",
    seed: int = 0,
    tasks=None,
    repeats=None,
    daclip_checkpoint=None,
    root=None,
    **train_kw,
) -> Path:
    """``train`` once per distinct run: returns ``runs/<profile>/<key>/final.pt``.

    A complete run is returned as is, a partial one (``last.pt``) resumes, anything else trains.

    Args:
        model_cfg, train_cfg, manifest, data_root: as for ``m2ir_lib.engine.train.train``.
        profile: the profile name (also the cache sub-folder).
        seed, tasks, repeats, daclip_checkpoint: part of the key; passed to ``train``.
        root: cache root (default ``runs_root()``).
        **train_kw: other ``train`` keywords (device, progress, ...), not part of the key.
    """
    key = run_key(
        model_cfg,
        train_cfg,
        manifest,
        seed=seed,
        tasks=tasks,
        repeats=repeats,
        daclip_checkpoint=daclip_checkpoint,
    )
    out = Path(root or runs_root()) / profile / key
    final = out / "final.pt"
    if final.is_file() and (out / "meta.json").is_file():
        return final
    return train(
        model_cfg,
        train_cfg,
        manifest,
        data_root,
        out,
        seed=seed,
        profile=profile,
        resume=True,
        daclip_checkpoint=daclip_checkpoint,
        tasks=tasks,
        repeats=repeats,
        **train_kw,
    )


def _train_one(spec: dict, threads: int) -> str:
    torch.set_num_threads(threads)
    # No bar in a worker: bars of parallel workers overwrite each other; a line every 30 s.
    return str(cached_train(**{"progress": False, "report_every": 30.0, **spec}))


def train_many(specs: list[dict], jobs: int = 2, threads: int = 1) -> list[Path]:
    """Run independent ``cached_train`` calls as ``jobs`` processes of ``threads`` threads each.

    Identical specs (same cache key) run once. ``jobs=1`` runs in this process.

    Args:
        specs: keyword dicts for ``cached_train``.
        jobs: worker processes.
        threads: torch threads per worker.
    """
    if jobs <= 1:
        return [Path(_train_one(s, threads)) for s in specs]

    keys = [
        run_key(
            s["model_cfg"],
            s["train_cfg"],
            s["manifest"],
            seed=s.get("seed", 0),
            tasks=s.get("tasks"),
            repeats=s.get("repeats"),
            daclip_checkpoint=s.get("daclip_checkpoint"),
        )
        for s in specs
    ]
    first: dict[str, dict] = {}  # submitted in the callers' order (e.g. longest run first)
    for k, s in zip(keys, specs, strict=True):
        first.setdefault(k, s)
    with ProcessPoolExecutor(jobs, mp_context=get_context("spawn")) as pool:
        done = {k: pool.submit(_train_one, s, threads) for k, s in first.items()}
        return [Path(done[k].result()) for k in keys]


def main(argv: list[str] | None = None) -> None:
    """`torchrun -m m2ir_lib.engine.runs SPEC.json`: one cached run under DDP, the child of
    `experiments.train_runs(launcher="torchrun")`. SPEC holds `cached_train`'s arguments with
    the two configs as dicts."""
    spec = json.loads(Path((argv or sys.argv[1:])[0]).read_text())
    spec["model_cfg"] = model_config_from_dict(spec["model_cfg"])  # M²IR or a rival
    spec["train_cfg"] = config_from_dict(TrainConfig, spec["train_cfg"])
    cached_train(**spec)


if __name__ == "__main__":
    main()
