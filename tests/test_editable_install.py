"""The README's install, literally: a clone named ``w2reg``, ``pip install -e``, then import it
from the clone, from the clone's parent directory and from anywhere else (issue 19).

After ``git clone ... w2reg && cd w2reg && pip install -e .`` a user often stands in the
parent directory. There ``sys.path[0]`` (the working directory) holds the clone's root folder
``w2reg/``, which has no ``__init__.py``: a namespace package. The old layout (``adapters/``
remapped to ``w2reg.adapters``) installed editable through setuptools' import finder, which
runs after the path finder, so the namespace folder won and ``import w2reg`` failed with
``cannot import name 'W2Uniformity' from 'w2reg' (unknown location)``. With the src layout
the editable install is a static path entry and the real package wins from any directory.

The test copies this source tree into ``<tmp>/w2reg`` (the clone), makes a throwaway venv
whose only extra path is a folder of links to this environment's installed packages (torch,
setuptools, ...; never an installed w2reg, which would hide the problem), installs the copy
with the venv's own pip, offline (``--no-deps --no-build-isolation``), and runs the commands
in fresh interpreters. It takes seconds and downloads nothing.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

SOURCE_TREE = Path(os.environ.get("W2REG_SOURCE_TREE") or Path(__file__).resolve().parents[1])
#: not part of a clone (or too big to copy, and not needed to install)
IGNORE = shutil.ignore_patterns(
    ".git", ".tox", ".venv", "venv", "__pycache__", "*.egg-info", "build", "dist", "site",
    "data", "runs", "study", ".mypy_cache", ".ruff_cache", ".pytest_cache",
)  # fmt: skip
#: the namespace-package failure the old layout gave in the clone's parent directory
NAMESPACE_ERROR = "unknown location"

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("setuptools") is None,
    reason="pip install -e --no-build-isolation needs setuptools in this environment",
)


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "PIP_", "VIRTUAL"))}
    env.update(PYTHONNOUSERSITE="1", PYTHONDONTWRITEBYTECODE="1", PIP_NO_INDEX="1")
    env.update(PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_WARN_SCRIPT_LOCATION="1")
    return env


def _run(cmd: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def _linked_site_packages(dest: Path) -> Path:
    """A folder of links to this environment's packages, less any w2reg and any .pth file."""
    dest.mkdir()
    dirs = [*site.getsitepackages(), sysconfig.get_paths()["purelib"]]
    for sp in dict.fromkeys(Path(d) for d in dirs if Path(d).is_dir()):
        for item in sp.iterdir():
            name = item.name.lower()
            if "w2reg" in name or name.endswith(".pth") or (dest / item.name).exists():
                continue
            (dest / item.name).symlink_to(item)
    return dest


@pytest.fixture(scope="module")
def clone(tmp_path_factory) -> tuple[Path, Path]:
    """``(python of a venv with the copy installed editable, the copy)``."""
    root = tmp_path_factory.mktemp("firsthour")
    copy = root / "w2reg"
    shutil.copytree(SOURCE_TREE, copy, ignore=IGNORE, symlinks=True)
    venv = root / "venv"
    env = _clean_env()
    made = _run([sys.executable, "-m", "venv", str(venv)], root, env)
    assert made.returncode == 0, made.stderr
    python = venv / "bin" / "python"
    code = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    purelib = _run([str(python), "-c", code], root, env)
    # the venv's own setuptools (Python 3.11 bundles 65.5, without bdist_wheel) would shadow
    # this environment's
    _run([str(python), "-m", "pip", "uninstall", "-q", "-y", "setuptools"], root, env)
    links = _linked_site_packages(root / "deps")
    (Path(purelib.stdout.strip()) / "zz_this_env.pth").write_text(f"{links}\n")
    cmd = [str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation"]
    installed = _run([*cmd, "-e", str(copy)], root, env)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    return python, copy


@pytest.mark.parametrize("where", ["parent", "clone", "elsewhere"])
def test_import_w2reg_from_the_clone_its_parent_and_elsewhere(clone, where):
    python, copy = clone
    cwd = {"parent": copy.parent, "clone": copy, "elsewhere": copy.parent / "deps"}[where]
    code = "import w2reg; print(w2reg.W2Uniformity.__module__, w2reg.__file__)"
    out = _run([str(python), "-c", code], cwd, _clean_env())
    assert out.returncode == 0, f"`python -c 'import w2reg'` in the {where}:\n{out.stderr}"
    module, path = out.stdout.split()
    assert module == "w2reg.losses"
    assert Path(path).resolve().is_relative_to(copy.resolve())  # the clone's code, editable


@pytest.mark.parametrize("args", [["--help"], ["--config-name", "byol_w2"]], ids=["help", "run"])
def test_solo_entry_script_from_the_clone_parent(clone, args):
    """The entry script in the clone's parent may say that solo-learn (or its source tree) is
    missing, never the namespace error. ``--help`` reads no core module, so it worked on the
    old layout too; a run registers the methods, which imports the core (and failed)."""
    python, copy = clone
    cmd = [str(python), "-m", "w2reg.adapters.solo_pretrain", *args]
    # a stand-in source tree, so that a run gets past the source check to the registration
    fake_src = copy.parent / "solo-src"
    fake_src.mkdir(exist_ok=True)
    (fake_src / "main_pretrain.py").write_text("raise SystemExit('main_pretrain.py ran')\n")
    env = {**_clean_env(), "W2REG_SOLO_SRC": str(fake_src)}
    out = _run(cmd, copy.parent, env)
    text = out.stdout + out.stderr
    assert NAMESPACE_ERROR not in text and "Traceback" not in text, text
    if args == ["--help"]:
        assert "usage: python -m w2reg.adapters.solo_pretrain" in text, text
    # without solo-learn: what to install; with it: the stand-in script ran
    assert out.returncode == 0 or "needs solo-learn" in text or "main_pretrain.py ran" in text
