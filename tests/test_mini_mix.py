"""The stand-in's task mix (issue 22): the paper's sample shares through the same repeat
mechanism (per-task factors in `TrainDataset`) as the paper profile."""

import pytest

from m2ir_lib.core.config import get_profile
from m2ir_lib.workbook import experiments, settings


@pytest.mark.parametrize("setting", ["3d", "5d"])
def test_stand_in_factors_give_the_paper_shares(setting):
    paper = settings.shares(settings.paper_samples(setting))
    n = 48  # stand-in images per task; denoising has one row per noise level
    rows = {t: 3 * n if t == "denoise" else n for t in paper}
    reps = settings.stand_in_repeats(setting, rows)
    got = settings.shares({t: rows[t] * reps[t] for t in rows})
    assert all(abs(got[t] - paper[t]) <= 0.01 for t in paper), (got, paper)
    assert max(paper, key=paper.get) == "dehaze" == max(got, key=got.get)  # OTS's share leads


def test_paper_shares_are_computed_from_published_counts():
    s = settings.paper_samples("3d")
    assert s == {"denoise": 5144 * 3 * 3, "derain": 200 * 120, "dehaze": 72135}
    assert settings.paper_samples("weatherbench") is None  # per-weather counts unpublished


def test_balanced_where_the_paper_is_balanced_or_unknown():
    cdd = {t: 48 for t in settings.CDD11_TYPES}
    assert set(settings.stand_in_repeats("cdd11", cdd).values()) == {1}
    wb = {"dehaze": 48, "derain": 48, "desnow": 48}
    assert settings.stand_in_repeats("weatherbench", wb) == {"dehaze": 1, "derain": 1, "desnow": 1}


def test_plan_applies_the_factors_to_the_stand_in():
    prof = get_profile("smoke")
    run = experiments.plan("M²IR", prof, settings.locate("3d", prof))
    rows = experiments.train_rows(run.data, run.tasks)
    assert run.repeats == settings.stand_in_repeats("3d", rows)
    assert run.repeats["dehaze"] > run.repeats["derain"] > 1
    assert run.schedule.samples_per_epoch == sum(rows[t] * run.repeats[t] for t in rows)
