"""Eq. (1) beside its alternatives, and what is Mamba-like in MST (§III-B, notebook 01).

Eq. (1) prints X₁ = MDTA(σ(W_d W_l¹ X)): MDTA attends over the sigmoid mask itself. The prose
around it says the mask "modulates the subsequent attention operation", which also reads as
MDTA attending over the features multiplied by the mask; and MLLA [28], the Mamba-like block
the design follows, activates with SiLU where M²IR writes σ. `M2IRConfig.msa_reading`
selects each ("literal", the default, "modulate", "silu"; docs/readings.md §2) with the
same weights. Here: the readings on one traced feature map (`reading_trace`), their
parameter counts (`reading_parameters`), MST against Mamba and MLLA (`mamba_table`), and, as
an optional trained comparison, the readings retrained as Table I's M²IR and scored against
the literal one with an interval and its power (`comparison_runs`, `compare_readings`).
"""

from __future__ import annotations

import dataclasses
import inspect

import numpy as np
import pandas as pd
import torch
from IPython.display import Markdown

from m2ir_lib.core import model as model_lib
from m2ir_lib.core.config import M2IRConfig, Profile, check_profile
from m2ir_lib.core.model import M2IR, MSA, ZeroPrior
from m2ir_lib.workbook import scoring, stats, tables, verdicts
from m2ir_lib.workbook.experiments import Run

READINGS = {
    "literal": ("MDTA(σ(W_d W_l¹ X))", "eq. (1) as printed: MDTA attends over the mask"),
    "modulate": ("MDTA(X ⊙ σ(W_d W_l¹ X))", "the prose: the mask modulates what MDTA sees"),
    "silu": ("MDTA(SiLU(W_d W_l¹ X)), gate SiLU(W_l² X)", "MLLA [28]: SiLU for both σ"),
}
# §III-B's own sentences on eq. (1), quoted (M²IR paper, §III-B).
QUOTES = (
    "MSA is the key component, integrating a Mamba-inspired gating mechanism into MDTA for "
    "selective state modulation.",
    "A sigmoid activation σ(·) then produces a soft mask in [0, 1] that modulates the "
    "subsequent attention operation MDTA(·) from Restormer [17].",
    "X_1 = (MDTA(σ(W_d W_l^1 X)))   (1)",
)


def quotes() -> Markdown:
    """§III-B's sentences on eq. (1), as blockquotes."""
    return Markdown("\n\n".join(f"> “{q}”" for q in QUOTES))


# ---------------------------------------------------------------------------- one feature map


def reading_blocks(msa: MSA) -> dict[str, MSA]:
    """One MSA per reading, each holding `msa`'s weights (a trained or seeded block)."""
    dim, heads = msa.w_l1.in_channels, msa.mdta.heads
    blocks = {}
    for reading in READINGS:
        block = MSA(dim, heads, reading=reading)
        block.load_state_dict(msa.state_dict())
        blocks[reading] = block.eval()
    return blocks


@torch.no_grad()
def reading_trace(msa: MSA, x: torch.Tensor) -> pd.DataFrame:
    """What each reading computes on the feature map `x` = LN(X) (1, C, H, W) with `msa`'s
    weights: the range and spread of what MDTA attends over, the spread of X₁ (eq. 1) and of
    MSA's output (eq. 2), and how far that output moves from the literal reading's.

    Returns:
        One row per reading: reading, MDTA attends over, source, min, mean, max and std of
        MDTA's input, std of X₁, std of MSA(X), relative change ‖y − y_literal‖ / ‖y_literal‖.
    """
    rows, y_literal = [], None
    for reading, block in reading_blocks(msa).items():
        seen = []
        hook = block.mdta.register_forward_hook(
            lambda m, args, out, s=seen: s.append((args[0], out))
        )
        try:
            y = block(x)
        finally:
            hook.remove()
        mdta_in, x1 = seen[0]
        y_literal = y if y_literal is None else y_literal
        formula, source = READINGS[reading]
        rows.append(
            {
                "reading": reading,
                "MDTA attends over": formula,
                "source": source,
                "input min": mdta_in.min().item(),
                "input mean": mdta_in.mean().item(),
                "input max": mdta_in.max().item(),
                "input std": mdta_in.std().item(),
                "X₁ std": x1.std().item(),
                "MSA(X) std": y.std().item(),
                "change vs literal": ((y - y_literal).norm() / y_literal.norm()).item(),
            }
        )
    return pd.DataFrame(rows)


def reading_parameters(cfg: M2IRConfig) -> pd.DataFrame:
    """Parameters of the whole network of `cfg` under each reading (all equal: a reading
    changes what is computed, not what is learnt); DA-CLIP's frozen encoder is not counted
    (a parameter-free `ZeroPrior` stands in, as for Table XIII's 'w/o DA-CLIP')."""
    daclip = cfg.prior == "daclip" and cfg.special_experts
    counts = []
    for reading in READINGS:
        prior = ZeroPrior(cfg.prior_dim + len(cfg.prompts)) if daclip else None
        net = M2IR(dataclasses.replace(cfg, msa_reading=reading), prior)
        counts.append({"reading": reading, "params": sum(p.numel() for p in net.parameters())})
    return pd.DataFrame(counts)


# ---------------------------------------------------------------------------- Mamba, MLLA, MST

# (component, Mamba [25], MLLA [28], MST, (object, text of its code line)) in our own words,
# from the Mamba paper (Gu & Dao) and MLLA's (Han et al., NeurIPS 2024, its MLLABlock).
_COMPONENTS = [
    ("input projection", "linear, widens to two branches x and z", "in_proj, C→C",
     "W_l¹, 1×1 conv C→C", (MSA.forward, "self.w_l1(x)")),
    ("short convolution", "causal 1-D depthwise conv over the token sequence",
     "depthwise 3×3 conv (dwc)", "W_d, depthwise 3×3", (MSA.forward, "self.w_d(")),
    ("activation after it", "SiLU", "SiLU", "σ: a soft mask in [0, 1] (eq. 1)",
     (MSA.forward, "mask = ")),
    ("token mixer", "selective SSM: a recurrence with input-dependent Δ, B, C; causal",
     "linear attention over pixels with LePE and RoPE; not causal",
     "MDTA: softmax attention across channels, linear in H·W", (MSA.forward, "self.mdta(")),
    ("forget gate", "the decay exp(Δ·A) of the recurrence, chosen by the input",
     "dropped: needs a recurrent order; positional encodings stand in (a key part per [28])",
     "none: no recurrence, no decay", None),
    ("multiplicative gate", "SiLU(z) times the SSM output", "SiLU(act_proj(x)) times attention",
     "σ(W_l² X) ⊙ X₁ (eq. 2)", (MSA.forward, "self.w_l2(x)")),
    ("output projection", "out_proj", "out_proj", "W_l³ (eq. 2)", (MSA.forward, "self.w_l3(")),
    ("block design", "one block replaces attention and MLP", "attention, then MLP; CPE convs",
     "MSA then GDFN, pre-LN residuals (Restormer)", (model_lib.MST.forward, "self.ffn(")),
]  # fmt: skip


def code_line(obj, text: str) -> str:
    """`model.py:<line>: <code>` of the first line of `obj`'s source that contains `text`."""
    lines, start = inspect.getsourcelines(obj)
    for k, line in enumerate(lines):
        if text in line:
            return f"model.py:{start + k}: {line.strip()}"
    raise ValueError(f"{obj.__qualname__} has no line with {text!r}")


def mamba_table() -> pd.DataFrame:
    """MST beside Mamba and MLLA, component by component, with the code line that computes
    MST's part (read from the library's source, so it follows the code)."""
    return pd.DataFrame(
        [
            {"component": c, "Mamba": m, "MLLA": ml, "MST": mst,
             "code line": code_line(*where) if where else "—"}
            for c, m, ml, mst, where in _COMPONENTS
        ]
    )  # fmt: skip


# ---------------------------------------------------------------------------- trained (mini)


def comparison_runs(
    profile: Profile, *, data_root: str = "", seed: int = 0, daclip_checkpoint: str = ""
) -> list[Run]:
    """Table I's M²IR run (the literal reading, from the cache), then the same run under each
    other reading: same data, schedule and seed, labelled "…, eq. (1) <reading>"."""
    check_profile(profile)
    literal = tables.table_runs(
        "I", profile, data_root=data_root, seed=seed, daclip_checkpoint=daclip_checkpoint,
        rivals=False,
    )[0]  # fmt: skip
    return [literal] + [
        dataclasses.replace(
            literal,
            label=f"{literal.label}, eq. (1) {r}",
            model=dataclasses.replace(literal.model, msa_reading=r),
        )
        for r in READINGS
        if r != "literal"
    ]


def compare_readings(runs: list[Run], ckpts: dict, profile: Profile) -> pd.DataFrame:
    """Each other reading − the literal one (`runs[0]`) on Table I's test images: the paired
    difference over the mean of the task columns, its 95 % interval over photographs
    (`stats.difference`), the smallest difference this design detects, and the verdict on
    "the reading restores better" (`verdicts.verdict`; our comparison, not a paper claim).
    Empty with a note when a run was not trained."""
    cols = ["reading", "metric", "estimate", "ci_low", "ci_high", "n_units", "detectable",
            "verdict"]  # fmt: skip
    missing = [r.label for r in runs if r.label not in ckpts]
    if missing:
        print(f"not trained (switched off, or no data): {missing}; no comparison")
        return pd.DataFrame(columns=cols)
    scoring.evaluate_in_parallel(  # one-thread processes, both cores; the loop reads the cache
        [(ckpts[r.label], r.data, r.daclip_checkpoint, False) for r in runs], profile
    )
    long = []
    for r in runs:
        img, _ = scoring.evaluate_run(ckpts[r.label], r.data, profile, r.daclip_checkpoint)
        long.append(scoring.per_image_rows("I", r.label, r.label, r.seed, img))
    per_image = pd.concat(long, ignore_index=True)
    tasks = list(dict.fromkeys(per_image["task"]))
    rows = []
    for r in runs[1:]:
        for metric in verdicts.METRICS:
            ci = stats.difference(per_image, r.label, runs[0].label, metric, tasks)
            rows.append(
                {
                    "reading": r.model.msa_reading,
                    "metric": metric,
                    "estimate": ci.estimate if ci else np.nan,
                    "ci_low": ci.low if ci else np.nan,
                    "ci_high": ci.high if ci else np.nan,
                    "n_units": ci.n if ci else 0,
                    "detectable": ci.detectable() if ci else np.nan,
                    "verdict": verdicts.verdict(+1, ci, metric=metric),
                }
            )
    return pd.DataFrame(rows, columns=cols)
