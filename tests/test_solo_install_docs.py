"""docs/install.md's solo-learn commands, run as written in a fresh venv (opt-in: minutes, GBs).

What a new user does (issue 19): make a venv, paste the first bash block of the page's
"solo-learn" section, then ``import solo`` and run the entry script. The block runs in
``bash -e`` with the venv first on ``PATH`` (as ``. .venv/bin/activate`` leaves it), with two
substitutions and one replacement, all of them paths or network:

* ``/path/to/solo-learn`` -> a folder of the test's; ``/path/to/w2reg`` -> this checkout;
* a ``git clone <url> <dest>`` line -> the page's offline step (unpacking a snapshot archive of
  solo-learn, ``tools/install_solo_src.py``'s archives) into ``<dest>``: no network here.

Then the new venv must import ``solo`` and ``w2reg.adapters.solo`` (the cfg API) and
``python -m w2reg.adapters.solo_pretrain --help`` must find the source through the block's
``W2REG_SOLO_SRC``.

Cost: a fresh venv with torch, Lightning and the rest: about 5.5 GB of disk while it runs (the
CUDA build of torch and its nvidia wheels, from the local wheel index here) and a few minutes
(measured: docs/install.md's "Check the install"). So it runs only when
``W2REG_TEST_INSTALL_DOCS=1``; elsewhere it skips (tests/conftest.py allows that skip).

By hand, into a venv that stays (what /work/venv-solo was made with)::

    python tests/test_solo_install_docs.py /path/to/new-venv
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
PAGE = ROOT / "docs" / "install.md"
ENV_VAR = "W2REG_TEST_INSTALL_DOCS"
SECTION = "## solo-learn"
#: the solo-learn snapshot the block installs (tox.ini's solo-main)
REF = "main-9187ea3"


def section_blocks(page: Path = PAGE, section: str = SECTION) -> list[str]:
    """The bash blocks of ``section`` of ``page`` (up to the next ``## `` heading), in order."""
    sys.path.insert(0, str(TESTS))
    from doc_snippets import blocks

    text = page.read_text(encoding="utf-8").splitlines()
    start = text.index(section) + 1
    end = next((i for i in range(start, len(text)) if text[i].startswith("## ")), len(text))
    return [b.code for b in blocks(page, "bash") if start <= b.line - 1 < end]


def archive() -> Path:
    """The solo-learn snapshot archive (as tools/install_solo_src.py finds it)."""
    sys.path.insert(0, str(ROOT / "tools"))
    import install_solo_src

    path = install_solo_src.archive_dir(None) / f"solo-learn-{REF}.tar.gz"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: set W2REG_SOLO_ARCHIVES to the folder of solo-learn's archives"
        )
    return path


_CLONE = re.compile(r"^\s*git clone\s+(?:-\S+\s+)*(\S+)\s+(\S+)\s*(#.*)?$")


def script(block: str, solo_dir: Path, unpack: str) -> str:
    """The block with its paths substituted and its ``git clone`` replaced by ``unpack``."""
    lines = []
    for line in block.replace("/path/to/w2reg", str(ROOT)).splitlines():
        line = line.replace("/path/to/solo-learn", str(solo_dir))
        m = _CLONE.match(line)
        lines.append(unpack.replace("{dest}", shlex.quote(m.group(2))) if m else line)
    return "\n".join(lines) + "\n"


def offline_unpack(blocks: list[str]) -> str | None:
    """The page's offline step for the source, its line that unpacks an archive into
    ``/path/to/solo-learn``, with ``{dest}`` for that folder; ``None`` if it has none."""
    for block in blocks:
        for line in block.splitlines():
            if re.search(r"\btar\s+-x", line) and "/path/to/solo-learn" in line:
                return line.split("#", 1)[0].strip().replace("/path/to/solo-learn", "{dest}")
    return None


def install(venv: Path, work: Path) -> tuple[subprocess.CompletedProcess[str], str, float]:
    """Make ``venv`` and run the page's block in it; ``(result, log, seconds)``."""
    blocks = section_blocks()
    assert blocks, f"{PAGE}: no bash block in its {SECTION!r} section"
    solo_dir = work / "solo-learn"
    tarball = archive()
    # the page's offline line (a page without one: the same, written here) with our archive
    unpack = offline_unpack(blocks) or (
        "mkdir -p {dest} && tar -xzf solo-learn.tar.gz -C {dest} --strip-components=1"
    )
    unpack = unpack.replace("solo-learn.tar.gz", shlex.quote(str(tarball)))
    code = "set -euxo pipefail\n" + script(blocks[0], solo_dir, unpack)
    code += (
        'python -c "import solo.methods, w2reg.adapters.solo as ws; '
        "assert ws.SOLO_API == 'cfg', ws.SOLO_API; print('solo', ws.SOLO_VERSION, ws.SOLO_API)\"\n"
        "python -m w2reg.adapters.solo_pretrain --help | grep 'solo-learn source: /'\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("W2REG_", "VIRTUAL_ENV"))}
    env.pop("PYTHONPATH", None)
    start = time.monotonic()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    env["VIRTUAL_ENV"] = str(venv)
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    result = subprocess.run(
        ["bash", "-c", code], cwd=work, env=env, capture_output=True, text=True, timeout=1800
    )
    seconds = time.monotonic() - start
    log = f"rc={result.returncode} after {seconds:.0f} s\n--- script\n{code}\n--- stdout\n"
    log += result.stdout[-6000:] + "\n--- stderr\n" + result.stderr[-8000:]
    return result, log, seconds


@pytest.mark.skipif(
    os.environ.get(ENV_VAR) != "1",
    reason=f"{ENV_VAR}=1 runs docs/install.md's solo-learn commands in a fresh venv "
    "(minutes, about 5.5 GB)",
)
def test_install_docs_solo_commands_work_as_written(tmp_path):
    result, log, seconds = install(tmp_path / "venv", tmp_path)
    print(f"docs/install.md solo commands: {seconds:.0f} s")
    assert result.returncode == 0, log
    assert "solo 1.0.6 cfg" in result.stdout, log


def test_the_block_is_what_the_install_test_runs():
    """Cheap, everywhere: the section has the block, its placeholders and the offline step."""
    blocks = section_blocks()
    first = blocks[0]
    assert "/path/to/solo-learn" in first and "/path/to/w2reg" in first
    assert any(_CLONE.match(line) for line in first.splitlines())
    # setuptools<81 in the same pip command as Lightning: a later torch must not lift it
    lightning = [line for line in first.splitlines() if "lightning==" in line]
    assert lightning and all("setuptools<81" in line for line in lightning), lightning
    unpack = offline_unpack(blocks)  # the offline way to the source (no git host reachable)
    assert unpack is not None and "solo-learn.tar.gz" in unpack, blocks


if __name__ == "__main__":
    target = Path(sys.argv[1]).absolute()
    target.parent.mkdir(parents=True, exist_ok=True)
    work = target.parent / f"{target.name}-src"
    work.mkdir(exist_ok=True)
    res, text, took = install(target, work)
    print(text)
    sys.exit(res.returncode)
