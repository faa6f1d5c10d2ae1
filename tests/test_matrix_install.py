"""What each tox env of the compatibility matrix really tested (tox.ini, issue 5).

* The core imports no library: a fresh interpreter that imports ``w2reg`` and
  ``w2reg.adapters`` has none of lightly, solo-learn, stable-pretraining or Lightning in
  ``sys.modules``
  (meaningful in every env, also where those libraries are installed).
* Under tox (``W2REG_TOX_INI`` set by tox.ini): ``w2reg`` comes from the installed wheel, not
  from the checkout; every ``name==version`` that tox.ini pins for this env is what is
  installed; the pinned libraries import; where solo-learn is built from a git snapshot, the
  installed ``solo`` package is that snapshot's (``W2REG_SOLO_SRC``), file for file. So the
  README table (generated from tox.ini) says what really ran. That a required library's tests
  did not skip is tests/conftest.py's job (``W2REG_REQUIRE``).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

import w2reg

LIBRARIES = (
    "lightly",
    "solo",
    "lightning",
    "pytorch_lightning",
    "lightning_fabric",
    "stable_pretraining",
)
TOX_INI = os.environ.get("W2REG_TOX_INI")
TOX_ENV = os.environ.get("TOX_ENV_NAME")
#: how the checks meant for other envs skip (allowed by tests/conftest.py's ALLOWED_SKIPS)
NOT_THIS_ENV = "not this env: "
under_tox = pytest.mark.skipif(
    not (TOX_INI and TOX_ENV), reason="only inside a tox env of tox.ini (W2REG_TOX_INI)"
)

#: distribution name -> module that must import when the env pins it
IMPORTS = {
    "lightly": "lightly",
    "lightning": "lightning.pytorch",
    "pytorch-lightning": "pytorch_lightning",
    "solo-learn": "solo.methods",
    "stable-pretraining": "stable_pretraining",
    "torch": "torch",
    "torchvision": "torchvision",
}


def _matrix_table():
    path = Path(TOX_INI).parent / "tools" / "matrix_table.py"
    spec = importlib.util.spec_from_file_location("_w2reg_matrix_table", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_core_imports_no_library() -> None:
    code = (
        "import sys, w2reg, w2reg.adapters, w2reg.schedules\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {LIBRARIES!r})\n"
        "print(w2reg.__file__)\n"
        "assert not bad, bad\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    print("w2reg imported from", proc.stdout.strip())


@under_tox
def test_w2reg_is_the_installed_wheel_not_the_checkout() -> None:
    source = Path(os.environ.get("W2REG_SOURCE_TREE", Path(TOX_INI).parent)).resolve()
    print("w2reg.__file__ =", w2reg.__file__)
    for module in (w2reg, importlib.import_module("w2reg.adapters")):
        where = Path(module.__file__).resolve()
        assert "site-packages" in where.parts, f"{module.__name__} from {where}"
        assert source not in where.parents, f"{module.__name__} imported from the checkout {where}"
    dist = importlib.metadata.distribution("w2reg")
    assert dist.read_text("direct_url.json") is None or '"editable": true' not in (
        dist.read_text("direct_url.json") or ""
    ), "w2reg is an editable install"


@under_tox
def test_pinned_versions_are_installed_and_import() -> None:
    table = _matrix_table()
    pins = table.env_pins(table.ToxIni(Path(TOX_INI)), TOX_ENV)
    assert pins or TOX_ENV == "core", f"tox.ini pins nothing for {TOX_ENV}"
    for name, version in sorted(pins.items()):
        got = importlib.metadata.version(name)
        assert got == version, f"{TOX_ENV}: tox.ini pins {name}=={version}, installed {got}"
        if name in IMPORTS:
            importlib.import_module(IMPORTS[name])
    for name in table.env_imports(table.ToxIni(Path(TOX_INI)), TOX_ENV):
        importlib.import_module(name)


@under_tox
def test_solo_from_source_is_the_snapshot_of_the_env() -> None:
    table = _matrix_table()
    ref = table.solo_source_ref(table.ToxIni(Path(TOX_INI)), TOX_ENV)
    if ref is None:
        pytest.skip(f"{NOT_THIS_ENV}only the envs that build solo-learn from a git snapshot")
    tree = Path(os.environ["W2REG_SOLO_SRC"])
    origin = (tree / ".w2reg-origin").read_text().split()
    assert origin[0] == ref, f"{tree} holds solo-learn {origin[0]}, tox.ini asks for {ref}"
    assert (tree / "main_pretrain.py").is_file()
    installed = Path(importlib.import_module("solo").__file__).parent
    assert "site-packages" in installed.parts, installed
    mine = sorted(p.relative_to(tree / "solo") for p in (tree / "solo").rglob("*.py"))
    theirs = sorted(p.relative_to(installed) for p in installed.rglob("*.py"))
    assert mine == theirs, set(mine) ^ set(theirs)
    differ = [p for p in mine if (tree / "solo" / p).read_bytes() != (installed / p).read_bytes()]
    assert not differ, f"installed solo differs from {tree}: {differ[:5]}"
    print(f"solo-learn {ref} from {origin[1]}: {len(mine)} files as in {tree}")


@under_tox
def test_core_env_has_no_library_installed() -> None:
    if TOX_ENV != "core":
        pytest.skip(f"{NOT_THIS_ENV}only the core env promises torch and nothing else")
    for name in LIBRARIES:
        assert importlib.util.find_spec(name) is None, f"{name} is installed in the core env"
    assert importlib.util.find_spec("torchvision") is None
