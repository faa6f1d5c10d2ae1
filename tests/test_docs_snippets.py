"""README.md and docs/: the code runs, the commands name real scripts and flags, versions are true.

The Python blocks that need only torch and w2reg run here; those that need lightly or
solo-learn run in tests/test_lightly_docs.py and tests/test_solo_docs.py (the convention is in
tests/doc_snippets.py and docs/development.md).
"""

from __future__ import annotations

import ast
import re
import shlex
from pathlib import Path

from doc_snippets import (
    DOCS,
    README,
    ROOT,
    blocks,
    doc_files,
    page_names,
    parametrize_pages,
    rel,
    run_page,
)

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib


@parametrize_pages("core")
def test_core_snippets_run(path: Path, page_blocks, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    run_page(path, page_blocks)


def test_there_are_snippets_of_every_kind() -> None:
    """The grouping still finds the snippets each env is meant to run."""
    found = {b.group for p in doc_files() for b in blocks(p, "python") if b.not_run is None}
    assert found == {"core", "lightly", "solo", "spt", "timm"}, found
    assert page_names("core") >= {"README.md", "docs/core.md"}


def test_every_python_block_parses_and_every_skipped_one_says_why() -> None:
    for path in doc_files():
        for block in blocks(path, "python"):
            ast.parse(block.code, filename=block.where)
            reason = block.not_run
            assert reason is None or reason.startswith("needs "), (
                f"{block.where}: '# not run in CI: {reason}' must say what it needs "
                "('needs a GPU', 'needs a download', ...)"
            )


def test_no_code_block_is_hidden_in_an_indented_fence() -> None:
    """Indented fences (inside list items) would escape both the site and these tests."""
    for path in doc_files():
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            assert not re.match(r"^\s+(```|~~~)", line), f"{rel(path)}:{number}: indented fence"


# -- shell commands ------------------------------------------------------------------------------
_SCRIPT = re.compile(r"^(?:python3?|bash)\s+((?:examples|benchmarks|tools)/\S+)(.*)$")


def _commands(path: Path) -> list[tuple[str, str, str]]:
    """(where, script, arguments) of the ``python|bash <repo script>`` commands in bash blocks."""
    out = []
    for block in blocks(path, "bash"):
        text = re.sub(r"\\\n\s*", " ", block.code)
        for number, line in enumerate(text.splitlines()):
            line = re.sub(r"\s+#.*$", "", line)
            for part in re.split(r"&&|;|\|", line):
                words = part.strip().split()
                while words and re.match(r"^[A-Z_][A-Z0-9_]*=", words[0]):
                    words.pop(0)  # VAR=value before the command
                m = _SCRIPT.match(" ".join(words))
                if m:
                    out.append((f"{block.where}+{number}", m.group(1), m.group(2)))
    return out


def _flags(arguments: str) -> list[str]:
    flags = []
    for word in shlex.split(arguments):
        if word.startswith("--") and len(word) > 2:
            flags.append(word.split("=", 1)[0])
    return flags


def test_shell_commands_name_real_scripts_and_flags() -> None:
    commands = [c for p in doc_files() for c in _commands(p)]
    assert len(commands) >= 10, commands  # the parser still finds the commands
    for where, script, arguments in commands:
        path = ROOT / script
        assert path.is_file(), f"{where}: {script} does not exist"
        if path.suffix != ".py":
            continue
        sources = "".join(p.read_text(encoding="utf-8") for p in path.parent.glob("*.py"))
        for flag in _flags(arguments):
            names = {flag, "--" + flag[5:]} if flag.startswith("--no-") else {flag}
            assert any(f'"{n}"' in sources for n in names), f"{where}: {script} has no {flag}"


# -- versions --------------------------------------------------------------------------------
_AT_LEAST = re.compile(
    r"(?i)(?<![\w-])(python|torch|lightly|lightning)\s*(?:>=|≥)\s*(\d+(?:\.\d+)*)"
)


def _version(text: str) -> tuple[int, ...]:
    parts = [int(p) for p in text.split(".")]
    while parts and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


def _declared() -> dict[str, set[tuple[int, ...]]]:
    """Each name's lower bounds in pyproject: one per extra (lightning >= 2.0.8, spt's >= 2.4)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    python = re.search(r">=\s*([\d.]+)", project["requires-python"]).group(1)
    declared = {"python": {_version(python)}}
    requirements = [*project["dependencies"]]
    for reqs in project["optional-dependencies"].values():
        requirements += reqs
    for req in requirements:
        m = re.match(r"^([A-Za-z0-9_.-]+)\s*>=\s*([\d.]+)", req)
        if m:
            declared.setdefault(m.group(1).lower(), set()).add(_version(m.group(2)))
    return declared


def test_stated_lower_bounds_are_the_declared_ones() -> None:
    """'lightly >= X' and the like in the docs and the modules' docstrings: pyproject's."""
    declared = _declared()
    texts = {rel(p): p.read_text(encoding="utf-8") for p in doc_files()}
    package = ROOT / "src" / "w2reg"
    for module in sorted([*(package / "adapters").glob("*.py"), *package.glob("*.py")]):
        texts[rel(module)] = ast.get_docstring(ast.parse(module.read_text())) or ""
    found = 0
    for where, text in texts.items():
        for m in _AT_LEAST.finditer(text):
            name, version = m.group(1).lower(), m.group(2)
            found += 1
            assert _version(version) in declared[name], (
                f"{where}: '{m.group(0)}', but pyproject.toml declares {name} >= "
                + " / ".join(".".join(map(str, v)) for v in sorted(declared[name]))
            )
    assert found >= 5


def test_tested_versions_are_ones_ci_runs() -> None:
    """Every version in a 'tested with / on ...' statement is pinned by a tox env."""
    tox = (ROOT / "tox.ini").read_text()
    pinned = set(re.findall(r"==\s*(\d+(?:\.\d+)+)", tox))
    pinned |= set(re.findall(r"install_solo_src\.py[^\n]*\}\s+(?:main-)?([\w.]+)\s*$", tox, re.M))
    for path in doc_files():
        text = path.read_text(encoding="utf-8")
        for m in re.finditer(r"(?is)\btested (?:with|on|against) (.*?)(?:\.\s|[;:]|\n\n|$)", text):
            for version in re.findall(r"\b\d+\.\d+\.\d+\b", m.group(1)):
                assert version in pinned, f"{rel(path)}: '{m.group(0)}': {version} is in no env"


def test_not_claimed_to_be_on_pypi() -> None:
    """w2reg is not published: 'pip install w2reg' must come with 'once published'."""
    for path in doc_files():
        for paragraph in re.split(r"\n\s*\n", path.read_text(encoding="utf-8")):
            if re.search(r"pip install ['\"]?w2reg\b", paragraph):
                assert re.search(r"(?i)once (it is )?published|not on PyPI", paragraph), (
                    f"{rel(path)}: 'pip install w2reg' without saying it is not published "
                    f"yet:\n{paragraph}"
                )


# -- the README ------------------------------------------------------------------------------
def test_readme_is_short_and_its_first_screen_has_what_a_new_user_needs() -> None:
    text = README.read_text(encoding="utf-8")
    assert len(text) <= 10_500, f"README.md has {len(text)} characters (about 10,000 at most)"
    first_screen = "\n".join(text.splitlines()[:60])
    for needed in ('pip install -e ".[lightly', "examples/quickstart.py", "bash .ci/run"):
        assert needed in first_screen, needed
    assert "@w2_regularized" in first_screen  # lightly's one line
    assert "w2reg.adapters.solo.register()" in first_screen  # solo-learn's one line


def test_readme_example_count_is_true() -> None:
    """The docs say how many example scripts there are; count them."""
    scripts = sorted(p.name for p in (ROOT / "examples").glob("[!_]*.py"))
    text = (DOCS / "examples.md").read_text(encoding="utf-8")
    listed = set(re.findall(r"^\| `(\w+\.py)` \|", text, re.M))
    assert listed == set(scripts), (listed, scripts)


def test_the_api_reference_lists_every_public_name_of_w2reg() -> None:
    """docs/api/w2reg.md names w2reg's members one by one (for their order): all of them."""
    import w2reg

    page = (DOCS / "api" / "w2reg.md").read_text(encoding="utf-8")
    listed = set(re.findall(r"^ +- (\w+)$", page, re.M))
    assert set(w2reg.__all__) <= listed, sorted(set(w2reg.__all__) - listed)
