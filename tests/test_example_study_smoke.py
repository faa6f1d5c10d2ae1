"""docs/study.md's offline smoke run, exactly as written: seconds, and the arms differ (issue 19).

The page promised "seconds" for a run that took 2 min 15 s on a busy 2-core machine (torch's
default threads fighting the other work) and printed plain and W2 identical to every digit
(8 steps at the recipe's learning rate for batch 16 barely move the weights). This test runs
the page's command in a fresh interpreter, as a reader would, with only ``--out-dir`` moved
to a temporary folder, and checks the time, that the two arms of each method print different
numbers, and that the run says what it is. The example's docstring shows the same command.
"""

from __future__ import annotations

import json
import os
import resource
import shlex
import subprocess
import sys
import time

import pytest
from example_scripts import EXAMPLES, load_example

pytest.importorskip("lightly")
pytest.importorskip("torchvision")

PAGE = EXAMPLES.parent / "docs" / "study.md"
MARKER = "# offline smoke run"
#: What "seconds" must mean, in CPU seconds of the run (user + system; wall time on a shared
#: CI machine depends on its other work). The documented run takes about 10 CPU seconds; the
#: old command (torch's default threads) took 46, and 135-150 s of wall time, on 2 busy cores.
MAX_CPU_SECONDS = 30.0
#: The columns of the printed table, at their printed precision.
SHOWN = {"linear_top1": 2, "knn_top1": 2, "test_w2": 3, "test_effective_rank": 1}


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def smoke_command(text: str) -> list[str]:
    """The words of the command under ``MARKER`` (backslash continuations joined)."""
    lines = text.split(MARKER, 1)[1].splitlines()[1:]
    command = ""
    for line in lines:
        command += line.strip().removesuffix("\\") + " "
        if not line.rstrip().endswith("\\"):
            break
    return shlex.split(command)


def test_the_docstring_shows_the_pages_command() -> None:
    doc = load_example("study").__doc__
    assert smoke_command(doc) == smoke_command(PAGE.read_text(encoding="utf-8"))


def test_documented_smoke_run_takes_seconds_and_the_arms_differ(tmp_path) -> None:
    words = smoke_command(PAGE.read_text(encoding="utf-8"))
    assert words[:2] == ["python", "examples/study.py"], words
    args = words[2:]
    args[args.index("--out-dir") + 1] = str(tmp_path / "study")
    start, before = time.perf_counter(), _children_cpu()
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / "study.py"), *args],
        cwd=tmp_path,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    cpu, wall = _children_cpu() - before, time.perf_counter() - start
    assert out.returncode == 0, out.stderr[-3000:]
    print(f"smoke run: {cpu:.1f} CPU s, {wall:.1f} s wall")
    assert cpu < MAX_CPU_SECONDS, f"the 'seconds' smoke run took {cpu:.0f} CPU s ({wall:.0f} s)"

    runs = json.loads((tmp_path / "study" / "study.json").read_text())["runs"]
    methods = sorted({r["method"] for r in runs})
    assert methods == ["byol", "simclr"]
    for method in methods:
        arm = {r["arm_name"]: r for r in runs if r["method"] == method}
        shown = {
            name: tuple(round(arm[name][k], digits) for k, digits in SHOWN.items())
            for name in ("plain", "w2")
        }
        assert shown["plain"] != shown["w2"], f"{method}: plain and W2 print {shown['plain']}"
    assert "its accuracies, W2 effects and time ratios mean nothing" in out.stdout
    assert "mean nothing" in (tmp_path / "study" / "study.md").read_text()
