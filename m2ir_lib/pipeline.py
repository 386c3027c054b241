"""Run the workbook: every notebook in order, with papermill, for one profile (README, "Profiles").

    python -m m2ir_lib.pipeline --profile mini            # all notebooks (make reproduce)
    python -m m2ir_lib.pipeline --list                    # what would run, in order
    python -m m2ir_lib.pipeline --only 05                 # one notebook (number or name)
    python -m m2ir_lib.pipeline --from 07 -p data_root=/data/m2ir   # resume, with a parameter

Executed copies go to `results/<profile>/notebooks/`, wall times to
`results/<profile>/pipeline_times.csv`. The run stops at the first failing notebook and
names it and the failing cell; resume with `--from <that notebook>`: finished training
runs are cached, so nothing already trained is trained again.
"""

from __future__ import annotations

import argparse
import ast
import os
import shlex
import sys
import time
from pathlib import Path

import pandas as pd
import papermill as pm
from papermill.exceptions import PapermillExecutionError
from tqdm.auto import tqdm

from m2ir_lib.core.config import PROFILES, get_profile
from m2ir_lib.data.files import atomic_path
from m2ir_lib.workbook import summary
from m2ir_lib.workbook.results import repo_root, results_dir


def notebooks(root: str | Path | None = None) -> list[Path]:
    """The workbook's notebooks in run order (`notebooks/NN_*.ipynb`, sorted by name)."""
    folder = Path(root or repo_root()) / "notebooks"
    found = sorted(p for p in folder.glob("[0-9][0-9]_*.ipynb"))
    if not found:
        raise FileNotFoundError(f"no notebooks named NN_*.ipynb in {folder}")
    return found


def select(paths: list[Path], only: str | None = None, start: str | None = None) -> list[Path]:
    """Pick one notebook (`only`) or every notebook from `start` on.

    Args:
        paths: notebooks in run order.
        only: a number prefix ("05"), a stem ("05_table_III_cdd11") or a file name.
        start: same forms; run this notebook and all after it.
    """
    if only and start:
        raise ValueError("give --only or --from, not both")

    def find(key: str) -> int:
        hits = [
            i
            for i, p in enumerate(paths)
            if key in (p.name, p.stem) or p.name.split("_")[0] == key.zfill(2)
        ]
        if len(hits) != 1:
            names = ", ".join(p.stem for p in paths)
            raise ValueError(f"{key!r} matches {len(hits)} notebooks; known: {names}")
        return hits[0]

    if only:
        return [paths[find(only)]]
    if start:
        return paths[find(start) :]
    return list(paths)


def parse_param(text: str) -> tuple[str, object]:
    """`name=value` with a Python literal value (strings may stay unquoted)."""
    name, sep, raw = text.partition("=")
    if not sep or not name.isidentifier():
        raise ValueError(f"parameter {text!r} is not NAME=VALUE")
    try:
        return name, ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return name, raw


def _param_flags(parameters: dict | None) -> str:
    """The ``-p NAME=VALUE`` flags that repeat this run's extra parameters."""
    return "".join(f" -p {shlex.quote(f'{k}={v}')}" for k, v in (parameters or {}).items())


def _record(done: list[dict], path: Path, name: str, status: str, t0: float, profile: str):
    """Append one notebook's outcome and wall time, and rewrite the times table."""
    seconds = round(time.perf_counter() - t0, 1)
    done.append(dict(notebook=name, status=status, seconds=seconds, profile=profile))
    _write_times(done, path)


def _write_times(rows: list[dict], path: Path) -> None:
    """Merge this run's wall times into the profile's table (one row per notebook, in order),
    so `--only` and `--from` runs update their rows and keep the others."""
    path.parent.mkdir(parents=True, exist_ok=True)
    cols = ["notebook", "status", "seconds", "profile"]
    frame = pd.DataFrame(rows, columns=cols)
    if path.is_file():
        old = pd.read_csv(path)
        frame = pd.concat([old[~old["notebook"].isin(frame["notebook"])], frame])
    frame = frame.sort_values("notebook", kind="stable")
    with atomic_path(path) as tmp:
        frame[cols].to_csv(tmp, index=False)


def run(
    profile: str,
    only: str | None = None,
    start: str | None = None,
    parameters: dict | None = None,
    root: str | Path | None = None,
    kernel: str = "python3",
    log_output: bool = False,
) -> list[dict]:
    """Execute notebooks in order with papermill; stop at the first failure.

    Args:
        profile: injected as the notebooks' `profile` parameter ('smoke', 'mini', 'paper').
        only, start: see `select`.
        parameters: further parameters injected into every notebook (e.g. data_root).
        root: repository root (default: the one holding this package).
        kernel: Jupyter kernel name; the venv's ipykernel registers `python3`.
        log_output: stream cell outputs to the terminal instead of a per-cell progress bar.

    Returns:
        One dict per notebook run: notebook, status ('ok'/'failed'), seconds, profile.

    Raises:
        SystemExit: with a message naming the failing notebook and cell; on Ctrl-C, code 130
            after naming the stopped notebook and the `--from` command that resumes.
    """
    prof = get_profile(profile)  # the notebooks get the name and resolve it in their kernel
    results_at = results_dir(profile, root)  # honours $M2IR_RESULTS unless root is given
    results_root, root = root, Path(root or repo_root())
    todo = select(notebooks(root), only, start)
    out_dir = results_at / "notebooks"
    out_dir.mkdir(parents=True, exist_ok=True)
    times_path = results_at / "pipeline_times.csv"
    # Kernels inherit the environment: make m2ir_lib importable without an installed package.
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [str(root)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    )
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    # Executed copies should show their figures, whatever MPLBACKEND the caller set (Agg in make).
    os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    params = {"profile": profile, **(parameters or {})}
    done: list[dict] = []
    outer = tqdm(todo, desc=f"workbook [{profile}]", unit="notebook", position=0)
    for nb in outer:
        outer.set_postfix_str(nb.stem)
        out = out_dir / nb.name
        t0 = time.perf_counter()
        try:
            pm.execute_notebook(
                str(nb),
                str(out),
                parameters=params,
                kernel_name=kernel,
                cwd=str(nb.parent),
                log_output=log_output,
                progress_bar=False
                if log_output
                else {"desc": nb.stem, "position": 1, "leave": False},
            )
        except (KeyboardInterrupt, PapermillExecutionError) as err:
            resume = (
                f"python -m m2ir_lib.pipeline --profile {profile} "
                f"--from {nb.stem.split('_')[0]}{_param_flags(parameters)}"
            )
            # Ctrl-C reaches the kernel too: its KeyboardInterrupt comes back as a cell error.
            if isinstance(err, KeyboardInterrupt) or err.ename == "KeyboardInterrupt":
                _record(done, times_path, nb.name, "interrupted", t0, profile)
                outer.close()
                print(
                    f"\nINTERRUPTED: {nb.name} stopped (Ctrl-C); its executed copy is partial."
                    f"\n  resume with: {resume}\n  (finished training runs are cached; a "
                    "stopped one resumes from its last checkpoint)",
                    file=sys.stderr,
                )
                raise SystemExit(130) from None
            _record(done, times_path, nb.name, "failed", t0, profile)
            first = (err.source or "").strip().splitlines()[:1]
            raise SystemExit(
                f"\nFAILED: {nb.name}, cell {err.cell_index} of the executed copy "
                f"(In [{err.exec_count}]): {first[0] if first else ''}\n"
                f"  {err.ename}: {err.evalue}\n"
                f"  executed copy with the traceback: {out}\n"
                f"  after fixing it, resume with: {resume}"
            ) from None
        _record(done, times_path, nb.name, "ok", t0, profile)
    outer.close()
    try:  # the page is rebuilt from files already written: a failure here loses nothing
        page = summary.write_summary(prof, results_root)
        print(f"summary page: {page}")
    except Exception as err:  # noqa: BLE001
        print(
            f"WARNING: the summary page was not rebuilt ({type(err).__name__}: {err}); "
            f"rebuild it with: python -m m2ir_lib.summary --profile {profile}",
            file=sys.stderr,
        )
    total = sum(r["seconds"] for r in done)
    print(
        f"\n{len(done)} notebook(s) ran at profile {profile!r} in {total / 60:.1f} min; "
        f"executed copies in {out_dir}, times in {times_path}"
    )
    return done


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m m2ir_lib.pipeline",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--profile", default="mini", choices=sorted(PROFILES), help="run profile (default: mini)"
    )
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--only", metavar="NB", help="run just this notebook (number or name)")
    group.add_argument("--from", dest="start", metavar="NB", help="resume from this notebook")
    parser.add_argument("--list", action="store_true", help="list the notebooks and exit")
    parser.add_argument(
        "-p",
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra notebook parameter (repeatable), e.g. -p data_root=/data",
    )
    parser.add_argument(
        "--log-output", action="store_true", help="stream cell output instead of progress bars"
    )
    args = parser.parse_args(argv)
    try:  # a mistyped notebook or parameter is a usage error, before anything runs
        todo = select(notebooks(), args.only, args.start)
        params = dict(parse_param(p) for p in args.param)
    except (ValueError, FileNotFoundError) as err:
        parser.error(str(err))
    if args.list:
        for nb in todo:
            print(nb.name)
        return
    run(
        args.profile,
        only=args.only,
        start=args.start,
        parameters=params,
        log_output=args.log_output,
    )


if __name__ == "__main__":
    main(sys.argv[1:])
