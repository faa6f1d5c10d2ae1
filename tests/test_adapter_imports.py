"""Importing an adapter without its library names what to install (issue 11).

Run in every env: where lightly / Lightning are not installed (the ``core`` env) the import
really fails; where they are, a fresh interpreter blocks them (``sys.modules[name] = None``
makes ``import name`` raise ``ImportError``, as when it is missing).
"""

from __future__ import annotations

import subprocess
import sys

import pytest

HINT = 'pip install "w2reg[lightly]"'


def _import_error(module: str, blocked: tuple[str, ...]) -> str:
    code = (
        "import sys\n"
        f"for name in {blocked!r}:\n"
        "    sys.modules[name] = None\n"
        "try:\n"
        f"    import {module}\n"
        "except ModuleNotFoundError as err:\n"
        "    print(type(err).__name__, err.name, '|', err)\n"
        "else:\n"
        "    print('imported')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


@pytest.mark.parametrize(
    "blocked",
    [("torchvision",), ("lightly",), ("lightning", "pytorch_lightning")],
    ids=["no-torchvision", "no-lightly", "no-lightning"],
)
def test_lightly_adapter_without_its_extra_names_the_extra(blocked):
    out = _import_error("w2reg.adapters.lightly", blocked)
    assert out.startswith("ModuleNotFoundError"), out
    assert HINT in out and "w2reg.adapters.lightly needs" in out, out


def test_callbacks_without_lightning_name_what_to_install():
    out = _import_error("w2reg.adapters.callbacks", ("lightning", "pytorch_lightning"))
    assert out.startswith("ModuleNotFoundError lightning"), out
    assert "pip install lightning" in out and HINT.split()[-1] in out, out


def test_core_and_glue_import_without_any_library():
    blocked = ("lightly", "torchvision", "lightning", "pytorch_lightning", "solo")
    assert _import_error("w2reg.adapters._lightning", blocked) == "imported"
