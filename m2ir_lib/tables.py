"""Which runs make which table of §IV, and how their scores become the table's rows.

Tables I–VI: `table_runs` plans the all-in-one (or one-by-one) runs of a table, `score_rows`
evaluates them (plus the degraded input as a reference row) under the table's protocol and
names each number after the paper's column. Tables VII–XII: `ABLATIONS` holds each table as
(row label, network overrides, training overrides), trained on deraining only with the
profile's ablation schedule (§IV-C); the full-model row is the same configuration in all six,
so the run cache trains it once.

Every score is kept per test image (`results.write_per_image`), so each cell carries its
image count and a 95 % interval (`m2ir_lib.stats`). The headline rows (`HEADLINE`: Table I's
two networks, Table VII's all-off and full rows) train with several seeds when asked
(`seeds`); a cell is then the mean over seeds and its `seed_sd` the spread between them.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
from pathlib import Path
from types import SimpleNamespace

import pandas as pd

from m2ir_lib import results, stats
from m2ir_lib.config import MODEL_PRESETS, get_profile
from m2ir_lib.experiments import (
    BASELINE,
    IDENTITY,
    SETTINGS,
    Data,
    Run,
    locate,
    plan,
    restormer_baseline,
    run_dir,
)
from m2ir_lib.metrics import NA_WEIGHTS

# ---------------------------------------------------------------------------- Tables I–VI

# table -> [(setting, row label template, network overrides)]; "{p}" is the profile name.
TABLE_RUNS: dict[str, list[tuple[str, str, dict]]] = {
    "I": [("3d", "M²IR (ours, {p})", {}), ("3d", "Restormer-style (ours, {p})", BASELINE)],
    "II": [("5d", "M²IR (ours, {p})", {}), ("5d", "Restormer-style (ours, {p})", BASELINE)],
    "III": [("cdd11", "M²IR (ours, {p})", {}), ("cdd11", "Restormer-style (ours, {p})", BASELINE)],
    "IV": [
        ("weatherbench", "M²IR (ours, {p})", {}),
        ("weatherbench", "Restormer-style (ours, {p})", BASELINE),
    ],
    "V": [
        ("denoise", "M²IR (ours, {p}, denoise only)", {}),
        ("dehaze", "M²IR (ours, {p}, dehaze only)", {}),
        ("derain", "M²IR (ours, {p}, derain only)", {}),
    ],
    # Table VI: the 3D models of Table I, tested on unseen snow.
    "VI": [("3d", "M²IR (ours, {p})", {}), ("3d", "Restormer-style (ours, {p})", BASELINE)],
}
# Where each table is evaluated when it is not the training data.
EVAL_SETTING = {"VI": "csd"}
# The rows that train with several seeds (`seeds`): None = every row of the table. The
# full model of Tables VIII–XII is Table VII's full run, so its seeds come from the cache and
# every ablation row can be compared with the full model's seed spread.
_FULL = {
    "VIII": "N=4",
    "IX": "K=2",
    "X": "charb ✓ | balance ✓ | FFT ✓",
    "XI": "λ1=0.01",
    "XII": "λ2=0.1",
}
HEADLINE: dict[str, tuple[str, ...] | None] = {
    "I": None,
    "VII": ("MST ✗ | DACP ✗ | special ✗ | shared ✗", "MST ✓ | DACP ✓ | special ✓ | shared ✓"),
    **{t: (label,) for t, label in _FULL.items()},
}
# The rivals trained beside M²IR (`m2ir_lib.rivals`), one seed (the table's first), same profile,
# schedule, loss and data. Restormer is not trained apart: the Restormer-style row is the
# Restormer architecture layer for layer (`BASELINE_NOTE`). Tables III and IV take them when
# asked (their notebooks' `rivals` parameter): they add ≈1.6 M²IR-runs per table.
TRAINED_RIVALS = ("promptir", "adair")
RIVALS_BY_DEFAULT = ("I", "II")
RIVAL_TABLES = ("I", "II", "III", "IV")
RIVAL_ROW = "{name} (ours, {p})"
BASELINE_NOTE = (
    "the Restormer architecture (MDTA + GDFN U-Net, layer for layer rivals.Restormer, same "
    "init for the same seed) at this profile's size, trained with M²IR's recipe"
)
SEED_TAG = " · seed "  # label of a run trained with an extra seed: "<row> · seed 1"


def method_of(label: str) -> str:
    """The table row a run belongs to: its label without the extra-seed tag."""
    return label.split(SEED_TAG)[0]


def rows_of(runs: list[Run]) -> list[str]:
    """The table rows the runs make, in order (extra seeds of a row count once)."""
    return list(dict.fromkeys(method_of(r.label) for r in runs))


def _seeded(table: str, runs: list[Run], seeds: int) -> list[Run]:
    """Each headline run of `table` once per training seed (seed, seed+1, ...), right after it;
    the data stay those of the first seed, so every seed is tested on the same images."""
    if seeds < 1:
        raise ValueError(f"seeds={seeds}: need at least one training seed")
    if table not in HEADLINE or seeds == 1:
        return runs
    out = []
    for r in runs:
        out.append(r)
        if HEADLINE[table] is None or r.label in HEADLINE[table]:
            out += [
                dataclasses.replace(r, seed=r.seed + k, label=f"{r.label}{SEED_TAG}{r.seed + k}")
                for k in range(1, seeds)
            ]
    return out


def table_runs(
    table: str,
    profile: str,
    *,
    data_root: str = "",
    seed: int = 0,
    seeds: int = 1,
    daclip_checkpoint: str = "",
    rivals: bool | None = None,
) -> list[Run]:
    """The planned runs of Table I–VI (nothing is trained yet).

    Args:
        table: "I" … "VI".
        profile: run profile name.
        data_root: real data folder ("" = the profile's default, see `experiments.locate`).
        seed: seed of data, initialisation and training.
        seeds: training seeds of the `HEADLINE` tables' rows (seed, seed+1, ...); other
            tables train one.
        daclip_checkpoint: DA-CLIP weights; without them the MLP prior stands in.
        rivals: add PromptIR and AdaIR (`TRAINED_RIVALS`, one seed) after the table's rows;
            None = Tables I and II only (`RIVALS_BY_DEFAULT`); only Tables I–IV have them.
    """
    if table not in TABLE_RUNS:
        raise ValueError(f"table {table!r} has no all-in-one runs; known: {list(TABLE_RUNS)}")
    data = {s: locate(s, profile, data_root, seed) for s, _, _ in TABLE_RUNS[table]}
    runs = [
        plan(
            label.format(p=profile),
            profile,
            data[s],
            model=restormer_baseline(profile) if m is BASELINE else m,  # sized per profile
            seed=seed,
            daclip_checkpoint=daclip_checkpoint,
        )
        for s, label, m in TABLE_RUNS[table]
    ]
    runs = [
        dataclasses.replace(r, note="; ".join(filter(None, [r.note, BASELINE_NOTE])))
        if m == BASELINE
        else r
        for r, (_, _, m) in zip(runs, TABLE_RUNS[table], strict=True)
    ]
    return _seeded(table, runs, seeds) + rival_runs(table, profile, runs[0].data, seed, rivals)


def rival_runs(table: str, profile: str, data: Data, seed: int = 0, rivals: bool | None = None):
    """PromptIR and AdaIR trained on `data` exactly as M²IR is (`rivals.plan_rival`), labelled
    `RIVAL_ROW`; [] where the table takes none (`rivals`: see `table_runs`)."""
    from m2ir_lib.rivals import plan_rival

    wanted = table in RIVALS_BY_DEFAULT if rivals is None else rivals
    if not wanted or table not in RIVAL_TABLES:
        return []
    return [
        plan_rival(n, profile, data, seed=seed, label=rival_label(n, profile))
        for n in TRAINED_RIVALS
    ]


def rival_label(name: str, profile: str) -> str:
    """The row of rival `name` trained here, e.g. 'PromptIR (ours, mini)'."""
    from m2ir_lib.rivals import RIVAL_LABELS

    return RIVAL_ROW.format(name=RIVAL_LABELS[name], p=profile)


def training_plan(
    profile: str,
    *,
    data_root: str = "",
    seed: int = 0,
    seeds: int = 1,
    daclip_checkpoint="",
    rival_tables: tuple[str, ...] = RIVALS_BY_DEFAULT,
) -> list[Run]:
    """What notebook 02 trains: every run of Tables I–VI, the rivals of `rival_tables`, and the
    `HEADLINE` rows of Table VII with all their seeds (so notebooks 03 and 09 find them in the
    cache)."""
    kw = dict(seed=seed, seeds=seeds, daclip_checkpoint=daclip_checkpoint)
    out = [
        r
        for t in TABLE_RUNS
        for r in table_runs(t, profile, data_root=data_root, rivals=t in rival_tables, **kw)
    ]
    data = locate("derain", profile, data_root, seed)
    return out + [
        r
        for r in ablation_runs("VII", profile, data, **kw)
        if paper_label(method_of(r.label), HEADLINE["VII"]) in HEADLINE["VII"]
    ]


# ---------------------------------------------------------------------------- scoring


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
    profile: str,
    daclip_checkpoint: str = "",
    inception_weights: str = "",
    *,
    adec_off: bool = False,
):
    """`evaluate` a checkpoint (None = the degraded input itself) on a setting's test split;
    FID (WeatherBench) when `inception_weights` names pytorch-fid's weights file; with
    `adec_off`, the network with every ADEC's α set to 0 (`adec.switch_off`: its expert
    branch switched off), on the same images, cached apart (`eval-adec-off-<key>.csv`).

    The per-image scores are cached beside the checkpoint (`runs/<profile>/identity/` for the
    degraded input), keyed by the checkpoint file, the manifest, the protocol and the library's
    source, so a run that several tables score (the full model of Tables VII–XII, each of its
    seeds) is evaluated once; any change to the code or the data evaluates again. FID is a
    statistic of the whole image set, not of one image, so an evaluation with FID is not cached.
    """
    from m2ir_lib.runs import runs_root

    if ckpt is None:
        return _evaluate_cached(None, None, runs_root() / profile / "identity", data, profile,
                                "", inception_weights)  # fmt: skip
    return _evaluate_cached(
        lambda: _run_model(ckpt, daclip_checkpoint, adec_off),
        ckpt, Path(ckpt).parent, data, profile, daclip_checkpoint, inception_weights,
        tag="adec-off" if adec_off else "",
    )  # fmt: skip


def evaluate_weights(name: str, weights: Path, data: Data, profile: str, inception_weights=""):
    """`evaluate_run` for the authors' released weights of rival `name` (`rivals.load_released`),
    cached under `runs/<profile>/released/<name>/`, keyed by the weights file as a run's
    scores are by its checkpoint."""
    from m2ir_lib.rivals import load_released
    from m2ir_lib.runs import runs_root

    folder = runs_root() / profile / "released" / name
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
        max_images=get_profile(profile).eval_max_images,
        inception_weights=inception_weights or None,
    )
    key = _eval_key(weights, data, s.protocol, kw, daclip_checkpoint)
    return Path(folder) / f"eval-{tag + '-' if tag else ''}{key}.csv", kw


def _run_model(ckpt, daclip_checkpoint: str, adec_off: bool):
    """The network of a checkpoint, with its ADEC branches switched off when `adec_off`."""
    from m2ir_lib.runs import load_checkpoint

    model = load_checkpoint(ckpt, daclip_checkpoint or None)[0]
    if adec_off:
        from m2ir_lib.adec import switch_off

        model = switch_off(model)
    return model


def _evaluate_shard(item: tuple, shard: tuple[int, int]) -> pd.DataFrame:
    """One worker's share of one evaluation (`evaluate_in_parallel`), on one thread."""
    import torch

    from m2ir_lib.evaluate import evaluate

    torch.set_num_threads(1)
    ckpt, data, profile, daclip_checkpoint, adec_off, kw = item
    model = _run_model(ckpt, daclip_checkpoint, adec_off)
    return evaluate(model, data.manifest, SETTINGS[data.setting].protocol, shard=shard, **kw)[0]


def _write_eval_cache(cache: Path, img: pd.DataFrame) -> None:
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(f".{os.getpid()}.tmp")
    img.to_csv(tmp, index=False)
    os.replace(tmp, cache)


def evaluate_in_parallel(items: list[tuple], profile: str, jobs: int = 0) -> int:
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
        profile: run profile name.
        jobs: worker processes; 0 = the CPU's cores.

    Returns:
        how many evaluations ran in parallel (0 when none did).
    """
    import torch

    from m2ir_lib.evaluate import merge_shards

    cap = get_profile(profile).eval_max_images
    todo = {}
    for ckpt, data, daclip, off in items:
        tag = "adec-off" if off else ""
        cache, kw = _eval_cache(ckpt, Path(ckpt).parent, data, profile, daclip, "", tag)
        if data.available and not cache.is_file():
            todo[cache] = (Path(ckpt), data, profile, daclip, off, kw)
    jobs = jobs or os.cpu_count() or 1
    if not todo or jobs < 2 or torch.cuda.is_available() or (cap is not None and cap < 8):
        return 0
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    with ProcessPoolExecutor(jobs, mp_context=get_context("spawn")) as pool:
        parts = {
            cache: [pool.submit(_evaluate_shard, item, (k, jobs)) for k in range(jobs)]
            for cache, item in todo.items()
        }
        for cache, futures in parts.items():
            _write_eval_cache(cache, merge_shards([f.result() for f in futures]))
    return len(todo)


def _evaluate_cached(
    build, weights, folder, data, profile, daclip_checkpoint, inception_weights, tag=""
):
    """Per-image scores and summary of `build()`'s network (None: the degraded input), read from
    `folder`'s cache when the weights file, manifest, protocol and code are unchanged; `tag`
    names a variant of the same weights (e.g. "adec-off") so its cache file stays apart."""
    from m2ir_lib.evaluate import evaluate, evaluate_identity, summarize

    s = SETTINGS[data.setting]
    args = (data, profile, daclip_checkpoint, inception_weights, tag)
    cache, kw = _eval_cache(weights, folder, *args)
    if cache.is_file() and not inception_weights:
        img = pd.read_csv(
            cache,
            dtype={"name": str, "dataset": str},
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
    _write_eval_cache(cache, img)
    return img, summary


RELEASED_ROW = "{name} (released weights)"


def released_label(name: str) -> str:
    """The row of rival `name`'s released weights, e.g. 'AdaIR (released weights)'."""
    from m2ir_lib.rivals import RIVAL_LABELS

    return RELEASED_ROW.format(name=RIVAL_LABELS[name])


WEIGHT_SUFFIXES = (".ckpt", ".pth", ".pt")


def released_checkpoints(spec: str) -> dict[str, Path]:
    """The released rival weights a table notebook's `rival_checkpoints` names: rival -> file.

    `spec` is "" (none), a comma list `promptir=/path/a.ckpt,adair=/path/b.ckpt,restormer=/c.pth`,
    or a folder holding files named after the rivals (`promptir.ckpt`, `adair.ckpt`,
    `restormer.pth`; any of `WEIGHT_SUFFIXES`). A named file that does not exist, an unknown
    rival or a folder with none of them is an error that says which.
    """
    from m2ir_lib.rivals import RIVALS

    spec = spec.strip()
    if not spec:
        return {}
    if "=" not in spec:
        folder = Path(spec).expanduser()
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
        name, path = name.strip().lower(), Path(path.strip()).expanduser()
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
    srcs = sorted(Path(__file__).parent.glob("*.py"))
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
    d = per_image.assign(
        key=[
            _task_key(table, t, sg, ds)
            for t, sg, ds in zip(
                per_image["task"], per_image["sigma"], per_image["dataset"], strict=True
            )
        ]
    )
    d = d[d["key"].isin(wanted)]
    metrics = [
        m for m in ("psnr", "ssim", "lpips") if m in d and pd.api.types.is_numeric_dtype(d[m])
    ]
    long = d.melt(
        id_vars=["key", "dataset", "sigma", "name"], value_vars=metrics, var_name="metric"
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
    profile: str,
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
        profile: run profile name.
        data: the evaluation data (default: each run's own training data).
        identity: add the degraded input as a reference row (the table's floor).
        write: write the per-image file.
        inception_weights: pytorch-fid's Inception weights (FID of Table IV); "" = no FID.
        released: the authors' released rival weights (`released_checkpoints`), each scored
            on the same test set as a row `RELEASED_ROW` beside the paper's printed one.
    """
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


def missing_columns(table: str, rows: pd.DataFrame, profile: str, reason: str) -> pd.DataFrame:
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


# ---------------------------------------------------------------------------- Tables VII–XII

_MST, _PRIOR = {"block": "mst"}, {"prior": "daclip"}
ABLATIONS: dict[str, list[tuple[str, dict, dict]]] = {
    "VII": [
        ("MST ✗ | DACP ✗ | special ✗ | shared ✗", BASELINE, {}),
        ("MST ✓ | DACP ✗ | special ✗ | shared ✗", {**BASELINE, **_MST}, {}),
        ("MST ✓ | DACP ✗ | special ✓ | shared ✗", {"prior": "none", "shared_expert": False}, {}),
        ("MST ✓ | DACP ✗ | special ✓ | shared ✓", {"prior": "none"}, {}),
        ("MST ✓ | DACP ✓ | special ✓ | shared ✗", {**_PRIOR, "shared_expert": False}, {}),
        ("MST ✗ | DACP ✓ | special ✓ | shared ✓", {**_PRIOR, "block": "transformer"}, {}),
        ("MST ✓ | DACP MLP | special ✓ | shared ✓", {"prior": "mlp"}, {}),
        ("MST ✓ | DACP ✓ | special ✓ | shared ✓", _PRIOR, {}),
    ],
    "VIII": [(f"N={n}", {**_PRIOR, "num_experts": n}, {}) for n in (2, 4, 8, 16, 32)],
    "IX": [(f"K={k}", {**_PRIOR, "top_k": k}, {}) for k in (1, 2, 3, 4)],
    "X": [
        (
            "charb ✗ | balance ✗ | FFT ✗",
            _PRIOR,
            {"charbonnier": False, "use_balance": False, "use_fft": False},
        ),
        ("charb ✓ | balance ✗ | FFT ✗", _PRIOR, {"use_balance": False, "use_fft": False}),
        ("charb ✓ | balance ✗ | FFT ✓", _PRIOR, {"use_balance": False}),
        ("charb ✓ | balance ✓ | FFT ✗", _PRIOR, {"use_fft": False}),
        ("charb ✓ | balance ✓ | FFT ✓", _PRIOR, {}),
    ],
    "XI": [(f"λ1={v:g}", _PRIOR, {"lambda1": v}) for v in (0.001, 0.005, 0.01, 0.05, 0.1)],
    "XII": [(f"λ2={v:g}", _PRIOR, {"lambda2": v}) for v in (0.01, 0.05, 0.1, 0.5, 1.0)],
}


def ablation_runs(
    table: str,
    profile: str,
    data: Data,
    *,
    seed: int = 0,
    seeds: int = 1,
    daclip_checkpoint: str = "",
) -> list[Run]:
    """The runs of one ablation table (§IV-C): the paper's rows, derain only, ablation schedule;
    the `HEADLINE` rows of Table VII with `seeds` training seeds."""
    if table not in ABLATIONS:
        raise ValueError(f"table {table!r} is not an ablation; known: {list(ABLATIONS)}")
    runs = [
        plan(
            label,
            profile,
            data,
            model=m,
            train=t,
            ablation=True,
            seed=seed,
            daclip_checkpoint=daclip_checkpoint,
        )
        for label, m, t in ABLATIONS[table]
    ]
    return _shown_once(_seeded(table, runs, seeds), profile)


MLP_PRIOR = "DACP (MLP prior)"  # what a 'DACP ✓' or 'DACP MLP' row ran without DA-CLIP weights


def ran_label(label: str, model) -> str:
    """The row label of what ran: a Table VII row whose prior is the learnable MLP says
    'DACP (MLP prior)' in place of the paper's 'DACP ✓' (the fallback without DA-CLIP
    weights, `experiments.DACLIP_NOTE`) or 'DACP MLP'; other labels are the paper's."""
    if model.prior == "mlp" and model.special_experts:
        return label.replace("DACP ✓", MLP_PRIOR).replace("DACP MLP", MLP_PRIOR)
    return label


def paper_label(label: str, paper_methods) -> str | None:
    """The paper row a reproduced row label stands for: the label itself, or for a
    'DACP (MLP prior)' row the paper's 'DACP MLP' row when it prints one, else its 'DACP ✓'
    row (the MLP stands in for DA-CLIP); None when the paper has no such row."""
    paper_methods = set(paper_methods)
    for cand in (label, label.replace(MLP_PRIOR, "DACP MLP"), label.replace(MLP_PRIOR, "DACP ✓")):
        if cand in paper_methods:
            return cand
    return None


def ours_for(paper_row: str, methods) -> str | None:
    """Our row that answers the paper's row `paper_row`: the same label, or its
    'DACP (MLP prior)' version (without DA-CLIP weights the full model's row is the MLP run);
    None when this run has none."""
    methods = set(methods)
    for cand in (
        paper_row,
        paper_row.replace("DACP ✓", MLP_PRIOR).replace("DACP MLP", MLP_PRIOR),
    ):
        if cand in methods:
            return cand
    return None


def _join(*notes: str) -> str:
    return "; ".join(filter(None, notes))


def _shown_once(runs: list[Run], profile: str) -> list[Run]:
    """Label every run with what ran (`ran_label`) and keep one run per configuration: rows
    that became the same run (without DA-CLIP weights the full model and the paper's 'DACP
    MLP' row) are shown once, under one label, with a note naming both paper rows."""
    first: dict[Path | str, int] = {}
    out: list[Run] = []
    for r in runs:
        row, tag = r.label.partition(SEED_TAG)[::2]
        label = ran_label(row, r.model) + (f"{SEED_TAG}{tag}" if tag else "")
        # The run's identity: its cache folder, or without data its whole configuration.
        d = (
            run_dir(r, profile)
            if r.data.available
            else repr((r.model, r.train, r.seed, r.tasks, r.repeats))
        )
        if d in first:
            kept = out[first[d]]
            if method_of(kept.label) == method_of(label):
                also = f"also the paper's row '{row}': the same run, shown once"
                out[first[d]] = dataclasses.replace(kept, note=_join(kept.note, also))
                continue
            r = dataclasses.replace(
                r, note=_join(r.note, f"same configuration and run as row '{kept.label}'")
            )
        r = dataclasses.replace(r, label=label)
        if d not in first:
            first[d] = len(out)
        out.append(r)
    return out


# ---------------------------------------------------------------------------- Table XIII

# `efficiency_table` column -> Table XIII metric, in the paper's column order; the paper's
# latency is on its RTX 4090 (`PAPER_DEVICE`), so it is the GPU column, and a CPU latency
# is a column of its own.
EFFICIENCY_METRICS = {
    "params_M": "Params (M)",
    "macs_G": "FLOPs (G)",
    "latency_ms_gpu": "latency GPU (ms)",
    "latency_ms_cpu": "latency CPU (ms)",
    "cpu_mb": "CPU memory (MB)",
    "gpu_mb": "GPU memory (MB)",
}
PAPER_DEVICE = "NVIDIA RTX 4090 (the paper's, Table XIII)"
PAPER_SIZE = (480, 720)  # Table XIII: 720×480 inputs


PROMPTIR_NOTE = (
    "Table XIII prints 34.1M / 745G for PromptIR, which no configuration of the official code "
    "gives (745G is a plain Restormer's count); the authors' code gives this row's numbers"
)


def efficiency_rows(
    profile: str,
    *,
    paper_macs: bool = False,
    device: str = "auto",
    repeats: int = 3,
    seed: int = 0,
    rivals: bool = True,
) -> pd.DataFrame:
    """Table XIII for our networks at 720×480: the paper's network counted (params always;
    MACs when `paper_macs`, seconds through `efficiency.macs_extrapolated`), and the profile's M²IR,
    Restormer-style network and rivals measured in full (params, MACs, latency, peak memory)
    in one `efficiency.efficiency_table` run.

    Args:
        profile: whose network is measured in full.
        paper_macs: also count the paper network's MACs (with and without DA-CLIP).
        device: "auto" (CUDA when present), "cpu" or a CUDA device.
        repeats: timed forward passes (median).
        seed: seed of the random weights and the input.
        rivals: also Restormer, PromptIR and AdaIR: at the profile's size measured beside
            M²IR, and in the authors' configuration counted (params and MACs, seconds:
            `efficiency.rival_macs_extrapolated`).
    """
    import torch

    from m2ir_lib import efficiency
    from m2ir_lib.rivals import RIVAL_LABELS

    device = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
    torch.manual_seed(seed)
    frames = []
    # The profile's networks first: peak memory is the whole process's, so it must not
    # include the 285M-parameter DA-CLIP structure built below.
    cfg = get_profile(profile).model
    preset = next((k for k, v in MODEL_PRESETS.items() if v == cfg), None)
    named = {
        "M²IR (w/o DA-CLIP)": f"M²IR (ours, {profile} config, w/o DA-CLIP)",
        "Restormer-style baseline": f"Restormer-style (ours, {profile} config)",
        **{v: f"{v} (ours, {profile} config)" for v in RIVAL_LABELS.values()},
    }
    rows = efficiency.table_xiii_models(preset or cfg, rivals=rivals and preset is not None)
    models = {named[k]: v for k, v in rows.items() if k in named}  # not DA-CLIP's (above)
    # The opponent as Tables I–VI train it: sized by the profile (Profile.baseline).
    models[named["Restormer-style baseline"]] = (
        dataclasses.replace(efficiency.baseline_config(cfg), **get_profile(profile).baseline),
        "none",
    )
    measured = efficiency.efficiency_table(models, PAPER_SIZE, device, repeats=repeats)
    for _, m in measured.iterrows():
        values = {
            ("720×480", name): float(m[key])
            for key, name in EFFICIENCY_METRICS.items()
            if key in m and m[key] is not None and m[key] == m[key]
        }
        note = (
            f"{m['device']}, {m['threads']} threads, {m['dtype']}; "
            f"+{m['attention_macs_G']:.1f}G channel-attention products not in FLOPs"
        )
        frames.append(
            results.rows(
                "XIII",
                m["method"],
                values,
                profile=profile,
                seed=seed,
                device=str(m["device"]),
                data="no data (random weights)",
                note=note,
            )
        )
        lost = [name for key, name in EFFICIENCY_METRICS.items() if ("720×480", name) not in values]
        frames += [
            results.status_row(
                "XIII",
                m["method"],
                f"{name}: not measured: "
                + ("no GPU on this machine" if "GPU" in name else "measured on the GPU only")
                + f" (ran on {m['device']})",
                profile=profile,
                seed=seed,
                task="720×480",
            )
            for name in lost
        ]
    for mode, label in (
        ("none", "M²IR (paper config, w/o DA-CLIP)"),
        ("daclip", "M²IR (paper config, DA-CLIP structure)"),
    ):
        net = efficiency.build_variant("paper", mode)
        values = {("720×480", "Params (M)"): sum(p.numel() for p in net.parameters()) / 1e6}
        del net
        note = "random weights; parameters counted"
        if paper_macs:
            c = efficiency.count_complexity("paper", mode, PAPER_SIZE, extrapolate=True)
            values[("720×480", "FLOPs (G)")] = c["macs"] / 1e9
            note += (
                "; network MACs = a·HW + b from three small inputs (exact for this network), "
                f"prior counted at 720×480; +{c['attention_macs'] / 1e9:.1f}G channel-attention "
                "products not in FLOPs"
            )
        frames.append(
            results.rows(
                "XIII",
                label,
                values,
                profile=profile,
                seed=seed,
                device="cpu",
                data="no data (random weights)",
                note=note,
            )
        )
        if not paper_macs:
            frames.append(
                results.status_row(
                    "XIII",
                    label,
                    "FLOPs not counted: paper_macs=False "
                    "(or `python -m m2ir_lib.efficiency --config paper --fast`)",
                    profile=profile,
                    seed=seed,
                    task="720×480",
                )
            )
    if rivals:
        frames += [_paper_rival_row(n, profile, seed) for n in RIVAL_LABELS]
    return pd.concat(frames, ignore_index=True)


def _paper_rival_row(name: str, profile: str, seed: int) -> pd.DataFrame:
    """A rival in the authors' released configuration: params and MACs at 720×480."""
    from m2ir_lib import efficiency
    from m2ir_lib.rivals import RIVAL_LABELS

    c = efficiency.rival_macs_extrapolated(name, "paper", PAPER_SIZE)
    note = (
        "random weights, the authors' configuration; MACs = a·HW + b from three small inputs "
        f"(exact for this network); +{c['attention_macs'] / 1e9:.1f}G channel-attention "
        "products not in FLOPs"
    )
    note += f"; {PROMPTIR_NOTE}" if name == "promptir" else ""
    values = {
        ("720×480", "Params (M)"): c["params"] / 1e6,
        ("720×480", "FLOPs (G)"): c["macs"] / 1e9,
    }
    return results.rows(
        "XIII",
        f"{RIVAL_LABELS[name]} (authors' config)",
        values,
        profile=profile,
        seed=seed,
        device="cpu",
        data="no data (random weights)",
        note=note,
    )


MEASURED = results.repo_root() / "benchmarks" / "measured"
GPU_LABELS = {  # gpu_check.py's model names -> this table's rows
    "M²IR (random DA-CLIP)": "M²IR (paper config, DA-CLIP structure)",
    "M²IR (w/o DA-CLIP)": "M²IR (paper config, w/o DA-CLIP)",
    "Restormer-style baseline": "Restormer-style (paper config)",
}


def measured_gpu_rows(profile: str, folder: str | Path = MEASURED, seed: int = 0) -> pd.DataFrame:
    """Table XIII's GPU columns from the committed outputs of `benchmarks/gpu_check.py`
    (`gpu_check_*.json`, one per GPU it ran on): the paper config at 720×480, fp32 latency
    and peak GPU memory, bf16 latency in the note. Empty when no such file exists.
    """
    import json

    frames = []
    for path in sorted(Path(folder).glob("gpu_check_*.json")):
        found = json.loads(path.read_text())
        env = found["env"]
        by_model = {}
        for row in found.get("inference", []):
            by_model.setdefault(row["model"], {})[row["dtype"]] = row
        for name, modes in by_model.items():
            fp32, bf16 = modes.get("fp32"), modes.get("bf16")
            if fp32 is None or name not in GPU_LABELS:
                continue
            values = {
                ("720×480", "latency GPU (ms)"): fp32["latency_ms"],
                ("720×480", "GPU memory (MB)"): fp32["gpu_peak_mb"],
            }
            note = f"{path.relative_to(results.repo_root())}: torch {env['torch']}, fp32"
            if bf16 is not None:
                note += f"; bf16 autocast {bf16['latency_ms']:.0f} ms, {bf16['gpu_peak_mb']:.0f} MB"
            frames.append(
                results.rows(
                    "XIII",
                    GPU_LABELS[name],
                    values,
                    profile=profile,
                    seed=seed,
                    device=env["device"],
                    data="no data (random weights)",
                    note=note,
                    commit=_last_commit(path),
                )
            )
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _last_commit(path: Path) -> str:
    """The commit that last changed `path` (the measured file's own provenance)."""
    import subprocess

    out = subprocess.run(
        ["git", "log", "-1", "--format=%h", "--", str(path)],
        cwd=results.repo_root(),
        capture_output=True,
        text=True,
    )
    return out.stdout.strip() or "unknown"
