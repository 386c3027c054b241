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
import json
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
from m2ir_lib.data.files import atomic_path, atomic_write_text
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
    named = "data_root" if data_root else "M2IR_DATA"
    try:
        root = user_path(root, named)
    except FileNotFoundError:
        pass  # the message below says what the folder should hold
    if root and not Path(root).is_dir():
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


# Environment switches of the real-data scan, the notebooks' equivalents of data_prep's flags
# (the pipeline's kernels inherit them): --allow-partial, --layout FILE, --on-bad skip.
ALLOW_PARTIAL_ENV, LAYOUT_ENV, ON_BAD_ENV = "M2IR_ALLOW_PARTIAL", "M2IR_LAYOUT", "M2IR_ON_BAD"
CALLER_CWD_ENV = "M2IR_CALLER_CWD"  # where the pipeline was started (set for its kernels)


def user_path(value, name: str) -> str:
    """A path typed by a user (notebook parameter, environment variable), made absolute.

    Kernels run in `notebooks/` while the README's commands are typed at the repository root,
    so a relative path is looked up where the pipeline was started (`M2IR_CALLER_CWD`), in the
    working directory, then at the repository root; the first that exists wins. "" stays "";
    an absolute path is returned as given (its callers say what it should be).

    Raises:
        FileNotFoundError: a relative path found in none of them (names `name` and each folder).
    """
    text = str(value or "").strip()
    if not text:
        return ""
    path = Path(text).expanduser()
    if path.is_absolute():
        return str(path)
    bases = [os.environ.get(CALLER_CWD_ENV, ""), os.getcwd(), str(results.repo_root())]
    bases = list(dict.fromkeys(b for b in bases if b))
    for base in bases:
        if (Path(base) / path).exists():
            return str((Path(base) / path).resolve())
    raise FileNotFoundError(
        f"{name}={text!r}: no such file or folder relative to {' or '.join(bases)}; give an "
        "absolute path or one relative to the repository root"
    )


def scan_options() -> dict:
    """The data_prep options the notebooks scan real data with (from the environment)."""
    on_bad = os.environ.get(ON_BAD_ENV, "") or "stop"
    if on_bad not in ("stop", "skip"):
        raise ValueError(f"{ON_BAD_ENV}={on_bad!r}: expected stop or skip")
    return dict(
        allow_partial=os.environ.get(ALLOW_PARTIAL_ENV, "") not in ("", "0"),
        layout=user_path(os.environ.get(LAYOUT_ENV, ""), LAYOUT_ENV) or None,
        on_bad=on_bad,
    )


def _listing(root: Path, folders) -> dict[str, int]:
    """Modification times of `folders` (relative to `root`), their parents up to `root`, and
    every folder two levels under `root`: adding, removing or renaming a file or a data set
    there changes one of them, without listing every image again."""
    keep = {Path(f) for f in folders}
    keep |= {q for f in list(keep) for q in f.parents}
    for top in [root, *(c for c in root.iterdir() if c.is_dir())]:
        keep.add(top.relative_to(root))
        try:
            keep |= {c.relative_to(root) for c in top.iterdir() if c.is_dir()}
        except OSError:  # an unreadable folder: its own time is still recorded
            pass
    out = {}
    for rel in sorted(keep, key=str):
        try:
            out[rel.as_posix()] = (root / rel).stat().st_mtime_ns
        except OSError:
            out[rel.as_posix()] = -1  # gone since: differs from any time recorded
    return out


def _scan_facts(setting, root: Path, opts: dict, frame, warned: list[str]) -> dict:
    """What a cached manifest was scanned from: options, code, data listing, counts."""
    code = hashlib.sha256()
    for f in sorted((results.repo_root() / "data_prep").glob("*.py")):
        code.update(f.read_bytes())
    folders = {
        str(Path(p).parent)
        for col in ("degraded_path", "clean_path")
        for p in frame[col].astype(str)
        if p
    }
    layout = opts["layout"] if setting == "weatherbench" else None  # only it reads one
    return {
        "setting": setting,
        "root": str(root.resolve()),
        "partial": bool(warned),  # counts other than the published ones were accepted
        "warnings": warned,
        "on_bad": opts["on_bad"],
        "layout_sha256": hashlib.sha256(Path(layout).read_bytes()).hexdigest() if layout else None,
        "data_prep_sha256": code.hexdigest(),
        "rows": {
            f"{k[0]}/{k[1]}": int(n) for k, n in frame.groupby(["split", "task"]).size().items()
        },
        "listing": _listing(root, folders),
    }


def _reusable(path: Path, root: Path, setting: str, opts: dict) -> dict | None:
    """The facts of the cached manifest `path` when it may serve this scan, else None.

    It must have been scanned from the same files, with the same layout, bad-image policy and
    data_prep code, and it is partial only when partial data is allowed now: a manifest
    written under M2IR_ALLOW_PARTIAL=1 is never reused without it."""
    facts_path = path.with_suffix(".json")
    try:
        facts = json.loads(facts_path.read_text())
        frame = pd.read_csv(path, keep_default_na=False)
    except (OSError, ValueError):
        return None
    now = _scan_facts(setting, root, opts, frame, facts.get("warnings", []))
    same = all(facts.get(k) == now[k] for k in now if k not in ("partial", "warnings"))
    return facts if same and (opts["allow_partial"] or not facts.get("partial")) else None


def _locate_real(setting: str, s: Setting, root: Path) -> Data:
    """Manifest of the real data under `root`, cached in `data/manifests-real/<root hash>/`
    (or `$M2IR_MANIFESTS`, which tests use to keep their caches apart) beside a JSON of the
    facts it was scanned from (`_scan_facts`); scanned again when they no longer hold. Data
    accepted as partial (`M2IR_ALLOW_PARTIAL=1`) says so in its label, so every table row
    trained or scored on it does."""
    tag = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:8]  # one cache per root
    cache = os.environ.get("M2IR_MANIFESTS") or results.repo_root() / "data" / "manifests-real"
    out = Path(cache) / tag
    path = out / f"{setting}.csv"
    opts = scan_options()
    facts = _reusable(path, root, setting, opts)
    if facts is None:
        path.unlink(missing_ok=True)  # never reused once its facts no longer hold
        frames, warned = [], []
        for command in REAL_COMMANDS[setting]:
            try:  # M2IR_ALLOW_PARTIAL=1: `data_prep --allow-partial` (reported, never silent)
                res = prepare(command, root, out, **opts)
            except (LayoutError, CountError, BadImageError, ValueError) as err:
                return Data(
                    setting,
                    None,
                    None,
                    s.paper_data,
                    f"{s.paper_data} not usable under {root}: {err}",
                )
            frames.append(pd.read_csv(res.manifests[command], keep_default_na=False))
            warned += res.warnings
        frame = pd.concat(frames, ignore_index=True)
        facts = _scan_facts(setting, root, opts, frame, warned)
        with atomic_path(path) as tmp:
            frame.to_csv(tmp, index=False)
        atomic_write_text(json.dumps(facts, indent=1), path.with_suffix(".json"))
    label = s.paper_data
    if facts["partial"]:
        label += (
            f" (PARTIAL data, M2IR_ALLOW_PARTIAL=1: {len(facts['warnings'])} part(s) with "
            f"other counts than published; {out}/*.report.md)"
        )
    return Data(setting, path, root, label, real=True)
