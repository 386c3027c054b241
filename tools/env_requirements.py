"""Print the `pip:` block of environment.yml as a requirements file.

conda cannot be had on every machine, so `make lock` (tools/lock.py) compiles this list into
requirements.lock, which `make setup` installs into a plain venv. Standard library only: it
runs before the venv exists.
"""

import sys


def pip_requirements(text: str) -> list[str]:
    """The items of the `- pip:` list, comments dropped, in file order."""
    reqs, pip_indent = [], None
    for line in text.splitlines():
        stripped = line.split("#", 1)[0].rstrip()
        if not stripped.strip():
            continue
        indent = len(stripped) - len(stripped.lstrip())
        if stripped.strip() == "- pip:":
            pip_indent = indent
        elif pip_indent is not None:
            if indent <= pip_indent:
                pip_indent = None
            elif stripped.strip().startswith("- "):
                reqs.append(stripped.strip()[2:].strip())
    return reqs


if __name__ == "__main__":
    path = sys.argv[1] if len(sys.argv) > 1 else "environment.yml"
    with open(path, encoding="utf-8") as f:
        reqs = pip_requirements(f.read())
    if not reqs:
        sys.exit(f"{path}: no `- pip:` section found")
    print("\n".join(reqs))
