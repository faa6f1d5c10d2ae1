"""The Python blocks of README.md and docs/ that import timm run (docs/core.md's ViT head).

Owned by the ``timm`` requirement (lightly-newest), where a skip here fails the env; elsewhere
it skips: lightly-oldest and the solo-learn envs have no timm, or one too old for these names.
The convention: tests/doc_snippets.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("timm", reason="the timm snippets need timm")

from doc_snippets import page_names, parametrize_pages, run_page  # noqa: E402


def test_the_pages_with_timm_snippets() -> None:
    assert page_names("timm") >= {"docs/core.md"}


@parametrize_pages("timm")
def test_timm_snippets_run(path: Path, page_blocks, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    run_page(path, page_blocks)
