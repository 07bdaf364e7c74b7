"""Where the project reads data and writes results.

Every location can be overridden by an environment variable, so tests, CI and readers on other
machines never have to edit code:

* ``UNTRAINABLE_ROOT``: the repository root (default: found from the installed package, else cwd).
* ``UNTRAINABLE_DATA``: the dataset root (default: ``<root>/../shared/data`` when it exists,
  else ``<root>/data``).
* ``UNTRAINABLE_RESULTS``: the results store (default: ``<root>/results``).
* ``UNTRAINABLE_CACHE``: checkpoints and derived caches (default: ``<root>/data/cache``).
"""

from __future__ import annotations

import os
from pathlib import Path


def repo_root() -> Path:
    """The repository root: the folder holding ``pyproject.toml`` above this package, else cwd."""
    if env := os.environ.get("UNTRAINABLE_ROOT"):
        return Path(env).resolve()
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "pyproject.toml").is_file() and (parent / "src" / "untrainable").is_dir():
            return parent
    return Path.cwd().resolve()


def data_root() -> Path:
    """The dataset root, in the order ``UNTRAINABLE_DATA``, ``../shared/data``, ``data/``."""
    if env := os.environ.get("UNTRAINABLE_DATA"):
        return Path(env).expanduser().resolve()
    shared = repo_root().parent / "shared" / "data"
    if shared.is_dir():
        return shared.resolve()
    return repo_root() / "data"


def describe_data_root() -> str:
    """Which rule chose the dataset root, without naming this machine's folders (pages print it)."""
    if os.environ.get("UNTRAINABLE_DATA"):
        return "the folder UNTRAINABLE_DATA names"
    if (repo_root().parent / "shared" / "data").is_dir():
        return "../shared/data (beside the repository)"
    return "data/ (inside the repository)"


def results_root() -> Path:
    """The results store: JSON records under ``<results>/<profile>/<experiment>/``."""
    if env := os.environ.get("UNTRAINABLE_RESULTS"):
        return Path(env).expanduser().resolve()
    return repo_root() / "results"


def cache_root() -> Path:
    """Checkpoints, extracted archives and cached guides: large, never committed."""
    if env := os.environ.get("UNTRAINABLE_CACHE"):
        return Path(env).expanduser().resolve()
    return repo_root() / "data" / "cache"
