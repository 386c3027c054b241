"""One constructor for every network the workbook trains: M²IR (§III) or a rival.

The training loop, the run cache and the checkpoints take a configuration and call
`build_model`; the type of the configuration decides the network, so rivals are trained,
cached and reloaded by the same code as M²IR.
"""

from __future__ import annotations

from torch import nn

from m2ir_lib.core.config import M2IRConfig
from m2ir_lib.core.model import DACLIP_MISSING, M2IR
from m2ir_lib.core.rivals import RivalConfig, build_rival


def build_model(cfg: M2IRConfig | RivalConfig, daclip_checkpoint: str | None = None) -> nn.Module:
    """M²IR for `cfg`, loading the frozen DA-CLIP prior when cfg.prior == 'daclip'.

    Args:
        cfg: network configuration; a `RivalConfig` builds that rival instead, so
            the training loop and the run cache serve the rivals too.
        daclip_checkpoint: path to daclip_ViT-B-32.pt; required for prior='daclip'.
    """
    if not isinstance(cfg, M2IRConfig):
        if not isinstance(cfg, RivalConfig):
            raise TypeError(f"expected an M2IRConfig or RivalConfig, got {type(cfg).__name__}")
        return build_rival(cfg)
    if cfg.prior == "daclip" and cfg.special_experts:
        if daclip_checkpoint is None:
            raise ValueError(DACLIP_MISSING)
        # heavy optional dependency (open_clip): imported only when the prior is used
        from m2ir_lib.core.daclip import load_daclip_prior

        return M2IR(cfg, prior_encoder=load_daclip_prior(daclip_checkpoint, prompts=cfg.prompts))
    return M2IR(cfg)
