"""The compatibility table, generated from tox.ini, and the checks that keep it true.

    python tools/matrix_table.py                        # print the full table (markdown)
    python tools/matrix_table.py --write README.md docs/compatibility.md   # regenerate both
    python tools/matrix_table.py --check README.md docs/compatibility.md   # CI: exit 1 on drift

The table sits between ``<!-- matrix:start -->`` (the full table: every pin, the tests each
env runs, what it is for; docs/compatibility.md) or ``<!-- matrix:start compact -->`` (the
main versions only, for the README) and ``<!-- matrix:end -->``. ``--check`` also verifies
the declared ranges against the envs (tools/compat_matrix/checker.py says which checks).

This file is the command line, bound to this repository's tox.ini and pyproject.toml; the
work is done by tools/compat_matrix/: ``reader`` (tox.ini, pyproject.toml), ``renderer``
(the tables, the marked sections), ``checker``. The names below are those of this tool's
tests and of tests/test_matrix_install.py.

Only the standard library is needed (plus ``packaging`` for the range check, which tox
brings along; without it that one check is skipped with a note).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tools/compat_matrix, as a script too

from compat_matrix import checker, renderer  # noqa: E402
from compat_matrix.reader import (  # noqa: E402,F401  (the tool's names, for its tests)
    MIN_ENV,
    ToxIni,
    canonical,
    env_imports,
    env_pins,
    env_required,
    env_requirements,
    env_tests,
    read_project,
    solo_source_ref,
)
from compat_matrix.renderer import END, START, START_COMPACT  # noqa: E402,F401

ROOT = Path(__file__).resolve().parents[1]


def _project() -> dict[str, Any]:
    """This repository's pyproject.toml ``[project]`` (the tests swap it for their own)."""
    return read_project(ROOT / "pyproject.toml")


def table(tox: ToxIni) -> str:
    return renderer.table(tox, _project())


def block(tox: ToxIni, compact: bool = False) -> str:
    return renderer.block(tox, _project(), compact)


def check_extras(tox: ToxIni) -> list[str]:
    return checker.check_extras(tox, _project())


def check_pythons(tox: ToxIni) -> list[str]:
    return checker.check_pythons(tox, _project())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--tox-ini", type=Path, default=ROOT / "tox.ini")
    ap.add_argument(
        "--write", type=Path, nargs="*", help="files whose marked table is regenerated in place"
    )
    ap.add_argument("--check", type=Path, nargs="*", help="files whose marked table must match")
    ap.add_argument("--compact", action="store_true", help="print the README's compact table")
    args = ap.parse_args(argv)
    tox, project = ToxIni(args.tox_ini), _project()
    for path in args.write or []:
        renderer.write(path, tox, project)
        print(f"wrote {path}")
    if args.check is None:
        if not args.write:
            print(renderer.block(tox, project, args.compact))
        return 0
    status = 0
    for path in args.check:
        report = checker.drift(path, tox, project)
        if report is not None:
            status = 1
            print(report)
    for problem in checker.check_extras(tox, project):
        print(problem)
        if not problem.startswith("note:"):
            status = 1
    if status == 0:
        print("compatibility table and extras match tox.ini")
    return status


if __name__ == "__main__":
    sys.exit(main())
