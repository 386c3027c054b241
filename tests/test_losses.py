"""Losses of eq. (8)–(11) on hand-computed inputs (docs/readings.md §11)."""

import math

import pytest
import torch

from m2ir_lib.core.losses import balance_loss, charbonnier_loss, fft_loss, total_loss
from m2ir_lib.core.model import Routing


def _routing():
    """N = 2, K = 1, two pixels: s' = (0.9, 0.1) and (0.7, 0.3), both pick expert 0.

    W = (1.6, 0.4): mean 1, unbiased var 0.72 -> cv² 0.72.
    S = (2, 0):     mean 1, unbiased var 2    -> cv² 2.
    """
    conf = torch.tensor([[0.9, 0.7], [0.1, 0.3]]).reshape(1, 2, 1, 2)
    selected = torch.tensor([[1.0, 1.0], [0.0, 0.0]]).reshape(1, 2, 1, 2)
    weights = torch.zeros(1, 3, 1, 2)  # not used by eq. (9)
    return Routing(conf, selected, weights)


def test_charbonnier_known_values():
    diff = torch.tensor([0.0, 0.75, 2.4, -0.75])  # 3-4-5 and 5-12-13 triangles with ε = 1
    got = charbonnier_loss(diff, torch.zeros(4), eps=1.0)
    assert got.item() == pytest.approx((1.0 + 1.25 + 2.6 + 1.25) / 4)


def test_charbonnier_default_eps_is_1e3():
    x = torch.rand(2, 3, 4, 4)
    assert charbonnier_loss(x, x).item() == pytest.approx(1e-3, rel=1e-6)


def test_balance_known_value():
    assert balance_loss([_routing()]).item() == pytest.approx(2.72, rel=1e-6)
    # summed over the ADECs
    assert balance_loss([_routing(), _routing()]).item() == pytest.approx(5.44, rel=1e-6)


def test_balance_zero_when_balanced_or_nothing_routed():
    conf = torch.full((1, 2, 1, 2), 0.5)
    sel = torch.tensor([[1.0, 0.0], [0.0, 1.0]]).reshape(1, 2, 1, 2)
    assert balance_loss([Routing(conf, sel, torch.zeros(1, 3, 1, 2))]).item() == 0.0
    assert balance_loss([]).item() == 0.0
    one_expert = Routing(torch.ones(1, 1, 2, 2), torch.ones(1, 1, 2, 2), torch.ones(1, 2, 2, 2))
    assert balance_loss([one_expert]).item() == 0.0


def test_balance_gradient_through_confidence():
    r = _routing()
    conf = r.confidence.clone().requires_grad_(True)
    balance_loss([r._replace(confidence=conf)]).backward()
    # d cv²(W)/dW_0 = 2 (W_0 - μ)/((N-1) μ²) - 2 var/(N μ³), μ = 1, var = 0.72, N = 2
    assert conf.grad[0, 0, 0, 0].item() == pytest.approx(2 * 0.6 - 0.72, rel=1e-5)
    assert conf.grad[0, 1, 0, 0].item() == pytest.approx(-2 * 0.6 - 0.72, rel=1e-5)


def test_fft_known_value():
    # FFT of [1, 1, 0, 0] is (2, 1-i, 0, 1+i): |Re| sums to 4, |Im| to 2, over 8 numbers.
    pred = torch.tensor([1.0, 1.0, 0.0, 0.0]).reshape(1, 1, 1, 4)
    assert fft_loss(pred, torch.zeros_like(pred)).item() == pytest.approx(0.75)
    # only the difference matters (the FFT is linear)
    target = torch.rand(1, 1, 1, 4)
    assert fft_loss(pred + target, target).item() == pytest.approx(0.75, rel=1e-5)


def test_fft_is_over_the_last_two_axes():
    # A constant image has only a DC term H·W·c; per channel, so channels do not mix.
    pred = torch.ones(1, 2, 2, 3) * torch.tensor([1.0, 3.0]).reshape(1, 2, 1, 1)
    # DC terms 6 and 18 among 2·2·3·2 = 24 numbers
    assert fft_loss(pred, torch.zeros_like(pred)).item() == pytest.approx((6 + 18) / 24)


@pytest.mark.parametrize("charbonnier", [True, False])
def test_total_loss_combines_terms(charbonnier):
    pred = torch.tensor([1.0, 1.0, 0.0, 0.0]).reshape(1, 1, 1, 4)
    target = torch.zeros_like(pred)
    total, terms = total_loss(pred, target, [_routing()], charbonnier=charbonnier)
    pixel = (2 * math.sqrt(1 + 1e-6) + 2 * 1e-3) / 4 if charbonnier else 0.5
    name = "charbonnier" if charbonnier else "l1"
    assert set(terms) == {name, "balance", "fft", "total"}
    assert terms[name] == pytest.approx(pixel, rel=1e-6)
    assert terms["balance"] == pytest.approx(2.72, rel=1e-6)
    assert terms["fft"] == pytest.approx(0.75)
    assert total.item() == pytest.approx(pixel + 0.01 * 2.72 + 0.1 * 0.75, rel=1e-6)
    assert terms["total"] == pytest.approx(total.item())


def test_total_loss_switches_and_weights():
    pred = torch.tensor([1.0, 1.0, 0.0, 0.0]).reshape(1, 1, 1, 4)
    target = torch.zeros_like(pred)
    total, terms = total_loss(pred, target, [_routing()], use_balance=False, use_fft=False)
    assert terms["balance"] == 0.0 and terms["fft"] == 0.0
    assert total.item() == pytest.approx(terms["charbonnier"])
    total, _ = total_loss(pred, target, [_routing()], lambda1=1.0, lambda2=0.0)
    assert total.item() == pytest.approx(charbonnier_loss(pred, target).item() + 2.72, rel=1e-6)


def test_shape_mismatch_raises():
    with pytest.raises(ValueError, match="differ"):
        total_loss(torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 5))
