"""tests/conftest.py's ``W2REG_REQUIRE``: an env meant to test a library fails, never skips.

Each case runs a real pytest in a subprocess on a scratch test directory holding a copy of
tests/conftest.py (plus two made-up requirements appended to its table, so the outcome does
not depend on which libraries this env has) and small test files that pass or skip.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

CONFTEST = Path(__file__).with_name("conftest.py")
EXTRA = """

REQUIREMENTS["nolib"] = Requirement(
    _imports("w2reg_no_such_module"), ("test_nolib_*.py",), "pip install nothing"
)
REQUIREMENTS["fake-new"] = Requirement(
    _imports("w2reg"), ("test_fake_*.py",), "-", exclude=("test_fake_old.py",),
    conflicts=("fake-old",),
)
REQUIREMENTS["fake-old"] = Requirement(
    _imports("w2reg"), ("test_fake_old.py",), "-", conflicts=("fake-new",)
)
"""
PASS = "def test_ok():\n    pass\n"
SKIP = "import pytest\n\ndef test_skips():\n    pytest.skip({reason!r})\n"
MODULE_SKIP = "import pytest\n\npytest.skip({reason!r}, allow_module_level=True)\n"


def run(tmp_path: Path, files: dict[str, str], require: str) -> subprocess.CompletedProcess:
    tests = tmp_path / "tests"
    tests.mkdir()
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tests / "conftest.py").write_text(CONFTEST.read_text() + EXTRA)
    for name, text in files.items():
        (tests / name).write_text(textwrap.dedent(text))
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"}
    env["W2REG_REQUIRE"] = require
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rs", str(tests)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_skip_in_a_required_file_fails_the_run_and_counts_are_printed(tmp_path) -> None:
    proc = run(
        tmp_path,
        {
            "test_core_a.py": PASS,
            "test_core_b.py": SKIP.format(reason="something is missing"),
            "test_core_c.py": MODULE_SKIP.format(reason="an API not found"),
            "test_cuda.py": SKIP.format(reason="needs a CUDA device"),  # allowed
            "test_lightly_x.py": MODULE_SKIP.format(reason="no lightly"),  # not required
        },
        require="core",
    )
    out = proc.stdout
    assert proc.returncode == 1, out + proc.stderr
    failed = [line for line in out.splitlines() if line.startswith("FAILED requirement")]
    assert failed == [
        "FAILED requirement: tests/test_core_c.py SKIPPED (an API not found) in an env that "
        "requires core",
        "FAILED requirement: tests/test_core_b.py::test_skips SKIPPED (something is missing) "
        "in an env that requires core",
    ], out
    assert "core: 1 passed (test_core_a.py 1)" in out, out
    assert "2 problem(s)" in out


def test_allowed_and_unrequired_skips_pass(tmp_path) -> None:
    proc = run(
        tmp_path,
        {
            "test_core_a.py": PASS,
            "test_cuda.py": SKIP.format(reason="needs a CUDA device"),
            "test_lightly_x.py": MODULE_SKIP.format(reason="no lightly"),
        },
        require="core",
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "core: 1 passed (test_core_a.py 1)" in proc.stdout


def test_a_missing_library_is_a_usage_error_naming_it(tmp_path) -> None:
    proc = run(tmp_path, {"test_nolib_a.py": PASS}, require="nolib")
    assert proc.returncode == pytest.ExitCode.USAGE_ERROR, proc.stdout + proc.stderr
    err = proc.stderr
    assert "W2REG_REQUIRE names 'nolib', which this env cannot test" in err, err
    assert "w2reg_no_such_module" in err and "pip install nothing" in err


def test_an_unknown_name_is_a_usage_error(tmp_path) -> None:
    proc = run(tmp_path, {"test_core_a.py": PASS}, require="core, lightlyy")
    assert proc.returncode == pytest.ExitCode.USAGE_ERROR, proc.stdout + proc.stderr
    assert "unknown ['lightlyy']" in proc.stderr


def test_other_versions_files_are_not_collected_and_none_passing_fails(tmp_path) -> None:
    files = {
        "test_fake_new.py": PASS,
        "test_fake_old.py": MODULE_SKIP.format(reason="the old API is not installed"),
    }
    proc = run(tmp_path, files, require="fake-new")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "fake-new: 1 passed (test_fake_new.py 1)" in proc.stdout
    assert "not collected (another version's): test_fake_old.py (for fake-old)" in proc.stdout
    # the same files for the old version: its one test skips, the new one is not collected
    (tmp_path / "old").mkdir()
    proc = run(tmp_path / "old", files, require="fake-old")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "test_fake_new.py (for fake-new)" in proc.stdout
    assert "no test of 'fake-old' passed" in proc.stdout
