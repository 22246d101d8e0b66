"""Build the sandbox interpreter: a venv made from the system Python with the analysis libraries.

    python -m bot.sandbox.build DIR [--python /usr/bin/python3]

The venv is what the sandboxed kernels run (bound read-only into each sandbox at the same path).
It is built from the system Python, not the bot's own interpreter, because the sandbox's non-root
uid must be able to read it (a pyenv under /root is mode 700) and the sandbox sees only /usr and
the venv. Bytecode is compiled at install time (uv does not by default, and a read-only venv never
gets .pyc written: importing pandas would compile it from source at every kernel start), and
matplotlib's font cache is built once into DIR/share/mpl-cache (each kernel copies it to its
private /tmp). A marker file records what was installed; a DIR whose marker matches is reused.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

PACKAGES = (
    "numpy>=2,<3",
    "pandas>=2.2,<4",
    "matplotlib>=3.9,<4",
    "matplotlib-inline>=0.1.7,<1",
    "scipy>=1.13,<2",
    "seaborn>=0.13,<1",
    "openpyxl>=3.1,<4",
    "ipykernel>=6.29,<8",
)
SYSTEM_PYTHON = "/usr/bin/python3"
MARKER = ".sandbox-ready"
MPL_CACHE = "share/mpl-cache"

WARM_UP = """
import io
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas, numpy, scipy.stats, seaborn, openpyxl, ipykernel.kernelapp
fig, ax = plt.subplots()
ax.plot([1, 2, 3])
ax.set_title("warm-up")
fig.savefig(io.BytesIO(), format="png")
"""


class BuildError(Exception):
    pass


def _fingerprint(python: str) -> str:
    """What was installed and from which base interpreter (its resolved path)."""
    base = os.path.realpath(python)
    return hashlib.sha256(json.dumps([base, *PACKAGES]).encode()).hexdigest()[:16] + " " + base


def interpreter(venv: Path) -> Path:
    return venv / "bin" / "python"


def is_ready(venv: Path, python: str | None = None) -> bool:
    """Whether `venv` holds this version's packages (built from `python`, when given)."""
    marker = venv / MARKER
    try:
        recorded = marker.read_text().strip()
    except OSError:
        return False
    if not interpreter(venv).exists() or " " not in recorded:
        return False
    base = recorded.split(" ", 1)[1]
    return recorded == _fingerprint(python or base)


def _run(args: list[str], **kwargs: object) -> None:
    result = subprocess.run(args, capture_output=True, text=True, check=False, **kwargs)  # noqa: S603
    if result.returncode != 0:
        raise BuildError(f"{' '.join(args[:3])} … failed:\n{result.stderr.strip()[-2000:]}")


def build(venv: Path, python: str = SYSTEM_PYTHON, *, force: bool = False) -> Path:
    """Create (or reuse) the sandbox venv at `venv`; return its path. Blocking."""
    venv = venv.absolute()
    if not force and is_ready(venv, python):
        return venv
    uv = shutil.which("uv")
    if uv is None:
        raise BuildError("uv is not installed (it builds the sandbox interpreter)")
    if not Path(python).exists():
        raise BuildError(f"{python} does not exist: install the system Python (python3)")
    if venv.exists():
        shutil.rmtree(venv)
    # uv inherits the environment (its cache, index and certificate settings); the target
    # interpreter is always named explicitly, so an active virtualenv does not matter.
    _run([uv, "venv", "--quiet", "--python", python, str(venv)])
    _run(
        [
            uv,
            "pip",
            "install",
            "--quiet",
            "--compile-bytecode",
            "--python",
            str(interpreter(venv)),
            *PACKAGES,
        ],
    )
    cache = venv / MPL_CACHE
    cache.mkdir(parents=True, exist_ok=True)
    _run(
        [str(interpreter(venv)), "-c", WARM_UP],
        env={"MPLCONFIGDIR": str(cache), "PATH": "/usr/bin:/bin", "HOME": str(cache)},
    )
    # World-readable: the sandbox runs the venv as a non-root uid.
    for root, dirs, files in os.walk(venv):
        for name in dirs:
            os.chmod(os.path.join(root, name), 0o755)  # noqa: S103
        for name in files:
            path = os.path.join(root, name)
            if not os.path.islink(path):
                mode = os.stat(path).st_mode
                os.chmod(path, mode | 0o444 | (0o111 if mode & 0o100 else 0))
    os.chmod(venv, 0o755)  # noqa: S103
    (venv / MARKER).write_text(_fingerprint(python) + "\n")
    return venv


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the sandbox interpreter (a venv).")
    parser.add_argument("dir", type=Path, help="where to create the venv, e.g. /opt/sandbox")
    parser.add_argument("--python", default=SYSTEM_PYTHON, help="the base interpreter")
    parser.add_argument("--force", action="store_true", help="rebuild even if it is up to date")
    args = parser.parse_args(argv)
    try:
        path = build(args.dir, args.python, force=args.force)
    except BuildError as error:
        print(f"sandbox build failed: {error}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
