"""The trained all-in-one M²IR of Tables I–IV and the experts their test images select
(§III-C, notebook 16). The statistics of the shares are `m2ir_lib.workbook.routing`.

The runs are the tables' own M²IR rows (first seed), so the run cache serves them: nothing is
trained here that the tables would not train. An untrained run (no data) is left out with a
note: the routing of random weights says nothing about the paper's router.
"""

from __future__ import annotations

import pandas as pd

from m2ir_lib.core.config import Profile, check_profile
from m2ir_lib.engine.probes import SHARE_COLUMNS, expert_shares
from m2ir_lib.engine.runs import load_checkpoint
from m2ir_lib.workbook import samples, tables
from m2ir_lib.workbook.experiments import Run

ALL_IN_ONE = ("I", "II", "III", "IV")  # the all-in-one tables: 3D, 5D, CDD11, WeatherBench


def all_in_one_runs(
    profile: Profile, *, data_root: str = "", seed: int = 0, daclip_checkpoint: str = ""
) -> list[Run]:
    """The M²IR row of each all-in-one table (I–IV), one seed, as the tables plan it."""
    check_profile(profile)
    return [
        tables.table_runs(
            t, profile, data_root=data_root, seed=seed, daclip_checkpoint=daclip_checkpoint,
            rivals=False,
        )[0]
        for t in ALL_IN_ONE
    ]  # fmt: skip


def collect_shares(runs: list[Run], ckpts: dict, per_task: int = 16) -> pd.DataFrame:
    """`probes.expert_shares` of every trained run on up to `per_task` test images per task,
    with columns setting and run in front; runs without a checkpoint are left out."""
    frames = []
    for run in runs:
        if run.label not in ckpts:
            print(f"{run.label} [{run.data.setting}]: not trained ({run.data.reason}); left out")
            continue
        model = load_checkpoint(ckpts[run.label], run.daclip_checkpoint or None)[0]
        items = samples.sample_items(run.data, per_task=per_task)
        shares = expert_shares(model, items)
        frames.append(shares.assign(setting=run.data.setting, run=run.label))
    cols = ["setting", "run", *SHARE_COLUMNS]
    return pd.concat(frames, ignore_index=True)[cols] if frames else pd.DataFrame(columns=cols)
