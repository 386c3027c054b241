"""Checkpoints, provenance and the per-step log of a training run (§IV-A).

A run folder is owned by one process at a time (`lock_run_folder`: a ``filelock`` lock plus
an ``.owner`` note naming the pid, host and command), so two trainings never write into one
folder together. A checkpoint is one ``torch.save`` dict written atomically (tmp file, then
``os.replace``; the previous ``last.pt`` is kept as ``prev.pt``, so a damaged ``last.pt``
falls back to it on resume):
``model`` (trainable weights and buffers; a frozen DA-CLIP is reloaded from its own file),
``optimizer``, ``scheduler``, ``rng``, ``step`` (optimizer steps done) and ``meta`` (configs,
seed, profile, data manifest and its sha256, git commit, world size, library versions).

``log.csv`` has one row per optimizer step: lr, every loss term, and each ADEC's expert
selection shares (the load balance of eq. (9)).
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import hashlib
import json
import os
import pickle
import random
import socket
import sys
import time
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from filelock import FileLock, Timeout

from m2ir_lib.core.config import M2IRConfig
from m2ir_lib.core.networks import build_model
from m2ir_lib.core.rivals import RivalConfig
from m2ir_lib.data.files import atomic_path, atomic_write_text, git_commit

# Fields that do not change the weights of the steps already taken: a run may be extended.
FREE_TRAIN_FIELDS = ("iters", "ckpt_every", "log_every", "num_workers")


# ---------------------------------------------------------------------------------------------
# Provenance
# ---------------------------------------------------------------------------------------------


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a file's bytes (the data manifest's identity in checkpoints and cache keys)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def config_to_dict(cfg) -> dict:
    """A frozen config dataclass as a JSON-able dict (tuples become lists). A field named in
    the class's `KEY_NEUTRAL` is left out while it holds its default, so adding a field does
    not change the key of any run cached before (`M2IRConfig.msa_reading`)."""
    d = json.loads(json.dumps(dataclasses.asdict(cfg)))
    defaults = {f.name: f.default for f in dataclasses.fields(cfg)}
    for name in getattr(cfg, "KEY_NEUTRAL", ()):
        if d.get(name) == defaults[name]:
            d.pop(name)
    return d


def config_from_dict(cls, d: dict):
    """Inverse of ``config_to_dict``: lists back to tuples where the field's default is a tuple."""
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(d) - set(names)
    if unknown:
        raise ValueError(f"{cls.__name__} has no fields {sorted(unknown)}")
    kw = {}
    for k, v in d.items():
        default = names[k].default
        kw[k] = tuple(v) if isinstance(v, list) and isinstance(default, tuple) else v
    return cls(**kw)


def model_config_from_dict(d: dict):
    """The network config of a run's metadata: M2IRConfig, or RivalConfig (it has `arch`)."""
    if "arch" in d:
        return config_from_dict(RivalConfig, d)
    return config_from_dict(M2IRConfig, d)


# ---------------------------------------------------------------------------------------------
# RNG state and atomic checkpoints
# ---------------------------------------------------------------------------------------------


def rng_state() -> dict:
    """Python, NumPy, torch (and CUDA) generator states, in types ``weights_only`` loads."""
    np_state = np.random.get_state()
    state = {
        "python": random.getstate(),
        "torch": torch.get_rng_state(),
        "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore what ``rng_state`` saved."""
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), *rest))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def atomic_torch_save(obj, path: str | os.PathLike) -> Path:
    """``torch.save`` through `atomic_path`: never a torn checkpoint, no temporary file left
    behind when saving fails (e.g. a full disk)."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
    return Path(path)


def trainable_state_dict(model: torch.nn.Module) -> dict:
    """State dict without frozen parameters (a frozen DA-CLIP is ~150M weights of its own file)."""
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    return {k: v for k, v in model.state_dict().items() if k not in frozen}


CHECKPOINT_KEYS = ("model", "step", "meta")


def read_checkpoint(path: str | os.PathLike) -> dict:
    """The raw checkpoint dict (tensors on CPU).

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not a checkpoint written by ``m2ir_lib.train`` (a text file,
            a damaged one, a bare state dict or another project's file); the message names it.
    """
    if not Path(path).is_file():
        raise FileNotFoundError(f"checkpoint {path} not found")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 (a foreign file fails in many ways: KeyError '101')
        first = (str(err).splitlines() or [""])[0][:200]
        raise ValueError(
            f"cannot load checkpoint {path} ({type(err).__name__}: {first}): it is damaged "
            "or not a torch.save file. Give the final.pt or last.pt of a training "
            "run; a damaged cached run is retrained after deleting its folder."
        ) from None
    missing = [k for k in CHECKPOINT_KEYS if not isinstance(ckpt, dict) or k not in ckpt]
    if missing:
        bare = isinstance(ckpt, dict) and all(isinstance(v, torch.Tensor) for v in ckpt.values())
        raise ValueError(
            f"{path} is not a checkpoint of m2ir_lib.train (no {', '.join(missing)}"
            + ("; it looks like a bare state dict" if bare and ckpt else "")
            + "): give the final.pt or last.pt of a training run, which also records the "
            "network configuration"
        )
    return ckpt


def load_checkpoint(
    path: str | os.PathLike,
    daclip_checkpoint: str | None = None,
    device: str | torch.device = "cpu",
) -> tuple[torch.nn.Module, dict]:
    """Rebuild the trained network of a checkpoint, in eval mode.

    Args:
        path: ``final.pt`` or ``last.pt`` written by ``train``.
        daclip_checkpoint: DA-CLIP file for prior='daclip' (default: the path used in training).
        device: where to put the model.

    Returns:
        ``(model, meta)`` with meta the provenance dict stored in the checkpoint.
    """
    ckpt = read_checkpoint(path)
    meta = ckpt["meta"]
    try:
        cfg = model_config_from_dict(meta["model_cfg"])
    except (ValueError, TypeError) as err:  # fields this version of the code does not know
        raise ValueError(
            f"{path} was written by another version of the code (commit "
            f"{meta.get('commit', 'unknown')}): {err}. Load it with that commit's code."
        ) from None
    bad = [k for k, v in ckpt["model"].items() if v.is_floating_point() and not v.isfinite().all()]
    if bad:
        raise ValueError(
            f"{path} holds non-finite weights (NaN or inf) in {len(bad)} tensor(s), e.g. "
            f"{bad[:3]}: its training diverged or the file was altered; it restores nothing"
        )
    model = build_model(cfg, daclip_checkpoint or meta.get("daclip_checkpoint"))
    missing, unexpected = model.load_state_dict(ckpt["model"], strict=False)
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    if unexpected or set(missing) - frozen:
        raise RuntimeError(
            f"checkpoint {path} does not fit {type(model).__name__}({cfg}): missing "
            f"{sorted(set(missing) - frozen)[:5]}, unexpected {unexpected[:5]}"
        )
    return model.to(device).eval(), {**meta, "step": ckpt["step"]}


def save_checkpoint(path, model, optimizer, scheduler, step: int, meta: dict) -> Path:
    """Write the full training state atomically (see the module docstring for the keys).

    An existing ``last.pt`` is first kept as ``prev.pt``: the fallback of `resume_point`.
    """
    path = Path(path)
    if path.name == "last.pt" and path.is_file():
        os.replace(path, path.with_name("prev.pt"))
    state = {
        "model": trainable_state_dict(model),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "rng": rng_state(),
        "step": step,
        "meta": meta,
    }
    return atomic_torch_save(state, path)


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be resumed from; the message names it and how to start afresh."""


# What a torn or truncated torch.save file raises on load.
_UNREADABLE = (
    RuntimeError,
    EOFError,
    OSError,
    ValueError,
    pickle.UnpicklingError,
    zipfile.BadZipFile,
)


def resume_point(out: str | os.PathLike) -> tuple[Path | None, dict | None]:
    """The newest readable checkpoint of a run folder: ``final.pt``, ``last.pt``, ``prev.pt``.

    A damaged file (a kill while writing, a full disk) is skipped with a warning naming it,
    when an older one can be read.

    Returns:
        ``(path, checkpoint)``, or ``(None, None)`` when the folder holds none.

    Raises:
        CheckpointError: checkpoints exist but none can be read; names the file and the way
            to start afresh (``--no-resume``, ``resume=False``).
    """
    out = Path(out)
    bad = []
    for name in ("final.pt", "last.pt", "prev.pt"):
        path = out / name
        if not path.is_file():
            continue
        try:
            ckpt = read_checkpoint(path)
        except _UNREADABLE as err:
            first = (str(err).splitlines() or [""])[0]
            bad.append((path, f"{type(err).__name__}: {first}"))
            continue
        if bad:
            for p, _ in bad:  # out of the rotation, kept for a look
                with contextlib.suppress(OSError):
                    os.replace(p, p.with_name(p.name + ".damaged"))
            warnings.warn(
                "; ".join(f"{p} is unreadable ({e}), renamed *.damaged" for p, e in bad)
                + f"; resuming from {path} (step {ckpt['step']})",
                stacklevel=2,
            )
        return path, ckpt
    if bad:
        raise CheckpointError(
            "; ".join(f"{p} is unreadable ({e})" for p, e in bad)
            + " and no earlier checkpoint can be read. To start this run afresh, pass "
            "--no-resume (python -m m2ir_lib.train) or resume=False, or delete the file."
        )
    return None, None


def heal_meta(out: str | os.PathLike, ckpt: dict) -> None:
    """Rewrite a finished run's missing ``meta.json`` from its ``final.pt`` (a run killed
    between the two writes would otherwise never be usable from the cache)."""
    path = Path(out) / "meta.json"
    if path.is_file():
        return
    summary = {**ckpt["meta"], "steps": ckpt["step"], "meta_rewritten_from": "final.pt"}
    atomic_write_text(json.dumps(summary, indent=2, sort_keys=True), path)


# ---------------------------------------------------------------------------------------------
# Run-folder ownership
# ---------------------------------------------------------------------------------------------

OWNER_FILE = ".owner.json"


class RunFolderBusy(RuntimeError):
    """Another process owns the run folder; the message names it (pid, host, command)."""


def run_folder_owner(out: str | os.PathLike) -> str:
    """Who holds ``out`` (from its ``.owner.json``), in words."""
    try:
        o = json.loads((Path(out) / OWNER_FILE).read_text())
        return f"pid {o['pid']} on {o['host']} since {o['since']} ({o['command']})"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process (no owner note yet)"


def lock_run_folder(out: str | os.PathLike, timeout: float = -1) -> FileLock:
    """Own the run folder ``out`` (created): one training process at a time writes into it.

    Args:
        out: run folder.
        timeout: seconds to wait for another owner to finish; -1 waits as long as it takes
            (saying once whom it waits for), 0 stops at once.

    Returns:
        The held lock; give it back with `release_run_folder`.

    Raises:
        RunFolderBusy: still owned by another process after ``timeout``; names the owner.
        ValueError: ``out`` is an existing file.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"run folder {out} is an existing file; give a folder")
    out.mkdir(parents=True, exist_ok=True)
    lock = FileLock(out / ".lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        owner = run_folder_owner(out)
        busy = f"run folder {out} is in use by {owner}"
        if timeout == 0:
            raise RunFolderBusy(
                f"{busy}. Wait for it to finish (--wait), or train into another folder."
            ) from None
        print(f"{busy}; waiting for it to finish", file=sys.stderr, flush=True)
        try:
            lock.acquire(timeout=timeout)
        except Timeout:
            raise RunFolderBusy(f"{busy}; gave up after {timeout} s") from None
    note = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "since": time.strftime("%Y-%m-%d %H:%M:%S"),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])[:300],
    }
    atomic_write_text(json.dumps(note), out / OWNER_FILE)
    return lock


def release_run_folder(lock: FileLock, out: str | os.PathLike) -> None:
    """Give back a folder taken with `lock_run_folder`."""
    (Path(out) / OWNER_FILE).unlink(missing_ok=True)
    lock.release()


def param_checksum(model: torch.nn.Module) -> float:
    """Sum of all weights in float64: equal on every DDP rank when the ranks agree."""
    return float(sum(p.detach().double().sum().item() for p in model.parameters()))


def run_meta(
    model_cfg, train_cfg, manifest, data_root, seed, profile, tasks, repeats, daclip_checkpoint
) -> dict:
    """Provenance of a run: configs, seed, profile, data manifest and its hash, git commit."""
    return {
        "model_cfg": config_to_dict(model_cfg),
        "train_cfg": config_to_dict(train_cfg),
        "seed": seed,
        "profile": profile,
        "manifest": str(manifest),
        "manifest_sha256": file_sha256(manifest),
        "data_root": str(data_root),
        "tasks": sorted(tasks) if tasks else None,
        "repeats": dict(sorted(repeats.items())) if repeats else None,
        "daclip_checkpoint": str(daclip_checkpoint) if daclip_checkpoint else None,
        "commit": git_commit(),
        "torch": str(torch.__version__),
    }


def check_same_run(saved: dict, meta: dict, path) -> None:
    """Refuse to resume a checkpoint of a different run (other config, seed or data)."""
    for k in ("model_cfg", "seed", "manifest_sha256", "tasks", "repeats"):
        if saved.get(k) != meta.get(k):
            raise ValueError(
                f"{path} belongs to another run ({k}: {saved.get(k)} != "
                f"{meta.get(k)}); use another out_dir or resume=False"
            )
    a, b = (
        {k: v for k, v in m["train_cfg"].items() if k not in FREE_TRAIN_FIELDS}
        for m in (saved, meta)
    )
    if a != b:
        raise ValueError(f"{path} was trained with another TrainConfig: {a} != {b}")


# ---------------------------------------------------------------------------------------------
# Training log
# ---------------------------------------------------------------------------------------------


def expert_counts(routings) -> torch.Tensor:
    """Per ADEC, how often each specialised expert was selected (top-K), flattened (A·N,)."""
    if not routings:
        return torch.zeros(0)
    return torch.cat([r.selected.detach().float().sum(dim=(0, 2, 3)) for r in routings])


def read_log(path: str | os.PathLike):
    """A run's ``log.csv`` as a numeric DataFrame, one row per step.

    Rows that are not whole step rows are dropped: a second header or interleaved rows left by
    two writers (before run folders were locked) and a line torn by a kill; for a step logged
    twice the later row is kept.
    """
    df = pd.read_csv(path, dtype=str, keep_default_na=False, on_bad_lines="skip")
    whole = df["step"].str.fullmatch(r"\d+") & df.notna().all(axis=1) & (df != "").all(axis=1)
    df = df[whole].apply(pd.to_numeric)
    return df.drop_duplicates("step", keep="last").sort_values("step").reset_index(drop=True)


class CSVLog:
    """Append-only per-step CSV; on resume, rows beyond the checkpoint are dropped."""

    def __init__(self, path: Path, start_step: int):
        self.path, self.header, self._fh = path, None, None
        if path.is_file() and path.stat().st_size:
            with path.open(newline="") as fh:
                rows = list(csv.reader(fh))
            self.header = rows[0]
            # Only whole step rows survive: a line torn by a kill, or a second header written
            # by a concurrent writer before run folders were locked, is dropped here.
            keep = [
                r
                for r in rows[1:]
                if len(r) == len(self.header) and r[0].isdigit() and int(r[0]) <= start_step
            ]
            with path.open("w", newline="") as fh:
                csv.writer(fh).writerows([self.header, *keep])
        elif path.is_file():
            path.unlink()

    def write(self, row: dict):
        if self._fh is None:
            new = self.header is None
            self._fh = self.path.open("a", newline="")
            if new:
                self.header = list(row)
                csv.writer(self._fh).writerow(self.header)
        if list(row) != self.header:
            raise ValueError(f"log columns changed: {list(row)} vs {self.header}")
        csv.writer(self._fh).writerow(
            [f"{v:.6g}" if isinstance(v, float) else v for v in row.values()]
        )
        self._fh.flush()

    def step_row(self, step, lr, stats, names, n_adec, time_s) -> dict:
        """Log one step from the reduced ``stats`` = [loss, *terms, *expert counts]."""
        row = {"step": step, "lr": lr, "loss": stats[0].item()}
        row.update({f"loss_{k}": stats[1 + i].item() for i, k in enumerate(names)})
        if n_adec:
            counts = stats[1 + len(names) :].view(n_adec, -1)  # (ADECs, N)
            shares = counts / counts.sum(dim=1, keepdim=True).clamp_min(1)
            for a, share in enumerate(shares):
                row.update({f"adec{a}_e{e}": v.item() for e, v in enumerate(share)})
        row["time_s"] = time_s
        self.write(row)
        return row

    def close(self):
        if self._fh:
            self._fh.close()
