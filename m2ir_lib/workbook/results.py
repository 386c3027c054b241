"""Result tables in one long format: the paper's numbers (§IV, Tables I–XIII) beside ours.

Every table is a DataFrame with the columns of `COLUMNS`: what was measured
(`table, method, source, task, metric, value`), how sure it is (`n` independent test units,
i.e. photographs of the stand-in or images of a real set; the 95 % interval
`ci_low`..`ci_high` over those units and the seeds, `stats.design_interval`; `n_seeds`
training seeds and their standard deviation `seed_sd`, and `at_or_below_floor`: the cell is
no better than the degraded input's, see `with_floor`) and where it came from (`profile,
commit, seed, device, data, note`). `source` is `paper` for numbers transcribed from the paper
(`results/reported/*.csv`, checked by tests/test_paper_tables.py; their uncertainty columns
stay empty) and `reproduced` for ours. A table that could not be reproduced carries a status
row (`metric == "status"`, no value, the reason in `note`) instead of silently missing rows.
Averages are computed here, never typed.

Beside each table, `<stem>_per_image.csv` holds every reproduced number per test image
(`stats.PER_IMAGE_COLUMNS`, long form). It joins the table on (table, method, task, metric)
with the per-image `seed` one of the cell's comma-separated `seed` list; `run` is the
training run's cache key; `unit` names the independent test unit (the photograph a stand-in
tile was cut from; for a real test set the image itself), which the intervals resample. The
two files are one unit, written together under a lock by `write_results`."""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from filelock import FileLock

from m2ir_lib.core.config import Profile, check_profile
from m2ir_lib.data.files import REPO_ROOT, atomic_path, atomic_write_text, git_commit
from m2ir_lib.workbook import stats
from m2ir_lib.workbook.stats import PER_IMAGE_COLUMNS

COLUMNS = [
    "table",
    "method",
    "source",
    "task",
    "metric",
    "value",
    "n",
    "ci_low",
    "ci_high",
    "n_seeds",
    "seed_sd",
    "at_or_below_floor",
    "profile",
    "commit",
    "seed",
    "device",
    "data",
    "note",
]
PAPER_COLUMNS = ["table", "method", "venue", "group", "task", "metric", "value", "ref"]
AVERAGE = "Average"
STATUS = "status"
FLOOR = "Identity (degraded input)"  # the degraded input scored as a restoration
UNCERTAINTY = ["n", "ci_low", "ci_high", "n_seeds", "seed_sd"]
LOWER_IS_BETTER = {"LPIPS", "FID"}


@dataclass(frozen=True)
class TableSpec:
    """One paper table: its Roman number, the CSV stem under results/, and what it shows."""

    roman: str
    stem: str
    title: str


TABLES: dict[str, TableSpec] = {
    s.roman: s
    for s in (
        TableSpec("I", "table1_3d", "Three degradations (haze, rain, noise)"),
        TableSpec("II", "table2_5d", "Five degradations (+ blur, low light)"),
        TableSpec("III", "table3_cdd11", "Composite degradations (CDD11)"),
        TableSpec("IV", "table4_weatherbench", "Real-world weather (WeatherBench)"),
        TableSpec("V", "table5_one_by_one", "One-by-one (single-task) training"),
        TableSpec("VI", "table6_unseen_desnow", "Unseen desnowing on CSD, trained on 3D"),
        TableSpec("VII", "table7_components", "Ablation: components"),
        TableSpec("VIII", "table8_num_experts", "Ablation: number N of specialised experts"),
        TableSpec("IX", "table9_top_k", "Ablation: number K of top experts"),
        TableSpec("X", "table10_losses", "Ablation: loss terms"),
        TableSpec("XI", "table11_lambda1", "Ablation: balance-loss weight λ1"),
        TableSpec("XII", "table12_lambda2", "Ablation: FFT-loss weight λ2"),
        TableSpec("XIII", "table13_efficiency", "Efficiency at 720×480"),
    )
}


# ---------------------------------------------------------------------------- paths & provenance


def repo_root() -> Path:
    """The workbook's root folder (the parent of `m2ir_lib/`), wherever the caller runs."""
    return REPO_ROOT


# The paper's transcribed numbers live in `results/reported/`; no run may write there.
REPORTED = "reported"


def reported_dir(root: str | Path | None = None) -> Path:
    """`results/reported/`: the paper's numbers as transcribed (read-only for every run)."""
    return Path(root or repo_root()) / "results" / REPORTED


def profile_name(profile: Profile | str) -> str:
    """The name a profile's outputs are filed and labelled under. Paths and provenance need
    nothing else, so they take the resolved `Profile` or, from a test or a reader, its name."""
    return profile.name if isinstance(profile, Profile) else profile


def results_dir(profile: Profile | str, root: str | Path | None = None) -> Path:
    """`results/<profile>/` under the repository root, or under `$M2IR_RESULTS` when set
    (tests use it to keep their outputs apart); not created.

    Raises:
        ValueError: `profile` would name the transcription folder, or is not a plain name.
    """
    profile = profile_name(profile)
    if not profile or profile != Path(profile).name or profile in (".", ".."):
        raise ValueError(f"profile {profile!r} is not a plain folder name")
    if profile == REPORTED:
        raise ValueError(
            f"results/{REPORTED}/ holds the paper's transcribed numbers; no run writes there"
        )
    if root is None and os.environ.get("M2IR_RESULTS"):
        return Path(os.environ["M2IR_RESULTS"]) / profile
    return Path(root or repo_root()) / "results" / profile


def spec(table: str) -> TableSpec:
    """The `TableSpec` of a Roman table number, with a clear error for an unknown one."""
    try:
        return TABLES[table]
    except KeyError:
        raise ValueError(f"unknown table {table!r}; known: {list(TABLES)}") from None


# ---------------------------------------------------------------------------- building rows


def paper_table(table: str, root: str | Path | None = None) -> pd.DataFrame:
    """The paper's numbers for one table, in the long format (`source == "paper"`).

    Args:
        table: Roman number, e.g. "I" or "XIII".
        root: repository root; defaults to the one holding this package.
    """
    path = reported_dir(root) / f"{spec(table).stem}.csv"
    raw = pd.read_csv(
        path, dtype={"value": float}, keep_default_na=False, na_values={"value": [""]}
    )
    if list(raw.columns) != PAPER_COLUMNS:
        raise ValueError(f"{path}: columns {list(raw.columns)}, expected {PAPER_COLUMNS}")
    venue = raw["venue"].where(raw["venue"] == "", "(" + raw["venue"] + ") ")
    return pd.DataFrame(
        {
            "table": raw["table"],
            "method": raw["method"],
            "source": "paper",
            "task": raw["task"],
            "metric": raw["metric"],
            "value": raw["value"],
            **{c: float("nan") for c in UNCERTAINTY},
            "at_or_below_floor": "",
            "profile": "",
            "commit": "",
            "seed": "",
            "device": "",
            "data": "as reported in the paper",
            "note": venue + raw["ref"],
        }
    )[COLUMNS]


def rows(
    table: str,
    method: str,
    values: dict[tuple[str, str], float],
    *,
    profile: Profile | str,
    seed: int | str,
    data: str,
    device: str = "cpu",
    note: str = "",
    commit: str | None = None,
    uncertainty: dict[tuple[str, str], dict] | None = None,
) -> pd.DataFrame:
    """Reproduced rows of one method: `values[(task, metric)] = number`.

    Args:
        table: Roman number of the paper table.
        method: our method label, e.g. "M²IR (ours, mini)".
        values: measured numbers keyed by (task, metric).
        profile, seed, device, data, note: provenance written beside every number (`seed`
            may list several, "0,1,2", when a cell is a mean over training seeds).
        commit: git commit; looked up when None.
        uncertainty: per (task, metric), any of `UNCERTAINTY` (n, ci_low, ci_high, n_seeds,
            seed_sd; `m2ir_lib.workbook.stats.cell_stats` computes them); missing ones stay empty.
    """
    spec(table)
    commit = git_commit(short=True) if commit is None else commit
    uncertainty = uncertainty or {}
    return pd.DataFrame(
        [
            dict(
                table=table,
                method=method,
                source="reproduced",
                task=task,
                metric=metric,
                value=float(v),
                **{
                    c: float(uncertainty.get((task, metric), {}).get(c, np.nan))
                    for c in UNCERTAINTY
                },
                at_or_below_floor="",
                profile=profile_name(profile),
                commit=commit,
                seed=str(seed),
                device=device,
                data=data,
                note=note,
            )
            for (task, metric), v in values.items()
        ],
        columns=COLUMNS,
    )


def status_row(
    table: str,
    method: str,
    reason: str,
    *,
    profile: Profile | str,
    seed: int = 0,
    data: str = "",
    task: str = "—",
    commit: str | None = None,
) -> pd.DataFrame:
    """A row that says why a reproduced number is missing (no data, no weights, skipped)."""
    spec(table)
    if not reason:
        raise ValueError("a status row needs a reason")
    return pd.DataFrame(
        [
            dict(
                table=table,
                method=method,
                source="reproduced",
                task=task,
                metric=STATUS,
                value=float("nan"),
                **{c: float("nan") for c in UNCERTAINTY},
                at_or_below_floor="",
                profile=profile_name(profile),
                commit=git_commit(short=True) if commit is None else commit,
                seed=str(seed),
                device="",
                data=data,
                note=reason,
            )
        ],
        columns=COLUMNS,
    )


def with_average(
    df: pd.DataFrame, tasks: list[str] | None = None, per_image: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Append computed `Average` rows for reproduced methods (the paper's own stay as printed).

    Only where the paper prints an average of that metric (or `tasks` is given), and only
    when the method has a value for every task in `tasks` (default: every non-average task
    the paper lists for that metric), so an average over a partial row is never shown as if
    it were the paper's. A paper row whose printed average is missing gets a computed one.

    With `per_image` (the table's per-image rows), a reproduced Average gets its count of
    independent units, a 95 % interval (units resampled within each column, or jointly where
    every column holds the same photographs, and seeds; `stats.average_stats`) and its seed
    spread.
    """
    out = [df[~((df["source"] == "reproduced") & (df["task"] == AVERAGE))]]
    ours = df[(df["source"] == "reproduced") & (df["metric"] != STATUS) & (df["task"] != AVERAGE)]
    paper = df[(df["source"] == "paper") & (df["task"] != AVERAGE)]
    printed = df[(df["source"] == "paper") & (df["task"] == AVERAGE)]
    # A paper row whose Average cell is lost (Table I's M²IR) gets a computed one, marked.
    for (method, metric), g in paper.groupby(["method", "metric"], sort=False):
        if (
            metric in set(printed["metric"])
            and printed[(printed["method"] == method) & (printed["metric"] == metric)].empty
        ):
            avg = g.iloc[[0]].copy()
            avg["task"], avg["value"] = AVERAGE, float(g["value"].mean())
            avg["note"] = "computed here: the Average cell is missing from the paper's text"
            out.append(avg)
    for (method, metric), g in ours.groupby(["method", "metric"], sort=False):
        if not tasks and metric not in set(printed["metric"]):
            continue  # the paper prints no average of this metric here
        need = tasks or list(dict.fromkeys(paper.loc[paper["metric"] == metric, "task"]))
        got = g.set_index("task")["value"]
        if not set(need) <= set(got.index) or got[need].isna().any():
            continue
        avg = g.iloc[[0]].copy()
        avg["task"], avg["value"] = AVERAGE, float(got[need].mean())
        got_stats = (
            stats.average_stats(per_image, method, metric, need)
            if per_image is not None and len(per_image)
            else None
        )
        for c in UNCERTAINTY:
            avg[c] = got_stats[c] if got_stats else np.nan
        how = "mean of {}" if got_stats else "mean of {}; no interval (no per-image metrics)"
        avg["note"] = (avg["note"] + "; " if avg["note"].iloc[0] else "") + how.format(len(need))
        out.append(avg)
    return pd.concat(out, ignore_index=True)[COLUMNS]


def with_floor(df: pd.DataFrame) -> pd.DataFrame:
    """Fill `at_or_below_floor` for reproduced cells: True where the cell is no better than the
    degraded input's (`FLOOR` row) on the same task and metric at the printed precision
    (PSNR 0.01, SSIM/LPIPS 0.0001; lower is better for LPIPS and FID), False where it is
    better, empty where there is no floor to compare with (paper rows, the floor itself)."""
    out = df.reset_index(drop=True)
    out["at_or_below_floor"] = ""
    ours = (out["source"] == "reproduced") & (out["metric"] != STATUS)
    floor = out[ours & (out["method"] == FLOOR)].drop_duplicates(["task", "metric"])
    floor = floor.set_index(["task", "metric"])["value"]
    for i in out.index[ours & (out["method"] != FLOOR)]:
        key = (out.at[i, "task"], out.at[i, "metric"])
        v, f = out.at[i, "value"], floor.get(key, np.nan)
        if np.isnan(v) or np.isnan(f):  # an untouched image makes the floor's PSNR inf
            continue
        step = 0.005 if key[1] in ("PSNR", "FID") else 0.00005  # half the printed digit
        better = (f - v if key[1] in LOWER_IS_BETTER else v - f) > step
        out.at[i, "at_or_below_floor"] = "False" if better else "True"
    return out


# ---------------------------------------------------------------------------- reading & writing


def write_results(
    df: pd.DataFrame, profile: Profile, table: str, root: str | Path | None = None
) -> Path:
    """Write one table atomically to `results/<profile>/<stem>.csv` and return the path, with
    its staged per-image rows (`write_per_image`) under one lock. A table without reproduced
    numbers never replaces one that has them (ValueError): no data found erases nothing.

    Args:
        df: long-format rows (paper and reproduced), columns `COLUMNS`.
        profile: the profile that produced the reproduced rows (its rehearsal note, if any,
            is added to every reproduced row).
        table: Roman number; fixes the file name.
        root: repository root; defaults to the one holding this package.
    """
    check_profile(profile)
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"missing columns {missing}; expected {COLUMNS}")
    if set(df["source"]) - {"paper", "reproduced"}:
        raise ValueError(f"source must be paper|reproduced, got {sorted(set(df['source']))}")
    ours = df[df["source"] == "reproduced"]
    if ours.empty:
        raise ValueError(f"table {table}: no reproduced row and no status row; add one")
    if (ours["profile"] != profile.name).any():
        raise ValueError(
            f"reproduced rows carry profiles {sorted(set(ours['profile']))}, not {profile.name!r}"
        )
    override = profile.override  # a rehearsal says so beside every number
    if override:
        df = df.copy()
        said = df["note"].astype(str).str.contains(override, regex=False)  # its ( ) are text
        mine = (df["source"] == "reproduced") & ~said
        df.loc[mine, "note"] = [f"{n}; {override}" if n else override for n in df["note"][mine]]
    out = with_floor(df)[COLUMNS].astype({"n": "Int64", "n_seeds": "Int64"})
    stem, folder = spec(table).stem, results_dir(profile, root)
    folder.mkdir(parents=True, exist_ok=True)
    with FileLock(folder / ".results.lock"):  # the table and its per-image scores: one unit
        _keep_reproduced(out, folder / f"{stem}.csv", table)
        path = write_frame(out, profile, stem, root)
        staged = _STAGED.pop(folder / f"{stem}_per_image.csv", None)
        if staged is not None:
            atomic_write_text(staged, folder / f"{stem}_per_image.csv")
    return path


def _keep_reproduced(new: pd.DataFrame, path: Path, table: str) -> None:
    """Refuse to replace a table holding reproduced numbers with one that has none (a
    `data_root` that holds no data set would otherwise erase the earlier results)."""

    def numbers(df):  # the reproduced cells holding a number
        ours = df[(df["source"] == "reproduced") & (df["metric"] != STATUS)]
        return ours[pd.to_numeric(ours["value"], errors="coerce").notna()]

    old = pd.read_csv(path, keep_default_na=False) if path.is_file() else new.iloc[:0]
    if len(numbers(new)) or (old := numbers(old)).empty:
        return
    why = "; ".join(dict.fromkeys(new.loc[new["metric"] == STATUS, "note"].astype(str)))[:300]
    raise ValueError(
        f"Table {table}: this run reproduced no number ({why}); {path} keeps the "
        f"{len(old)} reproduced numbers of an earlier run (commit "
        f"{', '.join(sorted(set(old['commit'].astype(str))))}). Check data_root; to record "
        "this run's status rows anyway, delete that file first."
    )


# Per-image rows scored in this process, by file, until `write_results` writes them with
# their table: two runs of one table at once never leave one's table beside the other's rows.
_STAGED: dict[Path, str] = {}  # CSV text: read back as the file would be


def write_per_image(
    per_image: pd.DataFrame, profile: Profile | str, table: str, root: str | Path | None = None
) -> Path:
    """Stage a table's per-image metrics for `results/<profile>/<stem>_per_image.csv` (its path):
    `write_results` writes them with the table; until then `read_per_image` returns them here.

    Args:
        per_image: long rows with the columns of `m2ir_lib.workbook.stats.PER_IMAGE_COLUMNS`.
        profile, table, root: as for `write_results`.
    """
    missing = [c for c in PER_IMAGE_COLUMNS if c not in per_image.columns]
    if missing:
        raise ValueError(f"per-image rows lack columns {missing}; expected {PER_IMAGE_COLUMNS}")
    path = results_dir(profile, root) / f"{spec(table).stem}_per_image.csv"
    _STAGED[path] = per_image[PER_IMAGE_COLUMNS].to_csv(index=False)
    return path


def read_per_image(
    profile: Profile | str, table: str, root: str | Path | None = None
) -> pd.DataFrame:
    """This process's staged per-image rows of the table (`write_per_image`), else its file;
    a clear error when the table was not evaluated."""
    path = results_dir(profile, root) / f"{spec(table).stem}_per_image.csv"
    if path not in _STAGED and not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing: it is written when Table {table} is scored "
            "(scoring.score_rows); run the table's notebook first"
        )
    source = io.StringIO(_STAGED[path]) if path in _STAGED else path
    df = pd.read_csv(source, keep_default_na=False, na_values={"value": [""], "sigma": [""]})
    if "unit" not in df:  # written before units were recorded: each image its own unit
        df["unit"] = ""
    return df.astype({"seed": int, "image": str, "dataset": str, "unit": str})[PER_IMAGE_COLUMNS]


def write_frame(
    df: pd.DataFrame, profile: Profile | str, name: str, root: str | Path | None = None
) -> Path:
    """Write any DataFrame atomically to `results/<profile>/<name>.csv` (tmp, then rename).

    Used for the tables and for the notebooks' other outputs (data summary, model shapes,
    training curves, figure statistics).
    """
    if not name or "/" in name or name.endswith(".csv"):
        raise ValueError(f"name {name!r} must be a bare file stem")
    out = results_dir(profile, root) / f"{name}.csv"
    with atomic_path(out) as tmp:
        df.to_csv(tmp, index=False)
    return out


def figure_path(profile: Profile | str, name: str, root: str | Path | None = None) -> Path:
    """`results/<profile>/figures/<name>.png` (folder created)."""
    (out := results_dir(profile, root) / "figures").mkdir(parents=True, exist_ok=True)
    return out / f"{name}.png"


def save_figure(fig, path: str | Path | None, dpi: int = 110, longest=2400, pixels=2.5e6):
    """Save `fig` as every figure of the workbook is saved (110 dpi, tight, at most `longest` px
    a side and `pixels` in all: grids of photographs were 2.2-2.8 MB beyond); None: no-op."""
    if path is not None:
        w, h = fig.get_size_inches()
        dpi = min(dpi, longest / max(w, h), (pixels / (w * h)) ** 0.5)
        with atomic_path(path) as tmp:  # the format from the real name, not the temporary one
            fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format=Path(path).suffix[1:])
    return fig


def read_results(
    profile: Profile | str, table: str, root: str | Path | None = None
) -> pd.DataFrame:
    """Read back a table written by `write_results`."""
    path = results_dir(profile, root) / f"{spec(table).stem}.csv"
    num = {c: [""] for c in ["value", *UNCERTAINTY]}
    return pd.read_csv(
        path,
        keep_default_na=False,
        na_values=num,
        dtype={"seed": str, "n": "Int64", "n_seeds": "Int64", "at_or_below_floor": str},
    )
