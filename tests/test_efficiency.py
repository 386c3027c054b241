"""Complexity convention of Table XIII (§IV-E) and the efficiency helpers.

Counting uses smoke-sized models and tiny inputs; the paper's 39.1M / 961G / 285.3M are
checked once in a slow test (about 2 min on one CPU thread, 4.3 GB peak).
"""

import dataclasses
import json

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from m2ir_lib import efficiency as efficiency_cli
from m2ir_lib.core import model as model_lib
from m2ir_lib.core.config import MODEL_PRESETS, baseline_config
from m2ir_lib.engine import efficiency, speed
from m2ir_lib.engine.efficiency import build_variant, complexity_of, count_complexity
from m2ir_lib.engine.speed import efficiency_table, measure_latency, peak_memory

SIZE = (32, 48)
TINY_CLIP = {
    "embed_dim": MODEL_PRESETS["smoke"].prior_dim,  # P' width = prior_dim + T
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8, "head_width": 32},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}


def test_params_and_prior_split():
    none = count_complexity("smoke", "none", SIZE)
    mlp = count_complexity("smoke", "mlp", SIZE)
    assert none["prior_params"] == 0 and none["prior_macs"] == 0
    assert (none["net_params"], none["net_macs"]) == (mlp["net_params"], mlp["net_macs"])
    model = build_variant("smoke", "mlp")
    assert mlp["params"] == sum(p.numel() for p in model.parameters())
    assert mlp["prior_params"] == sum(p.numel() for p in model.prior_encoder.parameters()) > 0
    assert mlp["macs"] == mlp["net_macs"] + mlp["prior_macs"] and mlp["prior_macs"] > 0


def test_attention_macs_match_an_independent_count():
    """Our analytic q·kᵀ + A·v count equals torch's own count of the batched matmuls."""
    model = build_variant("smoke", "mlp").eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.rand(1, 3, *SIZE))
    bmm = {str(k): v for k, v in counter.get_flop_counts()["Global"].items()}["aten.bmm"]
    assert complexity_of(model, SIZE)["attention_macs"] == bmm // 2  # FLOPs = 2 · MACs


def test_macs_exclude_attention_however_it_is_written(monkeypatch):
    """ptflops counts torch.matmul but not `@`; the convention must not depend on which."""
    before = count_complexity("smoke", "none", SIZE)

    def with_torch_matmul(q, k, v, temperature):
        q, k = torch.nn.functional.normalize(q, dim=-1), torch.nn.functional.normalize(k, dim=-1)
        attn = torch.matmul(q, k.transpose(-2, -1)).mul(temperature)  # both patched by ptflops
        return attn.softmax(dim=-1).matmul(v)

    monkeypatch.setattr(model_lib, "channel_attention", with_torch_matmul)
    after = count_complexity("smoke", "none", SIZE)
    assert after["macs"] == before["macs"]
    assert after["attention_macs"] == before["attention_macs"] > 0


def test_experts_are_counted_densely_whatever_the_dispatch():
    sparse = dataclasses.replace(MODEL_PRESETS["smoke"], dispatch="sparse")
    model = build_variant(sparse, "none")
    assert complexity_of(model, SIZE)["macs"] == count_complexity("smoke", "none", SIZE)["macs"]
    assert all(m.dispatch == "sparse" for m in model.modules() if hasattr(m, "dispatch"))


def test_daclip_image_path_counted_once():
    from m2ir_lib.core.daclip import random_daclip

    out = count_complexity("smoke", "daclip", SIZE, daclip_cfg=TINY_CLIP)
    assert out["prior_params"] == sum(p.numel() for p in random_daclip(TINY_CLIP).parameters())
    visual = out["prior_macs_ptflops_aliased"] - out["prior_macs"]  # the alias' double count
    assert 0 < visual < out["prior_macs"]
    assert out["net_macs"] == count_complexity("smoke", "none", SIZE)["net_macs"]


@pytest.mark.parametrize("mode", ["mlp", "daclip"])
def test_extrapolated_count_equals_full_count_with_a_prior(mode):
    """The fast path Table XIII uses: network from three small inputs, prior counted alone."""
    size = (48, 80)  # not one of the three sizes the line is fitted on
    full = count_complexity("smoke", mode, size, daclip_cfg=TINY_CLIP)
    fast = count_complexity("smoke", mode, size, daclip_cfg=TINY_CLIP, extrapolate=True)
    for key in ("params", "net_macs", "attention_macs", "prior_macs", "macs"):
        assert fast[key] == full[key], key


def test_baseline_and_bad_arguments():
    base = baseline_config(MODEL_PRESETS["smoke"])
    assert base.block == "transformer" and not base.has_adec
    assert (
        count_complexity(base, "none", SIZE)["params"]
        < count_complexity("smoke", "none", SIZE)["params"]
    )
    with pytest.raises(ValueError, match="known"):
        count_complexity("huge")
    with pytest.raises(ValueError, match="daclip"):
        build_variant("smoke", "clip")
    with pytest.raises(ValueError, match="DACP"):
        build_variant(base, "mlp")


def test_latency_memory_and_table():
    model = build_variant("smoke", "none")
    assert measure_latency(model, SIZE, warmup=0, repeats=2) > 0
    mem = peak_memory(model, SIZE)
    assert mem["cpu_peak_mb"] > 0 and mem["cpu_forward_mb"] >= 0
    models = efficiency.table_xiii_models("smoke")
    table = efficiency_table(models, size=SIZE, repeats=1, warmup=0, daclip_cfg=TINY_CLIP)
    assert list(table["method"]) == ["M²IR", "M²IR (w/o DA-CLIP)", "Restormer-style baseline"]
    assert {
        "params_M",
        "macs_G",
        "attention_macs_G",
        "latency_ms_cpu",
        "latency_ms_gpu",
        "cpu_mb",
        "gpu_mb",
        "device",
    } <= set(table.columns)
    assert table["cpu_mb"].gt(0).all() and table["gpu_mb"].isna().all()
    # measured on the CPU: the CPU latency column is filled, the GPU one left empty
    assert table["latency_ms_cpu"].gt(0).all() and table["latency_ms_gpu"].isna().all()
    assert table["device"].str.startswith("CPU").all()
    params = table.set_index("method")["params_M"]
    assert params["M²IR"] > params["M²IR (w/o DA-CLIP)"] > params["Restormer-style baseline"]


def test_cpu_memory_probe_ignores_the_parent_process():
    """ru_maxrss would carry this process's 1 GB into the child across fork + exec."""
    ballast = torch.ones(256, 1024, 1024)  # 1 GiB, touched
    child = speed.cpu_peak_rss_mb("smoke", "none", SIZE)
    assert 0 < child < 1024 and ballast.sum() > 0


def test_cli_json(capsys):
    efficiency_cli.main(
        ["--config", "smoke", "--daclip", "mlp", "--size", *map(str, SIZE), "--json"]
    )
    out = json.loads(capsys.readouterr().out)
    assert out["config"] == "smoke" and {"params", "macs", "attention_macs"} <= out.keys()


# The paper network without DA-CLIP at 480×720, counted in full once (2026-12-03) and
# equal to the extrapolation from three small inputs that the default suite uses.
PAPER_NET = {"net_params": 38_804_826, "net_macs": 965_299_726_368}


def test_paper_network_counts_match_table_xiii():
    """39.1M / 961G w/o DA-CLIP within 1.5 % (Table XIII), from three small exact counts."""
    from m2ir_lib.workbook.results import paper_table

    paper = paper_table("XIII").set_index(["method", "metric"])["value"]
    out = efficiency.macs_extrapolated(efficiency.build_variant("paper", "none"))
    assert out["net_params"] == PAPER_NET["net_params"]
    assert out["net_macs"] == pytest.approx(PAPER_NET["net_macs"], abs=1)
    assert out["net_params"] / 1e6 == pytest.approx(
        paper["M²IR (w/o DA-CLIP)", "Params (M)"], rel=0.015
    )
    assert out["net_macs"] / 1e9 == pytest.approx(
        paper["M²IR (w/o DA-CLIP)", "FLOPs (G)"], rel=0.015
    )


@pytest.mark.slow
@pytest.mark.fullcount
@pytest.mark.timeout(1200)
def test_paper_counts_match_table_xiii():
    """Counted in full at 480×720 (~3 min): the network equals the extrapolation above, and
    with DA-CLIP 285.3M within 1 % (Table XIII). `pytest -m fullcount tests/test_efficiency.py`."""
    from m2ir_lib.workbook.results import paper_table

    paper = paper_table("XIII").set_index(["method", "metric"])["value"]
    out = count_complexity("paper", "daclip")
    assert out["net_params"] == PAPER_NET["net_params"]
    assert out["net_macs"] == PAPER_NET["net_macs"]
    assert out["params"] / 1e6 == pytest.approx(paper["M²IR", "Params (M)"], rel=0.01)
    assert out["macs"] / 1e9 == pytest.approx(paper["M²IR", "FLOPs (G)"], rel=0.015)
    assert out["prior_params"] == 246_213_634
