"""Evaluation of §IV on the smoke benchmark: per-image rows, per-task summary, baselines."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

from m2ir_lib.core.config import PROFILES, baseline_config, get_profile
from m2ir_lib.core.networks import build_model
from m2ir_lib.data import metrics
from m2ir_lib.data.metrics import NA_WEIGHTS
from m2ir_lib.engine.evaluate import evaluate, evaluate_identity
from m2ir_lib.workbook import scoring

SMOKE = PROFILES["smoke"]


def test_identity_has_a_row_per_task_and_sigma(smoke_data):
    root, manifest = smoke_data
    per_image, summary = evaluate_identity(manifest, data_root=root, max_images=2)
    assert {"task", "sigma", "name", "psnr", "ssim"} <= set(per_image.columns)
    assert set(summary["task"]) == {"denoise", "derain", "dehaze"}  # the 3D setting
    denoise = summary[summary["task"] == "denoise"]
    assert sorted(denoise["sigma"]) == [15.0, 25.0, 50.0]  # one row per noise level
    assert (summary["n"] <= 2).all() and summary["n"].sum() == len(per_image)
    assert (per_image["psnr"] > 5).all() and per_image["ssim"].between(-1, 1).all()
    # Stronger noise, lower PSNR of the degraded input.
    by_sigma = denoise.set_index("sigma")["psnr"]
    assert by_sigma[15.0] > by_sigma[25.0] > by_sigma[50.0]


def test_model_and_restormer_baseline_run_through_the_same_code(smoke_data):
    root, manifest = smoke_data
    torch.manual_seed(0)
    for cfg in (SMOKE.model, baseline_config(SMOKE.model)):
        model = build_model(cfg)
        per_image, summary = evaluate(
            model, manifest, data_root=root, tasks=["derain"], max_images=1
        )
        assert list(summary["task"]) == ["derain"] and len(per_image) == 1
        assert math.isfinite(summary["psnr"].iloc[0])
    base = baseline_config(SMOKE.model)
    assert base.block == "transformer" and base.prior == "none" and not base.has_adec


def test_weatherbench_protocol_marks_missing_weights(smoke_data, monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # no AlexNet here
    root, manifest = smoke_data
    per_image, summary = evaluate_identity(
        manifest, "weatherbench", data_root=root, tasks=["derain"], max_images=2
    )
    assert (per_image["lpips"] == NA_WEIGHTS).all()
    assert summary["lpips"].iloc[0] == NA_WEIGHTS and summary["fid"].iloc[0] == NA_WEIGHTS
    peer, _ = evaluate_identity(manifest, data_root=root, tasks=["derain"], max_images=2)
    assert not (per_image["psnr"].to_numpy() == peer["psnr"].to_numpy()).all()


def test_bad_protocol_and_empty_selection(smoke_data):
    root, manifest = smoke_data
    with pytest.raises(ValueError, match="unknown protocol"):
        evaluate_identity(manifest, "basicsr", data_root=root)
    with pytest.raises(ValueError, match="no 'test' rows"):
        evaluate_identity(manifest, data_root=root, tasks=["desnow"])


def _random_fid_weights(path):
    """A random-weight file in the format of pytorch-fid's weights (its FID Inception)."""
    from pytorch_fid import inception as fn

    torch.manual_seed(0)
    net = fn._inception_v3(num_classes=1008, aux_logits=False, weights=None, init_weights=False)
    blocks = dict(
        Mixed_5b=fn.FIDInceptionA(192, pool_features=32),
        Mixed_5c=fn.FIDInceptionA(256, pool_features=64),
        Mixed_5d=fn.FIDInceptionA(288, pool_features=64),
        Mixed_6b=fn.FIDInceptionC(768, channels_7x7=128),
        Mixed_6c=fn.FIDInceptionC(768, channels_7x7=160),
        Mixed_6d=fn.FIDInceptionC(768, channels_7x7=160),
        Mixed_6e=fn.FIDInceptionC(768, channels_7x7=192),
        Mixed_7b=fn.FIDInceptionE_1(1280),
        Mixed_7c=fn.FIDInceptionE_2(2048),
    )
    for name, block in blocks.items():
        setattr(net, name, block)
    torch.save(net.state_dict(), path)
    return path


def test_table_iv_computes_fid_from_a_user_given_weights_file(monkeypatch, tmp_path):
    """Issue 9, defect 5: FID reaches Table IV's rows through scoring.score_rows."""
    import socket

    from m2ir_lib.workbook.settings import Data

    def no_network(*a, **k):
        raise AssertionError("FID tried to reach the network")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # no cached weights to fall back on
    weights = _random_fid_weights(tmp_path / "fid_random.pth")
    from data_prep.mini import build_mini

    root = tmp_path / "mini"
    full = build_mini(root, seed=0, size="smoke")["mini_weatherbench"]
    # One weather type: each FID costs a 2048² matrix square root (~50 s on one core).
    manifest = tmp_path / "weatherbench_haze.csv"
    rows = pd.read_csv(full)
    rows[(rows["split"] == "train") | (rows["task"] == "dehaze")].to_csv(manifest, index=False)
    data = Data("weatherbench", manifest, root, "smoke stand-in")
    rows = scoring.score_rows(
        "IV", [], {}, profile=get_profile("smoke"), data=data, inception_weights=weights
    )
    fid = rows[rows["metric"] == "FID"]
    assert set(fid["task"]) == {"dehaze"}
    assert fid["value"].map(math.isfinite).all() and (fid["value"] >= 0).all()
    none = scoring.score_rows("IV", [], {}, profile=get_profile("smoke"), data=data)
    assert (none["metric"] == "FID").sum() == 0  # without weights: a status row says why
    assert none["note"].str.contains("FID").any()
    with pytest.raises(FileNotFoundError, match="pt_inception"):
        metrics.fid([np.zeros((8, 8, 3))] * 2, [np.ones((8, 8, 3))] * 2, tmp_path / "nope.pth")


def test_shards_put_back_together_are_the_whole_evaluation(smoke_data):
    """`evaluate_in_parallel` deals the images out to workers: each shard keeps the input a
    full run gives that image (same noise), and `merge_shards` restores the full run's order."""
    from m2ir_lib.engine.evaluate import merge_shards

    root, manifest = smoke_data
    model = torch.nn.AvgPool2d(3, stride=1, padding=1)  # cheap, and it sees the noise
    kw = dict(data_root=root, tasks=["denoise"], max_images=2)  # 3 sigmas × 2 images
    whole, _ = evaluate(model, manifest, **kw)
    parts = [evaluate(model, manifest, shard=(k, 4), **kw)[0] for k in range(4)]
    assert sum(len(p) for p in parts) == len(whole)
    pd.testing.assert_frame_equal(merge_shards(parts), whole, check_dtype=False)
    empty, _ = evaluate(model, manifest, data_root=root, max_images=1, shard=(99, 100))
    assert empty.empty
    with pytest.raises(ValueError, match="0 <= k < n"):
        evaluate(model, manifest, data_root=root, shard=(2, 2))
    with pytest.raises(ValueError, match="whole test set"):
        evaluate(model, manifest, data_root=root, shard=(0, 2), inception_weights="x.pth")
