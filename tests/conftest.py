"""Shared test setup, and the rule that an env meant to test a library cannot pass by skipping.

Seeds: every test starts from ``torch.manual_seed(0)``.

``W2REG_REQUIRE`` (set per env in tox.ini; space- or comma-separated names of
:data:`REQUIREMENTS`) names what the run is meant to test. For each name:

* its check runs before collection (the library imports, and is the expected API); a failure
  ends the run with a usage error (exit 4) naming what is missing and how to install it;
* its test files (:data:`REQUIREMENTS` globs) must not skip: a skipped test or module there
  fails the session (exit 1) unless the skip is in :data:`ALLOWED_SKIPS`;
* at least one of its tests must pass, and the passed count per file is printed at the end;
* files meant for another version of the same library (``solo-cfg`` vs ``solo-legacy``) are
  not collected.

``core`` owns every test file that no library requirement claims. Without ``W2REG_REQUIRE``
(a plain ``pytest tests``) none of this applies and library tests skip as usual.
"""

from __future__ import annotations

import fnmatch
import importlib
import os
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePath

import pytest
import torch

ENV_VAR = "W2REG_REQUIRE"


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def _imports(*modules: str) -> Callable[[], str | None]:
    def check() -> str | None:
        for name in modules:
            try:
                importlib.import_module(name)
            except Exception as err:  # any import failure is the message
                return f"import {name} failed: {type(err).__name__}: {err}"
        return None

    return check


def _solo(api: str) -> Callable[[], str | None]:
    def check() -> str | None:
        try:
            import w2reg.adapters.solo as ws
        except Exception as err:
            return f"import w2reg.adapters.solo failed: {type(err).__name__}: {err}"
        if ws.SOLO_API != api:
            return f"solo-learn {ws.SOLO_VERSION} has the {ws.SOLO_API!r} API, not {api!r}"
        if api == "cfg":
            from w2reg.adapters import solo_pretrain

            try:
                solo_pretrain.find_main_pretrain()
            except FileNotFoundError as err:
                return f"the entry-script tests need solo-learn's source tree: {err}"
        return None

    return check


@dataclass(frozen=True)
class Requirement:
    """What ``W2REG_REQUIRE=<name>`` demands: ``check()`` passes and its files do not skip."""

    check: Callable[[], str | None]
    #: globs of the test files it owns, less ``exclude``
    files: tuple[str, ...]
    install: str
    exclude: tuple[str, ...] = ()
    #: requirements for another version of the same library: their files are not collected
    conflicts: tuple[str, ...] = field(default=())


#: name -> requirement. ``core`` owns every test file that no other entry owns.
REQUIREMENTS: dict[str, Requirement] = {
    "core": Requirement(_imports("w2reg"), (), "pip install w2reg[test]"),
    "lightly": Requirement(
        _imports("lightly", "w2reg.adapters.lightly"),
        ("test_lightly_*.py", "test_cifar_lightly.py", "test_study.py", "test_example_*.py"),
        "pip install w2reg[lightly]",
    ),
    "timm": Requirement(
        _imports("timm", "lightly"),
        ("test_backbones_timm.py", "test_timm_docs.py"),
        'pip install "w2reg[examples]" (timm for the examples\' --backbone)',
    ),
    "lightning": Requirement(
        _imports("lightning", "pytorch_lightning"),
        ("test_lightning_glue.py", "test_callbacks.py"),
        "pip install lightning pytorch_lightning",
    ),
    "solo-cfg": Requirement(
        _solo("cfg"),
        ("test_solo_*.py",),
        "solo-learn from source (docs/install.md, 'solo-learn') and W2REG_SOLO_SRC=<its tree>",
        exclude=("test_solo_legacy.py",),
        conflicts=("solo-legacy",),
    ),
    "spt": Requirement(
        _imports("stable_pretraining", "w2reg.adapters.spt"),
        ("test_spt_*.py",),
        'pip install "w2reg[spt]"  (stable-pretraining and Lightning)',
    ),
    "solo-legacy": Requirement(
        _solo("legacy"),
        ("test_solo_legacy.py",),
        "pip install --no-deps solo-learn==1.0.2 (docs/install.md, 'solo-learn')",
        conflicts=("solo-cfg",),
    ),
}

#: (file glob, reason regex): skips that say nothing about whether a library works.
ALLOWED_SKIPS: tuple[tuple[str, str], ...] = (
    ("test_cuda.py", r"needs a CUDA device"),  # CI has no GPU
    # torch.compile of the iterative method is supported from torch 2.3 (py310-min has 2.1)
    ("test_methods.py", r"torch >= 2\.3"),
    ("test_lightly_methods.py", r"W2REG_SLOW_TESTS"),  # opt-in long recipe runs
    # opt-in: docs/install.md's solo-learn commands in a fresh venv (minutes, 5.5 GB)
    ("test_solo_install_docs.py", r"W2REG_TEST_INSTALL_DOCS"),
    ("test_matrix_install.py", r"^not this env: "),  # install checks of other envs
    # the CIFAR example's linear probe needs lightly >= 1.5.20; the oldest env has 1.4.26
    ("test_cifar_lightly.py", r"lightly >= 1\.5\.20"),
    # the plain-loop test on a timm model's head; no tox env installs timm beside the core
    ("test_glue_head_loop.py", r"^timm is not installed$"),
    # docs/spt.md is written for spt 0.1.8's names (spt.forward.simclr; 0.1.7: simclr_forward)
    ("test_spt_docs.py", r"stable-pretraining >= 0\.1\.8"),
    # every arm end to end needs lightly's SIGReg (1.5.23) and VISReg (1.6); py310-min has 1.4.26
    ("test_study.py", r"lightly >= 1\.6 \(SIGReg, VISReg\)"),
)


def required() -> list[str]:
    names = [n for n in re.split(r"[\s,]+", os.environ.get(ENV_VAR, "")) if n]
    unknown = [n for n in names if n not in REQUIREMENTS]
    if unknown:
        raise pytest.UsageError(
            f"{ENV_VAR}={os.environ[ENV_VAR]!r}: unknown {unknown}; known: {sorted(REQUIREMENTS)}"
        )
    return names


def owner(filename: str) -> str:
    """The requirement that owns test file ``filename`` (a basename); ``core`` by default."""
    for name, req in REQUIREMENTS.items():
        if any(fnmatch.fnmatch(filename, g) for g in req.files) and not any(
            fnmatch.fnmatch(filename, g) for g in req.exclude
        ):
            return name
    return "core"


def _allowed(filename: str, reason: str) -> bool:
    return any(
        fnmatch.fnmatch(filename, glob) and re.search(pattern, reason)
        for glob, pattern in ALLOWED_SKIPS
    )


def _reason(report: pytest.CollectReport | pytest.TestReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


class _Ledger:
    """Per run: what passed and what skipped, by test file."""

    def __init__(self, names: list[str]) -> None:
        self.names = names
        self.passed: Counter[str] = Counter()
        self.skips: list[tuple[str, str, str]] = []  # (file, nodeid, reason)
        self.ignored: set[str] = set()

    def record(self, report: pytest.CollectReport | pytest.TestReport) -> None:
        filename = PurePath(report.nodeid.split("::", 1)[0]).name
        if report.skipped and not hasattr(report, "wasxfail"):
            self.skips.append((filename, report.nodeid, _reason(report)))
        elif report.passed and getattr(report, "when", None) == "call":
            self.passed[filename] += 1

    def problems(self, selecting: bool) -> list[str]:
        out = [
            f"{nodeid} SKIPPED ({reason}) in an env that requires {owner(f)}"
            for f, nodeid, reason in self.skips
            if owner(f) in self.names and not _allowed(f, reason)
        ]
        for name in self.names:
            if not selecting and not self.count(name):
                out.append(f"no test of {name!r} passed (its files: {self.globs(name)})")
        return out

    def count(self, name: str) -> int:
        return sum(n for f, n in self.passed.items() if owner(f) == name)

    def globs(self, name: str) -> str:
        return " ".join(REQUIREMENTS[name].files) or "every file no library claims"


_ledger: _Ledger | None = None


def pytest_configure(config: pytest.Config) -> None:
    global _ledger
    names = required()
    if not names:
        return
    for name in names:
        req = REQUIREMENTS[name]
        why = req.check()
        if why:
            raise pytest.UsageError(
                f"{ENV_VAR} names {name!r}, which this env cannot test: {why}. "
                f"Install: {req.install}"
            )
    _ledger = _Ledger(names)


def pytest_ignore_collect(collection_path: Path) -> bool | None:
    """Do not collect the test files meant for another version of a required library."""
    if _ledger is None or not collection_path.name.startswith("test_"):
        return None
    mine = owner(collection_path.name)
    if any(mine in REQUIREMENTS[name].conflicts for name in _ledger.names):
        _ledger.ignored.add(f"{collection_path.name} (for {mine})")
        return True
    return None


def pytest_collectreport(report: pytest.CollectReport) -> None:
    if _ledger is not None and report.skipped:
        _ledger.record(report)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if _ledger is not None:
        _ledger.record(report)


def _selecting(config: pytest.Config) -> bool:
    return bool(config.getoption("keyword", "") or config.getoption("markexpr", ""))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _ledger is not None and _ledger.problems(_selecting(session.config)):
        if exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
            session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    if _ledger is None:
        return
    tr = terminalreporter
    tr.section(f"{ENV_VAR}={' '.join(_ledger.names)}")
    for name in _ledger.names:
        per_file = ", ".join(
            f"{f} {n}" for f, n in sorted(_ledger.passed.items()) if owner(f) == name
        )
        tr.write_line(f"{name}: {_ledger.count(name)} passed ({per_file or 'none'})")
    if _ledger.ignored:
        tr.write_line("not collected (another version's): " + ", ".join(sorted(_ledger.ignored)))
    problems = _ledger.problems(_selecting(config))
    for problem in problems:
        tr.write_line(f"FAILED requirement: {problem}", red=True, bold=True)
    if problems:
        tr.write_line(
            f"{len(problems)} problem(s): this env requires {' '.join(_ledger.names)} "
            f"({ENV_VAR}); a required library's tests may not skip",
            red=True,
            bold=True,
        )
