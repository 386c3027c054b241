"""The rivals (Restormer, PromptIR, AdaIR): the authors' sizes and MACs, strict loading of
their released files, and training/evaluation through the same machinery as M²IR.

The released files' key names and shapes (tests/fixtures/released_keys.json) were dumped from
the authors' own code; benchmarks/rivals_vs_authors.py compares outputs with that code.
"""

import argparse
import json
from pathlib import Path

import pytest
import torch

from m2ir_lib import efficiency as efficiency_cli
from m2ir_lib.core import config
from m2ir_lib.core.config import get_profile
from m2ir_lib.core.released import convert_released, load_released
from m2ir_lib.core.rivals import RIVALS, RivalConfig, build_rival, rival_config
from m2ir_lib.engine import efficiency, speed
from m2ir_lib.workbook import settings
from m2ir_lib.workbook.experiments import plan_rival

KEYS = json.loads((Path(__file__).parent / "fixtures" / "released_keys.json").read_text())
PREFIX = {"params": "", "state_dict": "net."}  # BasicSR / Lightning (`self.net`)
# The authors' code, counted with ptflops at 480×720 (parameters exact; MACs, attention
# products excluded). Table XIII prints 34.1M / 745G for PromptIR: not the official code.
AUTHORS = {
    "restormer": (26_126_644, 744.83e9),
    "adair": (28_784_824, 777.55e9),
    "promptir": (35_592_263, 835.34e9),
}


def _released(net: str, fill=torch.randn) -> dict:
    """A file laid out as the authors' release of `net`: exact names and shapes."""
    spec = KEYS["networks"][net]
    torch.manual_seed(0)
    state = {k: fill(*shape) for k, shape in spec["keys"].items()}
    assert all(k.startswith(PREFIX[spec["container"]]) for k in state)
    return {spec["container"]: state, "epoch": 3}  # Lightning keeps more than weights


@pytest.mark.parametrize("name", RIVALS)
def test_parameter_counts_are_the_authors(name):
    model = build_rival(name)
    assert sum(p.numel() for p in model.parameters()) == AUTHORS[name][0]


@pytest.mark.parametrize("net", ["restormer", "restormer_biasfree", "promptir", "adair"])
def test_released_files_load_strictly(net):
    name = net.split("_")[0]
    released = _released(net, fill=torch.zeros)
    model = load_released(name, released)  # strict: every key used, every parameter set
    assert model.cfg.layer_norm == ("biasfree" if net.endswith("biasfree") else "withbias")
    file_numel = sum(v.numel() for v in released[KEYS["networks"][net]["container"]].values())
    assert sum(p.numel() for p in model.parameters()) == file_numel
    assert not model.training


def test_released_values_land_where_the_authors_use_them():
    """MDTA's fused qkv is split into our q (first C channels) and kv; names map one to one."""
    raw = _released("restormer")["params"]
    ours = convert_released(raw)
    qkv = raw["encoder_level2.1.attn.qkv.weight"]  # (3·96, 96, 1, 1)
    assert torch.equal(ours["encoder2.1.attn.q.weight"], qkv[:96])
    assert torch.equal(ours["encoder2.1.attn.kv.weight"], qkv[96:])
    dw = raw["latent.0.attn.qkv_dwconv.weight"]
    assert torch.equal(ours["latent.0.attn.kv_dwconv.weight"], dw[384:])
    assert torch.equal(ours["up3.0.weight"], raw["up4_3.body.0.weight"])
    prompt = _released("promptir")["state_dict"]
    ours = convert_released(prompt)
    assert torch.equal(ours["prompts.0.pgm.components"], prompt["net.prompt3.prompt_param"][0])
    assert torch.equal(
        ours["prompts.2.pim.reduce.weight"], prompt["net.reduce_noise_level1.weight"]
    )
    adair = convert_released(_released("adair"))
    assert adair["aflbs.2.alpha"].shape == (96, 1, 1)  # fre3 = the AFLB after decoder 2


def test_released_file_forms_and_errors(tmp_path):
    adair = _released("adair", fill=torch.zeros)["state_dict"]
    bare = {k.removeprefix("net."): v for k, v in adair.items()}
    load_released("adair", {"module." + k: v for k, v in bare.items()})  # DataParallel
    path = tmp_path / "adair.ckpt"
    torch.save({"state_dict": {"net." + k: v for k, v in bare.items()}}, path)
    assert isinstance(load_released("adair", path), torch.nn.Module)
    with pytest.raises(ValueError, match="does not fit PromptIR"):
        load_released("promptir", path)
    with pytest.raises(FileNotFoundError, match="no released checkpoint"):
        load_released("adair", tmp_path / "missing.ckpt")
    torch.save({"state_dict": bare, "hparams": argparse.Namespace(lr=2e-4)}, path)
    with pytest.raises(ValueError, match="trusted=True"):
        load_released("adair", path)
    gray = dict(_released("restormer", fill=torch.zeros)["params"])
    gray["patch_embed.proj.weight"] = torch.zeros(48, 1, 3, 3)
    with pytest.raises(ValueError, match="1-channel"):
        load_released("restormer", gray)


@pytest.mark.parametrize("name", RIVALS)
def test_smoke_forward_backward_any_size(name):
    torch.manual_seed(0)
    model = build_rival(name, "smoke")
    x = torch.rand(2, 3, 30, 44)
    y, routings = model(x, return_routing=True)
    assert y.shape == x.shape and routings == []
    y.mean().backward()
    # as in the authors' code, AdaIR's window ratio is truncated to integers: no gradient
    no_grad = {n for n, p in model.named_parameters() if p.grad is None}
    assert no_grad == {n for n, _ in model.named_parameters() if ".fmim.ratio." in n}
    assert bool(no_grad) == model.cfg.unused_parameters
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        model(torch.rand(1, 1, 32, 32))


def test_restormer_is_the_restormer_style_baseline():
    """Our M²IR-config baseline (Table VII all-off) is Restormer, layer for layer."""
    for size in ("paper", "mini"):
        base = efficiency.build_variant(config.baseline_config(config.MODEL_PRESETS[size]))
        rival = build_rival("restormer", size)
        assert [(k, v.shape) for k, v in base.state_dict().items()] == [
            (k, v.shape) for k, v in rival.state_dict().items()
        ]


def test_rival_configs_follow_the_m2ir_presets():
    mini = rival_config("promptir", "mini")
    assert (mini.dim, mini.num_blocks, mini.unused_layers) == (8, (1, 2, 2, 2), False)
    assert rival_config("adair") == RivalConfig(arch="adair")
    with pytest.raises(ValueError, match="unknown rival"):
        rival_config("mprnet")
    with pytest.raises(ValueError, match="arch"):
        RivalConfig(arch="airnet")


def _macs_at_480x720(name):
    """ptflops MACs of the paper-size network, extrapolated from three small exact counts
    (`efficiency.macs_extrapolated`, which checks the third against the line)."""
    return efficiency.macs_extrapolated(build_rival(name))["macs"]


@pytest.mark.parametrize("name", RIVALS)
def test_macs_match_the_authors_code(name):
    assert _macs_at_480x720(name) == pytest.approx(AUTHORS[name][1], rel=0.005)


@pytest.mark.slow
@pytest.mark.fullcount
@pytest.mark.timeout(1200)
@pytest.mark.parametrize("name", RIVALS)
def test_macs_at_480x720_counted_in_full(name):
    """The paper-size network counted at the paper's size (2–3 min each on a free core).

    Not in `make test` (it would add ~8 min): `test_macs_match_the_authors_code` gets the same
    number from three small exact counts, and this confirms it on request:
    `pytest -m fullcount tests/test_rivals.py`.
    """
    out = efficiency.count_rival(name)
    assert out["params"] == AUTHORS[name][0]
    assert out["macs"] == pytest.approx(AUTHORS[name][1], rel=0.005)
    assert 0 < out["attention_macs"] < 0.2 * out["macs"]


def test_cli_json_for_every_model(capsys):
    for name in efficiency.MODELS:
        efficiency_cli.main(["--model", name, "--config", "smoke", "--size", "32", "48", "--json"])
        out = json.loads(capsys.readouterr().out)
        assert out["params"] > 0 and out["macs"] > 0
    with pytest.raises(SystemExit):
        efficiency_cli.main(["--model", "adair", "--daclip", "mlp"])


def test_one_table_measures_m2ir_and_the_rivals():
    models = efficiency.table_xiii_models("smoke", rivals=True)
    models.pop("M²IR")  # its DA-CLIP row is test_efficiency's (a tiny CLIP there)
    table = speed.efficiency_table(models, size=(32, 48), repeats=1, warmup=0)
    assert list(table["method"])[-3:] == ["Restormer", "PromptIR", "AdaIR"]
    rows = table.set_index("method")
    assert rows.loc[["Restormer", "PromptIR", "AdaIR"], "latency_ms_cpu"].gt(0).all()
    assert rows.loc[["Restormer", "PromptIR", "AdaIR"], "cpu_mb"].gt(0).all()
    assert rows.loc["Restormer", "macs_G"] == rows.loc["Restormer-style baseline", "macs_G"]
    assert rows.loc["PromptIR", "params_M"] > rows.loc["Restormer", "params_M"]


def test_rival_trains_and_reloads_through_the_run_cache(tmp_path, monkeypatch):
    from m2ir_lib.engine.checkpoint import load_checkpoint
    from m2ir_lib.workbook import experiments

    monkeypatch.setenv("M2IR_RUNS", str(tmp_path / "runs"))
    data = settings.locate("3d", get_profile("smoke"))
    m2ir = experiments.plan("M²IR (ours)", get_profile("smoke"), data, seed=1)
    run = plan_rival("adair", get_profile("smoke"), data, seed=1)
    assert (run.label, run.train, run.seed, run.tasks) == ("AdaIR", m2ir.train, 1, m2ir.tasks)
    assert experiments.run_dir(run, get_profile("smoke")) != experiments.run_dir(
        m2ir, get_profile("smoke")
    )
    ckpt = experiments.train_runs([run], get_profile("smoke"), jobs=1)["AdaIR"]
    model, meta = load_checkpoint(ckpt)
    assert type(model).__name__ == "AdaIR" and meta["model_cfg"]["arch"] == "adair"
    assert model.cfg == run.model
