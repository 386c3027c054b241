"""The core: the paper's method and its comparators, nothing else (§III).

`config` (the network and run profiles as dataclasses), `model` (M²IR: MST, MSA, DACP,
DGEA, ADEC), `daclip` (the frozen DA-CLIP prior of eq. 3), `rivals` (Restormer, PromptIR,
AdaIR) and `released` (their authors' weights), `networks` (one constructor for any of
them), `losses` (eq. 8–11). Needs torch only (open_clip for DA-CLIP): no pandas, plotting
or notebook machinery.
"""
