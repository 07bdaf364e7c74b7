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


@pytest.fixture
def committed_store(monkeypatch):
    """The repository's committed records instead of the test's empty store."""
    from untrainable.paths import results_root

    monkeypatch.delenv("UNTRAINABLE_RESULTS", raising=False)
    assert (results_root() / "full").is_dir(), "the committed full records are missing"


@pytest.fixture
def run_cli(capsys):
    """Run the command line in-process: ``run_cli("reproduce", "--only", "01") -> (exit status, output)``."""
    from untrainable import cli

    def run(*argv: str) -> tuple[int, str]:
        try:
            status = cli.main(list(argv))
        except SystemExit as exit_:
            status = exit_.code
        out = capsys.readouterr()
        return status, out.out + out.err

    return run
