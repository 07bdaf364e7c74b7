"""The command line checks every argument before any work, and guards the full store and the site."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import untrainable.experiments
from untrainable import reproduce as R
from untrainable.experiments import PlannedRun
from untrainable.results import TRAIN_MISSING_ENV


@pytest.fixture
def no_work(monkeypatch):
    """Fail the test if a notebook would be executed or the book built; return the calls made."""
    calls: list[tuple] = []

    def execute(source, target, profile, *args, **kwargs):
        calls.append(("execute", source.name, profile))
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(executed_notebook()))
        return R.NotebookRun(source.name, 0.0)

    monkeypatch.setattr(R, "execute_notebook", execute)
    monkeypatch.setattr(R, "build_book", lambda profile, html_out=None: calls.append(("book", profile)) or Path("."))
    return calls


def executed_notebook(ran: bool = True) -> dict:
    cell = {"cell_type": "code", "execution_count": 1 if ran else None, "source": "1", "outputs": [], "metadata": {}}
    return {"cells": [cell], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


@pytest.fixture
def book_root(tmp_path, monkeypatch):
    """A repository with three chapter notebooks and nothing executed."""
    monkeypatch.setenv("UNTRAINABLE_ROOT", str(tmp_path))
    for name in ("01_first.ipynb", "02_second.ipynb", "90_appendix.ipynb"):
        path = tmp_path / "notebooks" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(executed_notebook(ran=False)))
    return tmp_path


@pytest.mark.parametrize("device", ["gpu", "cuda:x", "cpu0", ""])
def test_unknown_device_is_an_error(run_cli, no_work, device):
    status, out = run_cli("reproduce", "--device", device)
    assert status == 2 and "unknown device" in out and no_work == []


def test_an_absent_accelerator_stops_before_any_work(run_cli, no_work, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    status, out = run_cli("reproduce", "--profile", "quick", "--device", "cuda:1")
    assert status == 2 and "0 CUDA device" in out and no_work == []


def test_good_arguments_reach_reproduce(monkeypatch, run_cli):
    seen = {}
    monkeypatch.setattr(R, "reproduce", lambda profile, **kw: seen.update(profile=profile, **kw))
    status, _ = run_cli("reproduce", "--profile", "quick", "--only", "01, 04", "--device", "CPU",
                        "--seeds", f"0,7,{2**31 - 1}")
    assert status == 0
    assert seen["only"] == ["01", "04"] and seen["device"] == "cpu" and seen["seeds"] == [0, 7, 2**31 - 1]
    assert seen["train_missing"] is False and seen["force"] is False


def test_only_matching_no_notebook_is_an_error(run_cli, book_root, no_work):
    status, out = run_cli("reproduce", "--profile", "quick", "--only", "07")
    assert status == 1 and "--only 07 matches no notebook" in out and no_work == []


# ----------------------------------------------------------------------------- the book


def test_a_failed_notebook_counts_as_not_executed(book_root):
    executed = book_root / "_build" / "executed" / "quick"
    executed.mkdir(parents=True)
    failed = executed_notebook()
    failed["metadata"]["papermill"] = {"exception": True}
    for name in ("01_first.ipynb", "02_second.ipynb", "90_appendix.ipynb"):
        (executed / name).write_text(json.dumps(failed if name.startswith("02") else executed_notebook()))
    assert R.unexecuted("quick") == ["02_second.ipynb"]


def test_reproduce_with_only_skips_the_book_until_every_notebook_ran(run_cli, book_root, no_work):
    status, out = run_cli("reproduce", "--profile", "quick", "--only", "01")
    assert status == 0 and ("execute", "01_first.ipynb", "quick") in no_work
    assert "book not built" in out and "02_second.ipynb" in out
    assert not any(call[0] == "book" for call in no_work)


# ----------------------------------------------------------------------------- the guarded full store


@pytest.fixture
def two_missing(monkeypatch):
    asked = []

    def missing(profile, prefixes=None):
        asked.append((profile, prefixes))
        return [PlannedRun("inductive_bias", "fcn", None, 1), PlannedRun("representations", "cnn", None, 2)]

    monkeypatch.setattr(untrainable.experiments, "missing_records", missing)
    monkeypatch.setenv(TRAIN_MISSING_ENV, "")  # recorded, so whatever reproduce sets is undone afterwards
    monkeypatch.delenv(TRAIN_MISSING_ENV)
    return asked


def test_full_with_missing_records_lists_them_and_runs_nothing(run_cli, book_root, no_work, two_missing):
    status, out = run_cli("reproduce", "--profile", "full")
    assert status == 1
    assert "inductive_bias/fcn/seed 1" in out and "representations/cnn/seed 2" in out
    assert "--train-missing" in out and "--force" in out
    assert two_missing == [("full", ["01", "02"])]  # the chapters of the chosen notebooks (90 has none)
    assert no_work == []


def test_train_missing_lets_the_kernels_train(run_cli, book_root, no_work, two_missing):
    import os

    status, _ = run_cli("reproduce", "--profile", "full", "--train-missing", "--no-book")
    assert status == 0 and os.environ.get(TRAIN_MISSING_ENV) == "1"
    assert [c[1] for c in no_work] == ["01_first.ipynb", "02_second.ipynb", "90_appendix.ipynb"]


def test_force_and_other_profiles_skip_the_check(run_cli, book_root, no_work, two_missing):
    assert run_cli("reproduce", "--profile", "full", "--force", "--no-book")[0] == 0
    assert run_cli("reproduce", "--profile", "quick", "--no-book")[0] == 0
    assert two_missing == [] and len(no_work) == 6


def test_full_with_every_record_stored_runs(run_cli, book_root, no_work, monkeypatch):
    monkeypatch.setattr(untrainable.experiments, "missing_records", lambda profile, prefixes=None: [])
    assert run_cli("reproduce", "--profile", "full", "--only", "02", "--no-book")[0] == 0
    assert no_work == [("execute", "02_second.ipynb", "full")]


def test_data_with_an_unknown_name_does_nothing(run_cli):
    status, out = run_cli("data", "download", "cifar10", "imagenet")
    assert status == 2 and "'imagenet'" in out
