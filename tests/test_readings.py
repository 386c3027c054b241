"""Eq. (1) and its readings (issue 27): `M2IRConfig.msa_reading`, `MSA`, and the tables of
m2ir_lib.workbook.readings that notebook 01 shows."""

import dataclasses
from pathlib import Path

import pytest
import torch

from m2ir_lib.core.config import MODEL_PRESETS, M2IRConfig
from m2ir_lib.core.model import M2IR, MSA
from m2ir_lib.engine.checkpoint import config_to_dict
from m2ir_lib.engine.runs import run_key
from m2ir_lib.workbook import readings

# MSA and a seeded smoke M²IR computed with MSA.forward before the switch existed (eq. (1) as
# printed, MDTA(σ(W_d W_l¹ X))), saved by the code of that commit.
REFERENCE = Path(__file__).parent / "fixtures" / "msa_literal_reference.pt"


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_literal_reading_is_numerically_unchanged():
    ref = torch.load(REFERENCE)
    msa = MSA(8, 2)  # the default reading
    msa.load_state_dict(ref["msa_state"])
    with torch.no_grad():
        torch.testing.assert_close(msa(ref["msa_input"]), ref["msa_output"], rtol=0, atol=1e-6)
    torch.manual_seed(0)
    net = M2IR(MODEL_PRESETS["smoke"])
    for adec in net.adecs:
        torch.nn.init.constant_(adec.alpha, 0.5)
    with torch.no_grad():
        torch.testing.assert_close(net(ref["net_input"]), ref["net_output"], rtol=0, atol=1e-6)


@pytest.mark.parametrize("preset", ["smoke", "mini", "paper"])
def test_every_reading_has_the_same_parameters(preset):
    counts = readings.reading_parameters(MODEL_PRESETS[preset])
    assert list(counts.reading) == ["literal", "modulate", "silu"]
    assert counts.params.nunique() == 1


def test_readings_compute_what_they_say():
    torch.manual_seed(0)
    msa, x = MSA(8, 2), torch.randn(1, 8, 6, 6)
    seen = {}
    for reading, block in readings.reading_blocks(msa).items():
        hook = block.mdta.register_forward_hook(
            lambda m, a, o, r=reading: seen.__setitem__(r, a[0])
        )
        block(x)
        hook.remove()
    pre = msa.w_d(msa.w_l1(x))
    torch.testing.assert_close(seen["literal"], torch.sigmoid(pre))
    torch.testing.assert_close(seen["modulate"], x * torch.sigmoid(pre))
    torch.testing.assert_close(seen["silu"], torch.nn.functional.silu(pre))
    trace = readings.reading_trace(msa, x).set_index("reading")
    assert trace.loc["literal", "input min"] >= 0 and trace.loc["literal", "input max"] <= 1
    assert trace.loc["literal", "change vs literal"] == 0
    assert (trace.loc[["modulate", "silu"], "change vs literal"] > 0).all()


def test_unknown_reading_is_refused():
    with pytest.raises(ValueError, match="msa_reading"):
        M2IRConfig(msa_reading="mask")
    with pytest.raises(ValueError, match="reading"):
        MSA(8, 2, reading="mask")


def test_default_reading_keeps_every_cached_run_key(tmp_path):
    """A field added later stays out of a config's dict at its default, so cached runs keep
    their keys; another reading is another run."""
    cfg = MODEL_PRESETS["mini"]
    assert "msa_reading" not in config_to_dict(cfg)
    silu = dataclasses.replace(cfg, msa_reading="silu")
    assert config_to_dict(silu)["msa_reading"] == "silu"
    manifest = tmp_path / "m.csv"
    manifest.write_text("x\n")
    train = __import__("m2ir_lib.core.config", fromlist=["TrainConfig"]).TrainConfig()
    assert run_key(cfg, train, manifest) != run_key(silu, train, manifest)


def test_mamba_table_points_at_real_code_lines():
    table = readings.mamba_table()
    assert list(table.columns) == ["component", "Mamba", "MLLA", "MST", "code line"]
    lines = [c for c in table["code line"] if c != "—"]
    assert lines and all(c.startswith("model.py:") for c in lines)
    assert any("self.mdta(" in c for c in lines)
