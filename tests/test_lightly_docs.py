"""The Python blocks of README.md and docs/ that need lightly, Lightning or torchvision run.

Collected in the lightly envs (``test_lightly_*.py``), where W2REG_REQUIRE=lightly makes a
skip here fail the env; elsewhere it skips. The convention: tests/doc_snippets.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("lightly", reason="the lightly snippets need lightly")
pytest.importorskip("lightning.pytorch", reason="the lightly snippets use lightning.pytorch")
pytest.importorskip("torchvision", reason="the lightly snippets need torchvision")

from doc_snippets import page_names, parametrize_pages, run_page  # noqa: E402


def test_the_pages_with_lightly_snippets() -> None:
    assert page_names("lightly") >= {"README.md", "docs/lightly.md", "docs/monitoring.md"}


@parametrize_pages("lightly")
def test_lightly_snippets_run(path: Path, page_blocks, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    run_page(path, page_blocks)
