"""Training objective of M²IR, eq. (8)–(11), §III-D.

Readings (docs/readings.md §11): Charbonnier with ε = 1e-3 (Restormer's); eq. (9) as the
squared coefficient of variation its text names, var/(mean² + 1e-10) with torch's unbiased
variance (MEASNet/M2Restore); eq. (10) with `torch.fft.fft2` and an L1 mean (SFNet).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from m2ir_lib.core.model import Routing


def _check_pair(pred, target):
    if pred.shape != target.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ")


def charbonnier_loss(pred, target, eps=1e-3):
    """Charbonnier loss, eq. (8), §III-D: mean of sqrt((ŷ − y)² + ε²) over all elements.

    Args:
        pred, target: tensors of the same shape.
        eps: ε of eq. (8).
    """
    _check_pair(pred, target)
    return torch.sqrt((pred - target) ** 2 + eps**2).mean()  # eq. (8)


def _cv_squared(x):
    """Squared coefficient of variation σ²/(μ² + 1e-10) of a 1-D sequence, eq. (9)."""
    return x.var() / (x.mean() ** 2 + 1e-10)


def balance_loss(routings: Sequence[Routing]):
    """Load-balancing loss, eq. (9), §III-D, summed over the routed ADECs.

    Per ADEC, W_n = Σ_{b,i,j} s'_n (raw confidences) and S_n = Σ_{b,i,j} 1[n in top-K]
    over the N specialised experts (E_S is always selected and left out); the loss is
    cv²(W) + cv²(S). S is a count, so only the W term carries gradient.

    Args:
        routings: the `Routing`s returned by `M2IR(x, return_routing=True)`.

    Returns:
        A scalar tensor; 0 when nothing is routed or N == 1 (a variance needs N ≥ 2).
    """
    total = None
    for r in routings:
        if r.confidence.shape[1] < 2:
            continue
        w_n = r.confidence.sum(dim=(0, 2, 3))  # (N,) W_n
        s_n = r.selected.sum(dim=(0, 2, 3))  # (N,) S_n
        term = _cv_squared(w_n) + _cv_squared(s_n)  # eq. (9)
        total = term if total is None else total + term
    if total is None:
        device = routings[0].confidence.device if routings else None
        return torch.zeros((), device=device)
    return total


def fft_loss(pred, target):
    """Frequency loss, eq. (10), §III-D: L1 mean between [Re; Im] of the 2-D FFTs over H, W.

    Args:
        pred, target: (B, C, H, W) tensors of the same shape.
    """
    _check_pair(pred, target)
    f_pred = torch.view_as_real(torch.fft.fft2(pred.float()))  # (B, C, H, W, 2)
    f_target = torch.view_as_real(torch.fft.fft2(target.float()))
    return F.l1_loss(f_pred, f_target)  # eq. (10)


def total_loss(
    pred,
    target,
    routings: Sequence[Routing] = (),
    lambda1=0.01,
    lambda2=0.1,
    charbonnier=True,
    use_balance=True,
    use_fft=True,
):
    """Overall objective, eq. (11), §III-D, with the switches of Tables X–XII.

    Args:
        pred, target: restored and clean images, (B, 3, H, W).
        routings: the model's `Routing`s (eq. 9 input); may be empty.
        lambda1: weight of ℓ_balance (Table XI: 0.01).
        lambda2: weight of ℓ_FFT (Table XII: 0.1).
        charbonnier: Charbonnier (eq. 8) as the pixel term, else plain L1 (Table X).
        use_balance, use_fft: include ℓ_balance / ℓ_FFT (Table X).

    Returns:
        (total, terms): the scalar loss to back-propagate and a dict of floats with keys
        'charbonnier' or 'l1', 'balance', 'fft', 'total' (unused terms are 0.0).
    """
    _check_pair(pred, target)
    if charbonnier:
        name, pixel = "charbonnier", charbonnier_loss(pred, target)
    else:
        name, pixel = "l1", F.l1_loss(pred, target)
    balance = balance_loss(routings) if use_balance else pixel.new_zeros(())
    freq = fft_loss(pred, target) if use_fft else pixel.new_zeros(())
    total = pixel + lambda1 * balance + lambda2 * freq  # eq. (11)
    terms = {name: pixel.item(), "balance": balance.item(), "fft": freq.item()}
    terms["total"] = total.item()
    return total, terms
