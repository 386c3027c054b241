"""The runs of §IV as functions the notebooks call: plan a run, derive its schedule, train.

A notebook reads like the paper's experiment and holds no model or metric code:

    data = settings.locate("3d", profile, data_root)           # real data or the stand-in
    runs = [experiments.plan("M²IR (ours)", profile, data)]    # network + schedule + data
    ckpts = experiments.train_runs(runs, profile)              # cached by config + data hash

A run whose data is unavailable is planned but never trained; the tables turn it into a
status row, so every notebook completes. Without DA-CLIP weights a run uses the paper's
learnable-MLP prior and its `note` says so.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch

from m2ir_lib.core.config import (
    BASELINE,
    DACLIP_EMBED_DIM,
    MODEL_PRESETS,
    Epochs,
    M2IRConfig,
    Profile,
    TrainConfig,
    check_profile,
)
from m2ir_lib.core.networks import build_model
from m2ir_lib.core.rivals import RIVAL_LABELS, rival_config
from m2ir_lib.data.datasets import read_manifest
from m2ir_lib.engine.runs import run_key, runs_root, train_many
from m2ir_lib.engine.train import accumulation
from m2ir_lib.workbook import results
from m2ir_lib.workbook.settings import SETTINGS, Data, user_path

DACLIP_NOTE = "DA-CLIP weights unavailable: learnable-MLP prior (paper's Table VII fallback)"
DACLIP_UNUSED = "learnable-MLP prior: this profile's network takes no DA-CLIP (file not read)"
IDENTITY = results.FLOOR  # the degraded input scored as a restoration


def restormer_baseline(profile: Profile) -> dict:
    """Network overrides of the Restormer-style opponent of Tables I–VI: the all-off switches
    plus the profile's sizing (`Profile.baseline`), so that its parameter count is the paper's
    0.67 of M²IR's at every profile (the paper profile's all-off network is Restormer)."""
    check_profile(profile)
    return {**BASELINE, **profile.baseline}


# ---------------------------------------------------------------------------- runs


@dataclass(frozen=True)
class Run:
    """One training run: a labelled (network, training, data) triple and its provenance note."""

    label: str
    model: M2IRConfig
    train: TrainConfig
    data: Data
    seed: int = 0
    daclip_checkpoint: str = ""
    note: str = ""
    tasks: tuple[str, ...] | None = field(default=None)
    repeats: dict[str, int] | None = field(default=None)  # per-task epoch repeats (AdaIR)
    schedule: Schedule | None = field(default=None)  # how `train` was derived (None: no data)


# ---------------------------------------------------------------------------- schedule


@dataclass(frozen=True)
class Schedule:
    """How a run's iterations follow from its budget, its data and the global batch (§IV-A).

    `rows` are the training pairs per task (one row per noise level for denoising),
    `repeats` their factors, `samples_per_epoch = Σ rows × repeats`, and one epoch is
    `ceil(samples_per_epoch / global_batch)` optimizer steps.
    """

    setting: str
    budget: str  # "<n> epochs (<source>)" or "<n> iterations (profile <name>)"
    rows: dict[str, int]
    repeats: dict[str, int]
    samples_per_epoch: int
    global_batch: int
    iters_per_epoch: int
    epochs: float  # trained epochs (derived for an iteration budget)
    iters: int
    warmup_iters: int
    cosine_iters: int
    planned_iters: int  # before a rehearsal cap
    override: str = ""

    def describe(self) -> str:
        """One line printed before training."""
        mix = ", ".join(f"{t} {n}×{self.repeats.get(t, 1)}" for t, n in self.rows.items())
        capped = f" (capped from {self.planned_iters}: {self.override})" if self.override else ""
        return (
            f"schedule [{self.setting}]: {self.samples_per_epoch} samples/epoch ({mix}) / "
            f"global batch {self.global_batch} = {self.iters_per_epoch} it/epoch; "
            f"{self.epochs:g} epochs = {self.iters} iterations{capped}, warm-up "
            f"{self.warmup_iters}, cosine horizon {self.cosine_iters}; budget: {self.budget}"
        )


def budget_key(setting: str, ablation: bool = False) -> str:
    """The `Profile.epochs` key of a setting: one-by-one tasks share one, ablations another."""
    if ablation:
        return "ablation"
    return "one-by-one" if setting in ("denoise", "dehaze", "derain") else setting


def schedule(
    profile: Profile,
    setting: str,
    rows: dict[str, int],
    repeats: dict[str, int] | None,
    tcfg: TrainConfig,
    ablation: bool = False,
    cap: bool = True,
) -> tuple[TrainConfig, Schedule]:
    """`tcfg` with iterations derived from the profile's budget for `setting`.

    One code path for both kinds of budget: epochs (`Profile.epochs`, the paper profile) are
    turned into iterations through the data size, repeats and global batch; iterations
    (smoke, mini) are kept and their epochs reported.

    Args:
        profile: the run profile (its budget for the setting, its rehearsal cap).
        setting: a key of `SETTINGS`.
        rows: training rows per task (`train_rows`).
        repeats: per-task factors (None = 1 each).
        tcfg: the training config (batch, accumulation, iterations of an iteration budget).
        ablation: the ablation budget (§IV-C).
        cap: apply a rehearsal's iteration cap (`M2IR_REHEARSAL`); the cost table does not.
    """
    check_profile(profile)
    reps = {t: int((repeats or {}).get(t, 1)) for t in rows}
    samples = sum(n * reps[t] for t, n in rows.items())
    if samples <= 0:
        raise ValueError(f"setting {setting!r}: no training rows to plan a schedule from")
    per_epoch = -(-samples // tcfg.global_batch)
    ep: Epochs | None = (profile.epochs or {}).get(budget_key(setting, ablation))
    if ep is not None:
        iters, warm, horizon = (round(e * per_epoch) for e in (ep.epochs, ep.warmup, ep.horizon))
        epochs, budget = ep.epochs, f"{ep.epochs:g} epochs ({ep.source})"
    else:
        iters, warm, horizon = tcfg.iters, tcfg.warmup_iters, tcfg.cosine_iters
        epochs, budget = iters / per_epoch, f"{iters} iterations (profile {profile.name})"
    planned = iters
    if cap and profile.max_iters is not None and iters > profile.max_iters:
        # keep the schedule's shape (warm-up share) within the cap
        iters = profile.max_iters
        warm, horizon = min(warm, iters - 1), iters + 1
    tcfg = dataclasses.replace(tcfg, iters=iters, warmup_iters=warm, cosine_iters=horizon)
    info = Schedule(
        setting,
        budget,
        dict(rows),
        reps,
        samples,
        tcfg.global_batch,
        per_epoch,
        round(epochs, 4),
        iters,
        warm,
        horizon,
        planned,
        profile.override if planned != iters else "",
    )
    return tcfg, info


def train_rows(data: Data, tasks=None) -> dict[str, int]:
    """Training rows per task of a located data set (its manifest's 'train' split)."""
    df = read_manifest(data.manifest)
    df = df[df["split"] == "train"]
    if tasks:
        df = df[df["task"].isin(list(tasks))]
    return {str(t): int(n) for t, n in df.groupby("task", sort=False).size().items()}


def plan(
    label: str,
    profile: Profile,
    data: Data,
    *,
    model: dict | None = None,
    train: dict | None = None,
    ablation: bool = False,
    seed: int = 0,
    daclip_checkpoint: str = "",
    tasks=None,
) -> Run:
    """A run of the profile's network and schedule with overrides (nothing is trained yet).

    Args:
        label: the row label the run's scores get.
        profile: the run profile (network size, schedule).
        data: located data; its setting fixes the training tasks.
        model: M2IRConfig field overrides (e.g. `BASELINE`, {"num_experts": 8}).
        train: TrainConfig field overrides (e.g. {"lambda1": 0.05}).
        ablation: use the profile's ablation schedule (Tables VII–XII, §IV-C).
        seed: initialisation and data seed.
        daclip_checkpoint: DA-CLIP file; without it prior='daclip' becomes the MLP fallback.
            A relative path is found from the repository root or `notebooks/` (`user_path`).
        tasks: train on these tasks only (default: the setting's); the schedule counts them.
    """
    check_profile(profile)
    daclip_checkpoint = user_path(daclip_checkpoint, "daclip_checkpoint")
    if daclip_checkpoint and not Path(daclip_checkpoint).is_file():  # checked at every profile
        raise FileNotFoundError(f"daclip_checkpoint={daclip_checkpoint}: no such file")
    cfg = dataclasses.replace(profile.model, **(model or {}))
    tcfg = dataclasses.replace(
        profile.ablation_train if ablation else profile.train, **(train or {})
    )
    notes = []
    uses_prior = cfg.special_experts and cfg.prior != "none"
    if uses_prior and cfg.prior == "daclip" and not daclip_checkpoint:
        cfg = dataclasses.replace(cfg, prior="mlp")
    if uses_prior and cfg.prior == "daclip":  # the real prior fixes P''s width
        cfg = dataclasses.replace(cfg, prior_dim=DACLIP_EMBED_DIM)
    if uses_prior and cfg.prior == "mlp":  # a given file unused at smoke/mini is said so
        notes.append(DACLIP_UNUSED if daclip_checkpoint else DACLIP_NOTE)
    if not (uses_prior and cfg.prior == "daclip"):
        daclip_checkpoint = ""  # not part of this run's identity
    setting = SETTINGS[data.setting]
    tasks = tuple(tasks) if tasks else setting.train_tasks
    # Real data is mixed as AdaIR/MoCE-IR do (e.g. Rain100L ×120); the stand-in gets factors
    # that give its tasks the same sample shares (settings.stand_in_repeats).
    repeats = None
    sched = None
    if data.available:
        rows = train_rows(data, tasks)
        unknown = sorted(set(tasks or ()) - set(rows))
        if unknown:
            raise ValueError(
                f"tasks {unknown} have no training rows in {data.manifest} (it has "
                f"{sorted(train_rows(data))}); the schedule would count the others only"
            )
        repeats = setting.repeats_for(data.setting, rows, data.real)
        tcfg, sched = schedule(profile, data.setting, rows, repeats, tcfg, ablation)
    note = "; ".join(notes)
    return Run(label, cfg, tcfg, data, seed, daclip_checkpoint, note, tasks, repeats, sched)


def fresh_model(profile: Profile, seed: int = 0, daclip_checkpoint: str = ""):
    """The profile's network with seeded random weights (MLP prior without DA-CLIP)."""
    check_profile(profile)
    run = plan(
        "fresh", profile, Data("3d", None, None, ""), seed=seed, daclip_checkpoint=daclip_checkpoint
    )
    torch.manual_seed(seed)
    return build_model(run.model, run.daclip_checkpoint or None).eval()


def _spec(run: Run, profile: Profile) -> dict:
    return dict(
        model_cfg=run.model,
        train_cfg=run.train,
        manifest=str(run.data.manifest),
        data_root=str(run.data.root),
        profile=profile.name,
        seed=run.seed,
        tasks=list(run.tasks) if run.tasks else None,
        repeats=run.repeats,
        daclip_checkpoint=run.daclip_checkpoint or None,
        # The embedded benchmark fits in memory: decoding its PNGs again on every step cost
        # ~10-15 % of a mini step (measured, 1 thread); the numbers are the same either way.
        cache_images=not run.data.real,
        label=run.label,  # progress lines only; not part of the cache key
    )


def run_dir(run: Run, profile: Profile) -> Path:
    """The cache folder of a run (`runs/<profile>/<key>/`), trained or not."""
    check_profile(profile)
    key = run_key(
        run.model,
        run.train,
        run.data.manifest,
        seed=run.seed,
        tasks=list(run.tasks) if run.tasks else None,
        repeats=run.repeats,
        daclip_checkpoint=run.daclip_checkpoint or None,
    )
    return runs_root() / profile.name / key


def train_runs(
    runs: list[Run], profile: Profile, jobs: int = 0, launcher: str = "auto"
) -> dict[str, Path]:
    """Train (or fetch from the cache) every run whose data is available.

    Args:
        runs: from `plan`; identical configurations train once.
        profile: the run profile (its name is the cache folder).
        jobs: parallel worker processes; 0 = on CPU as many as cores when runs are long
            enough to repay starting a process (≥ 100 iterations), else (and on a GPU) 1.
        launcher: "auto" trains under torchrun (DDP, one process per GPU) when several GPUs
            are visible, else in processes here; "local" never uses torchrun; "torchrun"
            always does (one process per GPU, two CPU processes with gloo when there is no
            GPU). The global batch is the same either way (`m2ir_lib.engine.train.accumulation`).

    Returns:
        {run label: final checkpoint path}; runs with missing data are left out.
    """
    check_profile(profile)
    todo = [r for r in runs if r.data.available]
    if not todo:
        return {}

    if launcher not in ("auto", "local", "torchrun"):
        raise ValueError(f"launcher={launcher!r}; expected auto, local or torchrun")
    for r in todo:
        if r.schedule is not None and not (run_dir(r, profile) / "final.pt").is_file():
            print(f"{r.label}: {r.schedule.describe()}", flush=True)
    gpus = torch.cuda.device_count()
    if launcher == "torchrun" or (launcher == "auto" and gpus > 1):
        procs = torchrun_procs(gpus)
        for r in todo:  # before any run starts: the message says which command works
            accumulation(r.train, procs)
        return {r.label: _torchrun(r, profile, procs) for r in todo}
    fresh = {run_dir(r, profile) for r in todo if not (run_dir(r, profile) / "final.pt").is_file()}
    cores = os.cpu_count() or 1
    if jobs <= 0:  # one GPU: runs queue on it; CPU: one process per core for long runs
        long_runs = all(r.train.iters >= 100 for r in todo)
        parallel = long_runs and len(fresh) > 1 and gpus == 0
        jobs = min(cores, len(fresh)) if parallel else 1
    threads = max(1, cores // jobs) if jobs > 1 else torch.get_num_threads()
    paths = train_many([_spec(r, profile) for r in todo], jobs=jobs, threads=threads)
    return {r.label: p for r, p in zip(todo, paths, strict=True)}


def torchrun_procs(gpus: int) -> int:
    """Processes torchrun starts: one per GPU (one GPU: one), two gloo processes on CPU."""
    return gpus if gpus > 0 else 2


def _torchrun(run: Run, profile: Profile, procs: int) -> Path:
    """Train one run with DDP in `procs` processes (`torchrun -m m2ir_lib.engine.runs`)."""
    final = run_dir(run, profile) / "final.pt"
    if final.is_file():
        return final
    spec = _spec(run, profile)
    spec.update(model_cfg=dataclasses.asdict(run.model), train_cfg=dataclasses.asdict(run.train))
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
        json.dump(spec, fh)
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={procs}",
        "-m",
        "m2ir_lib.engine.runs",
        fh.name,
    ]
    subprocess.run(cmd, check=True, cwd=results.repo_root())
    os.remove(fh.name)
    return final


# ------------------------------------------------------------------ training runs beside M²IR
TRAINING_NOTE = "trained here with M²IR's profile, schedule, loss and seed"


def plan_rival(
    name: str,
    profile: Profile,
    data: Data,
    *,
    label: str | None = None,
    train: dict | None = None,
    ablation: bool = False,
    seed: int = 0,
):
    """An `experiments.Run` training rival `name` exactly as M²IR's run of the same profile,
    data and seed (same schedule, batch, crops, loss, tasks, data repeats), at the profile's
    size. Train it with `experiments.train_runs` like any run; it is cached under its own key.

    Args:
        name: 'restormer', 'promptir' or 'adair'.
        profile: the run profile (its network preset sizes the rival).
        data: located data (`settings.locate`).
        label: the row label (default the paper's method name, e.g. "AdaIR").
        train: TrainConfig overrides, e.g. {"charbonnier": False, "use_fft": False} for the
            authors' plain L1 (default: M²IR's loss, one recipe for all).
        ablation, seed: as `experiments.plan`.
    """
    check_profile(profile)
    preset = next((k for k, v in MODEL_PRESETS.items() if v == profile.model), None)
    if preset is None:
        raise ValueError(f"profile {profile.name!r} uses no MODEL_PRESETS network: no rival size")
    label = label or RIVAL_LABELS.get(name, name)
    # trained from scratch: the authors' never-called layers would only be dead weight
    cfg = dataclasses.replace(rival_config(name, preset), unused_layers=False)
    base = plan(label, profile, data, train=train, ablation=ablation, seed=seed)
    return dataclasses.replace(base, model=cfg, daclip_checkpoint="", note=TRAINING_NOTE)
