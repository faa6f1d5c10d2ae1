"""The README's compatibility table, generated from tox.ini, and the checks that keep them true.

    python tools/matrix_table.py                        # print the table (markdown)
    python tools/matrix_table.py --write docs/readme-matrix.md
    python tools/matrix_table.py --check README.md      # exit 1 if README's table drifted

The table sits between ``<!-- matrix:start -->`` and ``<!-- matrix:end -->``. ``--check`` also
verifies that

* the ``py311-min`` env pins exactly the lower bound of every requirement in the
  ``lightly``, ``solo`` and ``test`` extras of pyproject.toml (so the declared lower bounds
  are the ones that ran), and that every such requirement has a lower bound;
* every version an env pins for a package named in those extras lies inside the declared
  range, unless ``[matrix] outside_range`` in tox.ini lists it (a documented exception).

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
END = "<!-- matrix:end -->"
CHECKED_EXTRAS = ("lightly", "solo", "test")
MIN_ENV = "py311-min"

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


def solo_from_source(tox: ToxIni, env: str) -> bool:
    return any("install_solo_src" in line for line in tox.lines(env, "commands_pre"))


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
    ]
    main = {"torch", "torchvision", "numpy", "lightly", "lightning", "pytorch-lightning"}
    rows = [head, ["---"] * len(head)]
    for env in tox.envs():
        reqs = env_requirements(tox, env)
        solo = _cell(reqs, "solo-learn")
        if solo_from_source(tox, env):
            solo = "source: `$W2REG_SOLO_SRC` (default git main)"
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
            ]
        )
    lines = ["| " + " | ".join(r) + " |" for r in rows]
    notes = [
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


def _extras(pyproject: Path = ROOT / "pyproject.toml") -> dict[str, list[str]]:
    data = tomllib.loads(pyproject.read_text())
    return data["project"].get("optional-dependencies", {})


def _extras_line() -> str:
    extras = _extras()
    parts = [
        f"`{name}`: " + ", ".join(f"`{r}`" for r in extras.get(name, []))
        for name in CHECKED_EXTRAS
        if name in extras
    ]
    return "Declared ranges (pyproject.toml extras): " + "; ".join(parts) + "."


def block(tox: ToxIni) -> str:
    return f"{START}\n{table(tox)}\n{END}"


def _section(text: str, where: str) -> str:
    if START not in text or END not in text:
        raise SystemExit(f"{where}: no {START} ... {END} section")
    begin = text.index(START)
    end = text.index(END, begin) + len(END)
    return text[begin:end]


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
    """Problems with the extras' bounds against py311-min and the other envs' pins."""
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
    for extra in CHECKED_EXTRAS:
        for req in _extras().get(extra, []):
            m = _REQ.match(req)
            name, spec = canonical(m.group(1)), m.group(3).replace(" ", "")
            if name == "w2reg":
                continue
            low = re.search(r">=([A-Za-z0-9.]+)", spec)
            if not low:
                problems.append(f"extra {extra!r}: {req!r} has no lower bound (>=)")
            elif min_reqs is not None and not _same(min_reqs.get(name), low.group(1)):
                problems.append(
                    f"{MIN_ENV} must pin {name}=={low.group(1)} (the lower bound of {req!r} in "
                    f"extra {extra!r}); tox.ini has {min_reqs.get(name) or 'nothing'}"
                )
            if Requirement is None:
                continue
            r = Requirement(req)
            for env in tox.envs():
                version = env_pins(tox, env).get(name)
                if version and not r.specifier.contains(version, prereleases=True):
                    if (env, name) not in allowed:
                        problems.append(
                            f"{env} pins {name}=={version}, outside {req!r} (extra {extra!r}); "
                            "widen the extra or list it in [matrix] outside_range"
                        )
    return [p for p in problems if not p.startswith("note:")] + [
        p for p in problems if p.startswith("note:")
    ]


def _write(path: Path, want: str) -> None:
    """Replace the marked block of ``path`` in place; a file without markers gets a new page."""
    text = path.read_text() if path.exists() else ""
    if START in text and END in text:
        head, rest = text.split(START, 1)
        tail = rest.split(END, 1)[1]
        path.write_text(head + want.strip() + tail)
        return
    path.write_text(
        "# Compatibility matrix\n\nGenerated by `python tools/matrix_table.py --write "
        "docs/readme-matrix.md` from tox.ini; the README carries the same section, checked "
        "by `python tools/matrix_table.py --check README.md`.\n\n" + want + "\n"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tox-ini", type=Path, default=ROOT / "tox.ini")
    ap.add_argument("--write", type=Path, help="write the marked table to this file")
    ap.add_argument("--check", type=Path, nargs="*", help="files whose marked table must match")
    args = ap.parse_args(argv)
    tox = ToxIni(args.tox_ini)
    want = block(tox)
    if args.write:
        _write(args.write, want)
        print(f"wrote {args.write}")
    if args.check is None:
        if not args.write:
            print(want)
        return 0
    status = 0
    for path in args.check:
        got = _section(path.read_text(), str(path))
        if got.strip() != want.strip():
            status = 1
            print(
                f"{path}: compatibility table differs from tox.ini; regenerate with "
                f"`python tools/matrix_table.py --write docs/readme-matrix.md` and copy it:"
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
