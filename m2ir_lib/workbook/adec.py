"""How much a trained M²IR uses its ADECs (§III-C): the gates α, β and what the branch adds.

Each ADEC returns α⊙X̃ + β⊙X̂ (eq. 3–7 give X̃; the α/β residual is our reading, AdaIR's
para1/para2). A small |α| means the expert branch barely reaches the decoder, whatever the
routing does, so a table that credits ADEC should show both numbers:

    gates = probes.adec_gates(ckpt)                        # |α|, β per ADEC
    share = probes.branch_share(ckpt, images)              # ‖α⊙X̃‖ / ‖β⊙X̂‖ per ADEC
    per_image, summary = adec.adec_ablation(ckpt, data)    # PSNR with the branch on and off
    images = adec.branch_off_images("I", runs, ckpts, profile=p)  # Tables I–V, cached
    rows = adec.table_summary("I", runs, ckpts, profile=p, images=images)  # per run and seed
    adec.adec_text(rows)                                   # the notebook's prose, per column
    found = adec.claim_rows("I", rows, images)             # the summary page's claim rows
    adec.write_adec_claims(found, p, "I"), adec.claims_caption(found)

The claim row pools a row's seeds and columns: PSNR on − off paired over the same images and
seeds, its interval over photographs and seeds (`stats.design_interval`), "inert at this
scale" when the whole interval lies within ±0.01 dB, the paper's printed precision.

"Off" forces α = 0 in every ADEC (X' = β⊙X̂: the decoder sees its own features, scaled as
trained); nothing is retrained, so the difference is what the trained branch contributes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from IPython.display import Markdown
from scipy import stats as sps

from m2ir_lib.core.config import M2IRConfig, Profile, check_profile
from m2ir_lib.engine.evaluate import evaluate
from m2ir_lib.engine.probes import adec_gates, adec_off, as_model
from m2ir_lib.engine.runs import load_checkpoint
from m2ir_lib.workbook import claims, results, scoring, stats, tables, verdicts
from m2ir_lib.workbook.settings import SETTINGS


def adec_ablation(
    model_or_ckpt,
    data,
    *,
    protocol: str | None = None,
    data_root=None,
    tasks=None,
    sigmas=None,
    max_images: int | None = None,
    device="cpu",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """PSNR/SSIM on a test split with the ADEC branch on (as trained) and off (α = 0).

    Args:
        model_or_ckpt: an `M2IR` with ADECs or the path of a checkpoint.
        data: an `settings.Data` (its setting fixes tasks and protocol) or a manifest path.
        protocol: metrics protocol; default the setting's (or "peer" for a manifest path).
        data_root, tasks, sigmas, max_images, device: as for `evaluate.evaluate`
            (taken from `data` when it is a `Data` and they are not given).

    Returns:
        ``(per_image, summary)``. per_image: task, dataset, sigma, name, psnr_on, psnr_off,
        ssim_on, ssim_off, delta_psnr (= on − off). summary: one row per (task, dataset,
        sigma) with n and the means of those columns. A positive delta_psnr means the
        trained branch helps.

    Raises:
        ValueError: the network has no ADEC (nothing to switch off).
    """
    model = as_model(model_or_ckpt, device)
    if not getattr(model, "adecs", None):
        raise ValueError("this network has no ADEC (baseline or Table VII all-off row)")
    manifest = data
    if hasattr(data, "manifest"):  # settings.Data
        if not data.available:
            raise ValueError(f"data of setting {data.setting!r} unavailable: {data.reason}")
        s = SETTINGS[data.setting]
        manifest, data_root = data.manifest, data_root or data.root
        protocol = protocol or s.protocol
        tasks = tasks or (list(s.eval_tasks) if s.eval_tasks else None)
    kw = dict(data_root=data_root, tasks=tasks, sigmas=sigmas, max_images=max_images)
    protocol = protocol or "peer"
    on, _ = evaluate(model, manifest, protocol, device=device, **kw)
    with adec_off(model):
        off, _ = evaluate(model, manifest, protocol, device=device, **kw)
    keys = ["task", "dataset", "sigma", "name"]
    per_image = on[[*keys, "psnr", "ssim"]].merge(
        off[[*keys, "psnr", "ssim"]], on=keys, suffixes=("_on", "_off"), validate="1:1"
    )
    per_image["delta_psnr"] = per_image["psnr_on"] - per_image["psnr_off"]
    metrics = ["psnr_on", "psnr_off", "ssim_on", "ssim_off", "delta_psnr"]
    summary = per_image.groupby(keys[:3], sort=False, dropna=False)[metrics].mean().reset_index()
    summary.insert(3, "n", per_image.groupby(keys[:3], sort=False, dropna=False).size().values)
    return per_image, summary


# ---------------------------------------------------------------------------- Tables I–V

# One CSV beside each comparison table (`adec.write_adec`, `<stem>_adec.csv`): per M²IR run
# (each seed), the gates per ADEC position and the PSNR change per column with ADEC off.
ADEC_COLUMNS = [
    "table",
    "method",
    "run",
    "seed",
    "quantity",
    "position",
    "task",
    "value",
    "n",
    "ci_low",
    "ci_high",
    "psnr_on",
    "psnr_off",
    "profile",
    "data",
]
GATES = ("alpha_abs_mean", "alpha_abs_max", "beta_mean")
CHANGE = "psnr_change_off"  # PSNR with the branch off − PSNR as trained, dB, per column
ALL = "all"  # the position of a change row: every ADEC is switched off together
# `branch_off_images`: a table's per-image rows, `value` as trained and `value_off` with α = 0.
IMAGE_COLUMNS = [*stats.PER_IMAGE_COLUMNS, "value_off"]


def _adec_runs(runs, ckpts: dict, data=None) -> list:
    """(run, its test data) for every trained run whose network has ADECs (not the
    Restormer-style row, not the rivals)."""
    return [
        (r, data or r.data)
        for r in runs
        if isinstance(r.model, M2IRConfig) and r.model.has_adec and r.label in ckpts
    ]


def branch_off_images(table: str, runs, ckpts: dict, *, profile: Profile, data=None):
    """Every test image of a table's M²IR runs scored as trained and with every ADEC off.

    "On" is `scoring.evaluate_run`'s cached evaluation (the table's own numbers); "off" is one
    more pass with α = 0, cached beside it. Runs whose data is missing are left out.

    Returns:
        Columns `IMAGE_COLUMNS`: the per-image rows of `stats.PER_IMAGE_COLUMNS` (tasks named
        after the paper's columns, `unit` the photograph), `value` as trained, `value_off`
        with the branch off, for PSNR and SSIM.
    """
    check_profile(profile)
    picked = _adec_runs(runs, ckpts, data)
    scoring.evaluate_in_parallel(
        [(ckpts[r.label], test, r.daclip_checkpoint, off) for r, test in picked
         for off in (False, True)],
        profile,
    )  # fmt: skip
    keys = ["task", "dataset", "sigma", "image", "metric"]
    frames = []
    for r, test in picked:
        if not test.available:
            continue
        ckpt = ckpts[r.label]
        on, off = (
            scoring.per_image_rows(
                table,
                tables.method_of(r.label),
                ckpt.parent.name,
                r.seed,
                scoring.evaluate_run(ckpt, test, profile, r.daclip_checkpoint, adec_off=o)[0],
            )  # fmt: skip
            for o in (False, True)
        )
        off = off[[*keys, "value"]].rename(columns={"value": "value_off"})
        frames.append(on.merge(off, on=keys, how="left", validate="1:1"))
    if not frames:
        return pd.DataFrame(columns=IMAGE_COLUMNS)
    return pd.concat(frames, ignore_index=True)[IMAGE_COLUMNS]


def _covered(table: str, tasks) -> list[str]:
    """The columns of the paper's table among `tasks`, in the paper's order (no Average)."""
    order = list(dict.fromkeys(results.paper_table(table)["task"]))
    return [t for t in order if t in set(tasks) and t != results.AVERAGE]


def _columns(table: str, tasks) -> list[tuple[str, list[str]]]:
    """(name, tasks) of every column of the paper's table a run covers, in the paper's order,
    then the Average where the paper has one and the run covers several columns."""
    got = _covered(table, tasks)
    has_average = results.AVERAGE in set(results.paper_table(table)["task"])
    average = [(results.AVERAGE, got)] if has_average and len(got) > 1 else []
    return [(t, [t]) for t in got] + average


def _effect(images: pd.DataFrame, method: str, tasks: list[str], sign: int = 1):
    """sign × (PSNR as trained − PSNR with the branch off), mean of the `tasks` column means,
    paired over the same images and seeds, with its interval over photographs and seeds."""
    psnr = images[(images["method"] == method) & (images["metric"] == "PSNR")]
    d = psnr.assign(value=sign * (psnr["value"] - psnr["value_off"]))
    wide, units = stats.design(d, method, "PSNR", tasks)
    strata = wide.columns.get_level_values("task")
    with np.errstate(invalid="ignore"):  # inf − inf where an image is left untouched
        return stats.design_interval(wide.to_numpy(), units.to_numpy(), strata, nonfinite="nan")


def table_summary(
    table: str, runs, ckpts: dict, *, profile: Profile, data=None, images=None
) -> pd.DataFrame:
    """What ADEC does in a comparison table's M²IR runs: gates and the PSNR change when off.

    For every trained run whose network has ADECs, each seed apart: one row per ADEC position
    and gate (`GATES`, read from the checkpoint) and one row per column of the paper's table
    (plus the Average where the paper has one and the run covers several columns) with the
    mean over test images of PSNR(off) − PSNR(on), its paired 95 % interval over photographs
    (`stats.design_interval`: the same images on both sides, units resampled whole) and the
    two means.

    Args:
        table: Roman number ("I" … "V").
        runs, ckpts: the table's planned runs and `experiments.train_runs`' result.
        profile: the run profile.
        data: the evaluation data (default: each run's own), as for `scoring.score_rows`.
        images: `branch_off_images`' rows, when already computed.

    Returns:
        Columns `ADEC_COLUMNS`; no rows when no M²IR run was trained (no data).
    """
    if images is None:
        images = branch_off_images(table, runs, ckpts, profile=profile, data=data)
    rows = []
    for r, test in _adec_runs(runs, ckpts, data):
        if not test.available:
            continue
        ckpt, method = ckpts[r.label], tables.method_of(r.label)
        base = dict(table=table, method=method, run=ckpt.parent.name, seed=r.seed,
                    profile=profile.name, data=test.label)  # fmt: skip
        gates = adec_gates(load_checkpoint(ckpt, r.daclip_checkpoint or None)[0])
        for g in gates.itertuples():
            rows += [{**base, "quantity": q, "position": g.position, "task": "",
                      "value": getattr(g, q)} for q in GATES]  # fmt: skip
        mine = images[(images["run"] == base["run"]) & (images["seed"] == r.seed)]
        psnr = mine[mine["metric"] == "PSNR"]
        for name, ts in _columns(table, psnr["task"]):
            ci = _effect(mine, method, ts, sign=-1)
            means = psnr[psnr["task"].isin(ts)].groupby("task")[["value", "value_off"]].mean()
            rows.append({**base, "quantity": CHANGE, "position": ALL, "task": name,
                         "value": ci.estimate, "n": ci.n, "ci_low": ci.low, "ci_high": ci.high,
                         "psnr_on": means["value"].mean(),
                         "psnr_off": means["value_off"].mean()})  # fmt: skip
    return pd.DataFrame(rows, columns=ADEC_COLUMNS).astype({"n": "Int64"})


# The paper prints PSNR to 0.01 dB: a change whose whole interval lies closer to zero than that
# cannot move any printed cell, so the branch is inert at this scale.
NEGLIGIBLE_DB = 0.01
INERT = "inert at this scale"


def negligible(row) -> bool:
    """The whole 95 % interval of a change row lies within ±`NEGLIGIBLE_DB` (or, with no
    interval, the change itself is exactly zero)."""
    if not np.isfinite(row["ci_low"]):
        return row["value"] == 0
    return -NEGLIGIBLE_DB < row["ci_low"] and row["ci_high"] < NEGLIGIBLE_DB


def change_verdict(row) -> str:
    """The claim that ADEC matters (switching its branch off lowers PSNR) against one change
    row of `table_summary`: `INERT` when the change is `negligible`, else `verdicts.verdict`
    on off − on, which the claim expects below zero."""
    if negligible(row):
        return INERT
    ci = stats.Interval(row["value"], row["ci_low"], row["ci_high"], int(row["n"]))
    return verdicts.verdict(-1, ci)


def effect_verdict(ci: stats.Interval) -> str:
    """The claim that ADEC matters against the branch's effect on − off (`claim_rows`)."""
    return change_verdict(dict(value=-ci.estimate, ci_low=-ci.high, ci_high=-ci.low, n=ci.n))


def _db(x: float) -> str:
    """dB with the digits that show where it lies against `NEGLIGIBLE_DB`."""
    if abs(x) >= 0.095 or x == 0:
        return f"{x:+.2f}"
    return f"{x:+.3f}" if abs(x) >= 0.0005 else f"{x:+.1e}"


def _bracket(low, high, fmt=_db) -> str:
    """The interval "[lo, hi]", or "(no interval)" where no variance could be estimated."""
    return f"[{fmt(low)}, {fmt(high)}]" if np.isfinite(low) else "(no interval)"


def _count(called: list[str]) -> str:
    """ "of n: 2 supports, 3 inert at this scale", in the order the verdicts first appear."""
    return f"of {len(called)}: " + ", ".join(
        f"{called.count(v)} {v}" for v in dict.fromkeys(called)
    )


def adec_text(summary: pd.DataFrame):
    """The notebook's prose on ADEC, computed from `table_summary`'s rows: per M²IR row its
    mean |α| per position (each seed), then per column (and seed) "switching ADEC off
    changes PSNR by X dB [lo, hi] on T" with the verdict on the claim that ADEC matters
    (`change_verdict`), and the count of verdicts. Returns IPython Markdown."""
    if summary.empty:
        return Markdown(
            "No M²IR run with ADEC was trained and scored for this table (no data, or not "
            "trained): nothing to say about ADEC here."
        )
    lines = []
    for method, d in summary.groupby("method", sort=False):
        seeds = list(dict.fromkeys(d["seed"]))
        several = len(seeds) > 1
        a = d[d["quantity"] == "alpha_abs_mean"]
        per_pos = [
            f"{pos} {' / '.join(f'{v:.3g}' for v in g['value'])}"
            for pos, g in a.groupby("position", sort=False)
        ]
        who = f" (seeds {' / '.join(map(str, seeds))})" if several else ""
        lines.append(f"**{method}**: mean |α| per ADEC{who}: {', '.join(per_pos)}.")
        called, bullets = [], []
        for _, r in d[d["quantity"] == CHANGE].iterrows():
            v = change_verdict(r)
            if r["task"] != results.AVERAGE:
                called.append(v)
            seed = f"n={int(r['n'])}, seed {r['seed']}" if several else f"n={int(r['n'])}"
            why = f" (the whole interval within ±{NEGLIGIBLE_DB} dB)" if v == INERT else ""
            bullets.append(
                f"- switching ADEC off changes PSNR by {_db(r['value'])} dB "
                f"{_bracket(r['ci_low'], r['ci_high'])} on "
                f"{r['task']} ({r['psnr_on']:.2f} → {r['psnr_off']:.2f} dB, {seed}): "
                f"{v}{'' if v == INERT else ' the claim that ADEC matters'}{why}"
            )
        lines.append("\n".join(bullets))
        lines.append(
            f"**Claim: ADEC matters** (switching its expert branch off lowers PSNR). This run, "
            f"per column{' and seed' if several else ''}, {_count(called)}."
        )
    return Markdown("\n\n".join(lines))


# ---------------------------------------------------------------------------- claim rows


def _over_seeds(values) -> stats.Interval:
    """Mean of one number per training seed with its t interval over seeds (none from one)."""
    x = np.asarray(values, dtype=float)
    n, est = len(x), float(x.mean())
    if n < 2:
        return stats.Interval(est, float("nan"), float("nan"), 1, n)
    se = float(x.std(ddof=1) / np.sqrt(n))
    half = float(sps.t.ppf(1 - (1 - stats.CONFIDENCE) / 2, n - 1)) * se
    return stats.Interval(est, est - half, est + half, 1, n, se, n - 1.0)


def _units_needed(ci: stats.Interval, verdict: str) -> str:
    """What design would decide an undecided claim: one that detects `NEGLIGIBLE_DB`, the
    smallest change the paper prints; the detectable difference shrinks as 1/√units."""
    if verdict in (verdicts.SUPPORTS, verdicts.CONTRADICTS, INERT):
        return "decided at this design"
    d = ci.detectable()
    if not np.isfinite(d):
        return "at least 2 independent units (photographs) for an interval"
    need = int(np.ceil(ci.n * (d / NEGLIGIBLE_DB) ** 2))
    return f"≈ {need} independent units (now {ci.n}) to detect {NEGLIGIBLE_DB} dB"


def claim_rows(table: str, summary: pd.DataFrame, images: pd.DataFrame) -> list[dict]:
    """ADEC's claim rows of one table (`claims.CLAIM_COLUMNS`), per M²IR row of it.

    * the branch-off effect: PSNR as trained − PSNR with every ADEC off, the mean of the
      row's column means, paired over the same images and seeds, its interval over
      photographs and seeds (`stats.design_interval`); the verdict on "ADEC matters" is
      `INERT` when the whole interval lies within ±`NEGLIGIBLE_DB` (`effect_verdict`);
    * mean |α| of the row's ADECs (our extra reading: how far the branch reaches the decoder),
      its interval over seeds; a description, not a claim of the paper.

    Args:
        table: Roman number; summary: `table_summary`'s rows; images: `branch_off_images`'.
    """
    rows = []
    source = f"ADEC (Table {table})"
    for method, d in summary.groupby("method", sort=False):
        tasks = _covered(table, d.loc[d["quantity"] == CHANGE, "task"])
        if not tasks:
            continue
        ci = _effect(images, method, tasks)
        verdict = effect_verdict(ci)
        where = tasks[0] if len(tasks) == 1 else f"mean of {len(tasks)} columns"
        rows.append(dict(
            source=source, claim=f"ADEC matters for {method}: its branch raises PSNR ({where})",
            kind=claims.PAPER, metric="PSNR, ADEC on − off (dB)", paper_effect=float("nan"),
            estimate=ci.estimate, ci_low=ci.low, ci_high=ci.high, n_units=ci.n,
            n_seeds=ci.n_seeds, detectable=ci.detectable(), verdict=verdict,
            design=_units_needed(ci, verdict),
        ))  # fmt: skip
        alpha = d[d["quantity"] == "alpha_abs_mean"].groupby("seed")["value"].mean()
        a = _over_seeds(alpha.to_numpy())
        rows.append(dict(
            source=source, claim=f"mean |α| of {method}'s ADECs (our extra reading)",
            kind=claims.EXTRA, metric="mean |α|", paper_effect=float("nan"),
            estimate=a.estimate, ci_low=a.low, ci_high=a.high, n_units=float("nan"),
            n_seeds=a.n_seeds, detectable=float("nan"), verdict=DESCRIPTIVE,
            design="a description of the trained gates, not a test",
        ))  # fmt: skip
    return rows


DESCRIPTIVE = "no verdict (a description)"


def claims_caption(rows: list[dict]):
    """One computed sentence per M²IR row from `claim_rows`: the branch-off effect with its
    interval and design, mean |α|, and the verdict. Returns IPython Markdown."""
    if not rows:
        return Markdown("No M²IR run with ADEC was scored for this table: no ADEC claim.")
    out = []
    for effect, alpha in zip(rows[::2], rows[1::2], strict=True):
        inert = effect["verdict"] == INERT
        why = f" (the whole interval within ±{NEGLIGIBLE_DB} dB)" if inert else ""
        seeds = f"seed{'s' if effect['n_seeds'] > 1 else ''}"
        out.append(
            f"**{effect['source']}**: {effect['claim']}. PSNR with every ADEC on − off: "
            f"{_db(effect['estimate'])} dB {_bracket(effect['ci_low'], effect['ci_high'])} "
            f"({effect['n_units']} independent units × {effect['n_seeds']} {seeds}; "
            f"detectable here {effect['detectable']:.2g} dB); mean |α| {alpha['estimate']:.3g} "
            f"{_bracket(alpha['ci_low'], alpha['ci_high'], lambda x: f'{x:.3g}')}. "
            f"Verdict: **{effect['verdict']}**{why}."
        )
    return Markdown("\n\n".join(out))


def write_adec(
    summary: pd.DataFrame, profile: Profile | str, table: str, root: str | Path | None = None
):
    """Write a table's ADEC report (`adec.table_summary`) to `results/<profile>/<stem>_adec.csv`
    (atomic); an empty one (no M²IR run trained) is written with its header only."""
    missing = [c for c in ADEC_COLUMNS if c not in summary.columns]
    if missing:
        raise ValueError(f"ADEC rows lack columns {missing}; expected {ADEC_COLUMNS}")
    return results.write_frame(
        summary[ADEC_COLUMNS], profile, f"{results.spec(table).stem}_adec", root
    )


def write_adec_claims(rows: list[dict], profile: Profile | str, table: str, root=None) -> Path:
    """Write a table's ADEC claim rows (`claim_rows`) to
    `results/<profile>/<stem>_adec_claims.csv`, beside `<stem>_adec.csv`."""
    return claims.write_claims(rows, profile, f"{results.spec(table).stem}_adec", root)
