"""M²IR network (§III): shapes, routing rules of eq. (4)–(6), dispatch, ablations, size."""

import csv
import dataclasses
import inspect
import re
from pathlib import Path

import pytest
import torch
from torch import nn

from m2ir_lib.core import model as model_module
from m2ir_lib.core.config import MODEL_PRESETS
from m2ir_lib.core.losses import total_loss
from m2ir_lib.core.model import M2IR, LearnablePrior, ZeroPrior
from m2ir_lib.core.networks import build_model

SMOKE = MODEL_PRESETS["smoke"]
PAPER_CSV = Path(__file__).resolve().parents[1] / "results/reported/table13_efficiency.csv"


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _smoke(**changes):
    return dataclasses.replace(SMOKE, **changes)


def _wake_adecs(model, value=0.5):
    """ADEC starts as the identity (α = 0); give α a value so that its path matters."""
    for adec in model.adecs:
        torch.nn.init.constant_(adec.alpha, value)
    return model


def _prior_width(cfg):
    return cfg.prior_dim + len(cfg.prompts)


@pytest.mark.parametrize("preset", ["smoke", "mini"])
@pytest.mark.parametrize("dispatch", ["dense", "grouped", "sparse"])
def test_forward_shape_and_routing_shapes(preset, dispatch):
    cfg = dataclasses.replace(MODEL_PRESETS[preset], dispatch=dispatch)
    model = _wake_adecs(M2IR(cfg))
    x = torch.rand(2, 3, 32, 32)
    y, routings = model(x, return_routing=True)
    assert y.shape == x.shape and torch.isfinite(y).all()
    n = cfg.num_experts
    sizes = [(4, 4), (8, 8), (16, 16)]  # after latent, dec3, dec2 (AdaIR positions)
    assert len(routings) == 3
    for r, (h, w) in zip(routings, sizes, strict=True):
        assert r.confidence.shape == (2, n, h, w)
        assert r.selected.shape == (2, n, h, w)
        assert r.weights.shape == (2, n + 1, h, w)
    assert torch.equal(model(x), y)  # return_routing only adds the routing


@pytest.mark.parametrize("k", [1, 2, 3])
def test_shared_expert_always_and_exactly_k_specialised(k):
    model = M2IR(_smoke(top_k=k))
    _, routings = model(torch.rand(2, 3, 32, 32), return_routing=True)
    for r in routings:
        n = r.confidence.shape[1]
        torch.testing.assert_close(r.confidence.sum(1), torch.ones_like(r.confidence[:, 0]))
        assert torch.all(r.selected.sum(1) == k)
        assert torch.all(r.weights[:, n] > 0)  # E_S, forced in
        assert torch.all((r.weights[:, :n] > 0) == (r.selected > 0))
        # eq. (5): the weights are softmax([s'; 1]) at the kept entries, not renormalised
        s_hat = torch.softmax(torch.cat([r.confidence, torch.ones_like(r.confidence[:, :1])], 1), 1)
        keep = torch.cat([r.selected, torch.ones_like(r.selected[:, :1])], 1)
        torch.testing.assert_close(r.weights, s_hat * keep)
        assert torch.all(r.weights.sum(1) < 1)
        # the top-K by s' are the selected ones
        top = r.confidence.topk(k, dim=1).indices
        assert torch.all(r.selected.gather(1, top) == 1)
        assert r.selected.grad_fn is None  # S of eq. (9) is a count


@pytest.mark.parametrize("n, k, shared", [(4, 2, True), (8, 3, True), (4, 2, False), (1, 1, True)])
@pytest.mark.parametrize("dispatch", ["sparse", "grouped"])
def test_every_dispatch_equals_dense(n, k, shared, dispatch):
    """Sparse and grouped execution give eq. (6)'s dense output and the same gradients."""
    dense = _wake_adecs(M2IR(_smoke(num_experts=n, top_k=k, shared_expert=shared)))
    other = M2IR(_smoke(num_experts=n, top_k=k, shared_expert=shared, dispatch=dispatch))
    other.load_state_dict(dense.state_dict())
    x = torch.rand(2, 3, 40, 24)
    y_dense, y_other = dense(x), other(x)
    torch.testing.assert_close(y_other, y_dense, atol=1e-5, rtol=0)
    y_dense.square().mean().backward()
    y_other.square().mean().backward()
    for (name, a), b in zip(dense.named_parameters(), other.parameters(), strict=True):
        if a.grad is not None or b.grad is not None:  # sparse skips unselected experts
            ga = a.grad if a.grad is not None else torch.zeros_like(a)
            gb = b.grad if b.grad is not None else torch.zeros_like(b)
            torch.testing.assert_close(gb, ga, atol=1e-6, rtol=1e-4, msg=name)


def test_grouped_dispatch_without_specialised_experts():
    """Table VII's shared-only row: X' = E_S(X̂), one column of weight 1."""
    dense = _wake_adecs(M2IR(_smoke(special_experts=False)))
    grouped = M2IR(_smoke(special_experts=False, dispatch="grouped"))
    grouped.load_state_dict(dense.state_dict())
    x = torch.rand(1, 3, 32, 32)
    torch.testing.assert_close(grouped(x), dense(x), atol=1e-6, rtol=0)


def test_adec_is_identity_at_init():
    """α = 0 (docs/readings.md §10): at init M²IR equals its backbone without ADECs."""
    full = M2IR(SMOKE)
    plain = M2IR(_smoke(special_experts=False, shared_expert=False))
    missing, unexpected = plain.load_state_dict(full.state_dict(), strict=False)
    assert not missing and all(k.startswith(("adecs.", "prior_encoder.")) for k in unexpected)
    x = torch.rand(1, 3, 32, 32)
    torch.testing.assert_close(full(x), plain(x))


@pytest.mark.parametrize("dispatch", ["dense", "grouped", "sparse"])
def test_gradient_reaches_every_parameter(dispatch):
    # With α = 0 an ADEC passes gradient to α and β only (see the next test), so wake it.
    model = _wake_adecs(M2IR(_smoke(dispatch=dispatch)))
    x, target = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    y, routings = model(x, return_routing=True)
    total_loss(y, target, routings)[0].backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_alpha_zero_blocks_inner_adec_gradients():
    """The honest other half: at init an ADEC's inner parameters get exactly zero gradient
    from the restoration loss, and α gets a non-zero one (so training can open it)."""
    model = M2IR(SMOKE)
    y = model(torch.rand(1, 3, 32, 32))
    (y - torch.rand_like(y)).abs().mean().backward()
    adec = model.adecs[0]
    assert adec.alpha.grad.abs().sum() > 0
    assert adec.ca.project_out.weight.grad.abs().sum() == 0
    assert adec.dgea.experts[-1].fc1.weight.grad.abs().sum() == 0


ABLATIONS = {
    "paper_switches": {},
    "transformer": {"block": "transformer"},
    "prior_none": {"prior": "none"},
    "prior_daclip_injected": {"prior": "daclip"},
    "no_shared": {"shared_expert": False},
    "shared_only": {"special_experts": False},
    "no_adec": {"special_experts": False, "shared_expert": False},
    "restormer_baseline": {
        "block": "transformer",
        "special_experts": False,
        "shared_expert": False,
    },
    "n2_k1": {"num_experts": 2, "top_k": 1},
    "n8_k4": {"num_experts": 8, "top_k": 4},
}


@pytest.mark.parametrize("name", ABLATIONS)
@pytest.mark.parametrize("dispatch", ["dense", "grouped", "sparse"])
def test_ablation_builds_and_runs(name, dispatch):
    cfg = _smoke(dispatch=dispatch, **ABLATIONS[name])
    prior = LearnablePrior(cfg.prior_dim, len(cfg.prompts)) if cfg.prior == "daclip" else None
    model = _wake_adecs(M2IR(cfg, prior_encoder=prior))
    y, routings = model(torch.rand(1, 3, 24, 32), return_routing=True)
    assert y.shape == (1, 3, 24, 32) and torch.isfinite(y).all()
    assert len(model.adecs) == (3 if cfg.has_adec else 0)
    assert len(routings) == (3 if cfg.special_experts else 0)
    has_dacp = cfg.special_experts and cfg.prior != "none"
    assert all((a.dacp is not None) == has_dacp for a in model.adecs)
    if cfg.special_experts and not cfg.shared_expert:
        assert all(torch.all(r.weights[:, -1] == 0) for r in routings)
    y.mean().backward()  # every variant trains


def test_mst_versus_transformer_blocks():
    mst = M2IR(SMOKE)
    plain = M2IR(_smoke(block="transformer"))
    assert isinstance(mst.encoder1[0], model_module.MST)
    assert isinstance(mst.encoder1[0].attn, model_module.MSA)
    assert type(plain.encoder1[0]) is model_module.TransformerBlock
    assert type(plain.adecs[0].mst[0]) is model_module.TransformerBlock


@pytest.mark.parametrize("size", [(37, 53), (8, 9), (64, 40)])
def test_any_size_returns_same_shape(size):
    x = torch.rand(1, 3, *size)
    y = M2IR(SMOKE)(x)
    assert y.shape == x.shape and torch.isfinite(y).all()


def test_bad_inputs_raise():
    model = M2IR(SMOKE)
    with pytest.raises(ValueError, match="too small"):
        model(torch.rand(1, 3, 4, 16))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        model(torch.rand(1, 1, 16, 16))


def test_daclip_without_prior_raises_clear_error():
    cfg = _smoke(prior="daclip")
    for make in (lambda: M2IR(cfg), lambda: build_model(cfg)):
        with pytest.raises(ValueError, match=r"daclip_ViT-B-32\.pt.*prior='mlp'"):
            make()
    with pytest.raises(ValueError, match="only used with prior='daclip'"):
        M2IR(SMOKE, prior_encoder=ZeroPrior(_prior_width(SMOKE)))
    bad = M2IR(cfg, prior_encoder=ZeroPrior(_prior_width(cfg) + 1))
    with pytest.raises(ValueError, match="prior encoder gave"):
        bad(torch.rand(1, 3, 16, 16))


def test_prior_computed_once_per_image():
    cfg = _smoke(prior="daclip")
    calls = []
    prior = ZeroPrior(_prior_width(cfg))
    prior.register_forward_hook(lambda m, i, o: calls.append(i[0].shape))
    M2IR(cfg, prior_encoder=prior)(torch.rand(2, 3, 37, 21))
    assert calls == [(2, 3, 37, 21)]  # once, on the unpadded image


def test_attention_products_only_in_channel_attention(monkeypatch):
    """Efficiency code relies on this: every q·kᵀ / A·v goes through `channel_attention`."""
    calls = []
    original = model_module.channel_attention

    def counting(q, k, v, temperature):
        calls.append(q.shape)
        return original(q, k, v, temperature)

    monkeypatch.setattr(model_module, "channel_attention", counting)
    model = M2IR(SMOKE)
    model(torch.rand(1, 3, 16, 16))
    attentions = [m for m in model.modules() if isinstance(m, model_module.ChannelAttention)]
    assert len(calls) == len(attentions) > 0


def test_deterministic_under_fixed_seed():
    x = torch.rand(1, 3, 24, 24)
    outputs = []
    for _ in range(2):
        torch.manual_seed(123)
        model = _wake_adecs(M2IR(SMOKE))
        outputs.append(model(x))
    assert torch.equal(outputs[0], outputs[1])


def _paper_params_m():
    with PAPER_CSV.open() as f:
        for row in csv.DictReader(f):
            if row["method"] == "M²IR (w/o DA-CLIP)" and row["metric"] == "Params (M)":
                return float(row["value"])
    raise AssertionError(f"no M²IR (w/o DA-CLIP) params row in {PAPER_CSV}")


def test_paper_parameter_count():
    """Table XIII 'w/o DA-CLIP': 39.1M; docs/readings.md §1: exactly 38,804,826 (T = 6 prompts)."""
    cfg = MODEL_PRESETS["paper"]
    model = M2IR(cfg, prior_encoder=ZeroPrior(_prior_width(cfg)))  # DA-CLIP excluded
    params = sum(p.numel() for p in model.parameters())
    assert params == 38_804_826
    assert params / 1e6 == pytest.approx(_paper_params_m(), rel=0.015)


def test_every_class_cites_the_paper():
    classes = [
        c
        for _, c in inspect.getmembers(model_module, inspect.isclass)
        if c.__module__ == model_module.__name__
    ]
    assert len(classes) >= 15
    for cls in classes:
        assert re.search(r"eq\.|Fig\.|§", cls.__doc__ or ""), cls.__name__


@pytest.mark.parametrize("dispatch", ["dense", "grouped", "sparse"])
def test_expert_mix_under_bf16_autocast(dispatch):
    """On CUDA autocast the routing softmax is fp32 while features are bf16 (train.py, amp)."""
    dgea = M2IR(_smoke(dispatch=dispatch, prior="none")).adecs[0].dgea
    x_hat = torch.rand(2, dgea.experts[0].fc1.in_features, 4, 4)
    weights = dgea.route(x_hat).weights  # float32
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = dgea.mix(x_hat.bfloat16(), weights)
    assert out.dtype == torch.float32 and out.shape == x_hat.shape
    torch.testing.assert_close(out, dgea.mix(x_hat, weights), atol=0.05, rtol=0.05)


def test_prior_width_mismatch_is_refused_at_construction():
    """A DA-CLIP prior of 512 + T features cannot feed a config built for a smaller P'."""
    cfg = dataclasses.replace(MODEL_PRESETS["smoke"], prior="daclip")  # prior_dim 32

    class WidePrior(nn.Module):
        out_dim = 512 + len(cfg.prompts)

        def forward(self, image):
            return image.new_zeros(image.shape[0], self.out_dim)

    with pytest.raises(ValueError, match="prior_dim=512"):
        M2IR(cfg, prior_encoder=WidePrior())
