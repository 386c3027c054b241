"""ADEC use report (m2ir_lib.adec), the α initialisation and the sized mini baseline."""

import dataclasses

import pytest
import torch

from m2ir_lib import adec, experiments
from m2ir_lib.config import MODEL_PRESETS, get_profile
from m2ir_lib.model import M2IR

SMOKE = MODEL_PRESETS["smoke"]


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _params(cfg):
    return sum(p.numel() for p in M2IR(cfg).parameters())


def test_alpha_init_is_a_value_not_a_structure():
    torch.manual_seed(0)
    off = M2IR(SMOKE)
    torch.manual_seed(0)
    on = M2IR(dataclasses.replace(SMOKE, adec_alpha_init=0.5))
    assert all((m.alpha == 0).all() for m in off.adecs)
    assert all((m.alpha == 0.5).all() and (m.beta == 1).all() for m in on.adecs)
    assert _params(SMOKE) == _params(dataclasses.replace(SMOKE, adec_alpha_init=0.5))
    x = torch.rand(1, 3, 32, 32)
    assert not torch.allclose(off(x), on(x))  # the branch now reaches the output
    with adec.adec_off(on):
        torch.testing.assert_close(on(x), off(x))  # same weights, α = 0: identical


def test_adec_gates_reads_alpha_and_beta():
    model = M2IR(SMOKE)
    with torch.no_grad():
        model.adecs[1].alpha[0, :2] = torch.tensor([-0.3, 0.1])[:, None, None]
        model.adecs[2].beta.fill_(0.9)
    g = adec.adec_gates(model)
    assert list(g["position"]) == ["latent", "dec3", "dec2"]
    assert list(g["channels"]) == [8 * SMOKE.dim, 4 * SMOKE.dim, 2 * SMOKE.dim]
    assert g.loc[0, "alpha_abs_max"] == 0
    assert g.loc[1, "alpha_abs_max"] == pytest.approx(0.3)
    assert g.loc[1, "alpha_abs_mean"] == pytest.approx(0.4 / (4 * SMOKE.dim))
    assert g.loc[2, "beta_mean"] == pytest.approx(0.9) and g.loc[2, "beta_dev"] == pytest.approx(
        0.1
    )
    base = M2IR(dataclasses.replace(SMOKE, **experiments.BASELINE))
    assert adec.adec_gates(base).empty


def test_branch_share_is_zero_when_closed_and_positive_when_open():
    images = [torch.rand(3, 32, 32), torch.rand(1, 3, 40, 24)]
    closed = adec.branch_share(M2IR(SMOKE), images)
    assert list(closed["position"]) == ["latent", "dec3", "dec2"] and (closed["share"] == 0).all()
    model = M2IR(dataclasses.replace(SMOKE, adec_alpha_init=1.0))
    opened = adec.branch_share(model, images)
    assert (opened["share"] > 0).all()
    doubled = dataclasses.replace(SMOKE, adec_alpha_init=2.0)
    torch.manual_seed(0)
    a = adec.branch_share(M2IR(dataclasses.replace(SMOKE, adec_alpha_init=1.0)), images)
    torch.manual_seed(0)
    b = adec.branch_share(M2IR(doubled), images)
    # the first ADEC sees the same X̂ in both (later ones see the first one's output)
    assert b.loc[0, "share"] == pytest.approx(2 * a.loc[0, "share"], rel=1e-5)
    with pytest.raises(ValueError, match="no images"):
        adec.branch_share(model, [])


def test_adec_off_restores_alpha_even_on_error():
    model = M2IR(dataclasses.replace(SMOKE, adec_alpha_init=0.25))
    with pytest.raises(RuntimeError), adec.adec_off(model):
        assert all((m.alpha == 0).all() for m in model.adecs)
        raise RuntimeError("boom")
    assert all((m.alpha == 0.25).all() for m in model.adecs)


def test_adec_ablation_scores_on_and_off(tmp_path):
    from data_prep.mini import build

    paths = build(tmp_path / "smoke", seed=0, size="smoke")
    torch.manual_seed(0)
    model = M2IR(dataclasses.replace(SMOKE, adec_alpha_init=1.0))
    per_image, summary = adec.adec_ablation(model, paths["mini_3d"], data_root=tmp_path / "smoke")
    assert set(summary["task"]) == {"denoise", "derain", "dehaze"}
    assert summary["n"].sum() == len(per_image) > 0
    torch.testing.assert_close(
        torch.tensor(per_image["delta_psnr"].values),
        torch.tensor((per_image["psnr_on"] - per_image["psnr_off"]).values),
    )
    assert (per_image["delta_psnr"].abs() > 0).all()  # α = 1: the branch changes every output
    assert all((m.alpha == 1).all() for m in model.adecs)  # restored afterwards
    # α = 0 everywhere: switching the branch off changes nothing.
    _, same = adec.adec_ablation(M2IR(SMOKE), paths["mini_3d"], data_root=tmp_path / "smoke")
    assert (same["delta_psnr"] == 0).all()
    with pytest.raises(ValueError, match="no ADEC"):
        adec.adec_ablation(
            M2IR(dataclasses.replace(SMOKE, **experiments.BASELINE)), paths["mini_3d"]
        )


def test_mini_baseline_has_the_papers_parameter_ratio():
    mini = get_profile("mini")
    m2ir = _params(mini.model)
    base = _params(dataclasses.replace(mini.model, **experiments.restormer_baseline("mini")))
    assert base / m2ir == pytest.approx(26.1 / 39.1, abs=0.02)
    # The paper profile's opponent is the all-off network itself (Restormer's layout).
    assert experiments.restormer_baseline("paper") == experiments.BASELINE
    # Table VII's all-off row stays M²IR's backbone (an ablation, not the opponent).
    ablation = _params(dataclasses.replace(mini.model, **experiments.BASELINE))
    assert ablation < base


def test_table_runs_use_the_sized_baseline(monkeypatch):
    from m2ir_lib import tables

    fake = experiments.Data("3d", None, None, "stand-in", "not built in this test")
    monkeypatch.setattr(tables, "locate", lambda *a, **k: fake)  # no mini build
    runs = {r.label: r for r in tables.table_runs("I", "mini")}
    base = runs["Restormer-style (ours, mini)"]
    assert base.model.num_blocks == (1, 2, 2, 4) and base.model.block == "transformer"
    assert runs["M²IR (ours, mini)"].model.num_blocks == (1, 2, 2, 2)
