"""The compatibility table, generated from tox.ini, and the checks that keep it true.

    python tools/matrix_table.py                        # print the full table (markdown)
    python tools/matrix_table.py --write README.md docs/compatibility.md   # regenerate both
    python tools/matrix_table.py --check README.md docs/compatibility.md   # CI: exit 1 on drift

The table sits between ``<!-- matrix:start -->`` (the full table: every pin, the tests each
env runs, what it is for; docs/compatibility.md) or ``<!-- matrix:start compact -->`` (the
main versions only, for the README) and ``<!-- matrix:end -->``. ``--check`` also verifies
that

* the ``py310-min`` env pins exactly the lower bound of every requirement in pyproject.toml's
  dependencies (torch) and its ``lightly``, ``solo`` and ``test`` extras, and runs the lowest
  Python that ``requires-python`` allows (so the declared lower bounds are the ones that ran),
  and that every such requirement has a lower bound;
* some env runs the highest Python the classifiers name, and every env's Python is inside
  ``requires-python`` and the classifiers;
* every version an env pins for a package named there lies inside the declared range, unless
  ``[matrix] outside_range`` in tox.ini lists it (a documented exception).

Only the standard library is needed (plus ``packaging`` for the range check, which tox
brings along; without it that one check is skipped with a note).
"""

from __future__ import annotations

import argparse
import configparser
import difflib
import re
import sys
from pathlib import Path

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
START = "<!-- matrix:start -->"
START_COMPACT = "<!-- matrix:start compact -->"
END = "<!-- matrix:end -->"
_START = re.compile(r"<!-- matrix:start( compact)? -->")
CHECKED_EXTRAS = ("lightly", "solo", "test")
DEPENDENCIES = "dependencies"  # pyproject's [project] dependencies, checked like an extra
MIN_ENV = "py310-min"
REQUIRE_VAR = "W2REG_REQUIRE"  # set_env: what an env must test (tests/conftest.py)
_SOLO_SRC = re.compile(r"install_solo_src\.py\b.*?\s([\w.-]+)\s*$")
_CLASSIFIER = re.compile(r"^Programming Language :: Python :: (3\.\d+)$")

_REF = re.compile(r"\{\[([^\]]+)\]([^}]+)\}")
_REQ = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*(.*)$")
_PIN_IN_COMMAND = re.compile(r"(?<![\w.-])([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9.+!-]+)")


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


def env_requirements(tox: ToxIni, env: str) -> dict[str, str]:
    """canonical name -> specifier ('' for none) from the env's ``deps`` and ``commands_pre``."""
    reqs: dict[str, str] = {}
    for line in tox.lines(env, "deps"):
        m = _REQ.match(line)
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


def solo_from_source(tox: ToxIni, env: str) -> bool:
    return solo_source_ref(tox, env) is not None


def env_required(tox: ToxIni, env: str) -> list[str]:
    """What ``env`` must test (``W2REG_REQUIRE``); tests/conftest.py enforces it."""
    value = tox.set_env(env).get(REQUIRE_VAR, "")
    return [name for name in re.split(r"[\s,]+", value) if name]


def env_imports(tox: ToxIni, env: str) -> list[str]:
    """Modules that must import in ``env`` beyond its pins (solo-learn built from source)."""
    return ["solo.methods"] if solo_from_source(tox, env) else []


def env_tests(tox: ToxIni, env: str) -> str:
    commands = " ".join(tox.lines(env, "commands"))
    m = re.search(r'python_files=([^"]+)"', commands)
    if not m:
        return "all"
    files = [f.removesuffix(".py") for f in m.group(1).split() if f != "test_matrix_install.py"]
    return ", ".join(f"`{f}`" for f in files)


def _cell(reqs: dict[str, str], name: str) -> str:
    if name not in reqs:
        return "—"
    spec = reqs[name]
    if spec.startswith("==") and "," not in spec:
        return spec[2:]
    return f"`{spec}`" if spec else "latest"


def _python(tox: ToxIni, env: str) -> str:
    base = tox.get(env, "base_python")
    m = re.fullmatch(r"py(\d)(\d+)", base)
    return f"{m.group(1)}.{m.group(2)}" if m else (base or "tox's")


def _solo_cell(ref: str) -> str:
    if ref.startswith("main-"):
        return f"git main @ {ref.removeprefix('main-')}"
    return f"git tag {ref}"


def table(tox: ToxIni) -> str:
    head = [
        "env",
        "Python",
        "torch",
        "torchvision",
        "numpy",
        "lightly",
        "lightning",
        "pytorch_lightning",
        "solo-learn",
        "other pins",
        "tests",
        "must pass",
    ]
    main = {"torch", "torchvision", "numpy", "lightly", "lightning", "pytorch-lightning"}
    rows = [head, ["---"] * len(head)]
    for env in tox.envs():
        reqs = env_requirements(tox, env)
        solo = _cell(reqs, "solo-learn")
        ref = solo_source_ref(tox, env)
        if ref:
            solo = _solo_cell(ref)
        rows.append(
            [
                f"`{env}`",
                _python(tox, env),
                _cell(reqs, "torch"),
                _cell(reqs, "torchvision"),
                _cell(reqs, "numpy") if "numpy" in reqs else "latest",
                _cell(reqs, "lightly"),
                _cell(reqs, "lightning"),
                _cell(reqs, "pytorch-lightning"),
                solo,
                ", ".join(
                    f"{name}{spec}" if spec else name
                    for name, spec in reqs.items()
                    if name not in main and name != "solo-learn"
                )
                or "—",
                env_tests(tox, env),
                ", ".join(env_required(tox, env)) or "—",
            ]
        )
    lines = ["| " + " | ".join(r) + " |" for r in rows]
    notes = [
        "",
        "*must pass*: the env's `W2REG_REQUIRE`. The env fails when that library is missing or "
        "any of its tests skips (tests/conftest.py; allowed: no GPU, opt-in slow runs). "
        "solo-learn after 1.0.2 is not on PyPI: its envs install the git snapshots in "
        "`../shared/third_party/solo-learn/` when that folder exists, else clone GitHub.",
        "",
        "What each env is for (its `description` in tox.ini):",
        "",
        *[f"- `{env}`: {tox.get(env, 'description')}" for env in tox.envs()],
    ]
    outside = (tox.raw("matrix", "outside_range") or "").split()
    if outside:
        notes += ["", "Outside the declared ranges on purpose: " + " ".join(outside) + "."]
    extras = _extras_line()
    return "\n".join(
        [
            "<!-- generated by tools/matrix_table.py from tox.ini; do not edit by hand -->",
            *lines,
            *notes,
            "",
            extras,
        ]
    )


def _lightning_cell(reqs: dict[str, str]) -> str:
    if "lightning" in reqs:
        return _cell(reqs, "lightning")
    if "pytorch-lightning" in reqs:
        return f"{_cell(reqs, 'pytorch-lightning')} (`pytorch_lightning`)"
    return "—"


def compact_table(tox: ToxIni) -> str:
    """The README's table: each env's Python, torch, lightly, Lightning, solo-learn."""
    head = ["env", "Python", "torch", "lightly", "Lightning", "solo-learn", "must pass"]
    rows = [head, ["---"] * len(head)]
    for env in tox.envs():
        reqs = env_requirements(tox, env)
        ref = solo_source_ref(tox, env)
        rows.append(
            [
                f"`{env}`",
                _python(tox, env),
                _cell(reqs, "torch"),
                _cell(reqs, "lightly"),
                _lightning_cell(reqs),
                _solo_cell(ref) if ref else _cell(reqs, "solo-learn"),
                ", ".join(env_required(tox, env)) or "—",
            ]
        )
    return "\n".join(
        [
            "<!-- generated by tools/matrix_table.py from tox.ini; do not edit by hand -->",
            *["| " + " | ".join(r) + " |" for r in rows],
            "",
            "*must pass*: what the env tests; it fails if that library is missing or one of "
            "its tests skips.",
            "",
            _extras_line(),
        ]
    )


def _project(pyproject: Path = ROOT / "pyproject.toml") -> dict:
    return tomllib.loads(pyproject.read_text())["project"]


def _extras() -> dict[str, list[str]]:
    return _project().get("optional-dependencies", {})


def _dependencies() -> list[str]:
    return list(_project().get("dependencies", []))


def _pythons() -> tuple[str, list[str]]:
    """``requires-python`` and the Python versions the classifiers name (ascending)."""
    project = _project()
    named = [
        m.group(1) for c in project.get("classifiers", []) for m in [_CLASSIFIER.match(c)] if m
    ]
    return project.get("requires-python", ""), sorted(
        named, key=lambda v: tuple(map(int, v.split(".")))
    )


def _extras_line() -> str:
    extras = _extras()
    parts = [
        f"`{name}`: " + ", ".join(f"`{r}`" for r in extras.get(name, []))
        for name in CHECKED_EXTRAS
        if name in extras
    ]
    requires, named = _pythons()
    pythons = f"Python `{requires}`" + (f" ({', '.join(named)} named)" if named else "")
    deps = ", ".join(f"`{r}`" for r in _dependencies())
    return (
        f"Declared ranges (pyproject.toml): {pythons}; dependencies: {deps}; extras "
        + "; ".join(parts)
        + "."
    )


def block(tox: ToxIni, compact: bool = False) -> str:
    """The marked section: the full table, or the README's compact one."""
    if compact:
        return f"{START_COMPACT}\n{compact_table(tox)}\n{END}"
    return f"{START}\n{table(tox)}\n{END}"


def _section(text: str, where: str) -> tuple[bool, str]:
    """(compact?, the marked section of ``text``); exits naming ``where`` if it has none."""
    m = _START.search(text)
    if m is None or END not in text[m.end() :]:
        raise SystemExit(f"{where}: no {START} (or {START_COMPACT}) ... {END} section")
    end = text.index(END, m.end()) + len(END)
    return m.group(1) is not None, text[m.start() : end]


def _same(pin: str | None, version: str) -> bool:
    """``pin`` is ``==version`` (``7`` and ``7.0.0`` are the same version)."""
    if not pin or not pin.startswith("==") or "," in pin:
        return False
    try:
        from packaging.version import Version
    except ImportError:  # pragma: no cover
        return pin[2:] == version
    return Version(pin[2:]) == Version(version)


def check_extras(tox: ToxIni) -> list[str]:
    """Problems with the declared bounds against the min env's and the other envs' pins."""
    problems: list[str] = []
    min_reqs = env_requirements(tox, MIN_ENV) if MIN_ENV in tox.envs() else None
    allowed = {
        (env.strip(), canonical(pkg.strip()))
        for item in re.split(r"[\n,]", tox.raw("matrix", "outside_range") or "")
        if ":" in item
        for env, pkg in [item.split(":", 1)]
    }
    try:
        from packaging.requirements import Requirement
    except ImportError:  # pragma: no cover - tox always brings packaging
        Requirement = None  # noqa: N806
        problems.append("note: 'packaging' missing, range check skipped")
    declared = {DEPENDENCIES: _dependencies(), **_extras()}
    for extra in (DEPENDENCIES, *CHECKED_EXTRAS):
        for req in declared.get(extra, []):
            m = _REQ.match(req)
            name, spec = canonical(m.group(1)), m.group(3).replace(" ", "")
            where = "the dependencies" if extra == DEPENDENCIES else f"extra {extra!r}"
            if name == "w2reg":
                continue
            low = re.search(r">=([A-Za-z0-9.]+)", spec)
            if not low:
                problems.append(f"{where}: {req!r} has no lower bound (>=)")
            elif min_reqs is not None and not _same(min_reqs.get(name), low.group(1)):
                problems.append(
                    f"{MIN_ENV} must pin {name}=={low.group(1)} (the lower bound of {req!r} in "
                    f"{where}); tox.ini has {min_reqs.get(name) or 'nothing'}"
                )
            if Requirement is None:
                continue
            r = Requirement(req)
            for env in tox.envs():
                version = env_pins(tox, env).get(name)
                if version and not r.specifier.contains(version, prereleases=True):
                    if (env, name) not in allowed:
                        problems.append(
                            f"{env} pins {name}=={version}, outside {req!r} ({where}); "
                            "widen the range or list it in [matrix] outside_range"
                        )
    problems += check_pythons(tox)
    return [p for p in problems if not p.startswith("note:")] + [
        p for p in problems if p.startswith("note:")
    ]


def _version_key(v: str) -> tuple[int, ...]:
    return tuple(int(p) for p in v.split("."))


def check_pythons(tox: ToxIni) -> list[str]:
    """Problems with the declared Python range against the envs' ``base_python``."""
    requires, named = _pythons()
    low = re.search(r">=\s*(3\.\d+)", requires)
    used = {env: _python(tox, env) for env in tox.envs()}
    problems = []
    if not low:
        return [f"requires-python {requires!r} has no lower bound (>=3.x)"]
    if not named:
        problems.append(
            "pyproject.toml names no 'Programming Language :: Python :: 3.x' classifier"
        )
    elif named[0] != low.group(1):
        problems.append(f"the lowest Python classifier is {named[0]}, requires-python {requires!r}")
    if MIN_ENV in used and used[MIN_ENV] != low.group(1):
        problems.append(
            f"{MIN_ENV} runs Python {used[MIN_ENV]}, not the lowest that requires-python "
            f"{requires!r} allows ({low.group(1)})"
        )
    known = [v for v in used.values() if re.fullmatch(r"3\.\d+", v)]
    if named and named[-1] not in known:
        problems.append(
            f"no env runs Python {named[-1]}, the highest the classifiers name (envs: "
            f"{sorted(set(known), key=_version_key)})"
        )
    for env, version in used.items():
        if named and version in known and version not in named:
            problems.append(f"{env} runs Python {version}, which the classifiers do not name")
    return problems


def _write(path: Path, tox: ToxIni) -> None:
    """Regenerate the marked section of ``path`` in its form (full or compact), in place.

    A file without markers gets a new page holding the full table.
    """
    text = path.read_text() if path.exists() else ""
    m = _START.search(text)
    if m is not None and END in text[m.end() :]:
        compact, old = _section(text, str(path))
        path.write_text(text.replace(old, block(tox, compact), 1))
        return
    path.write_text(
        "# Compatibility matrix\n\nGenerated from tox.ini by `python tools/matrix_table.py "
        f"--write {path}`.\n\n" + block(tox) + "\n"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tox-ini", type=Path, default=ROOT / "tox.ini")
    ap.add_argument(
        "--write", type=Path, nargs="*", help="files whose marked table is regenerated in place"
    )
    ap.add_argument("--check", type=Path, nargs="*", help="files whose marked table must match")
    ap.add_argument("--compact", action="store_true", help="print the README's compact table")
    args = ap.parse_args(argv)
    tox = ToxIni(args.tox_ini)
    for path in args.write or []:
        _write(path, tox)
        print(f"wrote {path}")
    if args.check is None:
        if not args.write:
            print(block(tox, args.compact))
        return 0
    status = 0
    for path in args.check:
        compact, got = _section(path.read_text(), str(path))
        want = block(tox, compact)
        if got.strip() != want.strip():
            status = 1
            print(
                f"{path}: compatibility table differs from tox.ini; regenerate it with "
                f"`python tools/matrix_table.py --write {path}`:"
            )
            sys.stdout.writelines(
                difflib.unified_diff(
                    got.splitlines(True), want.splitlines(True), str(path), "tox.ini"
                )
            )
            print()
    for problem in check_extras(tox):
        print(problem)
        if not problem.startswith("note:"):
            status = 1
    if status == 0:
        print("compatibility table and extras match tox.ini")
    return status


if __name__ == "__main__":
    sys.exit(main())
