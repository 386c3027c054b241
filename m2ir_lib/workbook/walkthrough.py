"""Reading §III beside the code: shapes of named submodules on a real image, parameters per
part of Fig. 2, the library source of each equation, and the numbers behind the equations
(notebook 01): MST against the plain Restormer block (Fig. 3a/3c, eq. 1–2), the range of the
routing weights (eq. 5), the α/β residual of ADEC, the loss terms' shares (eq. 11) and the
priors P′ and P of DACP (eq. 3)."""

from __future__ import annotations

import inspect
import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from IPython.display import Code, Markdown
from matplotlib.ticker import MaxNLocator
from torch import nn

from m2ir_lib.core import model as model_lib
from m2ir_lib.core.config import M2IRConfig
from m2ir_lib.core.model import DGEA, M2IR, MST, LearnablePrior, TransformerBlock
from m2ir_lib.engine.probes import adec_gates, hooked_shapes
from m2ir_lib.workbook.results import save_figure


def parameter_table(model: M2IR) -> pd.DataFrame:
    """Parameters per top-level part of the network (Fig. 2's boxes), with the total."""
    rows = [
        {"part": name, "class": type(m).__name__, "params": sum(p.numel() for p in m.parameters())}
        for name, m in model.named_children()
    ]
    rows.append(
        {"part": "total", "class": "", "params": sum(p.numel() for p in model.parameters())}
    )
    return pd.DataFrame(rows)


def show_source(obj):
    """The library's code for `obj` (a function, method or class), to read beside its equation."""
    return Code(inspect.getsource(obj), language="python")


# ------------------------------------------------------------------ MST vs Restormer, §III-B

MST_LABEL, RESTORMER_LABEL = "MST (Fig. 3c)", "Restormer block (Fig. 3a)"

# (step, equation, submodule of MST, submodule of the Restormer block); "" = no such step.
_BLOCK_STEPS = [
    ("LN(X)", "", "norm1", "norm1"),
    ("W_l¹ X", "eq. (1)", "attn.w_l1", ""),
    ("W_d W_l¹ X (its σ is MDTA's input)", "eq. (1)", "attn.w_d", ""),
    ("MDTA: X₁ (no own projection in MSA)", "eq. (1)", "attn.mdta", "attn"),
    ("MDTA output projection", "", "", "attn.project_out"),
    ("gate W_l² X (σ of it multiplies X₁)", "eq. (2)", "attn.w_l2", ""),
    ("W_l³(X₁ ⊙ σ(W_l² X))", "eq. (2)", "attn.w_l3", ""),
    ("attention branch (MSA / MDTA)", "eq. (2)", "attn", "attn"),
    ("GDFN(LN(X))", "", "ffn", "ffn"),
]

# Parameter groups of one block, by name prefix (the first matching prefix wins).
_PARAM_GROUPS = [
    ("LayerNorms", ("norm1.", "norm2.")),
    ("W_l¹ (eq. 1)", ("attn.w_l1.",)),
    ("W_d, depthwise 3×3 (eq. 1)", ("attn.w_d.",)),
    ("W_l² gate (eq. 2)", ("attn.w_l2.",)),
    ("W_l³ output projection (eq. 2)", ("attn.w_l3.",)),
    ("MDTA output projection", ("attn.project_out.",)),
    ("MDTA q, k, v convs and τ", ("attn.mdta.", "attn.")),
    ("GDFN", ("ffn.",)),
]


def block_pair(cfg: M2IRConfig, level: int = 0, seed: int = 0) -> dict[str, nn.Module]:
    """One MST block and one plain Restormer block (MDTA + GDFN) at encoder level `level`
    (width C·2^level, that level's heads) of `cfg`, seeded: Fig. 3(c) beside Fig. 3(a)."""
    dim, heads = cfg.dim * 2**level, cfg.heads[level]
    torch.manual_seed(seed)
    return {
        MST_LABEL: MST(dim, heads, cfg.ffn_expansion).eval(),
        RESTORMER_LABEL: TransformerBlock(dim, heads, cfg.ffn_expansion).eval(),
    }


def block_shapes(blocks: dict[str, nn.Module], size=(32, 32), seed: int = 0) -> pd.DataFrame:
    """Per-step tensor shapes of the blocks of `block_pair` on one random (1, C, H, W)
    input (forward hooks), with the shape of the channel-attention map softmax(q̂k̂ᵀτ) of
    MDTA (recorded inside `model.channel_attention`, which both blocks call once).

    Returns:
        Columns step, equation and one column per block (shape, or "—" where the block
        has no such step).
    """
    mst = blocks[MST_LABEL]
    dim = mst.norm1.weight.numel()
    x = torch.rand(1, dim, *size, generator=torch.Generator().manual_seed(seed))
    cols = {}
    for label, block in blocks.items():
        names = sorted({row[2 if label == MST_LABEL else 3] for row in _BLOCK_STEPS} - {""})
        maps = []
        real = model_lib.channel_attention

        def spy(q, k, v, t, _maps=maps, _real=real):
            _maps.append((*q.shape[:-1], q.shape[-2]))  # (B, heads, C/heads, C/heads)
            return _real(q, k, v, t)

        model_lib.channel_attention = spy  # ChannelAttention.forward looks it up at call time
        try:
            rows = hooked_shapes(block, lambda b=block: b(x), names)
        finally:
            model_lib.channel_attention = real
        col = {}
        for step, _, m_mst, m_res in _BLOCK_STEPS:
            name = m_mst if label == MST_LABEL else m_res
            col[step] = str(rows[name]["output"]) if name else "—"
            if step.startswith("MDTA:"):
                col["channel attention map softmax(q̂k̂ᵀτ)"] = str(tuple(maps[0]))
        col["block output X + …"] = str(tuple(block(x).shape))
        cols[label] = col
    eq = {s: e for s, e, _, _ in _BLOCK_STEPS}
    steps = list(cols[MST_LABEL])
    return pd.DataFrame(
        {
            "step": steps,
            "equation": [eq.get(s, "eq. (1)" if "attention map" in s else "") for s in steps],
            **{label: [cols[label][s] for s in steps] for label in blocks},
        }
    )


def block_parameters(blocks: dict[str, nn.Module]) -> pd.DataFrame:
    """Parameters of each block of `block_pair` per part (eq. 1–2 terms, MDTA, GDFN,
    LayerNorms), with the total and the difference MST − Restormer."""
    counts = {label: {g: 0 for g, _ in _PARAM_GROUPS} for label in blocks}
    for label, block in blocks.items():
        for name, p in block.named_parameters():
            group = next(g for g, prefixes in _PARAM_GROUPS if name.startswith(prefixes))
            counts[label][group] += p.numel()
    df = pd.DataFrame(counts)
    df.loc["total"] = [sum(p.numel() for p in b.parameters()) for b in blocks.values()]
    df["MST − Restormer"] = df[MST_LABEL] - df[RESTORMER_LABEL]
    return df.rename_axis("part").reset_index()


def msa_adds(params: pd.DataFrame, dim: int):
    """What MSA adds to the Restormer block, in words, from `block_parameters` (Markdown)."""
    p = params.set_index("part")
    extra = sum(
        int(p.loc[g, MST_LABEL])
        for g in ("W_l¹ (eq. 1)", "W_d, depthwise 3×3 (eq. 1)", "W_l² gate (eq. 2)")
    )
    proj = int(p.loc["MDTA output projection", RESTORMER_LABEL])
    d, total = int(p.loc["total", "MST − Restormer"]), int(p.loc["total", RESTORMER_LABEL])
    return Markdown(
        f"At C = {dim}: MSA adds W_l¹, W_d and the gate W_l² ({extra:,} parameters) and "
        f"replaces MDTA's output projection ({proj:,}) by W_l³ of the same size, so one MST "
        f"block has {d:+,} parameters ({d / total:+.1%}) against the Restormer block "
        f"(2C² + 9C = {2 * dim**2 + 9 * dim:,}). Every step keeps (1, C, H, W): what MSA adds "
        "is a soft mask σ(W_d W_l¹ X) on MDTA's input (eq. 1) and a per-pixel, per-channel "
        "gate σ(W_l² X) on its output (eq. 2); MDTA's attention map stays C/heads × C/heads."
    )


# ------------------------------------------------------------------ eq. (5): routing weights


def eq5_bounds(n: int, k: int) -> pd.DataFrame:
    """Range of the kept routing weights of eq. (5) for N specialised experts and top-K.

    ŝ = softmax([s′₁..s′_N, 1]) with s′ = softmax(·) of eq. (4), so s′ lies in the open
    simplex (s′_n ∈ (0, 1), Σ s′_n = 1). With Z = Σ_m e^{s′_m} + e:

    - Z is smallest at the uniform s′ (e^x is convex): Z_u = N·e^{1/N} + e, and tends to
      its supremum 2e + N − 1 as s′ approaches a vertex (one s′_n → 1, never reached).
    - shared weight e/Z: maximum e/Z_u (uniform s′), infimum e/(2e + N − 1).
    - a selected specialised weight e^{s′_n}/Z: supremum e/(2e + N − 1) (s′_n → 1). Its
      infimum is 1/(2e + N − 1) for K ≥ 2 (the K-th largest s′ can tend to 0) but, for
      K = 1 (the selected one is the largest s′), the minimum e^{1/N}/Z_u at uniform s′.
    - sum of kept weights (not renormalised), 1 − Σ_{unselected} e^{s′_m}/Z: 1 when K = N;
      otherwise minimum (K·e^{1/N} + e)/Z_u at uniform s′ (moving mass from kept to
      unselected experts lowers it) and supremum (2e + K − 1)/(2e + N − 1) at a vertex.
    For N = 1 every bound is 1/2 (s′ = 1 exactly).

    Returns:
        Rows specialised (selected), shared, sum of kept; columns weight, lower, upper,
        lower_attained, upper_attained (False: approached, never reached).
    """
    if n < 1 or not 1 <= k <= n:
        raise ValueError(f"need N ≥ 1 and 1 ≤ K ≤ N, got N={n}, K={k}")
    e = math.e
    z_u, z_sup = n * math.exp(1 / n) + e, 2 * e + n - 1
    vertex = n == 1  # s′ = 1 exactly: the vertex is reached
    spec_lo = (math.exp(1 / n) / z_u, True) if k == 1 else (1 / z_sup, vertex)
    sum_lo = (1.0, True) if k == n else ((k * math.exp(1 / n) + e) / z_u, True)
    sum_hi = (1.0, True) if k == n else ((2 * e + k - 1) / z_sup, vertex)
    rows = [
        ("specialised (selected)", *spec_lo, e / z_sup, vertex),
        ("shared E_S", e / z_sup, vertex, e / z_u, True),
        ("sum of kept weights", sum_lo[0], sum_lo[1], *sum_hi),
    ]
    cols = ["weight", "lower", "lower_attained", "upper", "upper_attained"]
    return pd.DataFrame(rows, columns=cols)[
        ["weight", "lower", "upper", "lower_attained", "upper_attained"]
    ]


def random_routing_weights(cfg: M2IRConfig, samples: int = 4096, seed: int = 0) -> torch.Tensor:
    """Eq. (5) weights from `DGEA.route` for `samples` random logits W_r[P; LN(X̂)] (its LN
    and W_r replaced by the identity, so the logits go in as drawn), scales log-uniform in
    [0.01, 100] so that near-uniform and near-vertex s′ both occur (at the largest scales
    s′ reaches a vertex to float64 rounding). Returns (samples, N+1)."""
    g = torch.Generator().manual_seed(seed)
    dgea = DGEA(cfg.num_experts, cfg, with_prior=False)
    dgea.norm, dgea.w_r = nn.Identity(), nn.Identity()
    scale = 10 ** (4 * torch.rand(samples, 1, generator=g, dtype=torch.float64) - 2)
    logits = torch.randn(samples, cfg.num_experts, generator=g, dtype=torch.float64) * scale
    routing = dgea.route(logits.T[None, :, :, None])  # (1, N, samples, 1)
    return routing.weights[0, :, :, 0].T  # (samples, N+1)


def eq5_check(cfg: M2IRConfig, samples: int = 4096, seed: int = 0) -> pd.DataFrame:
    """`eq5_bounds` for cfg's N and K beside the range observed on `random_routing_weights`,
    with `inside` True when every observed value lies within the derived range; attrs
    `samples` and `shared_first` (the shared weight was the largest on every routing)."""
    if not (cfg.special_experts and cfg.shared_expert):
        raise ValueError("eq. (5) as written needs specialised experts and the shared expert")
    bounds = eq5_bounds(cfg.num_experts, cfg.top_k)
    w = random_routing_weights(cfg, samples, seed)
    n = cfg.num_experts
    spec = w[:, :n]
    observed = [spec[spec > 0], w[:, n], w.sum(dim=1)]
    bounds["observed_min"] = [o.min().item() for o in observed]
    bounds["observed_max"] = [o.max().item() for o in observed]
    tol = 1e-12
    bounds["inside"] = (bounds["observed_min"] >= bounds["lower"] - tol) & (
        bounds["observed_max"] <= bounds["upper"] + tol
    )
    bounds.attrs["samples"] = samples
    # E_S ranks first among the K + 1 on every routing (s′_n < 1 so ŝ_n ≤ ŝ_S)
    bounds.attrs["shared_first"] = bool((w[:, n] >= spec.max(dim=1).values).all())
    return bounds


def eq5_text(check: pd.DataFrame, n: int, k: int):
    """Eq. (5) ranges of `eq5_check` in a few computed sentences (Markdown)."""
    r = check.set_index("weight")

    def rng(name):
        lo, hi = r.loc[name, "lower"], r.loc[name, "upper"]
        left = "[" if r.loc[name, "lower_attained"] else "("
        right = "]" if r.loc[name, "upper_attained"] else ")"
        return f"{left}{lo:.3f}, {hi:.3f}{right}"

    spec, shared, total = (rng(x) for x in r.index)
    ok = "all" if r["inside"].all() else "NOT all"
    return Markdown(
        f"For N = {n}, K = {k}: a selected specialised weight lies in {spec}, the shared "
        f"expert's in {shared}, and the kept weights sum to {total} (round bracket: "
        f"approached, never reached). Since s′_n < 1, the shared weight is never below a "
        f"specialised one: E_S ranks first among the K + 1 (on every random routing: "
        f"{check.attrs.get('shared_first')}). The weights are not "
        f"renormalised: X′ of eq. (6) is the experts' outputs weighted by that total, not "
        f"their average. Observed on "
        f"{check.attrs.get('samples', '?')} random routings: {ok} values inside the ranges."
    )


# ------------------------------------------------------------------ α/β of ADEC


def adec_gates_at(models: dict[str, nn.Module]) -> pd.DataFrame:
    """`probes.adec_gates` of several networks (e.g. at initialisation and trained), one
    block of rows per label in column `network`."""
    frames = [adec_gates(m).assign(network=label) for label, m in models.items()]
    df = pd.concat(frames, ignore_index=True)
    return df[["network", *[c for c in df.columns if c != "network"]]]


# ------------------------------------------------------------------ eq. (11): loss shares

LOSS_TERMS = ("pixel", "balance", "fft")


def loss_shares(terms: dict, lambda1: float, lambda2: float) -> pd.DataFrame:
    """Each term of eq. (11) as a share of the total: ℓ_charb (or L1), λ₁·ℓ_balance and
    λ₂·ℓ_FFT over ℓ_total, from the `terms` dict of `losses.total_loss`.

    Returns:
        Rows pixel, balance, fft; columns term, value, weight (1, λ₁, λ₂), weighted, share.
    """
    pixel = "charbonnier" if "charbonnier" in terms else "l1"
    values = [terms[pixel], terms["balance"], terms["fft"]]
    weights = [1.0, lambda1, lambda2]
    weighted = [v * w for v, w in zip(values, weights, strict=True)]
    total = sum(weighted)
    if not total > 0:
        raise ValueError(f"total loss {total} is not positive: no shares")
    return pd.DataFrame(
        {
            "term": [pixel, "balance", "fft"],
            "value": values,
            "weight": weights,
            "weighted": weighted,
            "share": [w / total for w in weighted],
        }
    )


def training_loss_shares(
    log_csv: str | Path, lambda1: float, lambda2: float, last: int = 20
) -> pd.DataFrame:
    """Shares of eq. (11)'s terms in a training run's `log.csv`: at initialisation (step 1,
    the loss of the initial weights on the first batch) and after training (mean of each
    term over the last `last` logged steps after step 1).

    Returns:
        Rows "initialisation (step 1)" and "after training (steps a–b)"; a share column per
        term (summing to 1) and the total loss.
    """
    log = pd.read_csv(log_csv)
    pixel = "loss_charbonnier" if "loss_charbonnier" in log else "loss_l1"
    cols = [pixel, "loss_balance", "loss_fft"]
    missing = [c for c in cols if c not in log]
    if missing or log.empty:
        raise ValueError(f"{log_csv}: no rows or no column(s) {missing}: not a training log")
    tail = log.iloc[1:].tail(last) if len(log) > 1 else log  # after step 1, when there is one
    rows = {
        "initialisation (step 1)": log.iloc[0][cols],
        f"after training (steps {tail.step.iloc[0]}–{tail.step.iloc[-1]})": tail[cols].mean(),
    }
    out = []
    for when, v in rows.items():
        terms = {pixel[5:]: v[pixel], "balance": v["loss_balance"], "fft": v["loss_fft"]}
        s = loss_shares(terms, lambda1, lambda2)
        out.append(
            {"when": when, **dict(zip(s.term, s.share, strict=True)), "total": s.weighted.sum()}
        )
    return pd.DataFrame(out)


# ------------------------------------------------------------------ eq. (3): P′ and P of DACP


def prompt_part_label(net: M2IR) -> str:
    """What the last T entries of P′ are: DA-CLIP's similarity S(I, text) to the prompts, or,
    for the learnable MLP, T learnt scores that only carry the prompts' names (no text
    encoder ran, so nothing was compared with text)."""
    if isinstance(net.prior_encoder, LearnablePrior):
        return "learnable MLP: T learnt scores named after the prompts (no DA-CLIP, no text)"
    return "S(I, text) part of P′ (DA-CLIP)"


def prior_label(net: M2IR) -> str:
    """Which P′ the network uses: DA-CLIP (frozen) or the learnable MLP fallback."""
    enc = net.prior_encoder
    if enc is None:
        return "no prior (DACP off)"
    if isinstance(enc, LearnablePrior):
        return "learnable MLP prior (the paper's fallback without DA-CLIP, Table VII)"
    return f"DA-CLIP ({type(enc).__name__}, frozen)"


@torch.no_grad()
def prior_prompts(net: M2IR, items: list[dict]) -> pd.DataFrame:
    """The prompt part of P′ = [D(I); S(I, text)] (the last T entries, a softmax over the
    prompts) for one image per degradation: rows task, columns prompts. Under the learnable
    MLP these are learnt scores that carry only the prompts' names (`prompt_part_label`)."""
    if net.prior_encoder is None:
        raise ValueError("this network has no prior encoder (prior='none' or no experts)")
    prompts = list(net.cfg.prompts)
    rows = {}
    for item in items:
        p = net.prior_encoder(item["degraded"][None])[0]
        rows[item["task"]] = p[-len(prompts) :].tolist()
    return pd.DataFrame.from_dict(rows, orient="index", columns=prompts).rename_axis("task")


@torch.no_grad()
def prior_maps(net: M2IR, image: torch.Tensor) -> list[torch.Tensor]:
    """‖P‖ per pixel (L2 over channels) of every ADEC's DACP output, eq. (3): P varies in
    space because its keys and values come from X̂. One (h, w) map per ADEC."""
    dacps = [a.dacp for a in getattr(net, "adecs", []) if a.dacp is not None]
    if not dacps:
        raise ValueError("this network has no DACP (no ADEC, prior='none' or no experts)")
    maps: list[torch.Tensor] = []
    hooks = [
        d.register_forward_hook(lambda m, a, out: maps.append(out[0].norm(dim=0))) for d in dacps
    ]
    try:
        net.eval()(image[None] if image.ndim == 3 else image)
    finally:
        for h in hooks:
            h.remove()
    return maps


def plot_priors(net: M2IR, items: list[dict], path: str | Path | None = None):
    """P′'s prompt part per degradation (heatmap with colour bar) and, for one image per
    degradation, the input and ‖P‖ per pixel of each ADEC (eq. 3)."""
    if not items:
        print("no test images (data missing): no prior to show")
        return None

    table = prior_prompts(net, items)
    maps = [prior_maps(net, it["degraded"]) for it in items]
    cols = 1 + len(maps[0])
    fig = plt.figure(figsize=(3.6 + 2.6 * cols, max(2.0 * len(items), 3.0)), layout="constrained")
    grid = fig.add_gridspec(len(items), 1 + cols, width_ratios=[1.6] + [1] * cols)

    def colour_bar(img, ax):
        bar = fig.colorbar(img, ax=ax, fraction=0.046, format="%.3g")
        bar.locator = MaxNLocator(3)
        bar.update_ticks()
        bar.ax.tick_params(labelsize=6)

    ax = fig.add_subplot(grid[:, 0])
    im = ax.imshow(table.values, cmap="viridis", vmin=0, aspect="auto")
    for (r, c), v in np.ndenumerate(table.values):
        ax.text(c, r, f"{v:.2f}", ha="center", va="center", fontsize=6, color="w")
    ax.set_xticks(range(table.shape[1]), table.columns, rotation=60, fontsize=8)
    ax.set_yticks(range(table.shape[0]), table.index, fontsize=8)
    ax.set_title(prompt_part_label(net).replace(": ", ":\n", 1), fontsize=8)
    colour_bar(im, ax)
    for r, (item, per_adec) in enumerate(zip(items, maps, strict=True)):
        a = fig.add_subplot(grid[r, 1])
        a.imshow(item["degraded"].clamp(0, 1).permute(1, 2, 0).numpy())
        a.set_title(item["task"], fontsize=8)
        a.axis("off")
        for c, m in enumerate(per_adec):
            a = fig.add_subplot(grid[r, 2 + c])
            img = a.imshow(m.numpy(), cmap="magma")
            a.set_title(f"‖P‖, ADEC {c + 1} {tuple(m.shape)}", fontsize=8)
            a.axis("off")
            colour_bar(img, a)
    fig.suptitle(prior_label(net), fontsize=9)
    return save_figure(fig, path)


# ------------------------------------------------------------------ the trained run


def trained_label(ckpts: dict, run) -> str:
    """Caption of the trained network of `run` (an `experiments.Run`) for tables: its label,
    optimizer steps and run folder, or that it is the untrained stand-in (no data)."""
    if run.label not in ckpts:
        return f"untrained stand-in for {run.label} (no data: nothing trained)"
    folder = Path(ckpts[run.label]).parent
    return f"trained: {run.label}, {run.train.iters} steps ({folder.parent.name}/{folder.name})"


def run_loss_shares(ckpts: dict, run, last: int = 20) -> pd.DataFrame:
    """`training_loss_shares` of `run`'s log.csv with the run's own λ₁, λ₂ (eq. 11); an
    empty table with a printed note when the run was not trained (no data)."""
    if run.label not in ckpts:
        print(f"no training log for {run.label!r} (not trained): no shares after training")
        return pd.DataFrame(columns=["when", "total"])
    log = Path(ckpts[run.label]).parent / "log.csv"
    return training_loss_shares(log, run.train.lambda1, run.train.lambda2, last)
