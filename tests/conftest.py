"""Shared test setup: deterministic seeds, small thread count on the 2-core CI machine."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
