"""Shared fixtures: every test writes records and caches into its own temporary folders."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def isolated_store(tmp_path, monkeypatch):
    """Records and checkpoints go to temporary folders; progress bars are off."""
    monkeypatch.setenv("UNTRAINABLE_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("UNTRAINABLE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("UNTRAINABLE_PROGRESS", "0")
    return tmp_path
