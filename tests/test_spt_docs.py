"""The Python blocks of README.md and docs/ that need stable-pretraining run (docs/spt.md).

Collected in the stable-pretraining envs (``test_spt_*.py``, where W2REG_REQUIRE=spt makes a
skip here fail the env); elsewhere it skips. The convention: tests/doc_snippets.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("stable_pretraining", reason="the spt snippets need stable-pretraining")

from w2reg.adapters.spt import SPT_VERSION  # noqa: E402

if tuple(int(p) for p in SPT_VERSION.split(".")[:3]) < (0, 1, 8):
    pytest.skip(
        f"the snippets are written for stable-pretraining >= 0.1.8 (its forward functions "
        f"are spt.forward.simclr, ...), not {SPT_VERSION}",
        allow_module_level=True,
    )

from doc_snippets import page_names, parametrize_pages, run_page  # noqa: E402
from spt_fixture import quiet_spt  # noqa: E402, F401  (autouse: spt's cache in a temporary folder)


def test_the_pages_with_spt_snippets() -> None:
    assert page_names("spt") >= {"docs/spt.md"}


@parametrize_pages("spt")
def test_spt_snippets_run(path: Path, page_blocks, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    run_page(path, page_blocks)
