"""Model size and MACs of Table XIII, §IV-E (latency and peak memory: `engine.speed`).

Counting convention (docs/readings.md §1), the one the paper's 39.1M / 961G follows:
- params: `sum(p.numel())` over unique parameters (DA-CLIP's `visual.*` alias counted once).
- macs: ptflops 0.7.5, pytorch backend, batch 1, 3×480×720 (conv/linear MACs plus ptflops'
  element counts for gelu, softmax, interpolate, pooling). Experts are counted densely
  (all N+1 on every pixel), whatever dispatch the model runs with.
- attention_macs: the channel-attention products q·kᵀ and A·v, counted analytically by
  patching `model.channel_attention` while ptflops runs; ptflops sees none of them, whatever
  operator computes them. They are *not* in `macs` (the paper's convention).
- The rivals (Restormer, PromptIR, AdaIR, `core.rivals`) are counted the same way; their
  channel attention is M²IR's `channel_attention`, so the same products are left out. Table
  XIII's PromptIR row (34.1M / 745G) is not what the official code gives (35.592M / 835.3G).
- DA-CLIP: its image path only (controller + frozen visual, each once: 9.2G at ViT-B-32).
  ptflops applied to the DA-CLIP module as registered counts the visual tower twice through
  the `visual` alias (13.6G, which is what 975−961 in Table XIII suggests); that figure is
  reported separately as `prior_macs_ptflops_aliased`. The text tower never runs per image.
ptflops and open_clip are imported only when used.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import time

import torch
import torch.nn.functional as F
from torch import nn

from m2ir_lib.core import model as model_lib
from m2ir_lib.core.config import DACLIP_EMBED_DIM, MODEL_PRESETS, M2IRConfig, baseline_config
from m2ir_lib.core.model import M2IR, ZeroPrior
from m2ir_lib.core.rivals import RIVAL_LABELS, RIVALS, RivalConfig, build_rival, rival_config

DACLIP_MODES = ("none", "mlp", "daclip")
DACLIP_PRIOR_DIM = DACLIP_EMBED_DIM  # the prior_dim a DA-CLIP (ViT-B-32) prior needs
MODELS = ("m2ir", *RIVALS)  # the networks of `--model`
CONVENTION = (
    "ptflops 0.7.5 pytorch MACs, batch 1; experts dense; channel-attention q·kᵀ and "
    "A·v excluded (attention_macs); DA-CLIP image path counted once"
)


# --------------------------------------------------------------------- The models of Table XIII
def resolve_config(cfg_or_name: M2IRConfig | str) -> M2IRConfig:
    """A MODEL_PRESETS name ('paper', 'mini', 'smoke') or an M2IRConfig."""
    if isinstance(cfg_or_name, M2IRConfig):
        return cfg_or_name
    if cfg_or_name not in MODEL_PRESETS:
        raise ValueError(f"unknown model config {cfg_or_name!r}; known: {sorted(MODEL_PRESETS)}")
    return MODEL_PRESETS[cfg_or_name]


def build_variant(
    cfg_or_name: M2IRConfig | str, daclip: str = "none", daclip_cfg: str | dict | None = None
) -> M2IR:
    """M²IR with random weights and the chosen prior module (for counting and timing only).

    Args:
        cfg_or_name: network configuration or MODEL_PRESETS name.
        daclip: 'none' = no prior module (a parameter-free P' = 0, Table XIII "w/o DA-CLIP"),
            'mlp' = the learnable prior, 'daclip' = DA-CLIP structure with random weights.
        daclip_cfg: open_clip config of the DA-CLIP (None = ViT-B-32); tests pass a tiny one.
    """
    cfg = resolve_config(cfg_or_name)
    if daclip not in DACLIP_MODES:
        raise ValueError(f"daclip={daclip!r}; expected one of {DACLIP_MODES}")
    if cfg.prior == "none" or not cfg.special_experts:  # no DACP: nothing takes a prior
        if daclip != "none":
            raise ValueError(f"daclip={daclip!r} needs a config with DACP (a prior input)")
        return M2IR(cfg)
    if daclip == "mlp":
        return M2IR(dataclasses.replace(cfg, prior="mlp"))
    width = cfg.prior_dim + len(cfg.prompts)
    if daclip == "none":
        return M2IR(dataclasses.replace(cfg, prior="daclip"), prior_encoder=ZeroPrior(width))
    # heavy optional dependency (open_clip): only for the rows with the DA-CLIP prior
    from m2ir_lib.core.daclip import DaCLIPPrior, random_daclip

    if daclip_cfg is None and cfg.prior_dim != DACLIP_PRIOR_DIM:  # before building ViT-B-32
        raise ValueError(
            f"daclip='daclip' needs prior_dim={DACLIP_PRIOR_DIM} (DA-CLIP ViT-B-32); this "
            f"config has {cfg.prior_dim}: use the paper config, or daclip='mlp' or 'none'"
        )
    prior = DaCLIPPrior(random_daclip(daclip_cfg), cfg.prompts)
    if prior.out_dim != width:
        raise ValueError(f"DA-CLIP gives P' of width {prior.out_dim}, cfg expects {width}")
    return M2IR(dataclasses.replace(cfg, prior="daclip"), prior_encoder=prior)


def build_network(cfg: M2IRConfig | RivalConfig | str, daclip: str = "none", daclip_cfg=None):
    """`build_variant` for M²IR configs, `build_rival` (which takes no prior) for the rivals."""
    if isinstance(cfg, RivalConfig):
        if daclip != "none":
            raise ValueError(f"daclip={daclip!r}: {RIVAL_LABELS[cfg.arch]} takes no prior")
        return build_rival(cfg)
    return build_variant(cfg, daclip, daclip_cfg)


def _preset_name(cfg_or_name: M2IRConfig | str) -> str:
    if isinstance(cfg_or_name, str):
        resolve_config(cfg_or_name)  # a clear error for an unknown name
        return cfg_or_name
    name = next((k for k, v in MODEL_PRESETS.items() if v == cfg_or_name), None)
    if name is None:
        raise ValueError("the rivals are sized by a preset name ('paper', 'mini', 'smoke')")
    return name


def table_xiii_models(
    cfg_or_name: M2IRConfig | str = "paper", rivals: bool = False
) -> dict[str, tuple[M2IRConfig | RivalConfig, str]]:
    """The rows measured for Table XIII: name -> (config, daclip mode).

    Args:
        cfg_or_name: M²IR's configuration or preset name.
        rivals: also Restormer, PromptIR and AdaIR at the same preset size (their released
            configuration at 'paper'), so `efficiency_table` measures all four in one run.
    """
    cfg = resolve_config(cfg_or_name)
    rows = {
        "M²IR": (cfg, "daclip"),
        "M²IR (w/o DA-CLIP)": (cfg, "none"),
        "Restormer-style baseline": (baseline_config(cfg), "none"),
    }
    if rivals:
        size = _preset_name(cfg_or_name)
        rows.update({RIVAL_LABELS[n]: (rival_config(n, size), "none") for n in RIVALS})
    return rows


# ------------------------------------------------------------------------------------- Counting
def _image(size, device="cpu", batch=1, seed=0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)  # a fixed image: routing, hence nothing, varies
    return torch.rand(batch, 3, *size, generator=gen).to(device)


@contextlib.contextmanager
def _ptflops_paused():
    """Undo ptflops' functional patches for the duration (they are restored afterwards)."""
    saved = [
        (owner, name, fn)
        for owner in (torch, torch.Tensor, F)  # ptflops' wrappers keep .op
        for name, fn in list(vars(owner).items())
        if getattr(fn, "__module__", None) == "ptflops.pytorch_engine" and hasattr(fn, "op")
    ]
    for owner, name, fn in saved:
        setattr(owner, name, fn.op)
    try:
        yield
    finally:
        for owner, name, fn in saved:
            setattr(owner, name, fn)


@contextlib.contextmanager
def _attention_counted():
    """Patch `model.channel_attention`: its products go to a counter, never to ptflops."""
    original, counter = model_lib.channel_attention, [0]

    def counted(q, k, v, temperature):
        b, heads, c, n = q.shape  # (B, heads, C/heads, HW)
        counter[0] += 2 * b * heads * c * c * n  # q·kᵀ and A·v, c·c·HW MACs each per head
        with _ptflops_paused():
            return original(q, k, v, temperature)

    model_lib.channel_attention = counted
    try:
        yield counter
    finally:
        model_lib.channel_attention = original


def _ptflops_macs(module: nn.Module, size, device) -> int:
    from ptflops import get_model_complexity_info  # optional dependency: MAC counts only

    log = io.StringIO()
    with torch.no_grad():
        macs, _ = get_model_complexity_info(
            module,
            (3, *size),
            as_strings=False,
            print_per_layer_stat=False,
            backend="pytorch",
            input_constructor=lambda _: _image(size, device),
            ost=log,
        )
    if macs is None:
        reason = log.getvalue().strip()
        if not reason:  # ptflops swallowed the error: run the forward pass to name it
            try:
                with torch.no_grad():
                    module(_image(size, device))
                reason = "no reason given by ptflops (the forward pass itself runs)"
            except Exception as err:  # noqa: BLE001  (any failure is the reason to report)
                reason = f"{type(err).__name__}: {err}"
        raise RuntimeError(f"ptflops failed on {type(module).__name__} at {size}: {reason}")
    return int(macs)


class _ImagePathOnce(nn.Module):
    """DA-CLIP's per-image modules (§III-C), each registered once (no `visual` alias)."""

    def __init__(self, prior: nn.Module):
        super().__init__()
        self.control, self.visual = prior.daclip.visual_control, prior.daclip.clip.visual
        self._prior = (prior,)  # a tuple: not registered as a submodule

    def forward(self, image):
        return self._prior[0](image)


def _strip_ptflops_attrs(module: nn.Module):
    """ptflops cannot clean up after a module it met twice; remove its leftovers."""
    for m in module.modules():
        for attr in [a for a in vars(m) if a.startswith(("__flops", "__params", "__ptflops"))]:
            delattr(m, attr)


def _prior_macs(prior: nn.Module, size, device) -> int:
    """MACs of the degradation prior alone (DA-CLIP's image path registered once)."""
    return _ptflops_macs(_ImagePathOnce(prior) if hasattr(prior, "daclip") else prior, size, device)


def _n_params(module: nn.Module | None) -> int:
    return 0 if module is None else sum(p.numel() for p in module.parameters())


def complexity_of(model: nn.Module, size=(480, 720)) -> dict:
    """Params and MACs of a built M2IR or rival in the Table XIII convention (module docstring)."""
    model = model.eval()
    device, cfg = next(model.parameters()).device, model.cfg
    if not isinstance(model, M2IR):  # a rival: no prior, no experts
        with _attention_counted() as attention:
            macs = _ptflops_macs(model, size, device)
        params = _n_params(model)
        return {
            "net_params": params,
            "net_macs": macs,
            "attention_macs": attention[0],
            "prior": "none",
            "prior_params": 0,
            "prior_macs": 0,
            "params": params,
            "macs": macs,
        }
    saved_dispatch = [(m, m.dispatch) for m in model.modules() if hasattr(m, "dispatch")]
    prior = model.prior_encoder
    try:
        for m, _ in saved_dispatch:
            m.dispatch = "dense"  # the convention counts every expert
        if prior is not None:  # network and prior are counted apart
            model.prior_encoder = ZeroPrior(cfg.prior_dim + len(cfg.prompts))
        with _attention_counted() as attention:
            net_macs = _ptflops_macs(model, size, device)
    finally:
        model.prior_encoder = prior
        for m, d in saved_dispatch:
            m.dispatch = d
    out = {
        "net_params": _n_params(model) - _n_params(prior),
        "net_macs": net_macs,
        "attention_macs": attention[0],
        "prior": type(prior).__name__ if prior else "none",
        "prior_params": _n_params(prior),
        "prior_macs": 0,
    }
    if prior is not None and not isinstance(prior, ZeroPrior):
        is_daclip = hasattr(prior, "daclip")
        out["prior_macs"] = _prior_macs(prior, size, device)
        if is_daclip:  # ptflops on the module as registered: the alias doubles the visual tower
            with contextlib.redirect_stdout(io.StringIO()):  # ptflops prints alias warnings
                out["prior_macs_ptflops_aliased"] = _ptflops_macs(prior, size, device)
            _strip_ptflops_attrs(prior)
    out["params"] = out["net_params"] + out["prior_params"]
    out["macs"] = out["net_macs"] + out["prior_macs"]
    return out


def count_complexity(
    cfg_or_name: M2IRConfig | str,
    daclip: str = "none",
    size=(480, 720),
    daclip_cfg: str | dict | None = None,
    extrapolate: bool = False,
) -> dict:
    """Params / MACs / attention MACs of Table XIII for one model variant (on CPU).

    Args:
        cfg_or_name: network configuration or MODEL_PRESETS name.
        daclip: 'none' (w/o DA-CLIP), 'mlp' (learnable prior) or 'daclip' (random-weight DA-CLIP).
        size: (H, W) of the input; the paper uses 480×720.
        daclip_cfg: open_clip config of DA-CLIP (None = ViT-B-32).
        extrapolate: the network's MACs from three small inputs (`macs_extrapolated`, the
            same numbers in seconds instead of minutes); the prior is still counted at `size`.

    Returns:
        params, macs, attention_macs, prior_*, net_* (+ prior_macs_ptflops_aliased), seconds.
    """
    if len(size) != 2 or any(int(v) != v or v < 5 for v in size):
        raise ValueError(
            f"size must be (H, W), each at least 5 pixels (the paper: 480, 720); got {tuple(size)}"
        )
    start = time.perf_counter()
    model = build_variant(cfg_or_name, daclip, daclip_cfg)
    out = (macs_extrapolated if extrapolate else complexity_of)(model, tuple(size))
    name = cfg_or_name if isinstance(cfg_or_name, str) else "custom"
    out.update(
        config=name,
        daclip=daclip,
        size=list(size),
        convention=CONVENTION,
        seconds=round(time.perf_counter() - start, 1),
    )
    return out


def count_rival(name: str, preset: str = "paper", size=(480, 720)) -> dict:
    """`count_complexity` for a rival ('restormer', 'promptir', 'adair') at a preset size."""
    start = time.perf_counter()
    out = complexity_of(build_rival(name, preset), tuple(size))
    out.update(
        model=name,
        config=preset,
        daclip="none",
        size=list(size),
        convention=CONVENTION,
        seconds=round(time.perf_counter() - start, 1),
    )
    return out


def macs_extrapolated(model: nn.Module, size=(480, 720)) -> dict:
    """`complexity_of` at `size` in seconds rather than minutes. Every term ptflops counts
    in these networks is per pixel of some level (convs, GELU, norms, pools, the experts'
    per-pixel MLPs) or per image (DACP's W_p¹ on P', PromptIR's prompt weights, AdaIR's
    channel gate), so each count is a·HW + b for sides divisible by 8. a, b come from
    16×24 and 32×48 inputs; a third (24×40) must fall on the line or this raises.
    """
    counted = [(h * w, complexity_of(model, (h, w))) for h, w in ((16, 24), (32, 48), (24, 40))]
    (s1, c1), (s2, c2), (s3, c3) = counted
    out = dict(c1)
    for key in ("net_macs", "attention_macs"):
        a = (c2[key] - c1[key]) / (s2 - s1)
        b = c1[key] - a * s1
        if abs(c3[key] - (a * s3 + b)) > 1e-6 * c3[key] + 1:
            raise RuntimeError(f"{key} not linear in pixels; count in full (complexity_of)")
        out[key] = round(a * size[0] * size[1] + b)
    # A prior is not per pixel (DA-CLIP resizes to 224², the MLP prior pools): it is counted
    # once, alone, at `size`, which is cheap beside the full network.
    prior = getattr(model, "prior_encoder", None)
    if out["prior_macs"]:
        out["prior_macs"] = _prior_macs(prior, tuple(size), next(model.parameters()).device)
    out["macs"] = out["net_macs"] + out["prior_macs"]
    out["size"] = list(size)
    return out


def rival_macs_extrapolated(name: str, preset: str = "paper", size=(480, 720)) -> dict:
    """A rival's params and MACs at `size` through `macs_extrapolated` (seconds, not minutes)."""
    start = time.perf_counter()
    model = build_rival(name, preset)
    full = macs_extrapolated(model, size)
    out = {"params": _n_params(model), "model": name, "config": preset, "size": list(size)}
    out.update(macs=full["net_macs"], attention_macs=full["attention_macs"])
    out["seconds"] = round(time.perf_counter() - start, 1)
    return out
