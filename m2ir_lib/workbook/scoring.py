"""How trained runs become a table's rows (§IV, Tables I–XII): evaluation, its cache, cells.

`score_rows` evaluates a table's runs (plus the degraded input as a reference row, and the
authors' released rival weights when given: `released_checkpoints`) under the table's
protocol and names each number after the paper's column. `evaluate_run` caches every
evaluation's per-image scores beside its checkpoint, keyed by the weights, the manifest, the
protocol and the library's source; `evaluate_in_parallel` fills it with one-thread processes.

Every score is kept per test image (`results.write_per_image`, `per_image_rows`), so each
cell carries its image count and a 95 % interval (`m2ir_lib.workbook.stats`). A row trained
with several seeds (`tables.HEADLINE`) is one cell per column: the mean over seeds, with
`seed_sd` the spread between them.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import torch

from m2ir_lib.core.config import Profile, check_profile
from m2ir_lib.core.released import load_released
from m2ir_lib.core.rivals import RIVAL_LABELS, RIVALS
from m2ir_lib.data.files import atomic_write_text
from m2ir_lib.data.metrics import NA_WEIGHTS
from m2ir_lib.engine.evaluate import evaluate, evaluate_identity, merge_shards, summarize
from m2ir_lib.engine.probes import switch_off
from m2ir_lib.engine.runs import load_checkpoint, runs_root
from m2ir_lib.workbook import results, stats
from m2ir_lib.workbook.experiments import IDENTITY, Run
from m2ir_lib.workbook.settings import SETTINGS, Data, user_path
from m2ir_lib.workbook.tables import method_of


def _task_key(table: str, task: str, sigma: float, dataset: str) -> str:
    """The paper's column for one evaluated (task, sigma[, dataset])."""
    if table == "V":
        if task == "denoise":  # a stand-in test set takes BSD68's place
            known = dataset in ("BSD68", "Urban100", "Kodak24")
            return f"{dataset if known else 'BSD68'}/{int(sigma)}"
        return {"dehaze": "SOTS", "derain": "Rain100L"}.get(task, task)
    if task == "denoise":
        return f"denoise-{int(sigma)}"
    return task


def summary_values(table: str, summary: pd.DataFrame) -> tuple[dict, list[str]]:
    """({(task, metric): value}, [notes for metrics without a value]) from `evaluate`'s summary."""
    paper = results.paper_table(table)
    wanted = set(paper["task"])
    values, missing = {}, []
    for _, row in summary.iterrows():
        key = _task_key(table, row["task"], row.get("sigma"), row.get("dataset", ""))
        if key not in wanted:
            continue
        for metric in ("psnr", "ssim", "lpips", "fid"):
            if metric not in row:
                continue
            v = row[metric]
            if isinstance(v, str):
                missing.append(f"{key} {metric.upper()}: {v}")
            else:
                values[(key, metric.upper())] = float(v)
    return values, missing


def evaluate_run(
    ckpt: Path | None,
    data: Data,
    profile: Profile,
    daclip_checkpoint: str = "",
    inception_weights: str = "",
    *,
    adec_off: bool = False,
):
    """`evaluate` a checkpoint (None = the degraded input itself) on a setting's test split;
    FID (WeatherBench) when `inception_weights` names pytorch-fid's weights file; with
    `adec_off`, the network with every ADEC's α set to 0 (`probes.switch_off`: its expert
    branch switched off), on the same images, cached apart (`eval-adec-off-<key>.csv`).

    The per-image scores are cached beside the checkpoint (`runs/<profile>/identity/` for the
    degraded input), keyed by the checkpoint file, the manifest, the protocol and the library's
    source, so a run that several tables score (the full model of Tables VII–XII, each of its
    seeds) is evaluated once; any change to the code or the data evaluates again. FID is a
    statistic of the whole image set, not of one image, so an evaluation with FID is not cached.
    """
    check_profile(profile)
    if ckpt is None:
        folder = runs_root() / profile.name / "identity"
        return _evaluate_cached(None, None, folder, data, profile, "", inception_weights)
    return _evaluate_cached(
        lambda: _run_model(ckpt, daclip_checkpoint, adec_off),
        ckpt, Path(ckpt).parent, data, profile, daclip_checkpoint, inception_weights,
        tag="adec-off" if adec_off else "",
    )  # fmt: skip


def evaluate_weights(name: str, weights: Path, data: Data, profile: Profile, inception_weights=""):
    """`evaluate_run` for the authors' released weights of rival `name` (`released.load_released`),
    cached under `runs/<profile>/released/<name>/`, keyed by the weights file as a run's
    scores are by its checkpoint."""
    folder = runs_root() / profile.name / "released" / name
    return _evaluate_cached(
        lambda: load_released(name, weights), Path(weights), folder, data, profile, "",
        inception_weights,
    )  # fmt: skip


def _eval_cache(weights, folder, data, profile, daclip_checkpoint, inception_weights, tag=""):
    """The cache file of one evaluation, and `evaluate`'s options that its key covers."""
    s = SETTINGS[data.setting]
    kw = dict(
        data_root=data.root,
        tasks=list(s.eval_tasks) if s.eval_tasks else None,
        max_images=profile.eval_max_images,
        inception_weights=inception_weights or None,
    )
    key = _eval_key(weights, data, s.protocol, kw, daclip_checkpoint)
    return Path(folder) / f"eval-{tag + '-' if tag else ''}{key}.csv", kw


def _run_model(ckpt, daclip_checkpoint: str, adec_off: bool):
    """The network of a checkpoint, with its ADEC branches switched off when `adec_off`."""
    model = load_checkpoint(ckpt, daclip_checkpoint or None)[0]
    if adec_off:
        model = switch_off(model)
    return model


def _evaluate_shard(item: tuple, shard: tuple[int, int]) -> pd.DataFrame:
    """One worker's share of one evaluation (`evaluate_in_parallel`), on one thread; the first
    worker's line reaches the terminal of `make reproduce` (a worker's stderr is the kernel's)."""
    torch.set_num_threads(1)
    (ckpt, data, _, daclip_checkpoint, adec_off, kw), t0 = item, time.perf_counter()
    model = _run_model(ckpt, daclip_checkpoint, adec_off)
    img = evaluate(model, data.manifest, SETTINGS[data.setting].protocol, shard=shard, **kw)[0]
    if shard[0] == 0:
        what = f"{data.setting} run {Path(ckpt).parent.name}" + " (ADEC off)" * adec_off
        print(f"  evaluated {what}: {len(img)} images in {time.perf_counter() - t0:.0f} s "
              f"(worker 1 of {shard[1]})", file=sys.stderr, flush=True)  # fmt: skip
    return img


def evaluate_in_parallel(items: list[tuple], profile: Profile, jobs: int = 0) -> int:
    """Fill `evaluate_run`'s cache for `items` with `jobs` one-thread processes, so the table
    code that follows reads every score from the cache.

    Each evaluation's test images are dealt out to the workers (`evaluate(..., shard=)`), so
    any number of evaluations keeps every core busy. On two cores this scored 3.5–3.75
    images/s against 2.3–2.8 for one two-thread process, 1.2–1.6× over three runs
    (`benchmarks/bench_eval.py`, `benchmarks/measured/cpu_2threads_eval_5d.json`); training
    uses the same placement. Each image still goes through the network alone (batch 1) with
    its full-run input, so the numbers are a sequential evaluation's up to float rounding.
    Runs only where it pays: on CPU, with at least 8 images per task (not at `smoke`).

    Args:
        items: (checkpoint, Data, daclip_checkpoint, adec_off) tuples.
        profile: the run profile.
        jobs: worker processes; 0 = the CPU's cores.

    Returns:
        how many evaluations ran in parallel (0 when none did).
    """
    check_profile(profile)
    cap = profile.eval_max_images
    todo = {}
    for ckpt, data, daclip, off in items:
        tag = "adec-off" if off else ""
        cache, kw = _eval_cache(ckpt, Path(ckpt).parent, data, profile, daclip, "", tag)
        if data.available and not cache.is_file():
            todo[cache] = (Path(ckpt), data, profile.name, daclip, off, kw)
    jobs = jobs or os.cpu_count() or 1
    if not todo or jobs < 2 or torch.cuda.is_available() or (cap is not None and cap < 8):
        return 0

    with ProcessPoolExecutor(jobs, mp_context=get_context("spawn")) as pool:
        parts = {
            cache: [pool.submit(_evaluate_shard, item, (k, jobs)) for k in range(jobs)]
            for cache, item in todo.items()
        }
        for cache, futures in parts.items():
            img = merge_shards([f.result() for f in futures])
            atomic_write_text(img.to_csv(index=False), cache)
    return len(todo)


def _evaluate_cached(
    build, weights, folder, data, profile, daclip_checkpoint, inception_weights, tag=""
):
    """Per-image scores and summary of `build()`'s network (None: the degraded input), read from
    `folder`'s cache when the weights file, manifest, protocol and code are unchanged; `tag`
    names a variant of the same weights (e.g. "adec-off") so its cache file stays apart."""
    s = SETTINGS[data.setting]
    inception_weights = user_path(inception_weights, "inception_weights")  # notebooks/ too
    args = (data, profile, daclip_checkpoint, inception_weights, tag)
    cache, kw = _eval_cache(weights, folder, *args)
    if cache.is_file() and not inception_weights:
        img = pd.read_csv(
            cache,
            dtype={"name": str, "dataset": str, "unit": str},
            keep_default_na=False,
            na_values={"sigma": [""]},
        )
        img = img.apply(lambda c: pd.to_numeric(c) if c.name in ("psnr", "ssim") else c)
        if "lpips" in img and not (img["lpips"] == NA_WEIGHTS).any():
            img["lpips"] = pd.to_numeric(img["lpips"])
        return img, summarize(img, weather=s.protocol == "weatherbench")
    if build is None:
        img, summary = evaluate_identity(data.manifest, s.protocol, **kw)
    else:
        img, summary = evaluate(build(), data.manifest, s.protocol, **kw)
    atomic_write_text(img.to_csv(index=False), cache)
    return img, summary


RELEASED_ROW = "{name} (released weights)"


def released_label(name: str) -> str:
    """The row of rival `name`'s released weights, e.g. 'AdaIR (released weights)'."""
    return RELEASED_ROW.format(name=RIVAL_LABELS[name])


WEIGHT_SUFFIXES = (".ckpt", ".pth", ".pt")


def released_checkpoints(spec: str) -> dict[str, Path]:
    """The released rival weights a table notebook's `rival_checkpoints` names: rival -> file.

    `spec` is "" (none), a comma list `promptir=/path/a.ckpt,adair=/path/b.ckpt,restormer=/c.pth`,
    or a folder holding files named after the rivals (`promptir.ckpt`, `adair.ckpt`,
    `restormer.pth`; any of `WEIGHT_SUFFIXES`). A named file that does not exist, an unknown
    rival or a folder with none of them is an error that says which.
    """
    spec = spec.strip()
    if not spec:
        return {}
    if "=" not in spec:
        folder = Path(user_path(spec, "rival_checkpoints"))  # from notebooks/ too
        if not folder.is_dir():
            raise FileNotFoundError(
                f"rival_checkpoints={spec!r}: no such folder (or use name=path,name=path)"
            )
        found = [folder / f"{n}{x}" for n in RIVALS for x in WEIGHT_SUFFIXES]
        out = {p.stem: p for p in reversed(found) if p.is_file()}  # .ckpt before .pth, .pt
        if not out:
            raise FileNotFoundError(
                f"{folder} holds none of {[f'{n}.ckpt|.pth|.pt' for n in RIVALS]}"
            )
        return out
    out = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, _, path = part.partition("=")
        name, path = name.strip().lower(), Path(user_path(path, "rival_checkpoints"))
        if name not in RIVALS:
            raise ValueError(
                f"rival_checkpoints: unknown rival {name!r} in {part!r}; known: {RIVALS}"
            )
        if not path.is_file():
            raise FileNotFoundError(f"rival_checkpoints: no {name} weights file at {path}")
        out[name] = path
    return out


def _eval_key(ckpt, data: Data, protocol: str, kw: dict, daclip_checkpoint: str) -> str:
    """What an evaluation depends on: checkpoint file, manifest file, protocol, options, code."""
    parts = [protocol, json.dumps(kw, default=str, sort_keys=True), daclip_checkpoint]
    for f in [ckpt, data.manifest]:
        st = Path(f).stat() if f is not None else None
        parts.append(f"{f}:{st.st_size}:{st.st_mtime_ns}" if st else "identity")
    parts.append(_library_digest())
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def _library_digest() -> str:
    """SHA-256 of the library's sources as they are on disk now; the files are read again
    only when one's size or modification time changed (an edit in a notebook session is
    still seen, without re-reading every source on every evaluation)."""
    srcs = sorted(Path(__file__).parents[1].rglob("*.py"))  # every layer of m2ir_lib
    return _digest_of(tuple((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in srcs))


@functools.lru_cache(maxsize=8)
def _digest_of(stamps: tuple) -> str:
    h = hashlib.sha256()
    for path, *_ in stamps:
        h.update(Path(path).read_bytes())
    return h.hexdigest()


def per_image_rows(table: str, method: str, run: str, seed: int, per_image: pd.DataFrame):
    """`evaluate`'s per-image frame as long rows (`stats.PER_IMAGE_COLUMNS`), tasks named after
    the paper's columns; columns the paper's table lacks and metrics without a number (LPIPS
    without weights) are left out."""
    wanted = set(results.paper_table(table)["task"])
    unit = per_image["unit"] if "unit" in per_image else per_image["name"]  # each image alone
    d = per_image.assign(
        unit=unit,
        key=[
            _task_key(table, t, sg, ds)
            for t, sg, ds in zip(
                per_image["task"], per_image["sigma"], per_image["dataset"], strict=True
            )
        ],
    )
    d = d[d["key"].isin(wanted)]
    metrics = [
        m for m in ("psnr", "ssim", "lpips") if m in d and pd.api.types.is_numeric_dtype(d[m])
    ]
    long = d.melt(
        id_vars=["key", "dataset", "sigma", "name", "unit"], value_vars=metrics, var_name="metric"
    )
    long = long.rename(columns={"key": "task", "name": "image"}).assign(
        table=table, method=method, run=run, seed=int(seed), metric=long["metric"].str.upper()
    )
    return long[stats.PER_IMAGE_COLUMNS]


def score_rows(
    table: str,
    runs: list[Run],
    ckpts: dict[str, Path],
    *,
    profile: Profile,
    data: Data | None = None,
    identity: bool = True,
    write: bool = True,
    inception_weights: str = "",
    released: dict[str, Path] | None = None,
) -> pd.DataFrame:
    """Long rows of every run's scores, plus the identity row, or status rows for what is missing.

    Runs of one row trained with several seeds (labels `<row> · seed k`) make one row: the
    mean over seeds, with `n_seeds` and `seed_sd`. Every cell gets its image count and 95 %
    interval from the per-image scores, which are written beside the table
    (`results.write_per_image`, read back with `results.read_per_image`).

    Args:
        table: Roman number of the paper table (fixes the column names).
        runs: the planned runs (their labels, notes, data).
        ckpts: `train_runs`' result.
        profile: the run profile.
        data: the evaluation data (default: each run's own training data).
        identity: add the degraded input as a reference row (the table's floor).
        write: write the per-image file.
        inception_weights: pytorch-fid's Inception weights (FID of Table IV); "" = no FID.
        released: the authors' released rival weights (`released_checkpoints`), each scored
            on the same test set as a row `RELEASED_ROW` beside the paper's printed one.
    """
    check_profile(profile)
    frames, images = [], []
    seed = runs[0].seed if runs else 0
    by_method: dict[str, list[Run]] = {}
    for run in runs:
        by_method.setdefault(method_of(run.label), []).append(run)
    if not inception_weights:  # FID scores a whole set, so those evaluations are not cached
        evaluate_in_parallel(
            [(ckpts[r.label], data or r.data, r.daclip_checkpoint, False)
             for r in runs if r.label in ckpts],
            profile,
        )  # fmt: skip
    for method, group in by_method.items():
        test = data or group[0].data
        done = [r for r in group if test.available and r.label in ckpts]
        if not done:
            reason = test.reason or group[0].data.reason or "not trained"
            frames.append(
                results.status_row(
                    table, method, reason, profile=profile, seed=group[0].seed, data=test.label
                )
            )
            continue
        scored = [
            (
                r,
                *evaluate_run(
                    ckpts[r.label], test, profile, r.daclip_checkpoint, inception_weights
                ),
            )
            for r in done
        ]
        long = [
            per_image_rows(table, method, ckpts[r.label].parent.name, r.seed, img)
            for r, img, _ in scored
        ]
        images += long
        frames.append(
            _rows_from(table, method, scored, pd.concat(long), profile, test, group[0].note)
        )
    # Rows without a training run of ours (released weights, the floor) keep the data seed.
    untrained = SimpleNamespace(seed=seed)
    if released:
        frames += _released_rows(table, released, data or runs[0].data, untrained, profile,
                                 images, inception_weights)  # fmt: skip
    # The floor on every test set the rows were scored on (Table V: one per task).
    tests = [data] if data else list({r.data.setting: r.data for r in runs}.values())
    tests = [t for t in tests if t.available]
    if identity and tests:
        scored = [
            (untrained, *evaluate_run(None, t, profile, inception_weights=inception_weights))
            for t in tests
        ]
        long = pd.concat([per_image_rows(table, IDENTITY, "", seed, img) for _, img, _ in scored])
        images.append(long)
        label = "; ".join(dict.fromkeys(t.label for t in tests))
        test = dataclasses.replace(tests[0], label=label)
        frames.append(_rows_from(table, IDENTITY, scored, long, profile, test, ""))
    if write:
        empty = pd.DataFrame(columns=stats.PER_IMAGE_COLUMNS)
        results.write_per_image(pd.concat([empty, *images], ignore_index=True), profile, table)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=results.COLUMNS)


def _released_rows(table, released, test, run, profile, images, inception_weights):
    """Rows of the released rival weights on `test` (per-image rows appended to `images`)."""
    frames = []
    for name, path in released.items():
        method = released_label(name)
        if not test.available:
            frames.append(
                results.status_row(table, method, test.reason, profile=profile, data=test.label)
            )
            continue
        img, summary = evaluate_weights(name, path, test, profile, inception_weights)
        long = per_image_rows(table, method, Path(path).name, run.seed, img)
        images.append(long)
        note = f"the authors' released weights ({Path(path).name}), scored here"
        frames.append(_rows_from(table, method, [(run, img, summary)], long, profile, test, note))
    return frames


def _rows_from(table, label, scored, long, profile, data, note):
    """One row's cells: per-image metrics reduced by `stats.cell_stats`; set metrics (FID) from
    the summaries, averaged over seeds; status rows for metrics without a number."""
    cells = stats.cell_stats(long)
    values = {(c.task, c.metric): c.value for c in cells.itertuples()}
    unc = {
        (c.task, c.metric): {k: getattr(c, k) for k in results.UNCERTAINTY}
        for c in cells.itertuples()
    }
    set_values, missing = {}, []
    for _, _, summary in scored:
        v, m = summary_values(table, summary)
        for key, x in v.items():
            if key not in values:
                set_values.setdefault(key, []).append(x)
        missing += [x for x in m if x not in missing]
    values.update({k: sum(v) / len(v) for k, v in set_values.items()})
    seeds = (
        ",".join(sorted({str(r.seed) for r, _, _ in scored}, key=int))
        if label != IDENTITY
        else str(scored[0][0].seed)
    )
    if len(scored) > 1 and label != IDENTITY:
        note = "; ".join(filter(None, [note, f"mean of {len(scored)} training seeds"]))
    out = [
        results.rows(
            table,
            label,
            values,
            profile=profile,
            seed=seeds,
            data=data.label,
            note=note,
            uncertainty=unc,
        )
    ]
    out += [
        results.status_row(
            table, label, m, profile=profile, seed=scored[0][0].seed, data=data.label
        )
        for m in missing
    ]
    return pd.concat(out, ignore_index=True)


def missing_columns(table: str, rows: pd.DataFrame, profile: Profile, reason: str) -> pd.DataFrame:
    """Status rows for the paper's columns (tasks) that no reproduced row covers."""
    covered = set(rows.loc[rows["metric"] != results.STATUS, "task"])
    paper = results.paper_table(table)
    gaps = [t for t in dict.fromkeys(paper["task"]) if t not in covered | {results.AVERAGE}]
    return (
        pd.concat(
            [results.status_row(table, "—", reason, profile=profile, task=t) for t in gaps],
            ignore_index=True,
        )
        if gaps
        else rows.iloc[:0]
    )
