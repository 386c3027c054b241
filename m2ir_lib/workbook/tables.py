"""Which runs make which table of §IV: the plan of Tables I–XII, before anything is trained.

Tables I–VI: `TABLE_RUNS` names each table's all-in-one (or one-by-one) runs and `table_runs`
plans them, with PromptIR and AdaIR trained beside M²IR where the table takes them
(`rival_runs`); `EVAL_SETTING` says where a table is tested when that is not its training
data. Tables VII–XII: `ABLATIONS` holds each table as (row label, network overrides, training
overrides), trained on deraining only with the profile's ablation schedule (§IV-C); the
full-model row is the same configuration in all six, so the run cache trains it once.
`training_plan` is everything notebook 02 trains; `workbook_plan` adds every ablation row, so
that `m2ir_lib.pipeline` can train all of it in one pool before the first notebook. How the
trained runs become a table's rows is `m2ir_lib.workbook.scoring`; Table XIII is
`m2ir_lib.workbook.table_xiii`.

The headline rows (`HEADLINE`: Table I's two networks, and so Table VI's, Table VII's all-off
and full rows, the full model of Tables VIII–XII) train with several seeds when asked
(`seeds`); their extra runs are labelled `<row> · seed k` (`SEED_TAG`, `method_of`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from m2ir_lib.core.config import BASELINE, Profile, check_profile
from m2ir_lib.core.rivals import RIVAL_LABELS
from m2ir_lib.workbook.experiments import Run, plan, plan_rival, restormer_baseline, run_dir
from m2ir_lib.workbook.labels import paper_label, ran_label
from m2ir_lib.workbook.settings import Data, locate

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
    # Table VI tests Table I's 3D runs on unseen snow: every seed Table I trains (the same
    # runs, from the cache), so its cells are Table I's multi-seed design.
    "VI": None,
    "VII": ("MST ✗ | DACP ✗ | special ✗ | shared ✗", "MST ✓ | DACP ✓ | special ✓ | shared ✓"),
    **{t: (label,) for t, label in _FULL.items()},
}
# The rivals trained beside M²IR (`m2ir_lib.core.rivals`), one seed (the table's first), same
# profile, schedule, loss and data. Restormer is not trained apart: the Restormer-style row is
# the Restormer architecture layer for layer (`BASELINE_NOTE`). Tables III and IV take them
# when asked (their notebooks' `rivals` parameter): they add ≈1.6 M²IR-runs per table.
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


def _seeded(table: str, runs: list[Run], seeds: int, profile: Profile) -> list[Run]:
    """Each headline run of `table` once per training seed (seed, seed+1, ...), right after it;
    the data stay those of the first seed, so every seed is tested on the same images. Only
    in the profile's `seed_tables`: elsewhere its claims cannot use the extra seeds."""
    if seeds < 1:
        raise ValueError(f"seeds={seeds}: need at least one training seed")
    wanted = profile.seed_tables is None or table in profile.seed_tables
    if table not in HEADLINE or seeds == 1 or not wanted:
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
    profile: Profile,
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
        profile: the run profile.
        data_root: real data folder ("" = the profile's default, see `settings.locate`).
        seed: seed of data, initialisation and training.
        seeds: training seeds of the `HEADLINE` tables' rows (seed, seed+1, ...); other
            tables train one.
        daclip_checkpoint: DA-CLIP weights; without them the MLP prior stands in.
        rivals: add PromptIR and AdaIR (`TRAINED_RIVALS`, one seed) after the table's rows;
            None = Tables I and II only (`RIVALS_BY_DEFAULT`); only Tables I–IV have them.
    """
    check_profile(profile)
    if table not in TABLE_RUNS:
        raise ValueError(f"table {table!r} has no all-in-one runs; known: {list(TABLE_RUNS)}")
    data = {s: locate(s, profile, data_root, seed) for s, _, _ in TABLE_RUNS[table]}
    runs = [
        plan(
            label.format(p=profile.name),
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
    return _seeded(table, runs, seeds, profile) + rival_runs(
        table, profile, runs[0].data, seed, rivals
    )


def rival_runs(table: str, profile: Profile, data: Data, seed: int = 0, rivals: bool | None = None):
    """PromptIR and AdaIR trained on `data` exactly as M²IR is (`experiments.plan_rival`),
    labelled `RIVAL_ROW`; [] where the table takes none (`rivals`: see `table_runs`)."""
    wanted = table in RIVALS_BY_DEFAULT if rivals is None else rivals
    if not wanted or table not in RIVAL_TABLES:
        return []
    return [
        plan_rival(n, profile, data, seed=seed, label=rival_label(n, profile))
        for n in TRAINED_RIVALS
    ]


def rival_label(name: str, profile: Profile) -> str:
    """The row of rival `name` trained under `profile`, e.g. 'PromptIR (ours, mini)'."""
    return RIVAL_ROW.format(name=RIVAL_LABELS[name], p=profile.name)


def training_plan(
    profile: Profile,
    *,
    data_root: str = "",
    seed: int = 0,
    seeds: int = 1,
    daclip_checkpoint="",
    rival_tables: tuple[str, ...] = RIVALS_BY_DEFAULT,
) -> list[Run]:
    """What notebook 02 trains: every run of Tables I–VI (Table I's, and so Table VI's, with all
    their seeds), the rivals of `rival_tables`, and the `HEADLINE` rows of Table VII with all
    their seeds (so notebooks 03, 08 and 09 find them in the cache)."""
    check_profile(profile)
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
    profile: Profile,
    data: Data,
    *,
    seed: int = 0,
    seeds: int = 1,
    daclip_checkpoint: str = "",
) -> list[Run]:
    """The runs of one ablation table (§IV-C): the paper's rows, derain only, ablation schedule;
    the `HEADLINE` rows of Table VII with `seeds` training seeds."""
    check_profile(profile)
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
    return _shown_once(_seeded(table, runs, seeds, profile), profile)


def _join(*notes: str) -> str:
    return "; ".join(filter(None, notes))


def _shown_once(runs: list[Run], profile: Profile) -> list[Run]:
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


def workbook_plan(
    profile: Profile,
    *,
    data_root: str = "",
    seed: int = 0,
    seeds: int = 1,
    daclip_checkpoint: str = "",
    rival_tables: tuple[str, ...] = RIVALS_BY_DEFAULT,
) -> list[Run]:
    """Every run any notebook of the workbook trains with these parameters: notebook 02's
    `training_plan` and every row of Tables VII–XII (a configuration several tables share is
    listed once per table; `runinfo.unique` keeps one). Trained in one pool before the first
    notebook (`m2ir_lib.pipeline`), so no notebook waits on its own tail of runs."""
    kw = dict(seed=seed, seeds=seeds, daclip_checkpoint=daclip_checkpoint)
    out = training_plan(profile, data_root=data_root, rival_tables=rival_tables, **kw)
    data = locate("derain", profile, data_root, seed)
    return out + [r for t in ABLATIONS for r in ablation_runs(t, profile, data, **kw)]
