"""The docstring examples of the core run with their outputs (with the framework-free adapter
modules, ``doc_snippets.FRAMEWORK_FREE``).

The other adapters' run in tests/test_lightly_docstrings.py and tests/test_solo_docstrings.py;
the convention is in tests/docstring_examples.py.
"""

from __future__ import annotations

from doc_snippets import FRAMEWORK_FREE
from docstring_examples import (
    modules_with_examples,
    parametrize_modules,
    run_module,
    silent_docstrings,
)


def test_every_module_with_examples_is_in_a_group() -> None:
    core = set(modules_with_examples("core"))
    assert {"w2reg.functional", "w2reg.losses", "w2reg.zero_cl", "w2reg.terms"} <= core
    assert {m for m in core if m.startswith("w2reg.adapters")} <= set(FRAMEWORK_FREE), core
    everything = core | set(modules_with_examples("lightly")) | set(modules_with_examples("solo"))
    assert "w2reg.adapters.head" in everything


@parametrize_modules("core")
def test_core_docstring_examples_run_with_their_outputs(module: str) -> None:
    assert run_module(module) > 0
    assert not silent_docstrings(module), (
        f"{module}: these docstrings' examples show no output: {silent_docstrings(module)}"
    )
