"""The experiments of §IV as functions the notebooks call: data sets, runs, training.

A notebook reads like the paper's experiment and holds no model or metric code:

    data = experiments.locate("3d", profile, data_root)        # real data or the stand-in
    runs = [experiments.plan("M²IR (ours)", profile, data)]    # network + schedule + data
    ckpts = experiments.train_runs(runs, profile)              # cached by config + data hash

Data that is not configured never raises here: `Data.reason` says what is missing, and the
tables (`m2ir_lib.tables`) turn it into a status row, so every notebook completes. A data root
that is named but does not exist is an error: it stops the notebook before anything is
written. Without DA-CLIP weights a run uses the paper's learnable-MLP prior and its `note` says
so.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from m2ir_lib import results
from m2ir_lib.config import DACLIP_EMBED_DIM, Epochs, M2IRConfig, TrainConfig, get_profile
from m2ir_lib.data import CDD11_TYPES

DACLIP_NOTE = "DA-CLIP weights unavailable: learnable-MLP prior (paper's Table VII fallback)"
IDENTITY = results.FLOOR  # the degraded input scored as a restoration
# The all-off switches: M²IR's backbone with plain Restormer blocks, Table VII's all-off row.
BASELINE = dict(block="transformer", prior="none", special_experts=False, shared_expert=False)


def restormer_baseline(profile: str) -> dict:
    """Network overrides of the Restormer-style opponent of Tables I–VI: the all-off switches
    plus the profile's sizing (`Profile.baseline`), so that its parameter count is the paper's
    0.67 of M²IR's at every profile (the paper profile's all-off network is Restormer)."""
    return {**BASELINE, **get_profile(profile).baseline}


# ---------------------------------------------------------------------------- settings & data


@dataclass(frozen=True)
class Setting:
    """One training/evaluation set-up of §IV-A: which manifest, tasks and protocol."""

    manifest: str  # manifest key (data_prep's name for the data set)
    paper_data: str  # what the paper used, for the `data` column
    train_tasks: tuple[str, ...] | None = None  # None = every task in the manifest
    eval_tasks: tuple[str, ...] | None = None
    protocol: str = "peer"  # m2ir_lib.metrics protocol
    # Per-task repetition of the real training pairs in one epoch (the peers' data balancing);
    # a task not listed counts once. The synthetic stand-in is balanced and never repeated.
    repeats: dict[str, int] | None = None


# AdaIR's factors (docs/data.md §3): each noise level of BSD400+WED ×3, Rain100L ×120, OTS ×1,
# GoPro ×5, LOL ×20; MoCE-IR repeats every CDD11 type ×2. WeatherBench: no peer factor, ×1,
# so its rain pairs are never repeated like Rain100L's.
_3D_REPEATS = {"denoise": 3, "derain": 120, "dehaze": 1}
_5D_REPEATS = {**_3D_REPEATS, "deblur": 5, "enhance": 20}
SETTINGS: dict[str, Setting] = {
    "3d": Setting(
        "3d", "SOTS/Rain100L/BSD68", ("denoise", "derain", "dehaze"), None, "peer", _3D_REPEATS
    ),
    "5d": Setting("5d", "SOTS/Rain100L/BSD68/GoPro/LOL", repeats=_5D_REPEATS),
    "cdd11": Setting("cdd11", "CDD11", repeats={t: 2 for t in CDD11_TYPES}),
    "weatherbench": Setting(
        "weatherbench",
        "WeatherBench",
        protocol="weatherbench",
        repeats={"dehaze": 1, "derain": 1, "desnow": 1},
    ),
    "csd": Setting("desnow", "CSD (desnowing, unseen)", eval_tasks=("desnow",)),
    # one-by-one (Table V) and the ablations (Tables VII–XII): single tasks of the 3D data
    "denoise": Setting("3d", "BSD400+WED / BSD68", ("denoise",), ("denoise",), repeats=_3D_REPEATS),
    "dehaze": Setting("3d", "RESIDE OTS / SOTS", ("dehaze",), ("dehaze",), repeats=_3D_REPEATS),
    "derain": Setting("3d", "Rain100L", ("derain",), ("derain",), repeats=_3D_REPEATS),
}


@dataclass(frozen=True)
class Data:
    """A located data set: its manifest and root, or why it is unavailable (`reason`)."""

    setting: str
    manifest: Path | None
    root: Path | None
    label: str
    reason: str = ""
    real: bool = False  # a real data set (the paper's), not the synthetic stand-in

    @property
    def available(self) -> bool:
        return self.manifest is not None and not self.reason

    def summary(self) -> pd.DataFrame:
        """Image pairs per split and task (and sigma), or the reason it is missing."""
        if not self.available:
            return pd.DataFrame([{"setting": self.setting, "status": self.reason}])
        from m2ir_lib.data import read_manifest

        df = read_manifest(self.manifest)
        s = SETTINGS[self.setting]
        keep = set((s.train_tasks or ()) + (s.eval_tasks or ())) or set(df["task"])
        df = df[df["task"].isin(keep)]
        out = df.groupby(["split", "task"], sort=False).size().rename("pairs").reset_index()
        out.insert(0, "setting", self.setting)
        return out


def mini_manifests(profile: str, seed: int = 0) -> dict[str, Path]:
    """The embedded benchmark for a smoke/mini profile: built once under `data/<size>/`."""
    from data_prep.mini import build_mini

    size = get_profile(profile).data
    if size not in ("smoke", "mini"):
        raise ValueError(f"profile {profile!r} uses real data, not the embedded benchmark")
    out = results.repo_root() / "data" / f"{size}-seed{seed}"
    built = build_mini(out, seed=seed, size=size)
    return {k.removeprefix("mini_"): Path(v) for k, v in built.items()}


def locate(setting: str, profile: str, data_root: str = "", seed: int = 0) -> Data:
    """Find the data of a setting: real data when a root is given (or, for the paper
    profile, `M2IR_DATA`), else the embedded synthetic stand-in of smoke/mini.

    Args:
        setting: a key of `SETTINGS` ("3d", "5d", "cdd11", "weatherbench", "csd", "derain", ...).
        profile: run profile name.
        data_root: folder holding the real data sets; "" = the profile's default.
        seed: seed of the synthetic benchmark.

    Returns:
        A `Data`; with no data configured at all, its `reason` says what is missing.

    Raises:
        FileNotFoundError: a data root was named (``data_root`` or, for the paper profile,
            ``M2IR_DATA``) but is not a folder: a typo must not turn good results into status
            rows, so the notebook (and the pipeline) stops before writing anything.
    """
    s = SETTINGS.get(setting)
    if s is None:
        raise ValueError(f"unknown setting {setting!r}; known: {sorted(SETTINGS)}")
    prof = get_profile(profile)
    root = data_root or (os.environ.get("M2IR_DATA", "") if prof.data == "real" else "")
    if root and not Path(root).is_dir():
        named = "data_root" if data_root else "M2IR_DATA"
        raise FileNotFoundError(
            f"{named}={root!r} is not a folder. It should hold the real data sets in the "
            "layouts listed in the README, section 'Real data sets' (e.g. Train/Derain, "
            "test/dehaze, ...; `python -m data_prep all --root DIR` shows what it finds). "
            + ("Leave data_root empty for the synthetic stand-in." if prof.data != "real" else "")
        )
    if not root and prof.data == "real":
        return Data(
            setting,
            None,
            None,
            s.paper_data,
            f"no real data: set data_root or M2IR_DATA to the folder holding "
            f"{s.paper_data} (README, 'Real data')",
        )
    if root:
        return _locate_real(setting, s, Path(root))
    manifests = mini_manifests(profile, seed)
    path = manifests.get(s.manifest)
    label = f"{prof.data}-synthetic (stand-in for {s.paper_data})"
    if path is None:
        return Data(
            setting,
            None,
            None,
            label,
            f"the embedded benchmark has no {s.manifest!r} set (has {sorted(manifests)})",
        )
    return Data(setting, path, path.parent.parent, label)


# data_prep commands behind each setting (one-by-one denoising: train and test sets apart).
REAL_COMMANDS = {
    "3d": ("3d",),
    "5d": ("5d",),
    "cdd11": ("cdd11",),
    "weatherbench": ("weatherbench",),
    "csd": ("csd",),
    "derain": ("rain100l",),
    "dehaze": ("reside",),
    "denoise": ("denoise-train", "denoise-test"),
}


def _locate_real(setting: str, s: Setting, root: Path) -> Data:
    """Manifest of the real data under `root`, written once to `data/manifests-real/`
    (or `$M2IR_MANIFESTS`, which tests use to keep their caches apart)."""
    from data_prep.prepare import prepare
    from data_prep.scan import BadImageError, CountError, LayoutError

    tag = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:8]  # one cache per root
    cache = os.environ.get("M2IR_MANIFESTS") or results.repo_root() / "data" / "manifests-real"
    out = Path(cache) / tag
    path = out / f"{setting}.csv"
    if not path.is_file():
        frames = []
        for command in REAL_COMMANDS[setting]:
            try:  # M2IR_ALLOW_PARTIAL=1: `data_prep --allow-partial` (reported, never silent)
                partial = os.environ.get("M2IR_ALLOW_PARTIAL", "") not in ("", "0")
                res = prepare(command, root, out, allow_partial=partial)
            except (LayoutError, CountError, BadImageError, ValueError) as err:
                return Data(
                    setting,
                    None,
                    None,
                    s.paper_data,
                    f"{s.paper_data} not usable under {root}: {err}",
                )
            frames.append(pd.read_csv(res.manifests[command], keep_default_na=False))
        out.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        pd.concat(frames, ignore_index=True).to_csv(tmp, index=False)
        os.replace(tmp, path)
    return Data(setting, path, root, s.paper_data, real=True)


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
    profile: str,
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
        profile: profile name.
        setting: a key of `SETTINGS`.
        rows: training rows per task (`train_rows`).
        repeats: per-task factors (None = 1 each).
        tcfg: the training config (batch, accumulation, iterations of an iteration budget).
        ablation: the ablation budget (§IV-C).
        cap: apply a rehearsal's iteration cap (`M2IR_REHEARSAL`); the cost table does not.
    """
    prof = get_profile(profile)
    reps = {t: int((repeats or {}).get(t, 1)) for t in rows}
    samples = sum(n * reps[t] for t, n in rows.items())
    if samples <= 0:
        raise ValueError(f"setting {setting!r}: no training rows to plan a schedule from")
    per_epoch = -(-samples // tcfg.global_batch)
    ep: Epochs | None = (prof.epochs or {}).get(budget_key(setting, ablation))
    if ep is not None:
        iters, warm, horizon = (round(e * per_epoch) for e in (ep.epochs, ep.warmup, ep.horizon))
        epochs, budget = ep.epochs, f"{ep.epochs:g} epochs ({ep.source})"
    else:
        iters, warm, horizon = tcfg.iters, tcfg.warmup_iters, tcfg.cosine_iters
        epochs, budget = iters / per_epoch, f"{iters} iterations (profile {prof.name})"
    planned = iters
    if cap and prof.max_iters is not None and iters > prof.max_iters:
        # keep the schedule's shape (warm-up share) within the cap
        iters = prof.max_iters
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
        prof.override if planned != iters else "",
    )
    return tcfg, info


def train_rows(data: Data, tasks=None) -> dict[str, int]:
    """Training rows per task of a located data set (its manifest's 'train' split)."""
    from m2ir_lib.data import read_manifest

    df = read_manifest(data.manifest)
    df = df[df["split"] == "train"]
    if tasks:
        df = df[df["task"].isin(list(tasks))]
    return {str(t): int(n) for t, n in df.groupby("task", sort=False).size().items()}


def plan(
    label: str,
    profile: str,
    data: Data,
    *,
    model: dict | None = None,
    train: dict | None = None,
    ablation: bool = False,
    seed: int = 0,
    daclip_checkpoint: str = "",
) -> Run:
    """A run of the profile's network and schedule with overrides (nothing is trained yet).

    Args:
        label: the row label the run's scores get.
        profile: run profile name (network size, schedule).
        data: located data; its setting fixes the training tasks.
        model: M2IRConfig field overrides (e.g. `BASELINE`, {"num_experts": 8}).
        train: TrainConfig field overrides (e.g. {"lambda1": 0.05}).
        ablation: use the profile's ablation schedule (Tables VII–XII, §IV-C).
        seed: initialisation and data seed.
        daclip_checkpoint: DA-CLIP file; without it prior='daclip' becomes the MLP fallback.
    """
    prof = get_profile(profile)
    cfg = dataclasses.replace(prof.model, **(model or {}))
    tcfg = dataclasses.replace(prof.ablation_train if ablation else prof.train, **(train or {}))
    notes = []
    uses_prior = cfg.special_experts and cfg.prior != "none"
    if uses_prior and cfg.prior == "daclip" and not daclip_checkpoint:
        cfg = dataclasses.replace(cfg, prior="mlp")
    if uses_prior and cfg.prior == "daclip":  # the real prior fixes P''s width
        cfg = dataclasses.replace(cfg, prior_dim=DACLIP_EMBED_DIM)
    if uses_prior and cfg.prior == "mlp":
        notes.append(DACLIP_NOTE)
    if not (uses_prior and cfg.prior == "daclip"):
        daclip_checkpoint = ""  # not part of this run's identity
    setting = SETTINGS[data.setting]
    tasks = setting.train_tasks
    # Real data is mixed as AdaIR/MoCE-IR do (e.g. Rain100L ×120); the stand-in is balanced.
    repeats = None
    sched = None
    if data.available:
        rows = train_rows(data, tasks)
        if data.real:
            repeats = {t: (setting.repeats or {}).get(t, 1) for t in rows}
        tcfg, sched = schedule(profile, data.setting, rows, repeats, tcfg, ablation)
    note = "; ".join(notes)
    return Run(label, cfg, tcfg, data, seed, daclip_checkpoint, note, tasks, repeats, sched)


def fresh_model(profile: str, seed: int = 0, daclip_checkpoint: str = ""):
    """The profile's network with seeded random weights (MLP prior without DA-CLIP)."""
    import torch

    from m2ir_lib.model import build_model

    run = plan(
        "fresh", profile, Data("3d", None, None, ""), seed=seed, daclip_checkpoint=daclip_checkpoint
    )
    torch.manual_seed(seed)
    return build_model(run.model, run.daclip_checkpoint or None).eval()


def _spec(run: Run, profile: str) -> dict:
    return dict(
        model_cfg=run.model,
        train_cfg=run.train,
        manifest=str(run.data.manifest),
        data_root=str(run.data.root),
        profile=profile,
        seed=run.seed,
        tasks=list(run.tasks) if run.tasks else None,
        repeats=run.repeats,
        daclip_checkpoint=run.daclip_checkpoint or None,
        # The embedded benchmark fits in memory: decoding its PNGs again on every step cost
        # ~10-15 % of a mini step (measured, 1 thread); the numbers are the same either way.
        cache_images=not run.data.real,
    )


def run_dir(run: Run, profile: str) -> Path:
    """The cache folder of a run (`runs/<profile>/<key>/`), trained or not."""
    from m2ir_lib.runs import run_key, runs_root

    key = run_key(
        run.model,
        run.train,
        run.data.manifest,
        seed=run.seed,
        tasks=list(run.tasks) if run.tasks else None,
        repeats=run.repeats,
        daclip_checkpoint=run.daclip_checkpoint or None,
    )
    return runs_root() / profile / key


def train_runs(
    runs: list[Run], profile: str, jobs: int = 0, launcher: str = "auto"
) -> dict[str, Path]:
    """Train (or fetch from the cache) every run whose data is available.

    Args:
        runs: from `plan`; identical configurations train once.
        profile: run profile name (cache folder).
        jobs: parallel worker processes; 0 = on CPU as many as cores when runs are long
            enough to repay starting a process (≥ 100 iterations), else (and on a GPU) 1.
        launcher: "auto" trains under torchrun (DDP, one process per GPU) when several GPUs
            are visible, else in processes here; "local" never uses torchrun; "torchrun"
            always does (one process per GPU, two CPU processes with gloo when there is no
            GPU). The global batch is the same either way (`m2ir_lib.train.accumulation`).

    Returns:
        {run label: final checkpoint path}; runs with missing data are left out.
    """
    from m2ir_lib.runs import train_many

    todo = [r for r in runs if r.data.available]
    if not todo:
        return {}
    import torch

    if launcher not in ("auto", "local", "torchrun"):
        raise ValueError(f"launcher={launcher!r}; expected auto, local or torchrun")
    for r in todo:
        if r.schedule is not None and not (run_dir(r, profile) / "final.pt").is_file():
            print(f"{r.label}: {r.schedule.describe()}", flush=True)
    gpus = torch.cuda.device_count()
    if launcher == "torchrun" or (launcher == "auto" and gpus > 1):
        return {r.label: _torchrun(r, profile, torchrun_procs(gpus)) for r in todo}
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


def _torchrun(run: Run, profile: str, procs: int) -> Path:
    """Train one run with DDP in `procs` processes (`torchrun -m m2ir_lib.experiments`)."""
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
        "m2ir_lib.experiments",
        fh.name,
    ]
    subprocess.run(cmd, check=True, cwd=results.repo_root())
    os.remove(fh.name)
    return final


def main(argv: list[str] | None = None) -> None:
    """`torchrun -m m2ir_lib.experiments SPEC.json`: one cached run under DDP (see `_torchrun`)."""
    from m2ir_lib.checkpoint import model_config_from_dict
    from m2ir_lib.runs import cached_train

    spec = json.loads(Path((argv or sys.argv[1:])[0]).read_text())
    spec["model_cfg"] = model_config_from_dict(spec["model_cfg"])  # M²IR or a rival
    spec["train_cfg"] = TrainConfig(
        **{k: tuple(v) if isinstance(v, list) else v for k, v in spec["train_cfg"].items()}
    )
    cached_train(**spec)


if __name__ == "__main__":
    main()
