"""Reproduce every figure: execute the notebooks in reading order with papermill, then build the book.

Executed copies are kept under ``_build/executed/<profile>/`` and the book is built from a staged
copy of the sources in which each notebook is replaced by its executed copy, so the committed
notebooks stay free of outputs. The site lands in ``_build/html``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from untrainable.paths import repo_root
from untrainable.profiles import check_profile

BOOK_SOURCES = ("_config.yml", "_toc.yml", "book")


class ReproduceError(RuntimeError):
    """A notebook failed or the book did not build; the message names the notebook and cell."""


@dataclass(frozen=True)
class NotebookRun:
    """How long one notebook took to execute."""

    notebook: str
    seconds: float


def build_dir() -> Path:
    return repo_root() / "_build"


def notebooks(only: list[str] | None = None) -> list[Path]:
    """Chapter notebooks in reading order (``NN_name.ipynb``), optionally only the given prefixes."""
    found = sorted((repo_root() / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    if not only:
        return found
    wanted = [o.strip() for o in only if o.strip()]
    chosen = [nb for nb in found if any(nb.name.startswith(w) for w in wanted)]
    unknown = [w for w in wanted if not any(nb.name.startswith(w) for nb in found)]
    if unknown:
        names = ", ".join(nb.name for nb in found)
        raise ReproduceError(f"--only {','.join(unknown)} matches no notebook; the notebooks are: {names}")
    return chosen


def execute_notebook(source: Path, target: Path, profile: str, device: str = "auto", force: bool = False,
                     kernel: str = "python3", seeds: list[int] | None = None) -> NotebookRun:
    """Execute one notebook with papermill, injecting the run parameters; raise ReproduceError on failure."""
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    target.parent.mkdir(parents=True, exist_ok=True)
    params: dict = {"profile": profile, "device": device, "force": force}
    if seeds is not None:
        params["seeds"] = list(seeds)
    t0 = time.perf_counter()
    try:
        pm.execute_notebook(str(source), str(target), parameters=params, kernel_name=kernel,
                            cwd=str(source.parent), progress_bar=False, log_output=False)
    except PapermillExecutionError as err:
        raise ReproduceError(
            f"{source.name} failed in cell {err.cell_index} (execution count {err.exec_count}): "
            f"{err.ename}: {err.evalue}\n  the executed copy with the traceback is {target}"
        ) from None
    return NotebookRun(source.name, time.perf_counter() - t0)


def stage_book(executed: Path, stage: Path) -> Path:
    """Copy the book sources to ``stage``, with every notebook replaced by its executed copy when one exists."""
    root = repo_root()
    if stage.exists():
        shutil.rmtree(stage)
    stage.mkdir(parents=True)
    for name in BOOK_SOURCES:
        src = root / name
        if src.is_dir():
            shutil.copytree(src, stage / name)
        else:
            shutil.copy2(src, stage / name)
    (stage / "notebooks").mkdir()
    for nb in sorted((root / "notebooks").glob("*.ipynb")):
        done = executed / nb.name
        shutil.copy2(done if done.is_file() else nb, stage / "notebooks" / nb.name)
    return stage


def build_book(profile: str, html_out: Path | None = None) -> Path:
    """Build the book (warnings are errors) from the executed notebooks of ``profile``; return the html folder."""
    executed = build_dir() / "executed" / profile
    stage = stage_book(executed, build_dir() / "stage" / profile)
    cmd = [sys.executable, "-c", "from jupyter_book.cli.main import main; main()", "build", str(stage), "--builder", "html", "-W", "-n", "--keep-going"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-40:])
        raise ReproduceError(f"the book build failed (warnings count as errors):\n{tail}")
    html = html_out or build_dir() / "html"
    if html.exists():
        shutil.rmtree(html)
    shutil.copytree(stage / "_build" / "html", html)
    return html


def reproduce(profile: str = "full", only: list[str] | None = None, force: bool = False, device: str = "auto",
              book: bool = True, seeds: list[int] | None = None) -> list[NotebookRun]:
    """Execute the chosen notebooks in order (stopping at the first failure), then build the book."""
    check_profile(profile)
    runs = []
    for nb in notebooks(only):
        print(f"[reproduce] {nb.name} (profile {profile}) ...", flush=True)
        run = execute_notebook(nb, build_dir() / "executed" / profile / nb.name, profile, device, force, seeds=seeds)
        print(f"[reproduce] {nb.name} done in {run.seconds:.0f} s", flush=True)
        runs.append(run)
    if book:
        html = build_book(profile)
        print(f"[reproduce] book built: {html / 'index.html'}", flush=True)
    return runs
