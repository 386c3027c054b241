"""How our rows and columns are named beside the paper's, and in what order they are listed.

A reproduced row is labelled with what ran: a Table VII row whose prior is the learnable MLP
(no DA-CLIP weights) says 'DACP (MLP prior)' where the paper says 'DACP ✓' or 'DACP MLP'
(`ran_label`); `paper_label` and `ours_for` map between the two namings, `answers` finds the
paper row any of our rows answers and `in_paper_order` lists ours in the paper's order.
Table XIII's measured columns get the paper's metric names (`EFFICIENCY_METRICS`), a latency
column the name of its device (`latency_column`). Plain strings and functions of them: the
views, verdicts and plots use these without loading any network code.
"""

from __future__ import annotations

# `speed.efficiency_table` column -> Table XIII metric, in the paper's column order; the
# paper's latency is on its RTX 4090 (`PAPER_DEVICE`), so it is the GPU column, and a CPU
# latency is a column of its own. Shown, every latency column also names the device that
# measured it (`latency_column`): the paper's RTX 4090 is the device of the paper's rows only.
EFFICIENCY_METRICS = {
    "params_M": "Params (M)",
    "macs_G": "FLOPs (G)",
    "latency_ms_gpu": "latency GPU (ms)",
    "latency_ms_cpu": "latency CPU (ms)",
    "cpu_mb": "CPU memory (MB)",
    "gpu_mb": "GPU memory (MB)",
}
PAPER_DEVICE = "NVIDIA RTX 4090 (the paper's, Table XIII)"


def latency_column(metric: str, device: str) -> str:
    """The column of a Table XIII metric measured on `device`: a latency names its device
    ('latency GPU (ms) on NVIDIA H200'; the paper's rows: on `PAPER_DEVICE`), since
    milliseconds on one GPU are no entry in another's column; other metrics keep their name."""
    if not metric.startswith("latency"):
        return metric
    return f"{metric} on {device or 'an unnamed device'}"


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


# Our Restormer-style network is the Restormer architecture layer for layer
# (`tables.BASELINE_NOTE`), so its row answers the paper's Restormer row.
STANDS_FOR = {"Restormer-style": "Restormer"}


def answers(label: str, paper_methods) -> str | None:
    """The paper row a reproduced row answers, so that ours can be listed in the paper's
    order: the one `paper_label` finds, else the paper's row of the same method, named by
    the label up to ' (' ('AdaIR (ours, mini)' and 'AdaIR (released weights)' -> 'AdaIR',
    'M²IR (ours, mini, denoise only)' -> 'M²IR', 'Restormer-style (…)' -> 'Restormer'), or
    that row's starred variant (Tables III and V print 'AdaIR*', 'PromptIR*'); None when the
    paper prints no such row."""
    paper_methods = list(paper_methods)
    found = paper_label(label, paper_methods)
    if found is not None:
        return found
    name = label.split(" (")[0]
    name = STANDS_FOR.get(name, name)
    return next((m for m in (name, f"{name}*") if m in paper_methods), None)


def in_paper_order(labels, paper_methods) -> list[str]:
    """`labels` (our rows) in the order of the paper rows they answer (`answers`), then the
    rows that answer none, in the order given; rows answering the same paper row keep the
    order given."""
    paper_methods = list(dict.fromkeys(paper_methods))
    labels = list(dict.fromkeys(labels))

    def rank(i_label):
        i, label = i_label
        row = answers(label, paper_methods)
        return (0, paper_methods.index(row), i) if row is not None else (1, 0, i)

    return [label for _, label in sorted(enumerate(labels), key=rank)]


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
