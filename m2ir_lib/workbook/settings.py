"""The training and test settings of §IV-A and where their data is (`locate`).

A setting (3D, 5D, CDD11, WeatherBench, the single tasks of Table V and the ablations, unseen
snow) names its manifest, tasks, metric protocol and the peers' per-task repeat factors.
`locate` finds its data: the real data sets under a root the user gives (manifests written
once by `data_prep`), else the embedded synthetic stand-in of the smoke and mini profiles.

Data that is not configured never raises here: `Data.reason` says what is missing, and the
tables turn it into a status row, so every notebook completes. A data root that is named
but does not exist is an error: it stops the notebook before anything is written.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from data_prep.adapters import LAYOUTS
from data_prep.mini import build_mini
from data_prep.prepare import prepare
from data_prep.scan import BadImageError, CountError, LayoutError
from m2ir_lib.core.config import Profile, check_profile
from m2ir_lib.data.datasets import CDD11_TYPES, NOISE_SIGMAS, read_manifest
from m2ir_lib.data.files import atomic_path
from m2ir_lib.workbook import results


@dataclass(frozen=True)
class Setting:
    """One training/evaluation set-up of §IV-A: which manifest, tasks and protocol."""

    manifest: str  # manifest key (data_prep's name for the data set)
    paper_data: str  # what the paper used, for the `data` column
    train_tasks: tuple[str, ...] | None = None  # None = every task in the manifest
    eval_tasks: tuple[str, ...] | None = None
    protocol: str = "peer"  # m2ir_lib.data.metrics protocol
    # Per-task repetition of the real training pairs in one epoch (the peers' data balancing);
    # a task not listed counts once. The synthetic stand-in gets its own factors
    # (`stand_in_repeats`) that give its tasks the paper's sample shares.
    repeats: dict[str, int] | None = None

    def repeats_for(self, setting: str, rows: dict[str, int], real: bool) -> dict[str, int]:
        """Per-task factors of a run on `rows` (training rows per task): the peers' factors
        on real data, `stand_in_repeats` on the embedded benchmark."""
        if real:
            return {t: (self.repeats or {}).get(t, 1) for t in rows}
        return stand_in_repeats(setting, rows)


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


# data_prep parts whose published training counts make each setting's training set (also the
# cost table's, `cost.published_rows`); WeatherBench publishes no per-weather counts.
PAPER_PARTS = {
    "3d": ("wed-bsd400", "rain100l-train", "ots"),
    "5d": ("wed-bsd400", "rain100l-train", "ots", "gopro-train", "lol-train"),
    "cdd11": ("cdd11-train",),
    "denoise": ("wed-bsd400",),
    "dehaze": ("ots",),
    "derain": ("rain100l-train",),
}


def published_rows(setting: str) -> dict[str, int] | None:
    """Training rows per task at the published sizes (one row per noise level for denoising);
    None where the counts are not published (WeatherBench) or the setting is not trained on."""
    parts = PAPER_PARTS.get(setting)
    if parts is None:
        return None
    rows: dict[str, int] = {}
    for part in parts:
        for src in LAYOUTS[part][0].sources:
            n = src.expected * (len(NOISE_SIGMAS) if src.task == "denoise" else 1)
            rows[src.task] = rows.get(src.task, 0) + n
    return rows


def paper_samples(setting: str) -> dict[str, int] | None:
    """Samples per task in one epoch of the paper's training set: `published_rows` × the
    peers' repeat factors; None where the counts are not published (WeatherBench) or the
    setting is not trained on (CSD)."""
    rows = published_rows(setting)
    if rows is None:
        return None
    reps = SETTINGS[setting].repeats or {}
    train = SETTINGS[setting].train_tasks
    return {t: n * reps.get(t, 1) for t, n in rows.items() if not train or t in train}


def shares(samples: dict[str, int]) -> dict[str, float]:
    """Each task's share of an epoch's samples."""
    total = sum(samples.values())
    return {t: n / total for t, n in samples.items()}


def stand_in_repeats(
    setting: str, rows: dict[str, int], tol: float = 0.01, max_scale: int = 20
) -> dict[str, int]:
    """Integer factors for the stand-in's `rows` that give each task the paper's sample share.

    Start from each task's wanted samples per row (paper samples / stand-in rows), divided by
    the smallest, and scale by m = 1, 2, ...: the first m whose rounded factors put every task
    within `tol` (1 percentage point) of its paper share wins, else the closest up to
    `max_scale`. Where the paper's shares are unknown (WeatherBench) every factor is 1, i.e.
    the stand-in's balance (the peers repeat no WeatherBench task either).
    """
    paper = paper_samples(setting)
    if not paper or not set(rows) <= set(paper):
        return {t: 1 for t in rows}
    want = shares({t: paper[t] for t in rows})
    per_row = {t: want[t] / rows[t] for t in rows}
    low = min(per_row.values())
    best, best_err = None, float("inf")
    for m in range(1, max_scale + 1):
        reps = {t: max(1, round(m * v / low)) for t, v in per_row.items()}
        got = shares({t: rows[t] * reps[t] for t in rows})
        err = max(abs(got[t] - want[t]) for t in rows)
        if err < best_err - 1e-12:
            best, best_err = reps, err
        if err <= tol:
            break
    return best


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

        df = read_manifest(self.manifest)
        s = SETTINGS[self.setting]
        keep = set((s.train_tasks or ()) + (s.eval_tasks or ())) or set(df["task"])
        df = df[df["task"].isin(keep)]
        out = df.groupby(["split", "task"], sort=False).size().rename("pairs").reset_index()
        out.insert(0, "setting", self.setting)
        return out


def mini_manifests(profile: Profile, seed: int = 0) -> dict[str, Path]:
    """The embedded benchmark for a smoke/mini profile: built once under `data/<size>/`."""
    check_profile(profile)
    size = profile.data
    if size not in ("smoke", "mini"):
        raise ValueError(f"profile {profile.name!r} uses real data, not the embedded benchmark")
    out = results.repo_root() / "data" / f"{size}-seed{seed}"
    built = build_mini(out, seed=seed, size=size)
    return {k.removeprefix("mini_"): Path(v) for k, v in built.items()}


def locate(setting: str, profile: Profile, data_root: str = "", seed: int = 0) -> Data:
    """Find the data of a setting: real data when a root is given (or, for the paper
    profile, `M2IR_DATA`), else the embedded synthetic stand-in of smoke/mini.

    Args:
        setting: a key of `SETTINGS` ("3d", "5d", "cdd11", "weatherbench", "csd", "derain", ...).
        profile: the run profile.
        data_root: folder holding the real data sets; "" = the profile's default.
        seed: seed of the synthetic benchmark.

    Returns:
        A `Data`; with no data configured at all, its `reason` says what is missing.

    Raises:
        FileNotFoundError: a data root was named (``data_root`` or, for the paper profile,
            ``M2IR_DATA``) but is not a folder: a typo must not turn good results into status
            rows, so the notebook (and the pipeline) stops before writing anything.
    """
    check_profile(profile)
    s = SETTINGS.get(setting)
    if s is None:
        raise ValueError(f"unknown setting {setting!r}; known: {sorted(SETTINGS)}")
    root = data_root or (os.environ.get("M2IR_DATA", "") if profile.data == "real" else "")
    if root and not Path(root).is_dir():
        named = "data_root" if data_root else "M2IR_DATA"
        raise FileNotFoundError(
            f"{named}={root!r} is not a folder. It should hold the real data sets in the "
            "layouts listed in the README, section 'Real data sets' (e.g. Train/Derain, "
            "test/dehaze, ...; `python -m data_prep all --root DIR` shows what it finds). "
            + (
                "Leave data_root empty for the synthetic stand-in."
                if profile.data != "real"
                else ""
            )
        )
    if not root and profile.data == "real":
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
    label = f"{profile.data}-synthetic (stand-in for {s.paper_data})"
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
        with atomic_path(path) as tmp:
            pd.concat(frames, ignore_index=True).to_csv(tmp, index=False)
    return Data(setting, path, root, s.paper_data, real=True)
