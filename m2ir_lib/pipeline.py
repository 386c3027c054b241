"""Run the workbook: every notebook in order, with papermill, for one profile (README, "Profiles").

    python -m m2ir_lib.pipeline --profile mini            # all notebooks (make reproduce)
    python -m m2ir_lib.pipeline --list                    # what would run, in order
    python -m m2ir_lib.pipeline --only 05                 # one notebook (number or name)
    python -m m2ir_lib.pipeline --from 07 -p data_root=/data/m2ir   # resume, with a parameter

Before the first notebook, every training run of the workbook (`tables.workbook_plan`, with
notebook 02's parameters) is trained in one pool of one-thread workers, longest first, with
its predicted wall time on 1, 2, 4 and 8 cores printed (`workbook.budget`, written to
`results/<profile>/training_plan.csv`); the notebooks then find their runs in the cache. One
bar counts the whole workbook in predicted seconds (from the last run's times). Executed
copies go to `results/<profile>/notebooks/`, wall times to
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
import threading
import time
from pathlib import Path

import pandas as pd
import papermill as pm
from papermill.exceptions import PapermillExecutionError
from tqdm.auto import tqdm

from m2ir_lib.core.config import PROFILES, Profile, get_profile
from m2ir_lib.data.files import atomic_path, cli_logging
from m2ir_lib.workbook import (
    budget,
    experiments,
    readings,
    runinfo,
    scoring,
    settings,
    summary,
    tables,
)
from m2ir_lib.workbook.results import repo_root, results_dir, write_frame

TRAINING = "(training plan)"  # pipeline_times.csv's row of the up-front training
TRAINING_NOTEBOOK = "02_training"  # whose parameters the plan takes
WALKTHROUGH_NOTEBOOK = "01_model_walkthrough"  # trains the eq. (1) readings it compares
DEFAULT_SECONDS = 60.0  # predicted time of a notebook the last run did not time


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


# Set by the command line, never by `-p`: a `-p profile=mini` under `--profile smoke` would
# rewrite the mini results while every message says smoke.
RESERVED = {"profile": "--profile"}
# Integer parameters that count something: at least 1; every other integer at least 0.
AT_LEAST_ONE = ("seeds", "tile", "images_per_task")
# Parameters naming files or folders: made absolute here (the kernels run in notebooks/).
PATH_PARAMETERS = ("data_root", "daclip_checkpoint", "rival_checkpoints", "inception_weights")
# String parameters with a fixed set of values (anything else would silently mean "no").
CHOICES = {
    "paper_macs": ("yes", "no", "auto"),
    "level": ("encoder1", "encoder2", "encoder3", "latent"),
}
_BOOLS = {"true": True, "false": False, "yes": True, "no": False, "1": True, "0": False}


def declared_parameters(todo: list[Path]) -> dict[str, str]:
    """Every parameter the notebooks `todo` declare, with its type name (papermill's)."""
    out: dict[str, str] = {}
    for nb in todo:
        for name, p in pm.inspect_notebook(str(nb)).items():
            out.setdefault(name, p["inferred_type_name"])
    return out


def check_parameters(given: dict | None, todo: list[Path]) -> dict:
    """The `-p` parameters checked before anything runs, as the notebooks' declared types.

    A name no notebook of `todo` declares (a typo would run with the default and replace
    real results), a reserved name (`RESERVED`), a value of the wrong type ("false" is a
    true string: booleans are converted, anything else refused), a negative count and a
    path that does not exist are refused. Relative paths are made absolute as
    `settings.user_path` finds them (the folder the command was typed in, the repository).

    Raises:
        ValueError, FileNotFoundError: naming the parameter and what to give instead.
    """
    types, out = declared_parameters(todo), {}
    for name, value in (given or {}).items():
        if name in RESERVED:
            raise ValueError(f"-p {name}=... is reserved; set it with {RESERVED[name]}")
        if name not in types:
            known = ", ".join(sorted(set(types) - set(RESERVED)))
            raise ValueError(
                f"unknown parameter {name!r}: no notebook to run declares it; known: {known}"
            )
        out[name] = _typed(name, value, types[name])
        if name in PATH_PARAMETERS and out[name]:
            out[name] = _existing_path(name, out[name])
    return out


def _typed(name: str, value, kind: str):
    """`value` as the declared type `kind` ('bool', 'int', 'str'), or a clear ValueError."""
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if str(value).strip().lower() in _BOOLS:
            return _BOOLS[str(value).strip().lower()]
        raise ValueError(f"-p {name}={value}: expected True or False")
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"-p {name}={value}: expected a whole number")
        low = 1 if name in AT_LEAST_ONE else 0
        if value < low:
            what = "0 means automatic" if name == "jobs" else "a count"
            raise ValueError(f"-p {name}={value}: must be at least {low} ({what})")
        return value
    if kind == "str":
        value = value if isinstance(value, str) else str(value)
        if name in CHOICES and value not in CHOICES[name]:
            raise ValueError(f"-p {name}={value}: expected one of {', '.join(CHOICES[name])}")
    return value


def _existing_path(name: str, value: str) -> str:
    """A path parameter made absolute (`settings.user_path`: from the folder the command was
    typed in or the repository root; each path of a `name=path,...` list), checked to exist."""
    if name == "rival_checkpoints":
        if "=" in value:
            parts = [p.strip().partition("=") for p in value.split(",") if p.strip()]
            value = ",".join(f"{k}={settings.user_path(v, name)}" for k, _, v in parts)
        else:
            value = settings.user_path(value, name)
        scoring.released_checkpoints(value)  # names a missing file before days of training
        return value
    path = Path(settings.user_path(value, name))
    if name == "data_root" and not path.is_dir():
        raise FileNotFoundError(f"-p data_root={value}: no such folder ({path})")
    if name != "data_root" and not path.is_file():
        raise FileNotFoundError(f"-p {name}={value}: no such file ({path})")
    return str(path)


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


def notebook_parameters(nb: Path, given: dict | None = None) -> dict:
    """The parameters a notebook runs with: its parameters cell's defaults, then `given`."""
    found = pm.inspect_notebook(str(nb))
    out = {}
    for name, p in found.items():
        try:
            out[name] = ast.literal_eval(p["default"])
        except (ValueError, SyntaxError):
            out[name] = p["default"]
    return {**out, **(given or {})}


def train_plan(profile: Profile, params: dict, walkthrough: dict | None = None) -> pd.DataFrame:
    """Train every run of the workbook in one pool before the notebooks, longest first.

    The runs are `tables.workbook_plan` with notebook 02's parameters, and the eq. (1)
    readings notebook 01 compares (`readings.comparison_runs`) when its parameters
    (`walkthrough`) ask for them; each configuration is trained once (`runinfo.unique`), and a
    run already in the cache costs nothing. Prints the
    predicted wall time on 1, 2, 4 and 8 cores and writes the per-run prediction to
    `results/<profile>/training_plan.csv`. Returns that prediction.
    """
    kw = dict(
        data_root=str(params.get("data_root", "")),
        seed=int(params.get("seed", 0)),
        daclip_checkpoint=str(params.get("daclip_checkpoint", "")),
    )
    planned = tables.workbook_plan(profile, seeds=int(params.get("seeds", 1)), **kw)
    if walkthrough and walkthrough.get("compare_readings"):
        planned += readings.comparison_runs(profile, **kw)[1:]  # [0] is Table I's M²IR
    runs = runinfo.unique(planned, profile)
    pred = budget.predicted_seconds(runs, profile)
    print(f"training plan: {budget.plan_line(pred)}", flush=True)
    write_frame(pred, profile, "training_plan")
    experiments.train_runs(
        budget.longest_first(runs, pred), profile, jobs=int(params.get("jobs", 0) or 0)
    )
    return pred


class Clock:
    """One bar over the whole workbook in predicted seconds, with an ETA.

    Each stage (the training plan, then each notebook) has a predicted length; a thread moves
    the bar one second per second, never past the running stage's end, and `done` jumps to
    it. A stage that overruns its prediction holds the bar still while the ETA grows.
    """

    def __init__(self, stages: dict[str, float], desc: str):
        self.ends, t = {}, 0.0
        for name, seconds in stages.items():
            t += seconds
            self.ends[name] = t
        shape = "{l_bar}{bar}| {n:.0f}/{total:.0f} s [{elapsed}<{remaining}]"
        self.bar = tqdm(total=t, desc=desc, unit="s", position=0, bar_format=shape)
        self.limit, self._stop = 0.0, threading.Event()
        self._thread = threading.Thread(target=self._tick, daemon=True)
        self._thread.start()

    def _tick(self):
        while not self._stop.wait(1.0):
            step = min(1.0, self.limit - self.bar.n)
            if step > 0:
                self.bar.update(step)

    def start(self, stage: str):
        self.limit = self.ends[stage]
        self.bar.set_postfix_str(stage)

    def done(self, stage: str):
        self.bar.update(self.ends[stage] - self.bar.n)

    def close(self):
        self._stop.set()
        self._thread.join()
        self.bar.close()


def _predicted(times_path: Path, names: list[str]) -> dict[str, float]:
    """Each stage's seconds in the last run (`pipeline_times.csv`), else `DEFAULT_SECONDS`."""
    last = pd.read_csv(times_path) if times_path.is_file() else pd.DataFrame()
    seconds = dict(zip(last["notebook"], last["seconds"], strict=True)) if len(last) else {}
    return {n: float(seconds.get(n, DEFAULT_SECONDS)) for n in names}


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
    parameters = check_parameters(parameters, todo)  # before anything runs or is written
    out_dir = results_at / "notebooks"
    out_dir.mkdir(parents=True, exist_ok=True)
    times_path = results_at / "pipeline_times.csv"
    # Kernels inherit the environment: make m2ir_lib importable without an installed package.
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [str(root)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    )
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    # Kernels run in notebooks/: relative path parameters are found from here too (user_path).
    os.environ["M2IR_CALLER_CWD"] = os.getcwd()
    # Executed copies should show their figures, whatever MPLBACKEND the caller set (Agg in make).
    os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    params = {"profile": profile, **(parameters or {})}
    done: list[dict] = []
    # A run of several notebooks trains the plan first; notebook 02 alone trains it itself.
    training = [nb for nb in todo if nb.stem == TRAINING_NOTEBOOK and len(todo) > 1]
    stages = [TRAINING] * bool(training) + [nb.name for nb in todo]
    clock = Clock(_predicted(times_path, stages), f"workbook [{profile}]")
    if training:  # every run in one pool first; the notebooks then read them from the cache
        clock.start(TRAINING)
        t0 = time.perf_counter()
        walk = [nb for nb in notebooks(root) if nb.stem == WALKTHROUGH_NOTEBOOK]
        train_plan(
            prof,
            notebook_parameters(training[0], parameters),
            notebook_parameters(walk[0], parameters) if walk else None,
        )
        _record(done, times_path, TRAINING, "ok", t0, profile)
        clock.done(TRAINING)
    for nb in todo:
        clock.start(nb.name)
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
                clock.close()
                print(
                    f"\nINTERRUPTED: {nb.name} stopped (Ctrl-C); its executed copy is partial."
                    f"\n  resume with: {resume}\n  (finished training runs are cached; a "
                    "stopped one resumes from its last checkpoint)",
                    file=sys.stderr,
                )
                raise SystemExit(130) from None
            _record(done, times_path, nb.name, "failed", t0, profile)
            clock.close()
            first = (err.source or "").strip().splitlines()[:1]
            raise SystemExit(
                f"\nFAILED: {nb.name}, cell {err.cell_index} of the executed copy "
                f"(In [{err.exec_count}]): {first[0] if first else ''}\n"
                f"  {err.ename}: {err.evalue}\n"
                f"  executed copy with the traceback: {out}\n"
                f"  after fixing it, resume with: {resume}"
            ) from None
        _record(done, times_path, nb.name, "ok", t0, profile)
        clock.done(nb.name)
    clock.close()
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
        f"\n{sum(r['notebook'] != TRAINING for r in done)} notebook(s)"
        f"{' and the training plan' * any(r['notebook'] == TRAINING for r in done)} ran at "
        f"profile {profile!r} in {total / 60:.1f} min; "
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
    # papermill reports cell output through `logging` (INFO): without a handler it is lost.
    cli_logging(args.log_output)
    try:  # a mistyped notebook or parameter is a usage error, before anything runs
        todo = select(notebooks(), args.only, args.start)
        params = check_parameters(dict(parse_param(p) for p in args.param), todo)
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
