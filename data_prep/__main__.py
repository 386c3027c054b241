"""``python -m data_prep <dataset> --root DIR --out DIR``: manifests of the real data sets.

Examples::

    python -m data_prep 3d --root /data/promptir --out data/manifests
    python -m data_prep weatherbench --root /data --layout my_weatherbench.yaml
    python -m data_prep all --root /data --allow-partial

The embedded synthetic benchmark has its own entry point: ``python -m data_prep.mini``.
"""

from __future__ import annotations

import argparse
import sys
import warnings

from data_prep.prepare import COMMANDS, prepare
from data_prep.scan import BadImageError, CountError, LayoutError, PartialDataWarning
from m2ir_lib.data.files import cli_logging, user_errors


def main(argv=None) -> int:
    """`_main` with the command lines' logging, and a mistake in one line, exit status 2."""
    cli_logging()
    with user_errors("python -m data_prep"):
        return _main(argv)


def _main(argv=None) -> int:
    choices = "\n".join(f"  {k:14s}{c.help}" for k, c in COMMANDS.items())
    p = argparse.ArgumentParser(
        prog="python -m data_prep",
        description="Manifests of the real data sets.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"data sets:\n{choices}\n  {'all':14s}every data set present; lists the others",
    )
    p.add_argument("dataset", choices=sorted(COMMANDS) + ["all"], metavar="dataset")
    p.add_argument("--root", help="data root (default: $M2IR_DATA)")
    p.add_argument(
        "--out",
        default="data/manifests",
        help="folder for <dataset>.csv and <dataset>.report.md (default: data/manifests)",
    )
    p.add_argument(
        "--allow-partial",
        action="store_true",
        help="accept counts other than the published ones, with a loud warning in the report",
    )
    p.add_argument(
        "--allow-missing",
        action="store_true",
        help="accept a data set with required parts or tasks missing (it then lacks whole "
        "tasks), with a loud warning in the report; refused otherwise",
    )
    p.add_argument(
        "--on-bad",
        choices=("stop", "skip"),
        default="stop",
        help="corrupt, truncated, size-mismatched or too small pairs: stop (default) or skip",
    )
    p.add_argument(
        "--verify",
        choices=("quick", "full", "none"),
        default="quick",
        help="image checks: quick (headers, PNG CRC, JPEG end marker; default), "
        "full (decode every image), none",
    )
    p.add_argument("--patch", type=int, default=128, help="training patch side (default 128)")
    p.add_argument(
        "--layout",
        help="WeatherBench layout file (JSON or YAML); see data_prep.adapters.WEATHERBENCH_DEFAULT",
    )
    a = p.parse_args(argv)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PartialDataWarning)  # printed below instead
            res = prepare(
                a.dataset,
                a.root,
                a.out,
                allow_partial=a.allow_partial,
                allow_missing=a.allow_missing,
                on_bad=a.on_bad,
                verify=a.verify,
                patch=a.patch,
                layout=a.layout,
                progress=True,
            )
    except (LayoutError, CountError, BadImageError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(res.counts.to_string(index=False))
    for name, path in res.manifests.items():
        print(f"wrote {path} ({name})")
    skipped = [
        i
        for part in res.parts.values()
        for i in part.issues
        if i.kind in ("corrupt", "size-mismatch", "too-small")
    ]
    if skipped:
        print(
            f"skipped {len(skipped)} bad pair(s) (--on-bad skip), e.g. {skipped[0].path}: "
            f"{skipped[0].kind}; all listed in the report",
            file=sys.stderr,
        )
    for w in res.warnings:
        print(f"WARNING: partial data: {w}", file=sys.stderr)
    if res.missing:
        print(f"not present: {', '.join(res.missing)}")
    print(f"report: {res.report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
