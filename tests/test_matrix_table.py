"""tools/matrix_table.py: the README table is generated from tox.ini and drift is caught."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOOL = ROOT / "tools" / "matrix_table.py"
pytestmark = pytest.mark.skipif(
    not (TOOL.exists() and (ROOT / "tox.ini").exists()), reason="needs the source checkout"
)


@pytest.fixture(scope="module")
def mt():
    spec = importlib.util.spec_from_file_location("_w2reg_matrix_table_t", TOOL)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


INI = """
[tox]
env_list =
    a
    b
[matrix]
outside_range = b: lightly
[base]
deps =
    torch==2.14.1
[testenv]
base_python = py311
description = plain
deps = {[base]deps}
commands = pytest tests
[testenv:b]
description = old lightly
deps =
    {[base]deps}
    lightly==1.4.26  # comment
    numpy<2
commands_pre = python -m pip install --no-deps solo-learn==1.0.2
commands = pytest tests -o "python_files=test_matrix_install.py test_lightly_*.py"
"""


def test_inheritance_substitution_and_pins(mt, tmp_path: Path) -> None:
    ini = tmp_path / "tox.ini"
    ini.write_text(INI)
    tox = mt.ToxIni(ini)
    assert tox.envs() == ["a", "b"]
    assert mt.env_pins(tox, "a") == {"torch": "2.14.1"}
    assert mt.env_requirements(tox, "b") == {
        "torch": "==2.14.1",
        "lightly": "==1.4.26",
        "numpy": "<2",
        "solo-learn": "==1.0.2",
    }
    assert mt.env_tests(tox, "a") == "all"
    assert mt.env_tests(tox, "b") == "`test_lightly_*`"
    text = mt.table(tox)
    assert "| `b` | 3.11 | 2.14.1 | — | `<2` | 1.4.26 |" in text
    assert "- `b`: old lightly" in text


def test_check_passes_on_the_repo_docs_and_fails_on_drift(mt, tmp_path: Path, capsys) -> None:
    doc = ROOT / "docs" / "readme-matrix.md"
    if not doc.exists():
        pytest.skip("docs/readme-matrix.md not generated yet")
    assert mt.main(["--check", str(doc)]) == 0, capsys.readouterr().out
    drifted = tmp_path / "README.md"
    drifted.write_text(doc.read_text().replace("1.6.0", "9.9.9", 1))
    assert mt.main(["--check", str(drifted)]) == 1
    assert "differs from tox.ini" in capsys.readouterr().out
    missing = tmp_path / "EMPTY.md"
    missing.write_text("# nothing here\n")
    with pytest.raises(SystemExit, match="matrix:start"):
        mt.main(["--check", str(missing)])


def test_min_env_must_pin_every_lower_bound(mt, tmp_path: Path, monkeypatch) -> None:
    ini = tmp_path / "tox.ini"
    ini.write_text(
        "[tox]\nenv_list = py311-min\n[testenv]\ndeps =\n    lightly==1.5.9\n    pytest==7.0.0\n"
    )
    monkeypatch.setattr(
        mt, "_extras", lambda: {"lightly": ["lightly>=1.5.8"], "test": ["pytest>=7.0.0", "numpy"]}
    )
    problems = mt.check_extras(mt.ToxIni(ini))
    assert any("py311-min must pin lightly==1.5.8" in p for p in problems), problems
    assert any("'numpy' has no lower bound" in p for p in problems), problems
    assert not any("pytest" in p for p in problems), problems
