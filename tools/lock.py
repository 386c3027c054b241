"""Regenerate requirements.lock from environment.yml with pip-tools (`make lock`).

environment.yml is the one list a person edits (top-level packages, pinned); the lock pins
every package they pull in, so a fresh clone installs what CI tested (`make setup` installs
from the lock only). pip-compile runs in a throwaway venv, so pip-tools is not part of the
project's environment. The lock's header records a hash of the list it was compiled from:
tests/test_environment.py fails when environment.yml changed and the lock did not.
Standard library only: it runs before the project's venv exists.

    python3 tools/lock.py [environment.yml] [requirements.lock]           # regenerate
    python3 tools/lock.py --check [environment.yml] [requirements.lock]   # up to date?
"""

import hashlib
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from env_requirements import pip_requirements  # noqa: E402

PIP_TOOLS = "pip-tools==7.6.2"
HASH_LINE = "# environment.yml sha256: "


def input_hash(requirements: list[str]) -> str:
    """The hash of the pip list the lock was compiled from (order and comments ignored)."""
    text = "\n".join(sorted(r.replace(" ", "").lower() for r in requirements))
    return hashlib.sha256(text.encode()).hexdigest()


def header(requirements: list[str]) -> str:
    return (
        "# The full pinned environment, generated from environment.yml by tools/lock.py\n"
        f"# ({PIP_TOOLS}, pip-compile --allow-unsafe). Do not edit: edit environment.yml,\n"
        "# then run `make lock`.\n"
        f"{HASH_LINE}{input_hash(requirements)}\n"
    )


def stale(env_path: Path, lock_path: Path) -> str | None:
    """Why the lock does not match environment.yml's pip list (None when it does): a lock
    compiled from another list, or a top-level pin the lock has at another version."""
    reqs = pip_requirements(env_path.read_text(encoding="utf-8"))
    lock = lock_path.read_text(encoding="utf-8") if lock_path.is_file() else ""
    redo = f"edit {env_path} only, then regenerate the lock: make lock"
    if f"{HASH_LINE}{input_hash(reqs)}" not in lock.splitlines():
        return f"{lock_path} was not compiled from {env_path}'s current pip list; {redo}"
    pins = [line.split()[0] for line in lock.splitlines() if line[:1].isalnum() and "==" in line]
    pinned = {_name(pin): pin for pin in pins}
    for req in reqs:
        if "==" not in req:
            return f"{env_path}: {req!r} has no version; pin it (name==version)"
        got = pinned.get(_name(req))
        # a local build (torch 2.14.1+cu130) is the version environment.yml pins (2.14.1)
        if got is None or got.split("==")[1].split("+")[0] != req.split("==")[1].strip():
            return f"{env_path} pins {req}, {lock_path} has {got or 'nothing'}; {redo}"
    return None


def _name(requirement: str) -> str:
    """A requirement's normalized project name (PEP 503): "PyYAML==6" -> "pyyaml"."""
    name = requirement.split("==")[0].split("[")[0].strip()
    return name.lower().replace("_", "-").replace(".", "-")


def compile_lock(env_path: Path, lock_path: Path) -> None:
    reqs = pip_requirements(env_path.read_text(encoding="utf-8"))
    if not reqs:
        sys.exit(f"{env_path}: no `- pip:` section found")
    with tempfile.TemporaryDirectory() as tmp:
        venv.create(tmp, with_pip=True)
        py = Path(tmp) / "bin" / "python"
        subprocess.run([py, "-m", "pip", "install", "-q", PIP_TOOLS], check=True)
        req_in = Path(tmp) / "requirements.in"
        req_in.write_text("\n".join(reqs) + "\n", encoding="utf-8")
        out = Path(tmp) / "requirements.lock"
        # pip's own configuration (local wheel folders, mirrors) applies; their addresses
        # are this machine's, so they stay out of the file.
        cmd = [py, "-m", "piptools", "compile", "--quiet", "--allow-unsafe", "--strip-extras"]
        cmd += ["--no-header", "--no-emit-index-url", "--no-emit-find-links"]
        subprocess.run([*cmd, "--output-file", out, req_in], check=True, cwd=tmp)
        body = out.read_text(encoding="utf-8").replace(f"{req_in}", "environment.yml")
    lock_path.write_text(header(reqs) + body, encoding="utf-8")
    print(f"wrote {lock_path} ({sum(1 for x in body.splitlines() if '==' in x)} packages)")


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--check"]
    env = Path(args[0] if args else "environment.yml")
    lock = Path(args[1] if len(args) > 1 else "requirements.lock")
    if "--check" not in sys.argv:
        compile_lock(env, lock)
    elif why := stale(env, lock):
        sys.exit(why)
