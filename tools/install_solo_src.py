"""Install current solo-learn from source into the running env, or explain why not (tox solo-git).

PyPI has only solo-learn 1.0.2 (2021); the Hydra/cfg API that the solo adapter supports fully is
installed from source. The source is ``$W2REG_SOLO_SRC``: a local clone (directory) or anything
pip accepts (``git+https://...``, a plain ``https://github.com/...`` URL is turned into
``git+https://...``); default ``https://github.com/vturrisi/solo-learn`` (its main branch).

When the source cannot be reached (CI has no GitHub access) this prints a clear ``SKIP`` message,
writes the marker file named by ``$W2REG_SOLO_MARKER`` and exits 0: the solo tests then skip with
that reason instead of the env failing. A reachable source that fails to *install* is an error.

solo-learn's setup.py imports ``pkg_resources``, so it is built with the env's
``setuptools<81`` and ``--no-build-isolation``; ``--no-deps`` because its pins
(``lightning==2.1.2`` etc.) are installed by tox from ``tox.ini``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

DEFAULT = "https://github.com/vturrisi/solo-learn"
TIMEOUT_S = 60


def _pip_target(src: str) -> str:
    if Path(src).expanduser().is_dir():
        return str(Path(src).expanduser().resolve())
    if src.startswith(("http://", "https://")) and not src.startswith("git+"):
        return "git+" + src
    return src


def _unreachable(src: str) -> str | None:
    """Why ``src`` cannot be reached, or None when it can (checked before pip tries it)."""
    path = Path(src).expanduser()
    if path.is_dir():
        return (
            None
            if (path / "setup.py").exists() or (path / "pyproject.toml").exists()
            else (f"{path} has neither setup.py nor pyproject.toml")
        )
    if src.startswith("/") or src.startswith("."):
        return f"no such directory: {src}"
    url = src.removeprefix("git+").split("@", 1)[0] if src.startswith("git+") else src
    if url.startswith(("http://", "https://", "ssh://", "git://", "file://")):
        env = dict(os.environ, GIT_TERMINAL_PROMPT="0")
        try:
            proc = subprocess.run(
                ["git", "ls-remote", "--heads", url],
                capture_output=True,
                text=True,
                timeout=TIMEOUT_S,
                env=env,
            )
        except FileNotFoundError:
            return "git is not installed"
        except subprocess.TimeoutExpired:
            return f"git ls-remote {url} timed out after {TIMEOUT_S}s"
        if proc.returncode != 0:
            return f"git ls-remote {url} failed: {proc.stderr.strip().splitlines()[-1:]}"
    return None


def main() -> int:
    src = os.environ.get("W2REG_SOLO_SRC", "").strip() or DEFAULT
    marker = os.environ.get("W2REG_SOLO_MARKER")
    if marker:
        Path(marker).unlink(missing_ok=True)
    why = _unreachable(src)
    if why is not None:
        msg = (
            f"SKIP solo-git: current solo-learn source {src!r} is unreachable ({why}). "
            "Point W2REG_SOLO_SRC at a local clone to run these tests, e.g. "
            "git clone https://github.com/vturrisi/solo-learn /tmp/solo-src && "
            "W2REG_SOLO_SRC=/tmp/solo-src tox -e solo-git"
        )
        print(msg, flush=True)
        if marker:
            Path(marker).write_text(msg + "\n")
        return 0
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--no-deps",
        "--no-build-isolation",
        "--force-reinstall",
        _pip_target(src),
    ]
    print("installing current solo-learn:", " ".join(cmd), flush=True)
    return subprocess.call(cmd)


if __name__ == "__main__":
    sys.exit(main())
