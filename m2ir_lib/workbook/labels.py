"""How our rows and columns are named beside the paper's (Tables VII–XIII).

A reproduced row is labelled with what ran: a Table VII row whose prior is the learnable MLP
(no DA-CLIP weights) says 'DACP (MLP prior)' where the paper says 'DACP ✓' or 'DACP MLP'
(`ran_label`); `paper_label` and `ours_for` map between the two namings. Table XIII's
measured columns get the paper's metric names (`EFFICIENCY_METRICS`). Plain strings and
functions of them: the views, verdicts and plots use these without loading any network code.
"""

from __future__ import annotations

# `speed.efficiency_table` column -> Table XIII metric, in the paper's column order; the
# paper's latency is on its RTX 4090 (`PAPER_DEVICE`), so it is the GPU column, and a CPU
# latency is a column of its own.
EFFICIENCY_METRICS = {
    "params_M": "Params (M)",
    "macs_G": "FLOPs (G)",
    "latency_ms_gpu": "latency GPU (ms)",
    "latency_ms_cpu": "latency CPU (ms)",
    "cpu_mb": "CPU memory (MB)",
    "gpu_mb": "GPU memory (MB)",
}
PAPER_DEVICE = "NVIDIA RTX 4090 (the paper's, Table XIII)"

MLP_PRIOR = "DACP (MLP prior)"  # what a 'DACP ✓' or 'DACP MLP' row ran without DA-CLIP weights


def ran_label(label: str, model) -> str:
    """The row label of what ran: a Table VII row whose prior is the learnable MLP says
    'DACP (MLP prior)' in place of the paper's 'DACP ✓' (the fallback without DA-CLIP
    weights, `experiments.DACLIP_NOTE`) or 'DACP MLP'; other labels are the paper's."""
    if model.prior == "mlp" and model.special_experts:
        return label.replace("DACP ✓", MLP_PRIOR).replace("DACP MLP", MLP_PRIOR)
    return label


def paper_label(label: str, paper_methods) -> str | None:
    """The paper row a reproduced row label stands for: the label itself, or for a
    'DACP (MLP prior)' row the paper's 'DACP MLP' row when it prints one, else its 'DACP ✓'
    row (the MLP stands in for DA-CLIP); None when the paper has no such row."""
    paper_methods = set(paper_methods)
    for cand in (label, label.replace(MLP_PRIOR, "DACP MLP"), label.replace(MLP_PRIOR, "DACP ✓")):
        if cand in paper_methods:
            return cand
    return None


def ours_for(paper_row: str, methods) -> str | None:
    """Our row that answers the paper's row `paper_row`: the same label, or its
    'DACP (MLP prior)' version (without DA-CLIP weights the full model's row is the MLP run);
    None when this run has none."""
    methods = set(methods)
    for cand in (
        paper_row,
        paper_row.replace("DACP ✓", MLP_PRIOR).replace("DACP MLP", MLP_PRIOR),
    ):
        if cand in methods:
            return cand
    return None
