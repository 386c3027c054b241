"""Training loop of §IV-A: schedule, checkpoints, exact resume, NaN stop, run cache."""

import dataclasses
import math

import pandas as pd
import pytest
import torch

import m2ir_lib.engine.train as train_mod
from m2ir_lib.core.config import PROFILES, TrainConfig
from m2ir_lib.engine import checkpoint as ckp
from m2ir_lib.engine import runs
from m2ir_lib.engine.train import StreamSampler, lr_at, train

SMOKE = PROFILES["smoke"]
# 4 steps, a checkpoint after step 2: the kill/resume tests stop during step 3.
TCFG = dataclasses.replace(SMOKE.train, iters=4, ckpt_every=2, num_workers=0)
STEP3 = 2 * TCFG.grad_accum + 1  # the first loss evaluation of step 3 (one per micro-batch)


def _run(smoke_data, out, **kw):
    root, manifest = smoke_data
    return train(
        SMOKE.model, kw.pop("cfg", TCFG), manifest, root, out, profile="smoke", progress=False, **kw
    )


def _fail_on_call(monkeypatch, n, exc=None):
    """Make the n-th loss evaluation raise ``exc`` (a kill) or return NaN (exc=None)."""
    real, calls = train_mod.total_loss, {"n": 0}

    def patched(*a, **k):
        calls["n"] += 1
        total, terms = real(*a, **k)
        if calls["n"] == n:
            if exc is not None:
                raise exc
            return total * float("nan"), terms
        return total, terms

    monkeypatch.setattr(train_mod, "total_loss", patched)


# ---------------------------------------------------------------------------------------------


def test_schedule_is_peers_closed_form_in_iterations():
    paper = TrainConfig()  # 4450 it/epoch, warm-up 15 epochs, cosine horizon 180 epochs
    per_epoch, lr = 4450, paper.lr
    assert lr_at(0, paper) == 0.0  # PromptIR/AdaIR: epoch 0 trains at lr 0
    assert lr_at(paper.warmup_iters - 1, paper) == pytest.approx(lr)
    assert lr_at(paper.warmup_iters // 2, paper) == pytest.approx(lr / 2, rel=1e-3)
    for epoch in (15, 60, 100, 149):
        peer = 0.5 * lr * (1 + math.cos(math.pi * (epoch - 15) / (180 - 15)))
        assert lr_at(epoch * per_epoch, paper) == pytest.approx(peer, rel=1e-9)
    # Never reaches 0 within the trained iterations (AdaIR: ≈1.6e-5 at epoch 150).
    assert lr_at(paper.iters - 1, paper) == pytest.approx(1.6e-5, rel=0.05)
    # mini keeps the warm-up's relative length but anneals to 0 on its last step (config.py:
    # its few hundred batch-4 steps need it), so it follows its own cosine, not the paper's.
    mini = PROFILES["mini"].train
    assert mini.warmup_iters / mini.iters == pytest.approx(paper.warmup_iters / paper.iters)
    assert mini.cosine_iters == mini.iters
    assert lr_at(mini.iters - 1, mini) == pytest.approx(0, abs=1e-4 * mini.lr)
    for frac in (0.3, 0.7):
        it = round(frac * mini.iters)
        t = (it - mini.warmup_iters) / (mini.iters - mini.warmup_iters)
        expected = 0.5 * (1 + math.cos(math.pi * t))
        assert lr_at(it, mini) / mini.lr == pytest.approx(expected, rel=1e-9)
    with pytest.raises(ValueError, match="warmup_iters"):
        lr_at(0, dataclasses.replace(paper, warmup_iters=10, cosine_iters=10))


def test_stream_is_disjoint_across_ranks_and_resumable():
    # n=5 items, seed 3, world 2, batch 2, accumulation 1, steps start..6
    full = [list(StreamSampler(5, 3, r, 2, 2, 1, 0, 6)) for r in (0, 1)]
    tail = [list(StreamSampler(5, 3, r, 2, 2, 1, 2, 6)) for r in (0, 1)]
    assert full[0][4:] == tail[0] and full[1][4:] == tail[1]
    first_epoch = sorted(i for i, _ in full[0][:2] + full[1][:2] + full[0][2:3])
    assert first_epoch == sorted(set(first_epoch))  # a permutation: no repeats within an epoch
    seeds = [s for rank in full for _, s in rank]
    assert len(set(seeds)) == len(seeds)  # every sample gets its own augmentation seed


def test_checkpoint_contents_and_log(smoke_data, tmp_path, monkeypatch):
    _fail_on_call(monkeypatch, STEP3, KeyboardInterrupt())  # killed during step 3
    with pytest.raises(KeyboardInterrupt):
        _run(smoke_data, tmp_path)
    left = sorted(p.name for p in tmp_path.iterdir() if p.name != ".lock")  # the folder's lock
    assert left == ["last.pt", "log.csv"]  # no tmp files, no owner note
    ckpt = ckp.read_checkpoint(tmp_path / "last.pt")
    assert ckpt["step"] == 2
    assert {"model", "optimizer", "scheduler", "rng", "meta"} <= set(ckpt)
    assert {"python", "numpy", "torch"} <= set(ckpt["rng"])
    meta = ckpt["meta"]
    assert meta["profile"] == "smoke" and meta["seed"] == 0 and meta["commit"]
    assert meta["manifest_sha256"] == ckp.file_sha256(smoke_data[1])
    assert ckp.config_from_dict(type(SMOKE.model), meta["model_cfg"]) == SMOKE.model
    assert ckpt["scheduler"]["last_epoch"] == 2

    log = pd.read_csv(tmp_path / "log.csv")
    assert list(log["step"]) == [1, 2]
    assert log["lr"].iloc[0] == 0.0 and log["lr"].iloc[1] == pytest.approx(lr_at(1, TCFG))
    assert {"loss_charbonnier", "loss_balance", "loss_fft"} <= set(log.columns)
    for a in range(3):  # three ADECs, N experts each: selection shares sum to 1
        shares = log[[f"adec{a}_e{e}" for e in range(SMOKE.model.num_experts)]]
        # the log keeps 6 significant digits: four rounded shares sum to 1 within 4·5e-7
        assert shares.sum(axis=1).to_numpy() == pytest.approx(1.0, abs=2e-6)


def test_resume_is_exact(smoke_data, tmp_path, monkeypatch):
    straight = ckp.read_checkpoint(_run(smoke_data, tmp_path / "straight"))["model"]
    _fail_on_call(monkeypatch, STEP3, KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        _run(smoke_data, tmp_path / "killed")
    monkeypatch.undo()
    final = _run(smoke_data, tmp_path / "killed")  # resumes from last.pt (step 2)
    resumed = ckp.read_checkpoint(final)
    assert resumed["step"] == 4
    for k, v in straight.items():
        assert torch.allclose(v, resumed["model"][k], atol=1e-6, rtol=0), k
    changed = ckp.read_checkpoint(tmp_path / "straight" / "final.pt")["model"]
    assert any(not torch.equal(changed[k], v) for k, v in _init_state().items())
    log = pd.read_csv(tmp_path / "killed" / "log.csv")
    assert list(log["step"]) == [1, 2, 3, 4]  # the lost step 3 is logged once
    assert not (tmp_path / "killed" / "last.pt").exists()
    assert (tmp_path / "killed" / "meta.json").is_file()


def _init_state():
    from m2ir_lib.core.networks import build_model

    torch.manual_seed(0)
    return build_model(SMOKE.model).state_dict()


def test_nan_loss_stops_with_iteration_and_keeps_checkpoint(smoke_data, tmp_path, monkeypatch):
    _fail_on_call(monkeypatch, STEP3)  # the loss of step 3 is NaN
    with pytest.raises(FloatingPointError, match=r"iteration 3 of 4.*last\.pt"):
        _run(smoke_data, tmp_path)
    assert not (tmp_path / "final.pt").exists()
    good = ckp.read_checkpoint(tmp_path / "last.pt")
    assert good["step"] == 2
    assert all(torch.isfinite(v).all() for v in good["model"].values() if v.is_floating_point())
    model, meta = ckp.load_checkpoint(tmp_path / "last.pt")
    assert meta["step"] == 2 and not model.training


def test_resume_refuses_another_run(smoke_data, tmp_path):
    _run(smoke_data, tmp_path)
    with pytest.raises(ValueError, match="another run"):
        _run(smoke_data, tmp_path, seed=1)


def test_run_cache_reuses_identical_runs(smoke_data, tmp_path):
    root, manifest = smoke_data
    kw = dict(profile="smoke", root=tmp_path, progress=False)
    first = runs.cached_train(SMOKE.model, TCFG, manifest, root, **kw)
    assert first.parent.parent == tmp_path / "smoke"
    assert {"final.pt", "log.csv", "meta.json"} <= {p.name for p in first.parent.iterdir()}
    stamp = first.stat().st_mtime_ns
    again = runs.cached_train(
        SMOKE.model, dataclasses.replace(TCFG, log_every=3), manifest, root, **kw
    )
    assert again == first and first.stat().st_mtime_ns == stamp  # no retraining
    key = runs.run_key(SMOKE.model, TCFG, manifest)
    assert key != runs.run_key(SMOKE.model, TCFG, manifest, seed=1)
    assert key != runs.run_key(dataclasses.replace(SMOKE.model, top_k=1), TCFG, manifest)
    model, meta = ckp.load_checkpoint(first)
    x = torch.rand(1, 3, 24, 40)
    assert model(x).shape == x.shape and meta["step"] == TCFG.iters


def test_run_key_follows_the_synthetic_build_not_only_its_manifest(tmp_path):
    # A rebuilt mini set (new generator code) keeps its manifests' paths byte for byte; the
    # runs trained on the old images must not be reused for it.
    manifest = tmp_path / "build" / "manifests" / "mini_3d.csv"
    manifest.parent.mkdir(parents=True)
    manifest.write_text("split,task,degraded_path,clean_path\n")
    plain = runs.run_key(SMOKE.model, TCFG, manifest)
    stamp = tmp_path / "build" / runs.BUILD_STAMP
    stamp.write_text('{"code_sha256": "a"}')
    first = runs.run_key(SMOKE.model, TCFG, manifest)
    stamp.write_text('{"code_sha256": "b"}')
    assert len({plain, first, runs.run_key(SMOKE.model, TCFG, manifest)}) == 3


@pytest.mark.slow
def test_train_many_runs_distinct_specs_in_parallel(smoke_data, tmp_path):
    root, manifest = smoke_data
    one = dict(
        model_cfg=SMOKE.model,
        train_cfg=dataclasses.replace(TCFG, iters=2),
        manifest=manifest,
        data_root=root,
        profile="smoke",
        root=tmp_path,
    )
    specs = [one, {**one, "seed": 1}, one]  # the duplicate trains once
    paths = runs.train_many(specs, jobs=2)
    assert paths[0] == paths[2] != paths[1]
    assert len(list((tmp_path / "smoke").iterdir())) == 2
    assert all(p.is_file() for p in paths)
