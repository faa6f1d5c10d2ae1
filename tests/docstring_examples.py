"""The examples of the package's docstrings, found and run with their outputs (doctest).

The convention (docs/development.md, "The documentation's code runs"):

* every ``>>>`` example in a docstring of ``src/w2reg/`` runs, and what it prints is compared
  with the lines below it (``doctest``, whitespace-normalised); an example that depends on
  random numbers seeds itself with ``torch.manual_seed(0)``;
* every docstring with examples shows at least one output, so a reader sees what to expect;
* the examples run against the *imported* package (in tox: the installed wheel), module by
  module, in the env that has what the module needs: the grouping is that of the Markdown
  blocks (:func:`doc_snippets.group_of` of ``import <module>``): ``w2reg.adapters.solo*`` ->
  ``tests/test_solo_docstrings.py`` in the solo-learn envs, the other adapters ->
  ``tests/test_lightly_docstrings.py`` in the lightly envs, the core and the framework-free
  adapter modules (``doc_snippets.FRAMEWORK_FREE``) -> ``tests/test_docstrings.py`` in every
  env that runs the core tests.
"""

from __future__ import annotations

import doctest
import importlib
import io
from pathlib import Path
from typing import Any

import torch
from doc_snippets import ROOT, group_of

PACKAGE = ROOT / "src" / "w2reg"
#: Output is compared with whitespace normalised (a wrapped tuple still matches).
OPTIONS = doctest.NORMALIZE_WHITESPACE


def module_name(path: Path) -> str:
    """``src/w2reg/adapters/head.py`` -> ``w2reg.adapters.head``."""
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules_with_examples(group: str) -> list[str]:
    """The modules of ``group`` whose source has a ``>>>`` line, read as text (no import)."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        name = module_name(path)
        if group_of(f"import {name}") == group and ">>>" in path.read_text(encoding="utf-8"):
            found.append(name)
    return found


def doctests(module: str) -> list[doctest.DocTest]:
    """The docstrings with examples of ``module`` (imported), in source order."""
    found = doctest.DocTestFinder().find(importlib.import_module(module))
    return sorted((t for t in found if t.examples), key=lambda t: (t.lineno or 0, t.name))


def run_module(module: str) -> int:
    """Run every example of ``module``; fail with doctest's report. Returns the count run."""
    import pytest

    tests = doctests(module)
    assert tests, f"{module} has '>>>' lines but doctest finds no example in it"
    report = io.StringIO()
    runner = doctest.DocTestRunner(optionflags=OPTIONS)
    for test in tests:
        torch.manual_seed(0)
        runner.run(test, out=report.write)
    if runner.failures:
        failed = f"{runner.failures} docstring example(s) of {module} failed"
        pytest.fail(f"{failed}:\n{report.getvalue()}")
    return sum(len(t.examples) for t in tests)


def silent_docstrings(module: str) -> list[str]:
    """The docstrings of ``module`` whose examples print nothing to compare with."""
    return [t.name for t in doctests(module) if not any(e.want.strip() for e in t.examples)]


def parametrize_modules(group: str) -> Any:
    """``pytest.mark.parametrize("module", ...)`` over :func:`modules_with_examples`."""
    import pytest

    return pytest.mark.parametrize("module", modules_with_examples(group))
