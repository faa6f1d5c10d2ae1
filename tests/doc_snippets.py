"""The code blocks of README.md and docs/, found and run the way the docs tests need them.

The convention (docs/development.md, "The documentation's code runs"):

* every fenced ```` ```python ```` block at the start of a line is run by the tests;
* a block whose first line is ``# not run in CI: needs <what>`` (a GPU, a download, hours) is
  not, and says so to the reader;
* the blocks of one page that need the same libraries run in order in one namespace, so a
  later block may use what an earlier one defined (a class, then its training);
* which libraries a block needs is read from its imports: stable-pretraining
  (``stable_pretraining``, ``w2reg.adapters.spt``) -> ``tests/test_spt_docs.py`` in the
  stable-pretraining envs; solo-learn (``solo``,
  ``w2reg.adapters.solo*``) -> ``tests/test_solo_docs.py`` in the solo-learn envs; timm ->
  ``tests/test_timm_docs.py`` in the envs that require timm (lightly-newest); lightly,
  Lightning, torchvision or another adapter -> ``tests/test_lightly_docs.py`` in the lightly
  envs; the rest (torch and ``w2reg``) -> ``tests/test_docs_snippets.py`` in every env that
  runs the core tests.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
NOT_RUN = re.compile(r"^# not run in CI: (.+)$")
_FENCE = re.compile(r"^(```|~~~)\s*([\w+-]*)[^\n]*$")

#: snippet group -> the modules (prefixes) whose import puts a block in it, checked in order
GROUPS: dict[str, tuple[str, ...]] = {
    "spt": ("stable_pretraining", "w2reg.adapters.spt"),
    "solo": ("solo", "w2reg.adapters.solo"),
    "timm": ("timm",),
    "lightly": ("lightly", "lightning", "pytorch_lightning", "torchvision", "w2reg.adapters"),
}
#: adapter modules that import no framework: a block using only these is a core block
FRAMEWORK_FREE = ("w2reg.adapters.head", "w2reg.adapters.defaults", "w2reg.adapters.spt_weights")


def doc_files() -> list[Path]:
    """README.md and every Markdown page of docs/."""
    return [README, *sorted(DOCS.rglob("*.md"))]


def rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


@dataclass(frozen=True)
class Block:
    """One fenced code block of a Markdown file."""

    path: Path
    line: int  # line of the first code line, 1-based
    lang: str
    code: str

    @property
    def where(self) -> str:
        return f"{rel(self.path)}:{self.line}"

    @property
    def not_run(self) -> str | None:
        """The reason given by a ``# not run in CI: ...`` first line, else None."""
        first = self.code.splitlines()[0] if self.code.strip() else ""
        m = NOT_RUN.match(first)
        return m.group(1) if m else None

    @property
    def group(self) -> str:
        return group_of(self.code)


def blocks(path: Path, lang: str | None = None) -> list[Block]:
    """The fenced blocks of ``path`` that start at the beginning of a line (of ``lang``)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    out: list[Block] = []
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, kind = m.group(1), m.group(2)
        start = i + 1
        i = start
        while i < len(lines) and not lines[i].startswith(fence):
            i += 1
        if lang is None or kind == lang:
            out.append(Block(path, start + 1, kind, "\n".join(lines[start:i]) + "\n"))
        i += 1
    return out


def imported_modules(code: str) -> set[str]:
    """Names of the modules ``code`` imports (``import a.b`` and ``from a.b import c``)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


def group_of(code: str) -> str:
    """The group a block needs, by its imports: a key of :data:`GROUPS`, or ``"core"``."""
    modules = {m for m in imported_modules(code) if m not in FRAMEWORK_FREE}
    for name, prefixes in GROUPS.items():
        if any(m == p or m.startswith(p + ".") for m in modules for p in prefixes):
            return name
    return "core"


def pages(group: str) -> Iterator[tuple[Path, list[Block]]]:
    """Each file with the runnable Python blocks of ``group``, in page order."""
    for path in doc_files():
        runnable = [b for b in blocks(path, "python") if b.not_run is None and b.group == group]
        if runnable:
            yield path, runnable


def parametrize_pages(group: str) -> Any:
    """``pytest.mark.parametrize("path,page_blocks", ...)`` over :func:`pages` of ``group``."""
    import pytest

    found = list(pages(group))
    ids = [rel(path) for path, _ in found]
    return pytest.mark.parametrize("path,page_blocks", found, ids=ids)


def page_names(group: str) -> set[str]:
    """The files (relative paths) that have runnable blocks of ``group``."""
    return {rel(path) for path, _ in pages(group)}


def run_page(path: Path, page_blocks: list[Block]) -> dict[str, object]:
    """Run the blocks in one namespace; a failure's traceback names the Markdown line."""
    namespace: dict[str, object] = {"__name__": f"doc_snippets_{path.stem.replace('-', '_')}"}
    for block in page_blocks:
        source = "\n" * (block.line - 1) + block.code  # line numbers of the Markdown file
        exec(compile(source, str(block.path), "exec"), namespace)  # noqa: S102
    return namespace
