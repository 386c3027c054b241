"""Commands of `python -m data_prep`: find the parts, check them, write manifest and report.

A command names the parts it needs (`COMMANDS`); ``3d`` and ``5d`` are the paper's training
mixes with their test sets (§IV-A), the others one data set family each; ``all`` does every
family that is present and says which are missing. Every command writes ``<out>/<name>.csv``
(docs/data.md §1's manifest) and ``<out>/<name>.report.md`` (counts per split and task, what was
left out and why, which images are converted on load).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from data_prep.adapters import LAYOUTS, weatherbench_layout
from data_prep.scan import CountError, LayoutError, Part, PartialDataWarning, check_images, find
from m2ir_lib.data.datasets import NOISE_SIGMAS
from m2ir_lib.data.files import atomic_write_text


@dataclass(frozen=True)
class Command:
    required: tuple[str, ...]
    optional: tuple[str, ...] = ()
    test_sigmas: tuple[int, ...] = NOISE_SIGMAS  # sigmas of the clean-only test rows
    help: str = ""


_3D = ("wed-bsd400", "rain100l-train", "ots", "rain100l-test", "sots", "bsd68")
_5D = ("gopro-train", "gopro-test", "lol-train", "lol-test")
COMMANDS: dict[str, Command] = {
    "3d": Command(_3D, help="Table I: BSD400+WED, Rain100L, RESIDE OTS; BSD68, Rain100L, SOTS"),
    "5d": Command(
        _3D + _5D,
        test_sigmas=(25,),
        help="Table II: 3d + GoPro + LOL (denoising tested at sigma 25)",
    ),
    "denoise-train": Command(("wed-bsd400",), help="BSD400 + WED clean images"),
    "denoise-test": Command(
        ("bsd68", "urban100", "kodak24"), help="Table V: BSD68, Urban100, Kodak24"
    ),
    "rain100l": Command(("rain100l-train", "rain100l-test"), help="Rain100L train and test"),
    "reside": Command(("ots", "sots"), help="RESIDE OTS (train) and SOTS-outdoor (test)"),
    "gopro": Command(("gopro-train", "gopro-test"), help="GoPro train and test"),
    "lol": Command(("lol-train", "lol-test"), help="LOL-v1 our485 and eval15"),
    "cdd11": Command(("cdd11-train", "cdd11-test"), help="Table III: CDD11, 11 types"),
    "weatherbench": Command(("weatherbench",), help="Table IV (layout from --layout)"),
    "csd": Command(("csd-test",), ("csd-train",), help="Table VI: CSD (train optional)"),
}
FAMILIES = tuple(c for c in COMMANDS if c not in ("3d", "5d"))


@dataclass
class Result:
    """What one run wrote and found."""

    manifests: dict[str, Path] = field(default_factory=dict)
    report: Path | None = None
    counts: pd.DataFrame | None = None
    missing: list[str] = field(default_factory=list)
    parts: dict[str, Part] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def data_root(root=None) -> Path:
    """The data root: ``root``, else ``M2IR_DATA``; it must exist."""
    root = root or os.environ.get("M2IR_DATA")
    if not root:
        raise LayoutError("no data root: pass --root DIR or set M2IR_DATA")
    root = Path(root)
    if not root.is_dir():
        raise LayoutError(
            f"data root {root} "
            + ("is a file, not a folder" if root.exists() else "does not exist")
            + ". It should hold the data sets in one of the trees of docs/data.md §2, "
            "e.g. Train/Denoise, Train/Derain/{rainy,gt}, test/dehaze/{input,target}, ... "
            "(run with an existing --root to see the full tree per data set)"
        )
    return root


def check_out(out) -> Path:
    """The output folder, checked before any work: it must be, or be creatable as, a folder."""
    out = Path(out)
    for p in (out, *out.parents):
        if p.exists():
            if not p.is_dir():
                where = "is an existing file" if p == out else f"is under the file {p}"
                raise ValueError(f"--out {out} {where}; give a folder for the manifests")
            if not os.access(p, os.W_OK):
                raise ValueError(f"--out {out}: cannot write in {p} (permission denied)")
            break
    return out


def manifest_frame(parts: list[Part], root: Path, test_sigmas=NOISE_SIGMAS) -> pd.DataFrame:
    """Manifest rows of ``parts``: one per pair, one per sigma for clean-only denoising images."""
    rows = []
    for part in parts:
        for p in part.pairs:
            clean = relative(p.clean, root)
            if p.degraded is None:
                sigmas = NOISE_SIGMAS if p.split == "train" else test_sigmas
                rows += [(p.split, p.task, "", clean, s, p.dataset) for s in sigmas]
            else:
                rows.append((p.split, p.task, relative(p.degraded, root), clean, "", p.dataset))
    return pd.DataFrame(
        rows, columns=["split", "task", "degraded_path", "clean_path", "sigma", "dataset"]
    )


def count_table(part: Part) -> list[dict]:
    """Found against expected pairs for every source (and per-split totals) of ``part``."""
    rows = []
    for s in part.layout.sources:
        found = sum(
            p.split == s.split and p.task == s.task and p.dataset == s.dataset for p in part.pairs
        )
        rows.append(
            {
                "part": part.name,
                "dataset": s.dataset,
                "split": s.split,
                "task": s.task,
                "found": found,
                "expected": s.expected,
            }
        )
    for split, n in part.layout.totals:
        rows.append(
            {
                "part": part.name,
                "dataset": "(total)",
                "split": split,
                "task": "*",
                "found": sum(p.split == split for p in part.pairs),
                "expected": n,
            }
        )
    for r in rows:
        r["status"] = (
            "not published"
            if r["expected"] is None
            else "ok"
            if r["found"] == r["expected"]
            else "MISMATCH"
        )
    return rows


def relative(path: Path, root: Path) -> str:
    """``path`` relative to the data root, with '/' separators (the manifest convention)."""
    return Path(os.path.relpath(path, root)).as_posix()


def empty_tasks(part: Part) -> list[str]:
    """The ``split/task`` groups of ``part``'s layout that got no pair (a folder missing, or
    every file left out as bad): training or testing on the part would drop that task."""
    have = {(p.split, p.task) for p in part.pairs}
    want = dict.fromkeys((s.split, s.task) for s in part.layout.sources)
    return [f"{split}/{task}" for split, task in want if (split, task) not in have]


def _gone_message(command, gone, missing, parts) -> str:
    """Why ``command`` is refused: each part missing (with its expected trees) or hollow."""
    out = [
        f"{command}: {len(gone)} required part(s) missing or without pairs; training or "
        "testing on the rest would drop whole data sets or tasks (pass --allow-missing to "
        "accept that on purpose; the notebooks never do):"
    ]
    for p in gone:
        if p in parts:
            out.append(
                f"{p}: no pairs for {', '.join(empty_tasks(parts[p]))} under "
                f"{parts[p].base}; expected tree:\n{parts[p].layout.describe()}"
            )
        else:
            out.append(missing[p])
    return "\n\n".join(out)


def _find_parts(names, root, layout, allow_partial) -> tuple[dict[str, Part], dict[str, str]]:
    found, missing = {}, {}
    for name in names:
        layouts = weatherbench_layout(layout) if name == "weatherbench" else LAYOUTS[name]
        try:
            found[name] = find(name, root, layouts, allow_partial)
        except LayoutError as err:
            missing[name] = str(err)
    return found, missing


def prepare(
    command: str,
    root=None,
    out="data/manifests",
    *,
    allow_partial: bool = False,
    allow_missing: bool = False,
    on_bad: str = "stop",
    verify: str = "quick",
    patch: int = 128,
    layout=None,
    progress: bool = False,
) -> Result:
    """Find, check and write the manifest(s) of ``command`` (a `COMMANDS` key or ``all``).

    Args:
        command: data set or setting name.
        root: data root (default ``M2IR_DATA``).
        out: folder for ``<name>.csv`` and ``<name>.report.md``.
        allow_partial: a count different from the published one becomes a loud warning
            (``PartialDataWarning``, and in the report) instead of an error.
        allow_missing: a required part that is missing, or one of its tasks without any pair,
            becomes such a warning too (the data set then lacks whole tasks); without it the
            command is refused, naming the parts and their expected trees.
        on_bad: corrupt, truncated, size-mismatched or too small pairs: ``stop`` (raise) or
            ``skip`` (leave out, listed in the report).
        verify: ``quick`` (headers, PNG CRCs, JPEG end markers), ``full`` (decode everything)
            or ``none``.
        patch: training patch side; smaller train images are bad pairs.
        layout: WeatherBench layout file or mapping (default: our documented guess).
        progress: tqdm bars while checking images.

    Raises:
        LayoutError: a required part is missing or one of its tasks has no pair (message:
            the parts and their expected trees).
        CountError: counts differ from the published ones (message: the table).
        BadImageError: a bad pair with ``on_bad='stop'``.
    """
    if command != "all" and command not in COMMANDS:
        raise ValueError(f"unknown data set {command!r}; choose from {sorted(COMMANDS)} or all")
    root, out = data_root(root), check_out(out)
    names = list(COMMANDS) if command == "all" else [command]
    if layout is not None and (command in ("all", "weatherbench")):
        weatherbench_layout(layout)  # a bad --layout file stops before any image is opened
    wanted = list(
        dict.fromkeys(p for n in names for p in COMMANDS[n].required + COMMANDS[n].optional)
    )
    parts, missing = _find_parts(wanted, root, layout, allow_partial)
    if command != "all":
        lost = [p for p in COMMANDS[command].required if p in missing]
        if lost and not (allow_missing and parts):
            raise LayoutError(_gone_message(command, lost, missing, parts))
    for part in parts.values():
        check_images(part, verify, on_bad, patch, progress)
    res = Result(parts=parts, missing=sorted(missing))
    res.counts = pd.DataFrame(
        [r for p in parts.values() for r in count_table(p)],
        columns=["part", "dataset", "split", "task", "found", "expected", "status"],
    )
    bad = res.counts[res.counts["status"] == "MISMATCH"]
    short_parts = set(bad["part"])
    hollow = {p for p, part in parts.items() if empty_tasks(part)}
    failed, absent = {}, []
    for name in names:
        cmd = COMMANDS[name]
        lacking = [p for p in cmd.required if p not in parts]
        if command == "all" and (
            len(lacking) == len(cmd.required) or (lacking and name not in FAMILIES)
        ):
            absent.append(name + (f" (lacks {', '.join(lacking)})" if name not in FAMILIES else ""))
            continue
        gone = [p for p in cmd.required if p not in parts or p in hollow]
        if gone and not allow_missing:
            if command != "all":
                raise LayoutError(_gone_message(name, gone, missing, parts))
            failed[name] = gone
            continue
        short = [p for p in cmd.required if p in short_parts and p not in gone]
        if short and not allow_partial:
            if command != "all":
                raise CountError(
                    "counts differ from the published sizes (docs/data.md §2); a "
                    "partial set is refused, pass --allow-partial to accept it:\n  "
                    + "\n  ".join(
                        f"{r.part}: {r.dataset} {r.split}/{r.task}: found {r.found}, "
                        f"published {r.expected}"
                        for r in bad.itertuples()
                    )
                    + "\n\n"
                    + res.counts.to_string(index=False)
                )
            failed[name] = short
            continue
        for p in gone + short:
            msg = f"{name}: part {p} " + (
                "missing"
                if p not in parts
                else f"has no pairs for {', '.join(empty_tasks(parts[p]))}"
                if p in hollow
                else "has other counts than published (see the table)"
            )
            warnings.warn(f"PARTIAL DATA: {msg}", PartialDataWarning, stacklevel=2)
            res.warnings.append(msg)
        have = [p for p in cmd.required + cmd.optional if p in parts]
        df = manifest_frame([parts[p] for p in have], root, cmd.test_sigmas)
        path = out / f"{name}.csv"
        atomic_write_text(df.to_csv(index=False, lineterminator="\n"), path)
        res.manifests[name] = path
    res.report = out / f"{command}.report.md"
    options = dict(
        verify=verify,
        on_bad=on_bad,
        patch=patch,
        allow_partial=allow_partial,
        allow_missing=allow_missing,
    )
    atomic_write_text(
        render_report(command, root, res, missing, failed, absent, options), res.report
    )
    if failed:
        raise CountError(
            f"incomplete data sets, not written (details in {res.report}): "
            + "; ".join(f"{n}: {', '.join(p)}" for n, p in failed.items())
        )
    return res


def render_report(command, root, res: Result, missing, failed, absent, flags) -> str:
    """The markdown report: flags, counts, manifests, warnings, skipped files, conversions."""
    lines = [
        f"# data_prep report: {command}",
        "",
        f"- data root: `{root}`",
        "- flags: " + ", ".join(f"{k}={v}" for k, v in flags.items()),
        "",
    ]
    lines += ["## Parts found", ""] + [
        f"- {n}: layout '{p.layout.name}' under `{p.base}`" for n, p in res.parts.items()
    ]
    lines += [
        "",
        "## Counts (pairs; clean images for denoising)",
        "",
        "```",
        res.counts.to_string(index=False) if len(res.counts) else "(none)",
        "```",
        "",
    ]
    lines += ["## Manifests", ""] + [
        f"- {n}: `{p.name}` ({len(pd.read_csv(p))} rows)" for n, p in res.manifests.items()
    ]
    if res.warnings:
        lines += ["", "## WARNINGS (accepted with --allow-partial / --allow-missing)", ""]
        lines += [f"- {w}" for w in res.warnings]
    if failed:
        lines += ["", "## Not written (incomplete)", ""]
        lines += [f"- {n}: {', '.join(p)}" for n, p in failed.items()]
    if absent:
        lines += ["", "## Data sets not present", ""] + [f"- {n}" for n in absent]
    if missing:
        lines += ["", "## Missing parts (expected trees)", ""]
        for name, msg in sorted(missing.items()):
            lines += [f"### {name}", "", "```", msg, "```", ""]
    for name, part in res.parts.items():
        if not (part.issues or part.notes or part.converted):
            continue
        lines += ["", f"## {name}: left out, notes, conversions", ""]
        lines += [f"- note: {n}" for n in part.notes]
        lines += [f"- {i.kind}: `{i.path}`: {i.detail}" for i in part.issues]
        kinds = pd.Series(list(part.converted.values()), dtype=str).value_counts()
        lines += [
            f"- converted to 8-bit RGB on load ({k}): {n} image(s), e.g. `{path}`"
            for k, n in kinds.items()
            for path in [next(p for p, v in part.converted.items() if v == k)]
        ]
    return "\n".join(lines) + "\n"
