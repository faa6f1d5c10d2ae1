"""A griffe extension for the documentation site: the docstrings' reST markup as Markdown.

w2reg's docstrings are written to read well in ``help()`` and use a few reST constructs;
mkdocstrings renders docstrings as Markdown. At build time (never in the installed package)
this extension rewrites, in every docstring of the loaded package:

* roles (``:func:`w2reg.w2_uniformity```, ``:class:`~w2reg.Schedule```, ``:data:`METHODS```)
  into cross-references (``[`w2_uniformity`][w2reg.w2_uniformity]``), resolved in the scope
  of the documented object, so that ``mkdocs build --strict`` fails on a reference to
  something that does not exist. Targets in private modules (a ``_name`` part) and outside
  w2reg (torch, lightly, solo-learn) stay plain code;
* Google-style argument lines that document several parameters at once (``z1, z2: ...``)
  into one line per parameter, as griffe's parser wants them;
* ``.. math::`` directives into code blocks holding the formula;
* doctest examples (``>>>`` and their output) into ``pycon`` code blocks;
* a paragraph ending in ``::`` (a literal block follows) into one ending in ``:``;
* reST simple tables (``====  ====`` borders) into Markdown tables.

Used by mkdocs.yml (``extensions: [tools/docs_griffe.py:RestToMarkdown]``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import griffe

_ROLE = re.compile(r":(?:py:)?(func|class|mod|data|attr|meth|obj|exc|const):`(~?)([\w.]+)`")
_MATH = re.compile(r"^(?P<indent>[ \t]*)\.\. math::[ \t]*(?P<first>.*)$")
_OWN = "w2reg"
#: Top-level packages a role may name without a w2reg path; never resolved in w2reg's scope
#: (``:mod:`lightly``` inside ``w2reg.adapters`` means lightly, not ``w2reg.adapters.lightly``).
_EXTERNAL = set(
    "hydra lightly lightning matplotlib numpy omegaconf pytorch_lightning scipy solo torch "
    "torchvision".split()
)


def _private(path: str) -> bool:
    return any(p.startswith("_") and not p.startswith("__") for p in path.split("."))


def _target(obj: griffe.Object, name: str) -> str | None:
    """The full path ``name`` stands for in ``obj``'s scope, or None if not w2reg's own."""
    if name.split(".")[0] == _OWN:
        return name
    if name.split(".")[0] in _EXTERNAL:
        return None
    head, _, rest = name.partition(".")
    scopes = [obj] if isinstance(obj, griffe.Module) else [obj, obj.parent]
    for scope in scopes:
        if scope is None:
            continue
        try:
            full = scope.resolve(head)
        except (griffe.NameResolutionError, AttributeError):
            continue
        return f"{full}.{rest}" if rest else full
    return None


def _roles(text: str, obj: griffe.Object) -> str:
    def sub(m: re.Match[str]) -> str:
        short, name = m.group(2), m.group(3)
        display = name.rsplit(".", 1)[-1] if short else name
        target = _target(obj, name)
        if target is None or not target.startswith(_OWN + ".") or _private(target):
            return f"`{display}`"
        return f"[`{display}`][{target}]"

    return _ROLE.sub(sub, text)


#: ``block(lines, i) -> (end, replacement)`` for a construct starting at line ``i``, else None
Block = Callable[[list[str], int], tuple[int, list[str]] | None]


def _replace_blocks(text: str, block: Block) -> str:
    """``text`` with every line range that ``block`` recognises replaced by its rendering."""
    lines = text.splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        found = block(lines, i)
        if found is None:
            out.append(lines[i])
            i += 1
        else:
            i, replacement = found
            out += replacement
    return "\n".join(out)


def _math_block(lines: list[str], i: int) -> tuple[int, list[str]] | None:
    """``.. math::`` (inline first line and/or an indented body) -> a fenced code block."""
    m = _MATH.match(lines[i])
    if not m:
        return None
    indent = m.group("indent")
    body = [m.group("first").strip()] if m.group("first").strip() else []
    i += 1
    while i < len(lines) and (
        not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > len(indent)
    ):
        body.append(lines[i].strip())
        i += 1
    while body and not body[-1]:
        body.pop()
    while body and not body[0]:
        body.pop(0)
    return i, [f"{indent}```text", *[f"{indent}{b}" for b in body], f"{indent}```", ""]


_PROMPT = re.compile(r"^(?P<indent>[ \t]*)>>>(?: |$)")


def _doctest_block(lines: list[str], i: int) -> tuple[int, list[str]] | None:
    """A doctest example (``>>>`` lines and their output, up to a blank or dedented line)
    -> a fenced ``pycon`` block: as plain Markdown, ``>>>`` would nest blockquotes."""
    m = _PROMPT.match(lines[i])
    if not m:
        return None
    indent = m.group("indent")
    j = i + 1
    while j < len(lines) and lines[j].strip() and lines[j].startswith(indent):
        j += 1
    body = [line[len(indent) :] for line in lines[i:j]]
    return j, [f"{indent}```pycon", *[f"{indent}{b}" for b in body], f"{indent}```"]


_BORDER = re.compile(r"^([ \t]*)=+(?:[ \t]+=+)+[ \t]*$")


def _table(lines: list[str], indent: str) -> list[str]:
    """A reST simple table (its lines, borders included) as Markdown table lines."""
    border = lines[0]
    spans = [(m.start(), m.end()) for m in re.finditer(r"=+", border)]

    def cells(line: str) -> list[str]:
        bounds = [*(start for start, _ in spans[1:]), None]
        return [line[s:e].strip() for (s, _), e in zip(spans, bounds, strict=True)]

    rows: list[list[str]] = []
    for line in lines[1:]:
        if _BORDER.match(line) or not line.strip():
            continue
        row = cells(line.ljust(len(border)))
        if rows and not row[0]:  # a continuation line: the first column is empty
            rows[-1] = [f"{a} {b}".strip() for a, b in zip(rows[-1], row, strict=True)]
        else:
            rows.append(row)
    head, body = rows[0], rows[1:]
    out = [f"{indent}| " + " | ".join(head) + " |", f"{indent}|" + " --- |" * len(head)]
    return out + [f"{indent}| " + " | ".join(r) + " |" for r in body]


def _table_block(lines: list[str], i: int) -> tuple[int, list[str]] | None:
    """A reST simple table (three borders: top, under the header, bottom) -> Markdown."""
    m = _BORDER.match(lines[i])
    if not m:
        return None
    borders, j = [i], i + 1
    while j < len(lines) and len(borders) < 3:
        if _BORDER.match(lines[j]):
            borders.append(j)
        j += 1
    if len(borders) < 3:
        return None
    return j, ["", *_table(lines[i:j], m.group(1)), ""]


def _literal_blocks(text: str) -> str:
    """``Usage::`` -> ``Usage:`` (the indented block after it renders as code already)."""
    return re.sub(r"(?m)(\S)::[ \t]*$", r"\1:", re.sub(r"(?m)^([ \t]*)::[ \t]*$", "", text))


def _shared_arguments(text: str) -> str:
    """``    a, b: text`` in an ``Args:`` section -> ``    a: text`` and ``    b: the same.``"""

    def split(m: re.Match[str]) -> str:
        indent, names, rest = m.group(1), [n.strip() for n in m.group(2).split(",")], m.group(3)
        first = f"{indent}{names[0]}: {rest}"
        others = [f"{indent}{n}: as ``{names[0]}``." for n in names[1:]]
        return "\n".join([first, *others])

    return re.sub(r"(?m)^([ \t]+)(\w+(?:,\s*\w+)+):[ \t]+(.*)$", split, text)


def convert(text: str, obj: griffe.Object) -> str:
    text = _replace_blocks(_replace_blocks(_roles(text, obj), _math_block), _table_block)
    text = _replace_blocks(text, _doctest_block)
    return _shared_arguments(_literal_blocks(text))


class RestToMarkdown(griffe.Extension):
    """Rewrite every docstring of a loaded package (see the module docstring)."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        self._walk(pkg, set())

    def _walk(self, obj: griffe.Object, seen: set[str]) -> None:
        if obj.path in seen:
            return
        seen.add(obj.path)
        if obj.docstring is not None:
            obj.docstring.value = convert(obj.docstring.value, obj)
        for member in obj.members.values():
            if not member.is_alias:
                self._walk(member, seen)
