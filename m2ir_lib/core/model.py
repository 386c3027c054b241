"""M²IR network: MST blocks in a Restormer U-Net with three ADEC modules (§III, Fig. 2).

Readings of the paper's open choices: docs/readings.md, one section per choice.
MDTA/GDFN follow Restormer [17], the channel cross-attention AdaIR [14], written anew.
FLOP convention (Table XIII): q·kᵀ and A·v of every channel attention happen only in
`channel_attention`, which the paper's MACs exclude; counters patch that one function.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from m2ir_lib.core.config import M2IRConfig

DACLIP_MISSING = (
    "prior='daclip' needs DA-CLIP's daclip_ViT-B-32.pt (link in the Algolzw/daclip-uir README; "
    "nothing downloads at run time): put it e.g. at weights/daclip_ViT-B-32.pt and pass its path "
    "as daclip_checkpoint. Without it use prior='mlp', the paper's learnable fallback (Table VII)."
)


class Routing(NamedTuple):
    """What one DGEA decided (eq. 4–5), for ℓ_balance (eq. 9) and the routing maps."""

    confidence: torch.Tensor  # (B, N, h, w) s' = softmax over the N specialised experts, eq. (4)
    selected: torch.Tensor  # (B, N, h, w) 1.0 where a specialised expert is in the top-K
    weights: torch.Tensor  # (B, N+1, h, w) eq. (5) weights, zero where unselected; last = E_S


def channel_attention(q, k, v, temperature):
    """Channel attention of MDTA [17], softmax(q̂·k̂ᵀ·τ)·v per head: the network's only
    matmuls, outside Table XIII's MACs (docs/readings.md §1), so counters patch this function.

    Args:
        q, k, v: (B, heads, C/heads, HW) tensors.
        temperature: (heads, 1, 1) learnable scale τ.
    """
    q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)  # L2 over HW
    attn = (q @ k.transpose(-2, -1)) * temperature  # (B, heads, c, c)
    return attn.softmax(dim=-1) @ v  # (B, heads, c, HW)


def conv1x1(c_in, c_out, bias=False):
    return nn.Conv2d(c_in, c_out, 1, bias=bias)


def dwconv3x3(c):
    return nn.Conv2d(c, c, 3, padding=1, groups=c, bias=False)


# ------------------------------------------------------------------ Restormer layers [17]
class LayerNorm(nn.Module):
    """WithBias LayerNorm over channels per pixel (Restormer [17], Fig. 3; LN of eq. 4)."""

    def __init__(self, dim):
        super().__init__()
        self.weight, self.bias = nn.Parameter(torch.ones(dim)), nn.Parameter(torch.zeros(dim))

    def forward(self, x):  # (B, C, H, W)
        x = x.permute(0, 2, 3, 1)  # (B, H, W, C)
        x = F.layer_norm(x, x.shape[-1:], self.weight, self.bias, eps=1e-5)
        return x.permute(0, 3, 1, 2)


class ChannelAttention(nn.Module):
    """Channel ("transposed") attention of MDTA [17], Fig. 3(a), with queries from `x` and
    keys/values from `y`: the CA of eq. (3) and (7) (AdaIR-style) and, for y = x, MDTA."""

    def __init__(self, dim, heads, project_out=True):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim={dim} is not divisible by heads={heads}")
        self.heads = heads
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))
        self.q, self.q_dwconv = conv1x1(dim, dim), dwconv3x3(dim)
        self.kv, self.kv_dwconv = conv1x1(dim, 2 * dim), dwconv3x3(2 * dim)
        self.project_out = conv1x1(dim, dim) if project_out else nn.Identity()

    def forward(self, x, y):  # both (B, C, h, w)
        b, c, h, w = y.shape
        q = self.q_dwconv(self.q(x))
        k, v = self.kv_dwconv(self.kv(y)).chunk(2, dim=1)
        q, k, v = (t.reshape(b, self.heads, c // self.heads, h * w) for t in (q, k, v))
        out = channel_attention(q, k, v, self.temperature)  # (B, heads, C/heads, HW)
        return self.project_out(out.reshape(b, c, h, w))


class MDTA(ChannelAttention):
    """Multi-Dconv head transposed attention of Restormer [17], Fig. 3(a), §III-B; its qkv
    convs split into q and kv (same weights and MACs). Inside MSA it has no `project_out`:
    W_l³ of eq. (2) is the only output projection (docs/readings.md §2)."""

    def forward(self, x):
        return super().forward(x, x)


class GDFN(nn.Module):
    """Gated-Dconv feed-forward network of Restormer [17], Fig. 3(a, c), §III-B."""

    def __init__(self, dim, expansion):
        super().__init__()
        hidden = int(dim * expansion)  # 127/255/510/1021 at C=48..384
        self.project_in = conv1x1(dim, 2 * hidden)
        self.dwconv = dwconv3x3(2 * hidden)
        self.project_out = conv1x1(hidden, dim)

    def forward(self, x):
        a, b = self.dwconv(self.project_in(x)).chunk(2, dim=1)
        return self.project_out(F.gelu(a) * b)


# ------------------------------------------------------------------ MST, §III-B
class MSA(nn.Module):
    """Mamba-style attention, eq. (1)–(2), Fig. 3(c), §III-B. W_d is depthwise only and
    MDTA keeps no projection of its own (docs/readings.md §2–3). `reading` says what MDTA
    attends over (`M2IRConfig.msa_reading`, docs/readings.md §2); weights are the same."""

    def __init__(self, dim, heads, reading="literal"):
        super().__init__()
        if reading not in ("literal", "modulate", "silu"):
            raise ValueError(f"reading={reading!r}; expected literal, modulate or silu")
        self.w_l1, self.w_l2, self.w_l3 = conv1x1(dim, dim), conv1x1(dim, dim), conv1x1(dim, dim)
        self.w_d = dwconv3x3(dim)
        self.mdta = MDTA(dim, heads, project_out=False)
        self.modulate = reading == "modulate"
        self.act = F.silu if reading == "silu" else torch.sigmoid  # σ; MLLA [28] uses SiLU

    def forward(self, x):  # x = LN(X), (B, C, H, W)
        mask = self.act(self.w_d(self.w_l1(x)))  # σ(W_d W_l¹ X), in [0, 1] for σ
        x1 = self.mdta(x * mask if self.modulate else mask)  # eq. (1)
        return self.w_l3(x1 * self.act(self.w_l2(x)))  # eq. (2)


class MST(nn.Module):
    """Mamba-style Transformer block, Fig. 3(c), §III-B: pre-norm MSA then GDFN, residuals."""

    def __init__(self, dim, heads, expansion, attention=MSA):
        super().__init__()
        self.norm1, self.attn = LayerNorm(dim), attention(dim, heads)
        self.norm2, self.ffn = LayerNorm(dim), GDFN(dim, expansion)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.ffn(self.norm2(x))


class TransformerBlock(MST):
    """Plain Restormer block (MDTA + GDFN), Fig. 3(a); the 'w/o MST' rows of Table VII."""

    def __init__(self, dim, heads, expansion):
        super().__init__(dim, heads, expansion, attention=MDTA)


def make_blocks(cfg: M2IRConfig, dim, heads, count):
    """`count` MST (or, for the Table VII ablation, Transformer) blocks, Fig. 2."""
    if cfg.block == "transformer":
        return nn.Sequential(
            *(TransformerBlock(dim, heads, cfg.ffn_expansion) for _ in range(count))
        )
    msa = partial(MSA, reading=cfg.msa_reading)  # eq. (1) as read, docs/readings.md §2
    return nn.Sequential(*(MST(dim, heads, cfg.ffn_expansion, msa) for _ in range(count)))


class Downsample(nn.Sequential):
    """Encoder down-sampling of Fig. 2 (Restormer [17]): (C, H, W) -> (2C, H/2, W/2)."""

    def __init__(self, dim):
        super().__init__(nn.Conv2d(dim, dim // 2, 3, padding=1, bias=False), nn.PixelUnshuffle(2))


class Upsample(nn.Sequential):
    """Decoder up-sampling of Fig. 2 (Restormer [17]): (C, H, W) -> (C/2, 2H, 2W)."""

    def __init__(self, dim):
        super().__init__(nn.Conv2d(dim, dim * 2, 3, padding=1, bias=False), nn.PixelShuffle(2))


# ------------------------------------------------------------------ ADEC, §III-C
class CrossAttention(ChannelAttention):
    """Channel cross-attention CA of eq. (3) and eq. (7), AdaIR-style, 4 heads, §III-C:
    queries from the first input, keys and values from the second."""


class DACP(nn.Module):
    """Degradation-aware contextual priors, eq. (3), Fig. 4, §III-C. Queries come from the
    broadcast map of W_p¹P' (docs/readings.md §7), keys/values from X̂: so P varies in space."""

    def __init__(self, dim, prior_width, ca_heads):
        super().__init__()
        self.w_p1 = nn.Linear(prior_width, dim)
        self.ca = CrossAttention(dim, ca_heads)
        self.w_p2 = conv1x1(dim, dim, bias=True)

    def forward(self, prior, x_hat):  # (B, 512+T), (B, C, h, w)
        e = self.w_p1(prior)[:, :, None, None].expand_as(x_hat)  # (B, C, h, w)
        return self.w_p2(self.ca(e, x_hat))  # eq. (3)


class Expert(nn.Module):
    """One expert E_n of Fig. 5: per-pixel MLP C -> r·C -> C (docs/readings.md §9)."""

    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)

    def forward(self, tokens):  # (M, C)
        return self.fc2(F.gelu(self.fc1(tokens)))  # functional GELU: docs/readings.md §9


class DGEA(nn.Module):
    """Degradation-guided expert aggregation, eq. (4)–(6), Fig. 5, §III-C.

    Experts are stored E_1..E_N then E_S (the highest index is the shared one). Without
    the shared expert the specialised weights stay those of eq. (5), so the ablation only
    removes E_S's term; without specialised experts X' = E_S(X̂) and nothing is routed.
    """

    def __init__(self, dim, cfg: M2IRConfig, with_prior):
        super().__init__()
        self.n, self.k, self.dispatch = cfg.num_experts, cfg.top_k, cfg.dispatch
        self.special, self.shared = cfg.special_experts, cfg.shared_expert
        if self.special:
            self.norm = LayerNorm(dim)  # DGEA's own LN(X̂), docs/readings.md §8
            self.w_r = conv1x1(2 * dim if with_prior else dim, self.n, bias=True)
        hidden = int(cfg.expert_hidden * dim)
        count = self.n * self.special + self.shared
        self.experts = nn.ModuleList(Expert(dim, hidden) for _ in range(count))

    def route(self, x_hat, p=None):
        """Routing of eq. (4)–(5) from X̂ and P (None when DACP is off)."""
        feats = self.norm(x_hat) if p is None else torch.cat([p, self.norm(x_hat)], dim=1)
        s_prime = F.softmax(self.w_r(feats), dim=1)  # (B, N, h, w), eq. (4)
        one = torch.ones_like(s_prime[:, :1])
        s_hat = F.softmax(torch.cat([s_prime, one], dim=1), dim=1)  # (B, N+1, h, w), eq. (5)
        # E_S is forced in rather than trusted to win the top-(K+1): ties are possible.
        top = s_hat[:, : self.n].topk(self.k, dim=1).indices  # (B, K, h, w)
        selected = torch.zeros_like(s_prime).scatter(1, top, 1.0)
        keep = torch.cat([selected, one if self.shared else torch.zeros_like(one)], dim=1)
        return Routing(s_prime, selected, s_hat * keep)  # weights not renormalised

    def columns(self, width):
        """Which column of the (B, width, h, w) weights each expert reads: E_S the last."""
        return [e if e < self.n * self.special else width - 1 for e in range(len(self.experts))]

    def mix(self, x_hat, weights):
        """X' = Σ_k score_k · E_{id_k}(X̂), eq. (6); weights (B, N+1 or 1, h, w), 0 if unused."""
        b, c, h, w = x_hat.shape
        tokens = x_hat.permute(0, 2, 3, 1).reshape(-1, c)  # (B·h·w, C)
        wts = weights.permute(0, 2, 3, 1).reshape(-1, weights.shape[1])  # (B·h·w, N+1)
        if self.dispatch == "grouped":
            out = self.mix_grouped(tokens, wts[:, self.columns(weights.shape[1])])
            return out.reshape(b, h, w, c).permute(0, 3, 1, 2)
        out = tokens.new_zeros(tokens.shape, dtype=torch.promote_types(tokens.dtype, wts.dtype))
        for expert, col in zip(self.experts, self.columns(weights.shape[1]), strict=True):
            if self.dispatch == "dense":  # every expert on every pixel
                out = out + wts[:, col, None] * expert(tokens)
            else:  # gather the pixels that chose this expert; eq. (5) weights are never 0 there
                idx = wts[:, col].nonzero().squeeze(1)  # (M_e,)
                out = out.index_add(0, idx, wts[idx, col, None] * expert(tokens[idx]))
        return out.reshape(b, h, w, c).permute(0, 3, 1, 2)  # (B, C, h, w)

    def mix_grouped(self, tokens, wts):
        """Eq. (6) for every expert on every pixel in two matmuls (dispatch='grouped'):
        Σ_e w_e·(W²_e·g_e + b²_e) = [w_1·g_1 … w_E·g_E]·[W²_1 … W²_E]ᵀ + w·[b²_1 … b²_E]ᵀ
        with g_e = GELU(W¹_e·x + b¹_e), all E first layers stacked into one. The weights
        stay those of the `Expert` modules; only the execution is batched.

        Args:
            tokens: (M, C) pixels; wts: (M, E) eq. (5) weight of each expert, 0 if unused.
        """
        m, e = wts.shape
        fc1 = [x.fc1 for x in self.experts]
        fc2 = [x.fc2 for x in self.experts]
        w1 = torch.cat([f.weight for f in fc1])  # (E·H, C)
        hidden = F.gelu(F.linear(tokens, w1, torch.cat([f.bias for f in fc1])))  # (M, E·H)
        hidden = (hidden.view(m, e, -1) * wts[:, :, None]).view(m, -1)
        w2 = torch.cat([f.weight for f in fc2], dim=1)  # (C, E·H)
        b2 = torch.stack([f.bias for f in fc2])  # (E, C)
        out = F.linear(hidden, w2) + wts @ b2  # (M, C)
        return out.to(torch.promote_types(tokens.dtype, wts.dtype))  # as dense: fp32 weights

    def forward(self, x_hat, p=None):
        if not self.special:  # X' = E_S(X̂), weight 1
            return self.mix(x_hat, torch.ones_like(x_hat[:, :1])), None
        routing = self.route(x_hat, p)
        return self.mix(x_hat, routing.weights), routing


class ADEC(nn.Module):
    """Adaptive degradation expert collaboration, eq. (3)–(7), Fig. 2, §III-C. Returns
    α⊙X̃ + β⊙X̂ with α = 0, β = 1 at init (AdaIR-style, docs/readings.md §10): ADEC starts as the
    identity, so its inner parameters get gradients only once α has moved."""

    def __init__(self, dim, heads, cfg: M2IRConfig):
        super().__init__()
        use_dacp = cfg.prior != "none" and cfg.special_experts
        prior_width = cfg.prior_dim + len(cfg.prompts)
        self.dacp = DACP(dim, prior_width, cfg.ca_heads) if use_dacp else None
        self.dgea = DGEA(dim, cfg, with_prior=use_dacp)
        self.w_d = nn.Sequential(dwconv3x3(dim), conv1x1(dim, dim))  # W'_d, depthwise-separable
        self.mst = make_blocks(cfg, dim, heads, 1)
        self.ca = CrossAttention(dim, cfg.ca_heads)
        self.alpha, self.beta = (
            nn.Parameter(torch.full((1, dim, 1, 1), v)) for v in (cfg.adec_alpha_init, 1.0)
        )

    def forward(self, x_hat, prior=None):  # (B, C, h, w), (B, 512+T)
        p = self.dacp(prior, x_hat) if self.dacp is not None else None  # eq. (3)
        x_mix, routing = self.dgea(x_hat, p)  # eq. (4)–(6)
        x_tilde = self.ca(x_hat, self.mst(self.w_d(x_mix)))  # eq. (7)
        return self.alpha * x_tilde + self.beta * x_hat, routing


class LearnablePrior(nn.Module):
    """Learnable MLP in place of DA-CLIP, Table VII row 'MLP', §IV-C: image -> P' = [d̂ ; s]
    as in §III-C; d̂ from a small MLP on the pooled image, s from a linear layer (cheap)."""

    def __init__(self, prior_dim, num_prompts, pool=8, hidden=64):
        super().__init__()
        self.pool = pool
        self.fc1, self.fc2 = nn.Linear(3 * pool * pool, hidden), nn.Linear(hidden, prior_dim)
        self.text = nn.Linear(prior_dim, num_prompts)

    def forward(self, image):  # (B, 3, H, W)
        z = F.adaptive_avg_pool2d(image, self.pool).flatten(1)  # (B, 3·pool²)
        d_hat = F.normalize(self.fc2(F.gelu(self.fc1(z))), dim=1)  # (B, prior_dim)
        return torch.cat([d_hat, F.softmax(self.text(d_hat), dim=1)], dim=1)  # (B, dim+T)


class ZeroPrior(nn.Module):
    """A parameter-free P' = 0 of width 512+T that stands in for DA-CLIP only where the
    network's own size or cost is measured (Table XIII 'w/o DA-CLIP', §IV-E)."""

    def __init__(self, width):
        super().__init__()
        self.width = width

    def forward(self, image):
        return image.new_zeros(image.shape[0], self.width)


# ------------------------------------------------------------------ M²IR, Fig. 2
class M2IR(nn.Module):
    """M²IR, Fig. 2, §III-A: 4-level MST U-Net with ADECs after latent, dec3 and dec2.

    Args:
        cfg: the network's configuration (paper defaults, ablation switches).
        prior_encoder: image -> P' module for prior='daclip' (DA-CLIP, frozen); required
            then, refused otherwise. prior='mlp' builds a `LearnablePrior`.
    """

    def __init__(self, cfg: M2IRConfig, prior_encoder: nn.Module | None = None):
        super().__init__()
        self.cfg = cfg
        needs_prior = cfg.prior != "none" and cfg.special_experts
        if prior_encoder is not None and not (needs_prior and cfg.prior == "daclip"):
            raise ValueError("prior_encoder is only used with prior='daclip' and special experts")
        if needs_prior and cfg.prior == "daclip" and prior_encoder is None:
            raise ValueError(DACLIP_MISSING)
        if needs_prior and cfg.prior == "mlp":
            prior_encoder = LearnablePrior(cfg.prior_dim, len(cfg.prompts))
        width = getattr(prior_encoder, "out_dim", None)  # DaCLIPPrior says its width up front
        if width is not None and width != cfg.prior_dim + len(cfg.prompts):
            raise ValueError(
                f"the prior gives P' of width {width}; cfg expects prior_dim + T = "
                f"{cfg.prior_dim + len(cfg.prompts)} (DA-CLIP ViT-B-32 needs prior_dim=512)"
            )
        self.prior_encoder = prior_encoder  # P', computed once per image
        c, nb, hd = cfg.dim, cfg.num_blocks, cfg.heads
        self.patch_embed = nn.Conv2d(3, c, 3, padding=1, bias=False)  # F_0
        self.encoder1, self.down1 = make_blocks(cfg, c, hd[0], nb[0]), Downsample(c)
        self.encoder2, self.down2 = make_blocks(cfg, 2 * c, hd[1], nb[1]), Downsample(2 * c)
        self.encoder3, self.down3 = make_blocks(cfg, 4 * c, hd[2], nb[2]), Downsample(4 * c)
        self.latent = make_blocks(cfg, 8 * c, hd[3], nb[3])
        self.up3, self.reduce3 = Upsample(8 * c), conv1x1(8 * c, 4 * c)
        self.decoder3 = make_blocks(cfg, 4 * c, hd[2], nb[2])
        self.up2, self.reduce2 = Upsample(4 * c), conv1x1(4 * c, 2 * c)
        self.decoder2 = make_blocks(cfg, 2 * c, hd[1], nb[1])
        self.up1 = Upsample(2 * c)  # no channel reduction at level 1
        self.decoder1 = make_blocks(cfg, 2 * c, hd[0], nb[0])
        self.refinement = make_blocks(cfg, 2 * c, hd[0], cfg.num_refinement_blocks)
        self.output = nn.Conv2d(2 * c, 3, 3, padding=1, bias=False)
        # AdaIR's positions (docs/readings.md §5); each inner MST takes its stage's heads.
        self.adecs = nn.ModuleList(
            [ADEC(8 * c, hd[3], cfg), ADEC(4 * c, hd[2], cfg), ADEC(2 * c, hd[1], cfg)]
            if cfg.has_adec
            else []
        )

    def _adec(self, i, x, prior, routings):
        if self.adecs:
            x, routing = self.adecs[i](x, prior)
            routings.extend([routing] if routing is not None else [])
        return x

    def forward(self, x, return_routing=False):
        """Restore `x` (B, 3, H, W) in [0, 1], any H, W (reflect-padded to a multiple of 8).
        Returns y, or (y, [Routing of each routed ADEC]) when `return_routing`."""
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected (B, 3, H, W) input, got {tuple(x.shape)}")
        h, w = x.shape[-2:]
        pad_h, pad_w = -h % 8, -w % 8
        if pad_h >= h or pad_w >= w:
            raise ValueError(f"image {h}x{w} too small to reflect-pad to a multiple of 8")
        prior = None
        if self.prior_encoder is not None:
            prior = self.prior_encoder(x)  # (B, 512+T), P' of §III-C
            want = self.cfg.prior_dim + len(self.cfg.prompts)
            if prior.shape != (x.shape[0], want):
                raise ValueError(f"prior encoder gave {tuple(prior.shape)}, expected (B, {want})")
        inp = F.pad(x, (0, pad_w, 0, pad_h), mode="reflect") if pad_h or pad_w else x
        routings: list[Routing] = []
        enc1 = self.encoder1(self.patch_embed(inp))  # (B, C, H, W)
        enc2 = self.encoder2(self.down1(enc1))  # (B, 2C, H/2, W/2)
        enc3 = self.encoder3(self.down2(enc2))  # (B, 4C, H/4, W/4)
        lat = self.latent(self.down3(enc3))  # (B, 8C, H/8, W/8)
        lat = self._adec(0, lat, prior, routings)
        dec3 = self.decoder3(self.reduce3(torch.cat([self.up3(lat), enc3], 1)))  # (B, 4C, ..)
        dec3 = self._adec(1, dec3, prior, routings)
        dec2 = self.decoder2(self.reduce2(torch.cat([self.up2(dec3), enc2], 1)))  # (B, 2C, ..)
        dec2 = self._adec(2, dec2, prior, routings)
        dec1 = self.decoder1(torch.cat([self.up1(dec2), enc1], 1))  # (B, 2C, H, W)
        y = (self.output(self.refinement(dec1)) + inp)[:, :, :h, :w]  # global residual
        return (y, routings) if return_routing else y
