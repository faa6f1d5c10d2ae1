"""The docstring examples of the solo-learn adapters (``w2reg.adapters.solo*``) run.

Collected in the solo-learn cfg-API envs (``test_solo_*.py``), where W2REG_REQUIRE=solo-cfg
makes a skip here fail the env; elsewhere it skips. One test over all their modules (they
have no examples today; one added later runs here). The convention:
tests/docstring_examples.py.
"""

from __future__ import annotations

import pytest

pytest.importorskip("solo", reason="the solo-learn adapters' examples need solo-learn")

from docstring_examples import modules_with_examples, run_module, silent_docstrings  # noqa: E402


def test_solo_adapter_docstring_examples_run_with_their_outputs() -> None:
    for module in modules_with_examples("solo"):
        assert run_module(module) > 0
        assert not silent_docstrings(module), (module, silent_docstrings(module))
