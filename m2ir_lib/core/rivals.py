"""The rivals of Tables I, II and XIII, written anew: Restormer [17], PromptIR [12], AdaIR [14].

Restormer (Zamir et al., CVPR'22), PromptIR (Potlapalli et al., NeurIPS'23, `decoder=True`)
and AdaIR (Cui et al., ICLR'25, `decoder=True`) share one 4-level U-Net of MDTA + GDFN
Transformer blocks (dim 48, blocks 4-6-6-8, 4 refinement blocks, heads 1-2-4-8, GDFN γ 2.66);
its layers are M²IR's (`m2ir_lib.core.model`). PromptIR adds a prompt block, AdaIR an adaptive
frequency learning block (AFLB), after the latent stage and after decoder levels 3 and 2 (the
positions M²IR's ADECs take). Written from the papers and from reading the authors' public
code (swz30/Restormer, va1shn9v/PromptIR, c-yn/AdaIR), none of it copied.

Complexity (Table XIII convention, `m2ir_lib.engine.efficiency`, 480×720): Restormer 26.127M /
744.8G MACs, AdaIR 28.785M / 777.6G, PromptIR 35.592M / 835.3G, equal to the authors' code.
Table XIII prints 34.1M / 745G for PromptIR, which no configuration of the official code gives
(745G is a plain Restormer's count).

The authors' released weights load strictly (`m2ir_lib.core.released`). PromptIR and AdaIR
register layers their forward never calls (six 1×1 convs in PromptIR, `conv` and `score_gen`
in each AFLB); at the paper size we keep them under `unused` so released files load key for
key and the parameter counts are the authors'.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from m2ir_lib.core.config import MODEL_PRESETS
from m2ir_lib.core.model import (
    ChannelAttention,
    Downsample,
    TransformerBlock,
    Upsample,
    conv1x1,
)

RIVALS = ("restormer", "promptir", "adair")
# Method names as the paper's tables print them.
RIVAL_LABELS = {"restormer": "Restormer", "promptir": "PromptIR", "adair": "AdaIR"}


@dataclass(frozen=True)
class RivalConfig:
    """One rival network. Defaults are the authors' released configuration (paper size).

    Runs are keyed by this config as M²IR runs are by `M2IRConfig` (`m2ir_lib.engine.runs`); the
    `arch` field tells the two apart in a checkpoint's metadata.
    """

    arch: Literal["restormer", "promptir", "adair"] = "restormer"
    dim: int = 48
    num_blocks: tuple[int, ...] = (4, 6, 6, 8)
    num_refinement_blocks: int = 4
    heads: tuple[int, ...] = (1, 2, 4, 8)
    ffn_expansion: float = 2.66
    layer_norm: Literal["withbias", "biasfree"] = "withbias"  # Restormer's denoisers: biasfree
    # PromptIR: channels, count and side of the prompt components at (dec2, dec3, latent), i.e.
    # the blocks after decoder level 2, decoder level 3 and the latent (64/128/320, 5, 64/32/16).
    prompt_dims: tuple[int, ...] = (64, 128, 320)
    prompt_len: int = 5
    prompt_sizes: tuple[int, ...] = (64, 32, 16)
    freq_n: int = 128  # AdaIR's low-pass window: (h // n)·r rows, r in (0, 1) learned
    unused_layers: bool = True  # the authors' never-called layers (strict loading, counts)

    @property
    def unused_parameters(self) -> bool:
        """Parameters that never get a gradient (DDP must be told): the unused layers, and
        AdaIR's window-ratio convs, whose output the authors truncate to integers."""
        return self.unused_layers or self.arch == "adair"

    def __post_init__(self):
        if self.arch not in RIVALS:
            raise ValueError(f"arch={self.arch!r}; expected one of {RIVALS}")
        if len(self.num_blocks) != 4 or len(self.heads) != 4:
            raise ValueError("num_blocks and heads need one entry per U-Net level (4)")
        if self.layer_norm not in ("withbias", "biasfree"):
            raise ValueError(f"layer_norm={self.layer_norm!r}; expected withbias or biasfree")
        if len(self.prompt_dims) != 3 or len(self.prompt_sizes) != 3:
            raise ValueError("prompt_dims and prompt_sizes need one entry per prompt block (3)")


def rival_config(name: str, size: str = "paper") -> RivalConfig:
    """The rival `name` at the backbone size of M²IR's `size` preset ('paper', 'mini', 'smoke').

    Smaller sizes take M²IR's width, depth and heads, scale PromptIR's prompt channels by
    dim/48 (multiples of 4) and size the prompt components to the training crop's level
    resolutions (the paper's 64/32/16 are those of a 128 crop), and drop the unused layers.
    """
    if name not in RIVALS:
        raise ValueError(f"unknown rival {name!r}; known: {RIVALS}")
    if size not in MODEL_PRESETS:
        raise ValueError(f"unknown size {size!r}; known: {sorted(MODEL_PRESETS)}")
    if size == "paper":
        return RivalConfig(arch=name)
    m = MODEL_PRESETS[size]
    crop = {"mini": 48, "smoke": 32}.get(size, 128)  # the profile's training patch
    return RivalConfig(
        arch=name,
        dim=m.dim,
        num_blocks=m.num_blocks,
        num_refinement_blocks=m.num_refinement_blocks,
        heads=m.heads,
        ffn_expansion=m.ffn_expansion,
        prompt_dims=tuple(max(4, round(p * m.dim / 48 / 4) * 4) for p in (64, 128, 320)),
        prompt_sizes=(crop // 2, crop // 4, crop // 8),
        unused_layers=False,
    )


# ------------------------------------------------------------------ Restormer [17]
class BiasFreeLayerNorm(nn.Module):
    """Restormer's BiasFree LayerNorm (its denoising models): x / √(σ²+ε) · γ, mean kept."""

    def __init__(self, dim):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):  # (B, C, H, W)
        var = x.var(dim=1, keepdim=True, unbiased=False)
        return x / torch.sqrt(var + 1e-5) * self.weight[:, None, None]


def transformer_blocks(cfg: RivalConfig, dim, heads, count):
    """`count` Restormer blocks (MDTA + GDFN, Restormer Fig. 2) with the config's LayerNorm."""
    blocks = []
    for _ in range(count):
        block = TransformerBlock(dim, heads, cfg.ffn_expansion)
        if cfg.layer_norm == "biasfree":
            block.norm1, block.norm2 = BiasFreeLayerNorm(dim), BiasFreeLayerNorm(dim)
        blocks.append(block)
    return nn.Sequential(*blocks)


class Restormer(nn.Module):
    """Restormer, Fig. 2 of [17]: the 4-level U-Net M²IR also builds on.

    Subclasses (PromptIR, AdaIR) insert a block after the latent, decoder-3 and decoder-2
    stages (`_after`); `latent_out` is the latent's width after its block (PromptIR: 4C).
    """

    def __init__(self, cfg: RivalConfig, latent_out=None):
        super().__init__()
        self.cfg = cfg
        c, nb, hd = cfg.dim, cfg.num_blocks, cfg.heads
        latent_out = latent_out or 8 * c
        self.patch_embed = nn.Conv2d(3, c, 3, padding=1, bias=False)
        self.encoder1, self.down1 = transformer_blocks(cfg, c, hd[0], nb[0]), Downsample(c)
        self.encoder2 = transformer_blocks(cfg, 2 * c, hd[1], nb[1])
        self.down2 = Downsample(2 * c)
        self.encoder3 = transformer_blocks(cfg, 4 * c, hd[2], nb[2])
        self.down3 = Downsample(4 * c)
        self.latent = transformer_blocks(cfg, 8 * c, hd[3], nb[3])
        self.up3 = Upsample(latent_out)
        self.reduce3 = conv1x1(latent_out // 2 + 4 * c, 4 * c)
        self.decoder3 = transformer_blocks(cfg, 4 * c, hd[2], nb[2])
        self.up2, self.reduce2 = Upsample(4 * c), conv1x1(4 * c, 2 * c)
        self.decoder2 = transformer_blocks(cfg, 2 * c, hd[1], nb[1])
        self.up1 = Upsample(2 * c)  # no channel reduction at level 1
        self.decoder1 = transformer_blocks(cfg, 2 * c, hd[0], nb[0])
        self.refinement = transformer_blocks(cfg, 2 * c, hd[0], cfg.num_refinement_blocks)
        self.output = nn.Conv2d(2 * c, 3, 3, padding=1, bias=False)

    def _after(self, i, x, image):
        """Stage block i (0: latent, 1: decoder 3, 2: decoder 2); identity for Restormer."""
        return x

    def forward(self, x, return_routing=False):
        """Restore `x` (B, 3, H, W) in [0, 1]; any H, W (reflect-padded to a multiple of 8, as
        M²IR). `return_routing` gives (y, []): no experts, for the training loop's interface."""
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected (B, 3, H, W) input, got {tuple(x.shape)}")
        h, w = x.shape[-2:]
        pad_h, pad_w = -h % 8, -w % 8
        if pad_h >= h or pad_w >= w:
            raise ValueError(f"image {h}x{w} too small to reflect-pad to a multiple of 8")
        inp = F.pad(x, (0, pad_w, 0, pad_h), mode="reflect") if pad_h or pad_w else x
        enc1 = self.encoder1(self.patch_embed(inp))  # (B, C, H, W)
        enc2 = self.encoder2(self.down1(enc1))  # (B, 2C, H/2, W/2)
        enc3 = self.encoder3(self.down2(enc2))  # (B, 4C, H/4, W/4)
        lat = self._after(0, self.latent(self.down3(enc3)), inp)  # (B, 8C or 4C, H/8, W/8)
        dec3 = self.decoder3(self.reduce3(torch.cat([self.up3(lat), enc3], 1)))  # (B, 4C, ..)
        dec3 = self._after(1, dec3, inp)
        dec2 = self.decoder2(self.reduce2(torch.cat([self.up2(dec3), enc2], 1)))  # (B, 2C, ..)
        dec2 = self._after(2, dec2, inp)
        dec1 = self.decoder1(torch.cat([self.up1(dec2), enc1], 1))  # (B, 2C, H, W)
        y = (self.output(self.refinement(dec1)) + inp)[:, :, :h, :w]  # global residual
        return (y, []) if return_routing else y


# ------------------------------------------------------------------ PromptIR [12]
class PGM(nn.Module):
    """Prompt generation module (PromptIR Fig. 2): a per-image softmax mix of `length`
    learnable prompt components, weighted from the pooled features, resized to the
    features' size and passed through a 3×3 conv."""

    def __init__(self, feat_dim, prompt_dim, length, side):
        super().__init__()
        self.components = nn.Parameter(torch.rand(length, prompt_dim, side, side))  # U[0, 1)
        self.linear = nn.Linear(feat_dim, length)
        self.conv = nn.Conv2d(prompt_dim, prompt_dim, 3, padding=1, bias=False)

    def forward(self, x):  # (B, C, h, w)
        weights = F.softmax(self.linear(x.mean(dim=(-2, -1))), dim=1)  # (B, length)
        prompt = torch.einsum("bn,ndij->bdij", weights, self.components)  # (B, D, side, side)
        prompt = F.interpolate(prompt, x.shape[-2:], mode="bilinear")  # (B, D, h, w)
        return self.conv(prompt)


class PIM(nn.Module):
    """Prompt interaction module (PromptIR Fig. 2): one Transformer block on [features;
    prompt], then a 1×1 conv to the next stage's width."""

    def __init__(self, cfg: RivalConfig, width, out_dim, heads):
        super().__init__()
        self.block = transformer_blocks(cfg, width, heads, 1)[0]
        self.reduce = conv1x1(width, out_dim)

    def forward(self, x, prompt):
        return self.reduce(self.block(torch.cat([x, prompt], 1)))


class PromptBlock(nn.Module):
    """PGM then PIM: one prompt block of PromptIR's decoder."""

    def __init__(self, cfg: RivalConfig, feat_dim, out_dim, prompt_dim, side):
        super().__init__()
        self.pgm = PGM(feat_dim, prompt_dim, cfg.prompt_len, side)
        # the authors give every PIM the heads of level 3
        self.pim = PIM(cfg, feat_dim + prompt_dim, out_dim, cfg.heads[2])

    def forward(self, x):
        return self.pim(x, self.pgm(x))


class PromptIR(Restormer):
    """PromptIR with prompt blocks in the decoder (`decoder=True`), Fig. 2 of [12]. The
    latent's block maps 8C+P₃ to 4C (so `up3` starts from 4C); the others keep the width."""

    def __init__(self, cfg: RivalConfig):
        super().__init__(cfg, latent_out=4 * cfg.dim)
        c, (p1, p2, p3), (s1, s2, s3) = cfg.dim, cfg.prompt_dims, cfg.prompt_sizes
        self.prompts = nn.ModuleList(
            [
                PromptBlock(cfg, 8 * c, 4 * c, p3, s3),  # after the latent, (B, 4C, H/8, W/8)
                PromptBlock(cfg, 4 * c, 4 * c, p2, s2),  # after decoder 3
                PromptBlock(cfg, 2 * c, 2 * c, p1, s1),  # after decoder 2
            ]
        )
        if cfg.unused_layers:  # built by the authors' constructor, never called by forward
            self.unused = nn.ModuleDict(
                {
                    "chnl_reduce1": conv1x1(64, 64),
                    "chnl_reduce2": conv1x1(128, 128),
                    "chnl_reduce3": conv1x1(320, 256),
                    "reduce_noise_channel_1": conv1x1(c + 64, c),
                    "reduce_noise_channel_2": conv1x1(2 * c + 128, 2 * c),
                    "reduce_noise_channel_3": conv1x1(4 * c + 256, 4 * c),
                }
            )

    def _after(self, i, x, image):
        return self.prompts[i](x)


# ------------------------------------------------------------------ AdaIR [14]
class FMiM(nn.Module):
    """Frequency mining module of AdaIR's AFLB: the input image, embedded at the stage's
    size, is split by an adaptive low-pass window in the Fourier domain into low- and
    high-frequency parts, and each part attends to the decoder features (channel CA)."""

    def __init__(self, dim, heads, n):
        super().__init__()
        self.n = n
        self.embed = nn.Conv2d(3, dim, 3, padding=1, bias=False)
        # window ratio r ∈ (0, 1)² per image, from the pooled embedding
        self.ratio = nn.Sequential(conv1x1(dim, dim // 8), nn.GELU(), conv1x1(dim // 8, 2))
        self.ca_high = ChannelAttention(dim, heads)  # queries: high band, keys/values: features
        self.ca_low = ChannelAttention(dim, heads)

    def split(self, x):
        """(high, low) = |IFFT2(F·(1−M))|, |IFFT2(F·M)|, M a centred window of ±(h//n)·r_h
        rows and ±(w//n)·r_w columns around the zero frequency (truncated to integers). With
        n = 128 the window is empty unless the stage is ≥ 256 px high and wide, so at the
        authors' 128-px crops the low band is zero; we keep their behaviour."""
        b, _, h, w = x.shape
        r = torch.sigmoid(self.ratio(F.adaptive_avg_pool2d(x, 1)))  # (B, 2, 1, 1)
        half_h = (h // self.n * r[:, 0, 0, 0]).int()  # (B,)
        half_w = (w // self.n * r[:, 1, 0, 0]).int()
        # the window in FFT order: centred frequencies sit at index h//2 after a shift by h//2
        rows = (torch.arange(h, device=x.device) + h // 2) % h  # shifted position of row i
        cols = (torch.arange(w, device=x.device) + w // 2) % w
        in_h = (rows[None] >= h // 2 - half_h[:, None]) & (rows[None] < h // 2 + half_h[:, None])
        in_w = (cols[None] >= w // 2 - half_w[:, None]) & (cols[None] < w // 2 + half_w[:, None])
        mask = (in_h[:, :, None] & in_w[:, None, :]).to(x.dtype)[:, None]  # (B, 1, h, w)
        spec = torch.fft.fft2(x, norm="forward")
        low = torch.fft.ifft2(spec * mask, norm="forward").abs()
        high = torch.fft.ifft2(spec * (1 - mask), norm="forward").abs()
        return high, low

    def forward(self, image, y):  # (B, 3, H, W), (B, C, h, w)
        x = self.embed(F.interpolate(image, y.shape[-2:], mode="bilinear"))  # (B, C, h, w)
        high, low = self.split(x)
        return self.ca_high(high, y), self.ca_low(low, y)


class SpatialGate(nn.Module):
    """H-L unit of FMoM: a spatial map from the high band's channel max and mean."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 1, 7, padding=3, bias=False)

    def forward(self, x):  # (B, C, h, w) -> (B, 1, h, w)
        pooled = torch.cat([x.max(dim=1, keepdim=True)[0], x.mean(dim=1, keepdim=True)], 1)
        return torch.sigmoid(self.conv(pooled))


class ChannelGate(nn.Module):
    """L-H unit of FMoM: channel weights from the low band's average and max pools."""

    def __init__(self, dim):
        super().__init__()
        self.avg, self.max = nn.AdaptiveAvgPool2d(1), nn.AdaptiveMaxPool2d(1)
        hidden = max(1, dim // 16)  # the authors' dim // 16; ≥ 1 for the smoke size
        self.mlp = nn.Sequential(conv1x1(dim, hidden), nn.ReLU(), conv1x1(hidden, dim))

    def forward(self, x):  # (B, C, h, w) -> (B, C, 1, 1)
        return torch.sigmoid(self.mlp(self.avg(x)) + self.mlp(self.max(x)))


class FMoM(nn.Module):
    """Frequency modulation module of AdaIR's AFLB: each band modulates the other (the high
    band gates the low one in space, the low band the high one per channel), then sum + 1×1."""

    def __init__(self, dim):
        super().__init__()
        self.spatial_gate, self.channel_gate = SpatialGate(), ChannelGate(dim)
        self.proj = nn.Conv2d(dim, dim, 1)  # with bias, as the authors'

    def forward(self, low, high):
        return self.proj(low * self.spatial_gate(high) + high * self.channel_gate(low))


class AFLB(nn.Module):
    """Adaptive frequency learning block of AdaIR: FMiM, FMoM, then a channel CA with the
    decoder features as queries; output α⊙CA + β⊙y with α = 0, β = 1 at init."""

    def __init__(self, cfg: RivalConfig, dim, heads):
        super().__init__()
        self.fmim, self.fmom = FMiM(dim, heads, cfg.freq_n), FMoM(dim)
        self.ca = ChannelAttention(dim, heads)
        self.alpha = nn.Parameter(torch.zeros(dim, 1, 1))
        self.beta = nn.Parameter(torch.ones(dim, 1, 1))
        if cfg.unused_layers:  # built by the authors' constructor, never called by forward
            self.unused = nn.ModuleDict(
                {
                    "conv": nn.Conv2d(3, dim, 3, padding=1, bias=False),
                    "score_gen": nn.Conv2d(2, 2, 7, padding=3),
                }
            )

    def forward(self, image, y):
        high, low = self.fmim(image, y)
        return self.ca(y, self.fmom(low, high)) * self.alpha + y * self.beta


class AdaIR(Restormer):
    """AdaIR with AFLBs in the decoder (`decoder=True`), Fig. 2 of [14]; every AFLB uses the
    heads of level 3, as the authors'."""

    def __init__(self, cfg: RivalConfig):
        super().__init__(cfg)
        c, h = cfg.dim, cfg.heads[2]
        self.aflbs = nn.ModuleList([AFLB(cfg, 8 * c, h), AFLB(cfg, 4 * c, h), AFLB(cfg, 2 * c, h)])

    def _after(self, i, x, image):
        return self.aflbs[i](image, x)


ARCHS = {"restormer": Restormer, "promptir": PromptIR, "adair": AdaIR}


def build_rival(name: str | RivalConfig, size: str = "paper") -> Restormer:
    """A rival with fresh weights: `build_rival("adair", "mini")` or `build_rival(cfg)`."""
    cfg = name if isinstance(name, RivalConfig) else rival_config(name, size)
    return ARCHS[cfg.arch](cfg)
