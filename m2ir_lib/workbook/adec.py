"""How much a trained M²IR uses its ADECs (§III-C): the gates α, β and what the branch adds.

Each ADEC returns α⊙X̃ + β⊙X̂ (eq. 3–7 give X̃; the α/β residual is our reading, AdaIR's
para1/para2). A small |α| means the expert branch barely reaches the decoder, whatever the
routing does, so a table that credits ADEC should show both numbers:

    gates = probes.adec_gates(ckpt)                        # |α|, β per ADEC
    share = probes.branch_share(ckpt, images)              # ‖α⊙X̃‖ / ‖β⊙X̂‖ per ADEC
    per_image, summary = adec.adec_ablation(ckpt, data)    # PSNR with the branch on and off
    rows = adec.table_summary("I", runs, ckpts, profile=p)  # Tables I–V: per run, cached
    adec.adec_text(rows)                                     # the notebook's verdict prose

"Off" forces α = 0 in every ADEC (X' = β⊙X̂: the decoder sees its own features, scaled as
trained); nothing is retrained, so the difference is what the trained branch contributes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from IPython.display import Markdown

from m2ir_lib.core.config import M2IRConfig, Profile, check_profile
from m2ir_lib.engine.evaluate import evaluate
from m2ir_lib.engine.probes import adec_gates, adec_off, as_model
from m2ir_lib.engine.runs import load_checkpoint
from m2ir_lib.workbook import results, scoring, stats, tables, verdicts
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


def table_summary(table: str, runs, ckpts: dict, *, profile: Profile, data=None) -> pd.DataFrame:
    """What ADEC does in a comparison table's M²IR runs: gates and the PSNR change when off.

    For every trained run whose network has ADECs (not the Restormer-style row, not the
    rivals), each seed apart: one row per ADEC position and gate (`GATES`, read from the
    checkpoint) and one row per column of the paper's table (plus the Average where the
    paper has one and the run covers several columns) with the mean over test images of
    PSNR(off) − PSNR(on), its paired 95 % bootstrap interval
    (`stats.paired_difference_of_means`, same images on both sides) and the two means.
    "On" is `scoring.evaluate_run`'s cached evaluation (the table's own numbers); "off" is one
    more pass with α = 0, cached beside it.

    Args:
        table: Roman number ("I" … "V").
        runs, ckpts: the table's planned runs and `experiments.train_runs`' result.
        profile: the run profile.
        data: the evaluation data (default: each run's own), as for `scoring.score_rows`.

    Returns:
        Columns `ADEC_COLUMNS`; no rows when no M²IR run was trained (no data).
    """
    check_profile(profile)
    order = list(dict.fromkeys(results.paper_table(table)["task"]))  # the paper's columns
    scoring.evaluate_in_parallel(
        [(ckpts[r.label], data or r.data, r.daclip_checkpoint, off)
         for r in runs if r.label in ckpts and isinstance(r.model, M2IRConfig) and r.model.has_adec
         for off in (False, True)],
        profile,
    )  # fmt: skip
    rows = []
    for r in runs:
        test = data or r.data
        ok = isinstance(r.model, M2IRConfig) and r.model.has_adec and r.label in ckpts
        if not (ok and test.available):
            continue
        ckpt, method = ckpts[r.label], tables.method_of(r.label)
        base = dict(table=table, method=method, run=ckpt.parent.name, seed=r.seed,
                    profile=profile.name, data=test.label)  # fmt: skip
        gates = adec_gates(load_checkpoint(ckpt, r.daclip_checkpoint or None)[0])
        for g in gates.itertuples():
            rows += [{**base, "quantity": q, "position": g.position, "task": "",
                      "value": getattr(g, q)} for q in GATES]  # fmt: skip
        side = {}
        for off in (False, True):
            img, _ = scoring.evaluate_run(ckpt, test, profile, r.daclip_checkpoint, adec_off=off)
            long = scoring.per_image_rows(table, method, base["run"], r.seed, img)
            long = long[long["metric"] == "PSNR"].assign(sigma=lambda d: d["sigma"].astype(str))
            side[off] = long.set_index(["task", "dataset", "sigma", "image"])["value"]
        tasks = [t for t in order if t in set(side[False].index.get_level_values("task"))]
        groups = [(t, [t]) for t in tasks]
        groups += [(results.AVERAGE, tasks)] if results.AVERAGE in order and len(tasks) > 1 else []
        for name, ts in groups:
            on = [side[False].xs(t, level="task") for t in ts]
            off = [side[True].xs(t, level="task") for t in ts]
            ci = stats.paired_difference_of_means(off, on, nonfinite="nan")
            rows.append({**base, "quantity": CHANGE, "position": ALL, "task": name,
                         "value": ci.estimate, "n": ci.n, "ci_low": ci.low, "ci_high": ci.high,
                         "psnr_on": sum(s.mean() for s in on) / len(on),
                         "psnr_off": sum(s.mean() for s in off) / len(off)})  # fmt: skip
    return pd.DataFrame(rows, columns=ADEC_COLUMNS).astype({"n": "Int64"})


# The paper prints PSNR to 0.01 dB: a change whose whole interval lies closer to zero than that
# cannot move any printed cell, so it counts against the claim that ADEC matters.
NEGLIGIBLE_DB = 0.01


def negligible(row) -> bool:
    """The whole 95 % interval of a change row lies within ±`NEGLIGIBLE_DB` (or, with no
    interval, the change itself is exactly zero)."""
    if not np.isfinite(row["ci_low"]):
        return row["value"] == 0
    return -NEGLIGIBLE_DB < row["ci_low"] and row["ci_high"] < NEGLIGIBLE_DB


def change_verdict(row) -> str:
    """The claim that ADEC matters (switching its branch off lowers PSNR) against one change
    row of `table_summary`: contradicted when the change is `negligible`, else
    `verdicts.verdict` on off − on, which the claim expects below zero."""
    if negligible(row):
        return verdicts.CONTRADICTS
    ci = stats.Interval(row["value"], row["ci_low"], row["ci_high"], int(row["n"]))
    return verdicts.verdict(-1, ci)


def _db(x: float) -> str:
    """dB with the digits that show where it lies against `NEGLIGIBLE_DB`."""
    if abs(x) >= 0.095 or x == 0:
        return f"{x:+.2f}"
    return f"{x:+.3f}" if abs(x) >= 0.0005 else f"{x:+.1e}"


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
            ci = (f"[{_db(r['ci_low'])}, {_db(r['ci_high'])}]" if np.isfinite(r["ci_low"])
                  else "(no interval)")  # fmt: skip
            why = f" (the whole interval within ±{NEGLIGIBLE_DB} dB)" if negligible(r) else ""
            bullets.append(
                f"- switching ADEC off changes PSNR by {_db(r['value'])} dB {ci} on "
                f"{r['task']} ({r['psnr_on']:.2f} → {r['psnr_off']:.2f} dB, {seed}): "
                f"{v} the claim that ADEC matters{why}"
            )
        lines.append("\n".join(bullets))
        lines.append(
            f"**Claim: ADEC matters** (switching its expert branch off lowers PSNR). This run, "
            f"per column{' and seed' if several else ''}, {verdicts._count(called)}."
        )
    return Markdown("\n\n".join(lines))


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
