"""The one way the project writes a file, the commit every output is stamped with, and the
command lines' common set-up (`cli_logging`, `user_errors`).

A results CSV, a checkpoint, a manifest or a figure is either the old file or the whole new
one, never a torn one: `atomic_path` hands out a temporary file in the destination's folder
(so the rename stays on one file system), the writer fills it, and only then is it flushed
to disk and renamed over the destination. On any error the temporary file is removed and
the destination is left as it was.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path beside `path` to write to; renamed onto `path` when the block ends.

    The temporary file is created as any file is (0666 less the umask, not `mkstemp`'s 0600),
    so the renamed result is readable like every other output; its name starts with a dot
    and ends in ``.tmp`` so listings and globs of the folder pass it over.

        with atomic_path("results/mini/table1_3d.csv") as tmp:
            frame.to_csv(tmp, index=False)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _new_temp_file(path)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:  # the writer may have closed it: flush what it wrote
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _new_temp_file(path: Path) -> Path:
    """A new, empty, uniquely named file beside `path` (unique across processes and calls)."""
    n = 0
    while True:
        tmp = path.with_name(f".{path.name}.{os.getpid()}-{n}.tmp")
        try:
            os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
            return tmp
        except FileExistsError:
            n += 1


def atomic_write_text(text: str, path: str | os.PathLike) -> Path:
    """Write `text` (UTF-8) to `path` atomically; returns the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


@functools.lru_cache(maxsize=4)
def git_commit(root: str | os.PathLike | None = None, short: bool = False) -> str:
    """HEAD commit of the repository (abbreviated when `short`), suffixed ``+dirty`` when
    tracked files outside `results/` differ from it; ``unknown`` outside git. Checkpoints
    carry the full commit, result rows and the summary page the short one. Read once per
    process.

    `results/` is left out because the pipeline itself rewrites the tracked reference results
    there: counting them would stamp every run after the first `+dirty` though the code that
    produced it is the commit's."""
    cwd = Path(root or REPO_ROOT)

    def git(*args):
        return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10)

    try:
        head = git("rev-parse", *(["--short"] if short else []), "HEAD")
        if head.returncode != 0:
            return "unknown"
        dirty = git(
            "status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)results"
        ).stdout.strip()
        return head.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


# ---------------------------------------------------------------------------------------------
# Command lines
# ---------------------------------------------------------------------------------------------


def cli_logging(verbose: bool = False) -> None:
    """Every command line's `logging`: each message carries its level and logger
    (``WARNING m2ir_lib.x: ...``); INFO and up when `verbose` (the pipeline's ``--log-output``,
    which is how papermill streams cell output), else WARNING and up. A handler already set
    (a test, a caller's own) is kept."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if verbose:  # also where a handler was already set
        logging.getLogger().setLevel(logging.INFO)


@contextlib.contextmanager
def user_errors(prog: str, *extra: type[BaseException]) -> Iterator[None]:
    """A user's mistake in a command line ends in one line and exit status 2, no traceback.

    The project raises ValueError or FileNotFoundError (and the `extra` types) naming what
    was wrong with the input; inside ``with user_errors(prog):`` they print
    ``prog: error: <message>`` and exit 2, argparse's status for a usage error. Anything else
    (a bug) keeps its traceback; ``M2IR_TRACEBACK=1`` shows one for these too.
    """
    try:
        yield
    except (ValueError, FileNotFoundError, *extra) as err:
        if os.environ.get("M2IR_TRACEBACK"):
            raise
        print(f"{prog}: error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
