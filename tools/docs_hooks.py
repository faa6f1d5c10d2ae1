"""MkDocs hooks of the documentation site (mkdocs.yml: ``hooks: [tools/docs_hooks.py]``).

* The home page is README.md itself, not a copy: it is added to the site as ``index.md``,
  with its links rewritten for the site (``docs/core.md`` -> ``core.md``).
* Files of the repository outside ``docs/`` that README.md or a page links to (a figure
  under ``benchmarks/results/``, a script) are added to the site under ``repo/`` and the
  links pointed there, so every relative link is checked by ``mkdocs build --strict`` and
  works on the site as it does on the repository's web page. A link to a file that does not
  exist is left alone, and the strict build fails on it.
* The API reference reads the sources in ``src/`` (laid out as installed: ``src/w2reg``,
  ``src/w2reg/adapters``). Nothing is imported: lightly, solo-learn and Lightning need not
  be installed to build the site.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path
from typing import Any

from mkdocs.plugins import event_priority
from mkdocs.structure.files import File, Files, InclusionLevel

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
README = ROOT / "README.md"
REPO_PREFIX = "repo"

# [text](target "title") and ![alt](target); targets without spaces
_LINK = re.compile(r"(!?\[[^\]\n]*\])\(([^()\s]+)((?:\s+\"[^\"]*\")?)\)")


def _outside_fences(text: str, fn: Any) -> str:
    """Apply ``fn`` to the parts of Markdown ``text`` outside fenced code blocks."""
    parts = re.split(r"(^(?:```|~~~).*?^(?:```|~~~)[^\n]*$)", text, flags=re.M | re.S)
    return "".join(p if i % 2 else fn(p) for i, p in enumerate(parts))


def _repo_target(target: str, source_dir: Path) -> tuple[Path, str] | None:
    """(file in the repository, #fragment) that a relative link from ``source_dir`` names."""
    if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith(("#", "/")):
        return None
    path, _, fragment = target.partition("#")
    resolved = (source_dir / path).resolve()
    try:
        resolved.relative_to(ROOT)
    except ValueError:
        return None
    return resolved, f"#{fragment}" if fragment else ""


def rewrite_links(text: str, source_dir: Path, page_dir: str) -> str:
    """Links of Markdown written in ``source_dir`` as links of a site page in ``page_dir``.

    ``page_dir`` is the page's folder inside the site (``""`` for the home page).
    """

    def link(m: re.Match[str]) -> str:
        found = _repo_target(m.group(2), source_dir)
        if found is None or not found[0].exists():
            return m.group(0)
        path, fragment = found
        try:
            site_path = path.relative_to(DOCS).as_posix()
        except ValueError:
            site_path = f"{REPO_PREFIX}/{path.relative_to(ROOT).as_posix()}"
        new = posixpath.relpath(site_path, page_dir or ".") + fragment
        return f"{m.group(1)}({new}{m.group(3)})"

    return _outside_fences(text, lambda part: _LINK.sub(link, part))


def _linked_repo_files() -> set[Path]:
    """Files outside docs/ linked from README.md, a page of docs/, or such a linked page."""
    found: set[Path] = set()
    todo = [README, *DOCS.rglob("*.md")]
    while todo:
        md = todo.pop()
        text = _outside_fences(md.read_text(encoding="utf-8"), lambda p: p)
        for m in _LINK.finditer(text):
            target = _repo_target(m.group(2), md.parent)
            if not target or not target[0].is_file() or DOCS in target[0].parents:
                continue
            path = target[0]
            if path != README and path not in found:
                found.add(path)
                if path.suffix == ".md":
                    todo.append(path)
    return found


@event_priority(100)  # before mkdocstrings' own on_config, which creates the handler
def on_config(config: Any) -> Any:
    handlers = config.plugins["mkdocstrings"].config.handlers
    handlers.setdefault("python", {})["paths"] = [str(ROOT / "src")]
    return config


def on_files(files: Files, config: Any) -> Files:
    home = rewrite_links(README.read_text(encoding="utf-8"), ROOT, "")
    files.append(File.generated(config, "index.md", content=home))
    for path in sorted(_linked_repo_files()):
        rel = path.relative_to(ROOT).as_posix()
        # a linked Markdown file (a results table) becomes a page outside the nav
        files.append(
            File.generated(
                config,
                f"{REPO_PREFIX}/{rel}",
                abs_src_path=str(path),
                inclusion=InclusionLevel.NOT_IN_NAV,
            )
        )
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Files) -> str:
    uri = page.file.src_uri
    if uri == "index.md":
        return markdown  # README.md, rewritten in on_files
    if uri.startswith(REPO_PREFIX + "/"):  # a Markdown file of the repository, linked
        source = ROOT / uri.removeprefix(REPO_PREFIX + "/")
    else:
        source = DOCS / uri
    return rewrite_links(markdown, source.parent, posixpath.dirname(uri))
