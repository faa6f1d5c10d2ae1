"""The docstring examples of the adapters (but solo-learn's) run with their outputs.

Collected in the lightly envs (``test_lightly_*.py``: lightly, Lightning and torchvision are
there), where W2REG_REQUIRE=lightly makes a skip here fail the env; elsewhere it skips. The
convention: tests/docstring_examples.py.
"""

from __future__ import annotations

import pytest

pytest.importorskip("lightly", reason="the adapters' examples need lightly")
pytest.importorskip("torchvision", reason="the adapters' examples need torchvision")

from docstring_examples import parametrize_modules, run_module, silent_docstrings  # noqa: E402


@parametrize_modules("lightly")
def test_adapter_docstring_examples_run_with_their_outputs(module: str) -> None:
    assert run_module(module) > 0
    assert not silent_docstrings(module), (
        f"{module}: these docstrings' examples show no output: {silent_docstrings(module)}"
    )
