"""Planning a paper-scale run (issue 9, defects 2-4 and 6): one planner for the notebooks and
`python -m m2ir_lib.train`; global batch 32 on any number of processes; a schedule in epochs
per setting, derived into iterations; per-setting repeats; fp32 unless bf16 is asked for."""

import math

import pandas as pd
import pytest

import m2ir_lib.train as train_mod
from m2ir_lib.core.config import PAPER_EPOCHS, PROFILES, get_profile
from m2ir_lib.engine.train import StreamSampler, accumulation
from m2ir_lib.workbook import experiments, settings

# Published training rows (one per noise level for BSD400+WED): docs/data.md §2–3.
PUBLISHED_3D = {"denoise": 5144 * 3, "derain": 200, "dehaze": 72135}


def manifest(path, rows: dict[str, int], test: dict[str, int] | None = None):
    """A manifest with `rows[task]` training rows (images need not exist for planning)."""
    out = []
    for split, counts in (("train", rows), ("test", test or {})):
        for task, n in counts.items():
            for i in range(n):
                if task == "denoise":
                    out.append((split, task, "", f"{split}/{task}/{i}.png", 15.0))
                else:
                    out.append(
                        (split, task, f"{split}/{task}/d{i}.png", f"{split}/{task}/{i}.png", "")
                    )
    cols = ["split", "task", "degraded_path", "clean_path", "sigma"]
    pd.DataFrame(out, columns=cols).to_csv(path, index=False)
    return path


def real(setting, path, root):
    return settings.Data(setting, path, root, setting, real=True)


# ---------------------------------------------------------------------------- defect 2


@pytest.mark.parametrize("world", [1, 2, 4])
def test_global_batch_is_32_on_any_number_of_gpus(world):
    tc = PROFILES["paper"].train
    assert tc.global_batch == 32
    assert world * tc.batch_size * accumulation(tc, world) == 32


def test_global_batch_that_does_not_divide_is_a_clear_error():
    # the advice is a command that works (tests/test_paper_path.py follows it for 1-16 GPUs)
    with pytest.raises(ValueError, match=r"split over 8 process\(es\).*--batch-size 4"):
        accumulation(PROFILES["paper"].train, 8)


def test_one_and_two_processes_see_the_same_samples_per_step():
    """Each optimizer step consumes global samples [s·32, (s+1)·32) on 1 or 2 processes."""

    def per_step(world):
        accum = accumulation(PROFILES["paper"].train, world)
        steps = {}
        for rank in range(world):
            items = list(StreamSampler(1000, 0, rank, world, 8, accum, 0, 3))
            for k, (_, seed) in enumerate(items):
                steps.setdefault(k // (8 * accum), set()).add(seed)
        return steps

    one, two = per_step(1), per_step(2)
    assert one == two and all(len(s) == 32 for s in one.values())


def test_torchrun_on_one_gpu_starts_one_process(monkeypatch, tmp_path):
    import torch

    assert [experiments.torchrun_procs(g) for g in (0, 1, 2, 4)] == [2, 1, 2, 4]
    started = []
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(experiments, "_torchrun", lambda r, p, procs: started.append(procs))
    data = real(
        "3d", manifest(tmp_path / "3d.csv", {"denoise": 3, "derain": 2, "dehaze": 5}), tmp_path
    )
    experiments.train_runs(
        [experiments.plan("a", get_profile("smoke"), data)],
        get_profile("smoke"),
        launcher="torchrun",
    )
    assert started == [1]


# ---------------------------------------------------------------------------- defects 3 and 4


def test_paper_schedule_from_published_counts():
    rows = PUBLISHED_3D
    reps = settings.SETTINGS["3d"].repeats
    tcfg, s = experiments.schedule(get_profile("paper"), "3d", rows, reps, PROFILES["paper"].train)
    assert s.samples_per_epoch == 142431 and s.iters_per_epoch == 4451  # AdaIR's ≈4,450
    assert (tcfg.iters, tcfg.warmup_iters, tcfg.cosine_iters) == (4451 * 150, 4451 * 15, 4451 * 180)
    # Rain100L is ~17 % of an epoch's samples, as in AdaIR
    assert rows["derain"] * reps["derain"] / s.samples_per_epoch == pytest.approx(0.1685, abs=1e-3)
    # §IV-C ablations: 20 epochs of Rain100L ×120 at batch 32 = 750 it/epoch
    tcfg, s = experiments.schedule(
        get_profile("paper"),
        "derain",
        {"derain": 200},
        reps,
        PROFILES["paper"].train,
        ablation=True,
    )
    assert (s.iters_per_epoch, tcfg.iters) == (750, 15000)


def test_each_setting_gets_its_own_epochs_and_repeats(tmp_path):
    m = {
        "3d": manifest(tmp_path / "3d.csv", {"denoise": 30, "derain": 2, "dehaze": 40}),
        "weatherbench": manifest(tmp_path / "wb.csv", {"dehaze": 10, "derain": 20, "desnow": 30}),
        "cdd11": manifest(tmp_path / "c.csv", {"low": 5, "haze_rain": 7}),
    }
    runs = {
        k: experiments.plan(k, get_profile("paper"), real(k, p, tmp_path)) for k, p in m.items()
    }
    assert runs["3d"].repeats == {"denoise": 3, "derain": 120, "dehaze": 1}
    assert runs["weatherbench"].repeats == {"dehaze": 1, "derain": 1, "desnow": 1}  # no ×120
    assert runs["cdd11"].repeats == {"low": 2, "haze_rain": 2}
    expect = {"3d": 90 + 240 + 40, "weatherbench": 60, "cdd11": 24}
    for k, run in runs.items():
        ep = PAPER_EPOCHS[k]
        per_epoch = math.ceil(expect[k] / 32)
        assert run.schedule.samples_per_epoch == expect[k]
        assert run.train.iters == round(ep.epochs * per_epoch)
        assert run.train.cosine_iters == round(ep.horizon * per_epoch)
    assert runs["cdd11"].schedule.epochs == 120 and runs["3d"].schedule.epochs == 150
    one = experiments.plan("x", get_profile("paper"), real("derain", m["3d"], tmp_path))
    abl = experiments.plan(
        "x", get_profile("paper"), real("derain", m["3d"], tmp_path), ablation=True
    )
    assert one.train.iters == round(150 * math.ceil(240 / 32))
    assert abl.train.iters == round(20 * math.ceil(240 / 32))


def test_iteration_profiles_keep_their_budgets(tmp_path):
    data = real(
        "3d", manifest(tmp_path / "3d.csv", {"denoise": 3, "derain": 2, "dehaze": 5}), tmp_path
    )
    for name in ("smoke", "mini"):
        for ablation, tc in ((False, PROFILES[name].train), (True, PROFILES[name].ablation_train)):
            run = experiments.plan("x", get_profile(name), data, ablation=ablation)
            assert (run.train.iters, run.train.warmup_iters) == (tc.iters, tc.warmup_iters)
            assert "iterations (profile" in run.schedule.budget


def test_cli_plans_like_the_notebooks_and_prints_the_schedule_first(tmp_path, monkeypatch, capsys):
    path = manifest(tmp_path / "3d.csv", {"denoise": 30, "derain": 2, "dehaze": 40})
    seen = {}

    def fake_train(model, tcfg, *a, **kw):
        seen.update(tcfg=tcfg, printed=capsys.readouterr().out, **kw)
        return tmp_path / "final.pt"

    monkeypatch.setattr(train_mod, "train", fake_train)
    args = ["--profile", "paper", "--manifest", str(path), "--data-root", str(tmp_path)]
    train_mod.main(args + ["--out", str(tmp_path / "run")])
    nb = experiments.plan("M²IR", get_profile("paper"), real("3d", path, tmp_path))
    assert seen["repeats"] == nb.repeats == {"denoise": 3, "derain": 120, "dehaze": 1}
    assert seen["tcfg"] == nb.train and sorted(seen["tasks"]) == sorted(nb.tasks)
    assert f"= {nb.train.iters} iterations" in seen["printed"]  # printed before training
    assert "12 it/epoch" in seen["printed"]  # ceil((90 + 240 + 40) / 32)
    # defect 6: fp32 unless asked
    assert seen["tcfg"].amp is False
    train_mod.main(args + ["--out", str(tmp_path / "run2"), "--bf16"])
    assert seen["tcfg"].amp is True


# ---------------------------------------------------------------------------- defect 6


def test_paper_profile_trains_in_fp32_by_default():
    assert PROFILES["paper"].train.amp is False
    assert PROFILES["paper"].ablation_train.amp is False


def test_a_profile_name_passed_by_habit_says_how_to_resolve_it(tmp_path):
    """The library takes the resolved Profile; a bare name fails at once with the fix."""
    data = real(
        "3d", manifest(tmp_path / "3d.csv", {"denoise": 3, "derain": 2, "dehaze": 5}), tmp_path
    )
    with pytest.raises(TypeError, match=r"get_profile\('mini'\)"):
        experiments.plan("x", "mini", data)
    with pytest.raises(TypeError, match=r"get_profile\('smoke'\)"):
        settings.locate("3d", "smoke")
    assert experiments.plan("x", get_profile("mini"), data).train.iters == 400
