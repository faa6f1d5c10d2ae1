"""What tox.ini and pyproject.toml declare: envs, their pins and settings, the declared ranges.

Just enough of tox's ini semantics (``[testenv]`` inheritance, ``{[section]key}``
substitution) to read w2reg's tox.ini; pyproject.toml as a plain ``[project]`` mapping.
"""

from __future__ import annotations

import configparser
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

MIN_ENV = "py310-min"
REQUIRE_VAR = "W2REG_REQUIRE"  # set_env: what an env must test (tests/conftest.py)
CHECKED_EXTRAS = ("lightly", "solo", "test")
DEPENDENCIES = "dependencies"  # pyproject's [project] dependencies, checked like an extra

_SOLO_SRC = re.compile(r"install_solo_src\.py\b.*?\s([\w.-]+)\s*$")
_CLASSIFIER = re.compile(r"^Programming Language :: Python :: (3\.\d+)$")
_REF = re.compile(r"\{\[([^\]]+)\]([^}]+)\}")
REQ = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*(.*)$")
_PIN_IN_COMMAND = re.compile(r"(?<![\w.-])([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9.+!-]+)")

#: pyproject.toml's ``[project]`` table
Project = Mapping[str, Any]


def canonical(name: str) -> str:
    """PEP 503 name: ``pytorch_lightning`` and ``PyTorch-Lightning`` are the same package."""
    return re.sub(r"[-_.]+", "-", name).lower()


class ToxIni:
    """Just enough of tox's ini semantics: ``[testenv]`` inheritance and ``{[sec]key}``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.cp = configparser.ConfigParser(interpolation=None, comment_prefixes=("#",))
        self.cp.optionxform = str  # keep keys as written
        self.cp.read(path)

    def raw(self, section: str, key: str) -> str | None:
        if self.cp.has_option(section, key):
            return self.cp.get(section, key)
        return None

    def _expand(self, value: str, depth: int = 0) -> str:
        if depth > 10:
            raise ValueError(f"{self.path}: substitution too deep in {value!r}")

        def sub(m: re.Match[str]) -> str:
            got = self.raw(m.group(1), m.group(2))
            if got is None:
                raise ValueError(f"{self.path}: {{[{m.group(1)}]{m.group(2)}}} is not defined")
            return self._expand(got, depth + 1)

        return _REF.sub(sub, value)

    def get(self, env: str, key: str, default: str = "") -> str:
        """The value of ``key`` in ``[testenv:env]``, falling back to ``[testenv]``."""
        for section in (f"testenv:{env}", "testenv"):
            got = self.raw(section, key)
            if got is not None:
                return self._expand(got)
        return default

    def lines(self, env: str, key: str) -> list[str]:
        out = []
        for line in self.get(env, key).splitlines():
            line = line.split(" #", 1)[0].strip()
            if line and not line.startswith("#"):
                out.append(line)
        return out

    def set_env(self, env: str) -> dict[str, str]:
        """``KEY = value`` lines of ``set_env`` (inherited, ``{[sec]key}`` expanded; last wins)."""
        out = {}
        for line in self.lines(env, "set_env"):
            key, sep, value = line.partition("=")
            if sep:
                out[key.strip()] = value.strip()
        return out

    def envs(self) -> list[str]:
        raw = self.raw("tox", "env_list") or self.raw("tox", "envlist") or ""
        return [e.strip() for e in re.split(r"[,\n]", raw) if e.strip()]

    def outside_range(self) -> list[str]:
        """``[matrix] outside_range``: the ``env: package`` pins outside the declared ranges."""
        return (self.raw("matrix", "outside_range") or "").split()


def env_requirements(tox: ToxIni, env: str) -> dict[str, str]:
    """canonical name -> specifier ('' for none) from the env's ``deps`` and ``commands_pre``."""
    reqs: dict[str, str] = {}
    for line in tox.lines(env, "deps"):
        m = REQ.match(line)
        if m:
            reqs[canonical(m.group(1))] = m.group(3).replace(" ", "")
    for line in tox.lines(env, "commands_pre"):
        for name, version in _PIN_IN_COMMAND.findall(line):
            reqs[canonical(name)] = f"=={version}"
    return reqs


def env_pins(tox: ToxIni, env: str) -> dict[str, str]:
    """canonical name -> exact version, for the ``name==version`` requirements of ``env``."""
    return {
        name: spec[2:]
        for name, spec in env_requirements(tox, env).items()
        if spec.startswith("==") and "," not in spec and "*" not in spec
    }


def solo_source_ref(tox: ToxIni, env: str) -> str | None:
    """The solo-learn ref (``1.0.8``, ``main-9187ea3``) that tools/install_solo_src.py installs."""
    for line in tox.lines(env, "commands_pre"):
        m = _SOLO_SRC.search(line)
        if m:
            return m.group(1)
    return None


def env_required(tox: ToxIni, env: str) -> list[str]:
    """What ``env`` must test (``W2REG_REQUIRE``); tests/conftest.py enforces it."""
    value = tox.set_env(env).get(REQUIRE_VAR, "")
    return [name for name in re.split(r"[\s,]+", value) if name]


def env_imports(tox: ToxIni, env: str) -> list[str]:
    """Modules that must import in ``env`` beyond its pins (solo-learn built from source)."""
    return ["solo.methods"] if solo_source_ref(tox, env) is not None else []


def env_tests(tox: ToxIni, env: str) -> str:
    """The test files ``env`` runs (its ``python_files``), for the table; ``all`` by default."""
    commands = " ".join(tox.lines(env, "commands"))
    m = re.search(r'python_files=([^"]+)"', commands)
    if not m:
        return "all"
    files = [f.removesuffix(".py") for f in m.group(1).split() if f != "test_matrix_install.py"]
    return ", ".join(f"`{f}`" for f in files)


def env_python(tox: ToxIni, env: str) -> str:
    """``3.11`` for ``base_python = py311``."""
    base = tox.get(env, "base_python")
    m = re.fullmatch(r"py(\d)(\d+)", base)
    return f"{m.group(1)}.{m.group(2)}" if m else (base or "tox's")


def read_project(pyproject: Path) -> dict[str, Any]:
    """pyproject.toml's ``[project]`` table."""
    project: dict[str, Any] = tomllib.loads(pyproject.read_text())["project"]
    return project


def extras(project: Project) -> dict[str, list[str]]:
    return dict(project.get("optional-dependencies", {}))


def dependencies(project: Project) -> list[str]:
    return list(project.get("dependencies", []))


def pythons(project: Project) -> tuple[str, list[str]]:
    """``requires-python`` and the Python versions the classifiers name (ascending)."""
    named = [
        m.group(1) for c in project.get("classifiers", []) for m in [_CLASSIFIER.match(c)] if m
    ]
    return project.get("requires-python", ""), sorted(named, key=version_key)


def version_key(v: str) -> tuple[int, ...]:
    return tuple(int(p) for p in v.split("."))
