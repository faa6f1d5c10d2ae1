"""The Python blocks of README.md and docs/ that need solo-learn run (its Hydra/cfg API).

Collected in the solo-learn envs (``test_solo_*.py``; W2REG_REQUIRE=solo-cfg makes a skip here
fail the env, and the 1.0.2 env does not collect it); elsewhere it skips. The convention:
tests/doc_snippets.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("solo", reason="the solo-learn snippets need solo-learn")
ws = pytest.importorskip("w2reg.adapters.solo")
if ws.SOLO_API != "cfg":
    pytest.skip(
        f"the snippets are written for solo-learn's cfg API, not {ws.SOLO_VERSION}'s",
        allow_module_level=True,
    )

from doc_snippets import page_names, parametrize_pages, run_page  # noqa: E402


def test_the_pages_with_solo_snippets() -> None:
    assert page_names("solo") >= {"README.md", "docs/solo.md"}


@parametrize_pages("solo")
def test_solo_snippets_run(path: Path, page_blocks, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    run_page(path, page_blocks)
