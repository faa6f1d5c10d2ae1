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
    c
[matrix]
outside_range = b: lightly
[base]
deps =
    torch==2.14.1
[solo]
set_env =
    {[testenv]set_env}
    W2REG_REQUIRE = solo-cfg
    W2REG_SOLO_SRC = {env_dir}{/}solo-src{/}solo-learn
install = python {tox_root}{/}tools{/}install_solo_src.py --dest {env_dir}{/}solo-src
[testenv]
base_python = py311
description = plain
deps = {[base]deps}
set_env =
    W2REG_TOX_INI = {tox_root}{/}tox.ini
commands = pytest tests
[testenv:a]
set_env =
    {[testenv]set_env}
    W2REG_REQUIRE = core
[testenv:b]
description = old lightly
base_python = py310
deps =
    {[base]deps}
    lightly==1.4.26  # comment
    numpy<2
set_env =
    {[testenv]set_env}
    W2REG_REQUIRE = lightly lightning
commands_pre = python -m pip install --no-deps solo-learn==1.0.2
commands = pytest tests -o "python_files=test_matrix_install.py test_lightly_*.py"
[testenv:c]
description = a solo-learn snapshot
deps =
    {[base]deps}
    lightning==2.1.2
set_env = {[solo]set_env}
commands_pre = {[solo]install} main-9187ea3
"""


def test_inheritance_substitution_and_pins(mt, tmp_path: Path) -> None:
    ini = tmp_path / "tox.ini"
    ini.write_text(INI)
    tox = mt.ToxIni(ini)
    assert tox.envs() == ["a", "b", "c"]
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
    assert "| `b` | 3.10 | 2.14.1 | — | `<2` | 1.4.26 |" in text
    assert "- `b`: old lightly" in text


def test_set_env_require_and_solo_snapshots(mt, tmp_path: Path) -> None:
    ini = tmp_path / "tox.ini"
    ini.write_text(INI)
    tox = mt.ToxIni(ini)
    assert tox.set_env("c") == {
        "W2REG_TOX_INI": "{tox_root}{/}tox.ini",
        "W2REG_REQUIRE": "solo-cfg",
        "W2REG_SOLO_SRC": "{env_dir}{/}solo-src{/}solo-learn",
    }
    assert mt.env_required(tox, "a") == ["core"]
    assert mt.env_required(tox, "b") == ["lightly", "lightning"]
    assert mt.env_required(tox, "c") == ["solo-cfg"]
    assert mt.solo_source_ref(tox, "c") == "main-9187ea3"
    assert mt.solo_source_ref(tox, "b") is None  # solo-learn 1.0.2 from PyPI: a pin
    assert mt.env_imports(tox, "c") == ["solo.methods"]
    rows = {line.split(" | ")[0]: line for line in mt.table(tox).splitlines()}
    assert rows["| `c`"].endswith("| git main @ 9187ea3 | — | all | solo-cfg |"), rows["| `c`"]
    assert rows["| `b`"].endswith("| lightly, lightning |")


@pytest.mark.parametrize("name", ["README.md", "docs/compatibility.md"])
def test_check_passes_on_the_repo_docs_and_fails_on_drift(mt, name, tmp_path, capsys) -> None:
    doc = ROOT / name
    assert mt.main(["--check", str(doc)]) == 0, capsys.readouterr().out
    drifted = tmp_path / "README.md"
    drifted.write_text(doc.read_text().replace("1.6.0", "9.9.9", 1))
    assert mt.main(["--check", str(drifted)]) == 1
    assert "differs from tox.ini" in capsys.readouterr().out
    missing = tmp_path / "EMPTY.md"
    missing.write_text("# nothing here\n")
    with pytest.raises(SystemExit, match="matrix:start"):
        mt.main(["--check", str(missing)])


def test_readme_gets_the_compact_table_and_the_docs_the_full_one(mt, tmp_path: Path) -> None:
    ini = tmp_path / "tox.ini"
    ini.write_text(INI)
    tox = mt.ToxIni(ini)
    compact = mt.block(tox, compact=True)
    assert compact.startswith(mt.START_COMPACT) and compact.endswith(mt.END)
    rows = {line.split(" | ")[0]: line for line in compact.splitlines() if line.startswith("| `")}
    assert rows["| `b`"] == "| `b` | 3.10 | 2.14.1 | 1.4.26 | — | 1.0.2 | lightly, lightning |"
    assert rows["| `c`"] == "| `c` | 3.11 | 2.14.1 | — | 2.1.2 | git main @ 9187ea3 | solo-cfg |"
    assert "other pins" not in compact and "What each env is for" not in compact
    full = mt.block(tox)
    assert full.startswith(mt.START) and "What each env is for" in full
    # --write regenerates each file in the form its marker asks for, text around it kept
    readme, page = tmp_path / "README.md", tmp_path / "matrix.md"
    readme.write_text(f"# R\n\n{mt.START_COMPACT}\nstale\n{mt.END}\n\nafter\n")
    page.write_text(f"# P\n{mt.START}\n{mt.END}\n")
    assert mt.main(["--tox-ini", str(ini), "--write", str(readme), str(page)]) == 0
    assert readme.read_text() == f"# R\n\n{compact}\n\nafter\n"
    assert page.read_text() == f"# P\n{full}\n"
    checked = mt.main(["--tox-ini", str(ini), "--check", str(readme), str(page)])
    assert checked in (0, 1)  # the tables match; range problems of the toy ini may remain


def _project(**kw):
    base = {
        "requires-python": ">=3.10",
        "classifiers": [f"Programming Language :: Python :: 3.{v}" for v in (10, 11, 12, 13)],
        "dependencies": ["torch>=2.1"],
        "optional-dependencies": {
            "lightly": ["lightly>=1.5.8"],
            "test": ["pytest>=7.0.0", "numpy"],
        },
    }
    return lambda: {**base, **kw}


def test_min_env_must_pin_every_lower_bound(mt, tmp_path: Path, monkeypatch) -> None:
    ini = tmp_path / "tox.ini"
    ini.write_text(
        "[tox]\nenv_list = py310-min\n[testenv]\nbase_python = py310\n"
        "deps =\n    lightly==1.5.9\n    pytest==7.0.0\n    torch==2.2.0\n"
    )
    monkeypatch.setattr(mt, "_project", _project())
    problems = mt.check_extras(mt.ToxIni(ini))
    assert any("py310-min must pin lightly==1.5.8" in p for p in problems), problems
    assert any("py310-min must pin torch==2.1 " in p and "dependencies" in p for p in problems)
    assert any("'numpy' has no lower bound" in p for p in problems), problems
    assert not any("pytest" in p for p in problems), problems


def test_declared_pythons_are_the_tested_ones(mt, tmp_path: Path, monkeypatch) -> None:
    ini = tmp_path / "tox.ini"
    ini.write_text(
        "[tox]\nenv_list =\n    py310-min\n    new\n[testenv]\nbase_python = py311\n"
        "[testenv:py310-min]\nbase_python = py310\n[testenv:new]\nbase_python = py313\n"
    )
    tox = mt.ToxIni(ini)
    monkeypatch.setattr(mt, "_project", _project())
    assert mt.check_pythons(tox) == []
    monkeypatch.setattr(mt, "_project", _project(**{"requires-python": ">=3.9"}))
    problems = mt.check_pythons(tox)
    assert any("py310-min runs Python 3.10, not the lowest" in p for p in problems), problems
    assert any("lowest Python classifier is 3.10" in p for p in problems), problems
    classifiers = [f"Programming Language :: Python :: 3.{v}" for v in (10, 11, 12, 13, 14)]
    monkeypatch.setattr(mt, "_project", _project(classifiers=classifiers))
    assert mt.check_pythons(tox) == [
        "no env runs Python 3.14, the highest the classifiers name (envs: ['3.10', '3.13'])"
    ]
    monkeypatch.setattr(mt, "_project", _project(classifiers=classifiers[:3]))
    assert mt.check_pythons(tox) == [
        "no env runs Python 3.12, the highest the classifiers name (envs: ['3.10', '3.13'])",
        "new runs Python 3.13, which the classifiers do not name",
    ]


def test_the_command_line_runs_as_a_script_from_anywhere(tmp_path: Path) -> None:
    """tools/matrix_table.py finds its parts (tools/compat_matrix/) from any directory."""
    import subprocess

    proc = subprocess.run(
        [sys.executable, str(TOOL), "--check", str(ROOT / "README.md")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "compatibility table and extras match tox.ini" in proc.stdout
