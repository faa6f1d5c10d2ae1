"""The checks that keep the tables, the declared ranges and the tested envs in step.

* a file's marked table is the one tox.ini generates (:func:`drift`);
* the ``py310-min`` env pins exactly the lower bound of every requirement in pyproject.toml's
  dependencies (torch) and its ``lightly``, ``solo`` and ``test`` extras, and runs the lowest
  Python that ``requires-python`` allows (so the declared lower bounds are the ones that ran),
  and every such requirement has a lower bound;
* some env runs the highest Python the classifiers name, and every env's Python is inside
  ``requires-python`` and the classifiers;
* every version an env pins for a package named there lies inside the declared range, unless
  ``[matrix] outside_range`` in tox.ini lists it (a documented exception).

Problems are returned as lines; a line starting with ``note:`` is not a failure.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path

from .reader import (
    CHECKED_EXTRAS,
    DEPENDENCIES,
    MIN_ENV,
    REQ,
    Project,
    ToxIni,
    canonical,
    dependencies,
    env_pins,
    env_python,
    env_requirements,
    extras,
    pythons,
    version_key,
)
from .renderer import block, section


def drift(path: Path, tox: ToxIni, project: Project) -> str | None:
    """How the marked table of ``path`` differs from the generated one (a unified diff with
    the command that regenerates it); ``None`` when it does not."""
    compact, got = section(path.read_text(), str(path))
    want = block(tox, project, compact)
    if got.strip() == want.strip():
        return None
    diff = difflib.unified_diff(got.splitlines(True), want.splitlines(True), str(path), "tox.ini")
    return (
        f"{path}: compatibility table differs from tox.ini; regenerate it with "
        f"`python tools/matrix_table.py --write {path}`:\n" + "".join(diff)
    )


def _same(pin: str | None, version: str) -> bool:
    """``pin`` is ``==version`` (``7`` and ``7.0.0`` are the same version)."""
    if not pin or not pin.startswith("==") or "," in pin:
        return False
    try:
        from packaging.version import Version
    except ImportError:  # pragma: no cover
        return pin[2:] == version
    return Version(pin[2:]) == Version(version)


def _allowed_outside(tox: ToxIni) -> set[tuple[str, str]]:
    """(env, canonical package) pairs of ``[matrix] outside_range``."""
    return {
        (env.strip(), canonical(pkg.strip()))
        for item in re.split(r"[\n,]", tox.raw("matrix", "outside_range") or "")
        if ":" in item
        for env, pkg in [item.split(":", 1)]
    }


def check_extras(tox: ToxIni, project: Project) -> list[str]:
    """Problems with the declared bounds against the min env's and the other envs' pins."""
    problems: list[str] = []
    min_reqs = env_requirements(tox, MIN_ENV) if MIN_ENV in tox.envs() else None
    allowed = _allowed_outside(tox)
    try:
        from packaging.requirements import Requirement
    except ImportError:  # pragma: no cover - tox always brings packaging
        Requirement = None  # noqa: N806
        problems.append("note: 'packaging' missing, range check skipped")
    declared = {DEPENDENCIES: dependencies(project), **extras(project)}
    for extra in (DEPENDENCIES, *CHECKED_EXTRAS):
        for req in declared.get(extra, []):
            m = REQ.match(req)
            if m is None:
                problems.append(f"{extra}: cannot read the requirement {req!r}")
                continue
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
    problems += check_pythons(tox, project)
    return [p for p in problems if not p.startswith("note:")] + [
        p for p in problems if p.startswith("note:")
    ]


def check_pythons(tox: ToxIni, project: Project) -> list[str]:
    """Problems with the declared Python range against the envs' ``base_python``."""
    requires, named = pythons(project)
    low = re.search(r">=\s*(3\.\d+)", requires)
    used = {env: env_python(tox, env) for env in tox.envs()}
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
            f"{sorted(set(known), key=version_key)})"
        )
    for env, version in used.items():
        if named and version in known and version not in named:
            problems.append(f"{env} runs Python {version}, which the classifiers do not name")
    return problems
