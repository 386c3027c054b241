"""The paper's claims as rows: what each table or figure claims, and what this run says of it.

Every verdict the workbook computes (a table's conclusions, ADEC's branch-off effect, Fig. 9's
gates, Fig. 10's separation) is also written as one row of `CLAIM_COLUMNS` to
`results/<profile>/<stem>_claims.csv`, so that the summary page can open with one table over
all claims: the claim, the paper's effect, what this run's design can detect, the verdict, and
what design would test it. Nothing here computes a statistic (that is `stats`); this module
fixes the schema and reads and writes it.

Columns:
    source: where the claim is printed ("I", "VIII", "Fig. 9", "ADEC (Table I)", ...).
    claim: the claim in words ("M²IR beats Restormer").
    column: the paper's column it is judged on ("Average", "derain"; empty for a figure).
    kind: "paper" for a claim the paper makes, "extra" for our extra comparison.
    metric: PSNR, SSIM, ... (or the mechanism's statistic).
    paper_effect: the paper's printed difference (nan when it claims a direction only).
    estimate, ci_low, ci_high: this run's difference and its 95 % interval.
    n_units: independent test units (photographs of the stand-in, images of a real set).
    n_seeds: training seeds paired on both sides.
    detectable: the smallest difference this design detects (80 % power, 5 % two-sided).
    verdict: supports / contradicts / cannot resolve / not testable here (...) / ...
    design: what would test it (more seeds, more images, the paper profile on real data).
    profile: the profile that measured it.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from m2ir_lib.core.config import Profile
from m2ir_lib.workbook import results

CLAIM_COLUMNS = [
    "source",
    "claim",
    "column",
    "kind",
    "metric",
    "paper_effect",
    "estimate",
    "ci_low",
    "ci_high",
    "n_units",
    "n_seeds",
    "detectable",
    "verdict",
    "design",
    "profile",
]
PAPER, EXTRA = "paper", "extra"
SUFFIX = "_claims"


def frame(rows: list[dict], profile: Profile | str) -> pd.DataFrame:
    """Claim rows as a frame of `CLAIM_COLUMNS` (missing fields empty, profile filled in)."""
    df = pd.DataFrame(rows, columns=CLAIM_COLUMNS)
    df["profile"] = results.profile_name(profile)
    bad = set(df["kind"]) - {PAPER, EXTRA}
    if bad:
        raise ValueError(f"claim kind must be {PAPER!r} or {EXTRA!r}, got {sorted(bad)}")
    return df


def write_claims(
    rows: list[dict] | pd.DataFrame, profile: Profile | str, stem: str, root=None
) -> Path:
    """Write one table's or figure's claims to `results/<profile>/<stem>_claims.csv` (atomic)."""
    df = rows if isinstance(rows, pd.DataFrame) else frame(rows, profile)
    missing = [c for c in CLAIM_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"claim rows lack columns {missing}; expected {CLAIM_COLUMNS}")
    return results.write_frame(df[CLAIM_COLUMNS], profile, f"{stem}{SUFFIX}", root)


def read_claims(profile: Profile | str, root=None) -> pd.DataFrame:
    """Every `*_claims.csv` of a profile, tables in the paper's order, then the figures."""
    out = results.results_dir(profile, root)
    order = {s.stem: i for i, s in enumerate(results.TABLES.values())}
    paths = sorted(
        out.glob(f"*{SUFFIX}.csv"),
        key=lambda p: (order.get(p.name[: -len(SUFFIX) - 4], len(order)), p.name),
    )
    frames = [pd.read_csv(p) for p in paths]
    return (
        pd.concat(frames, ignore_index=True)[CLAIM_COLUMNS]
        if frames
        else pd.DataFrame(columns=CLAIM_COLUMNS)
    )
