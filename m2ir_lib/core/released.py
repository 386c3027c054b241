"""The authors' released weights of Restormer, PromptIR and AdaIR, loaded strictly into
`m2ir_lib.core.rivals` (Tables I, II: rows "<name> (released weights)").

Their state-dict names (BasicSR `params`, Lightning `state_dict` with a `net.` prefix,
DataParallel's `module.`) are mapped onto ours by `convert_released`; `load_released` then
loads key for key, so a file of another network or size fails with its name.
"""

from __future__ import annotations

import dataclasses
import os
import re

import torch

from m2ir_lib.core.rivals import (
    RIVAL_LABELS,
    Restormer,
    RivalConfig,
    build_rival,
    rival_config,
)

# Where each released file keeps its weights: BasicSR's `params` (Restormer), Lightning's
# `state_dict` with the LightningModule's `net.` prefix (PromptIR, AdaIR); `module.` (DataParallel).
CONTAINERS = ("state_dict", "params", "params_ema")
PREFIXES = ("net.", "module.")

# The authors' names -> ours, applied in order to each key (after the prefix is removed).
_RENAMES = [
    # Restormer backbone
    (r"^patch_embed\.proj\.", "patch_embed."),
    (r"^encoder_level(\d)\.", r"encoder\1."),
    (r"^decoder_level(\d)\.", r"decoder\1."),
    (r"^down(\d)_\d\.body\.", r"down\1."),
    (r"^up(\d)_\d\.body\.", lambda m: f"up{int(m[1]) - 1}."),  # up4_3 feeds decoder 3
    (r"^reduce_chan_level(\d)\.", r"reduce\1."),
    # PromptIR: promptN / noise_levelN / reduce_noise_levelN form the prompt block after
    # the latent (N = 3), decoder 3 (N = 2) and decoder 2 (N = 1)
    (r"^prompt(\d)\.prompt_param$", lambda m: f"prompts.{3 - int(m[1])}.pgm.components"),
    (r"^prompt(\d)\.linear_layer\.", lambda m: f"prompts.{3 - int(m[1])}.pgm.linear."),
    (r"^prompt(\d)\.conv3x3\.", lambda m: f"prompts.{3 - int(m[1])}.pgm.conv."),
    (r"^noise_level(\d)\.", lambda m: f"prompts.{3 - int(m[1])}.pim.block."),
    (r"^reduce_noise_level(\d)\.", lambda m: f"prompts.{3 - int(m[1])}.pim.reduce."),
    (r"^(chnl_reduce\d|reduce_noise_channel_\d)\.", r"unused.\1."),
    # AdaIR: freN is the AFLB after the latent (1), decoder 3 (2), decoder 2 (3)
    (r"^fre(\d)\.", lambda m: f"aflbs.{int(m[1]) - 1}."),
    (r"^(aflbs\.\d\.)conv1\.", r"\1fmim.embed."),
    (r"^(aflbs\.\d\.)rate_conv\.", r"\1fmim.ratio."),
    (r"^(aflbs\.\d\.)channel_cross_l\.", r"\1fmim.ca_high."),  # the authors' `_l` gets `high`
    (r"^(aflbs\.\d\.)channel_cross_h\.", r"\1fmim.ca_low."),
    (r"^(aflbs\.\d\.)frequency_refine\.SpatialGate\.spatial\.", r"\1fmom.spatial_gate.conv."),
    (r"^(aflbs\.\d\.)frequency_refine\.ChannelGate\.", r"\1fmom.channel_gate."),
    (r"^(aflbs\.\d\.)frequency_refine\.proj\.", r"\1fmom.proj."),
    (r"^(aflbs\.\d\.)channel_cross_agg\.", r"\1ca."),
    (r"^(aflbs\.\d\.)para1$", r"\1alpha"),
    (r"^(aflbs\.\d\.)para2$", r"\1beta"),
    (r"^(aflbs\.\d\.)(conv|score_gen)\.", r"\1unused.\2."),
    # inside every Transformer block
    (r"\.norm(\d)\.body\.", r".norm\1."),
]
_QKV = re.compile(r"^(.*\.attn\.)qkv(_dwconv)?\.(weight|bias)$")


def unwrap_released(obj) -> dict:
    """The bare state dict of a released file: container key and prefixes removed."""
    for key in CONTAINERS:
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not all(torch.is_tensor(v) for v in obj.values()):
        raise ValueError(
            f"not a state dict: expected tensors, under one of {CONTAINERS} or at the top level"
        )
    changed = True
    while changed:
        changed = False
        for prefix in PREFIXES:
            if obj and all(k.startswith(prefix) for k in obj):
                obj, changed = {k[len(prefix) :]: v for k, v in obj.items()}, True
    return obj


def convert_released(state: dict) -> dict:
    """The authors' state dict (any of `unwrap_released`'s forms) with our names and layout.

    Besides renaming, MDTA's fused `qkv` 1×1 conv and its depthwise conv are split into our
    `q` (first C channels) and `kv` (the other 2C), which computes the same; PromptIR's prompt
    components lose their leading singleton axis.
    """
    out = {}
    for key, value in unwrap_released(state).items():
        for pattern, repl in _RENAMES:
            key = re.sub(pattern, repl, key)
        m = _QKV.match(key)
        if m:
            q, kv = value.split([value.shape[0] // 3, 2 * value.shape[0] // 3])
            out[f"{m[1]}q{m[2] or ''}.{m[3]}"], out[f"{m[1]}kv{m[2] or ''}.{m[3]}"] = q, kv
        elif key.endswith("pgm.components"):
            out[key] = value.squeeze(0)  # (1, N, D, s, s) -> (N, D, s, s)
        else:
            out[key] = value
    return out


def released_config(name: str, state: dict) -> RivalConfig:
    """The paper-size config a released file needs: its LayerNorm kind read from its keys."""
    state = unwrap_released(state)
    embed = state.get("patch_embed.proj.weight")
    if embed is not None and embed.shape[1] != 3:  # Restormer's gray / dual-pixel models
        raise ValueError(
            f"this file's network takes {embed.shape[1]}-channel input; only the RGB "
            "models (3 channels) are supported"
        )
    biasfree = not any(k.endswith(".norm1.body.bias") for k in state)
    return dataclasses.replace(
        rival_config(name), layer_norm="biasfree" if biasfree else "withbias"
    )


def read_released(path: str | os.PathLike, trusted: bool = False) -> dict:
    """torch.load a released file on CPU, tensors only unless `trusted`."""
    try:
        return torch.load(path, map_location="cpu", weights_only=not trusted)
    except FileNotFoundError:
        raise FileNotFoundError(f"no released checkpoint at {path}") from None
    except Exception as err:  # pickle.UnpicklingError and friends
        if trusted:
            raise
        raise ValueError(
            f"{path} holds pickled objects besides tensors, refused by torch.load(weights_only="
            f"True): {err}. If you trust its source, pass trusted=True."
        ) from err


def load_released(
    name: str, path: str | os.PathLike | dict, device="cpu", trusted: bool = False
) -> Restormer:
    """The rival `name` with the authors' released weights, loaded strictly, in eval mode.

    Args:
        name: 'restormer', 'promptir' or 'adair'.
        path: the downloaded file (Restormer's `*.pth`, PromptIR's / AdaIR's Lightning
            `*.ckpt`), or its already loaded contents.
        device: where to put the model.
        trusted: allow a file that pickles more than tensors (full unpickling).

    Raises:
        ValueError: the file is not a state dict of this network (names the keys that differ).
    """
    raw = path if isinstance(path, dict) else read_released(path, trusted)
    state = unwrap_released(raw)
    model = build_rival(released_config(name, state))
    ours = convert_released(state)
    want = model.state_dict()
    missing, unexpected = sorted(set(want) - set(ours)), sorted(set(ours) - set(want))
    wrong = [k for k in set(want) & set(ours) if want[k].shape != ours[k].shape]
    if missing or unexpected or wrong:
        raise ValueError(
            f"the file does not fit {RIVAL_LABELS[name]}: missing {missing[:4]}, unexpected "
            f"{unexpected[:4]}, shape differs {sorted(wrong)[:4]} (of {len(missing)}, "
            f"{len(unexpected)}, {len(wrong)}); is it another network's file?"
        )
    model.load_state_dict(ours, strict=True)
    return model.to(device).eval()
