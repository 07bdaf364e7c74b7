"""Reproduce every figure: execute the notebooks in reading order with papermill, then build the book.

Executed copies are kept under ``_build/executed/<profile>/`` and the book is built from a staged
copy of the sources in which each notebook is replaced by its executed copy, so the committed
notebooks stay free of outputs. The site lands in ``_build/html``; it is built only when every
notebook of the profile has an executed copy, and replaced only once the new site is complete.

``full`` is guarded: before any notebook runs, :func:`reproduce` lists the records the chosen
chapters need that are not stored (:func:`untrainable.experiments.missing_records`) and stops,
unless asked to train them (``train_missing=True``, passed on to the notebook kernels through
``UNTRAINABLE_TRAIN_MISSING=1``) or to retrain everything (``force=True``).

Ctrl-C stops it with :class:`ReproduceInterrupted`, whose one line says what was kept: every record
written so far, and the checkpoint of the run that was training (the same command resumes it).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from untrainable.pages import tag_for_site
from untrainable.paths import repo_root
from untrainable.profiles import check_profile, check_seeds

__all__ = [
    "BOOK_SOURCES", "ReproduceError", "ReproduceInterrupted", "NotebookRun", "build_dir", "notebooks",
    "execute_notebook", "unexecuted", "stage_book", "build_book", "chapter_links", "write_headline", "HEADLINE",
    "ANSWER", "FOREST", "missing_runs", "reproduce",
]

BOOK_SOURCES = ("_config.yml", "_toc.yml", "_static", "book", "CITATION.cff")  # the landing page shows CITATION.cff


class ReproduceError(RuntimeError):
    """A notebook failed or the book did not build; the message names the notebook and cell."""


class ReproduceInterrupted(ReproduceError):
    """Ctrl-C stopped :func:`reproduce`; the one-line message says what was kept."""


@dataclass(frozen=True)
class NotebookRun:
    """How long one notebook took to execute."""

    notebook: str
    seconds: float


def build_dir() -> Path:
    """Where executed notebooks, the staged sources and the site go."""
    return repo_root() / "_build"


def notebooks(only: list[str] | None = None) -> list[Path]:
    """Chapter notebooks in reading order (``NN_name.ipynb``), optionally only the given prefixes."""
    found = sorted((repo_root() / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    if only is None:
        return found
    wanted = [o.strip() for o in only]
    if not wanted or not all(wanted):
        raise ReproduceError(f"--only needs comma-separated notebook prefixes such as 01,04, got {','.join(only)!r}")
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
        # "immediate": the kernel is stopped at once when the notebook ends or Ctrl-C stops it (a graceful
        # shutdown mid-cell makes the kernel print a traceback of its closed sockets over the one-line message)
        pm.execute_notebook(str(source), str(target), parameters=params, kernel_name=kernel,
                            cwd=str(source.parent), progress_bar=False, log_output=False, shutdown_kernel="immediate")
    except PapermillExecutionError as err:
        if err.ename == "KeyboardInterrupt":  # Ctrl-C reached the kernel: the reader's interrupt, not a failure
            raise KeyboardInterrupt from None
        raise ReproduceError(
            f"{source.name} failed in cell {err.cell_index} (execution count {err.exec_count}): "
            f"{err.ename}: {err.evalue}\n  the executed copy with the traceback is {target}"
        ) from None
    return NotebookRun(source.name, time.perf_counter() - t0)


def _was_executed(path: Path) -> bool:
    """Whether ``path`` is a notebook papermill ran to the end (every non-empty code cell has an
    execution count: the kernel skips empty cells)."""
    try:
        nb = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    if (nb.get("metadata", {}).get("papermill") or {}).get("exception"):
        return False
    code = [c for c in nb.get("cells", []) if c.get("cell_type") == "code" and "".join(c.get("source", "")).strip()]
    return all(c.get("execution_count") is not None for c in code)


def unexecuted(profile: str) -> list[str]:
    """The chapter notebooks with no complete executed copy for ``profile`` (missing, failed or unrun)."""
    executed = build_dir() / "executed" / profile
    return [nb.name for nb in notebooks() if not _was_executed(executed / nb.name)]


#: The landing page's results, written into the staged sources from the records (``book/intro.md`` includes it).
HEADLINE = Path("book") / "_headline.md"
#: The landing page's opening: its answer in three sentences and the forest plot (``book/intro.md`` includes it).
ANSWER = Path("book") / "_answer.md"
#: The forest plot the answer shows, saved beside it.
FOREST = Path("book") / "_forest.png"


def chapter_links() -> dict[str, tuple[str, str]]:
    """Each chapter's number -> (the title its notebook opens with, its page as the landing page links it)."""
    links = {}
    for nb in notebooks():
        cells = json.loads(nb.read_text())["cells"]
        heading = next("".join(c["source"]).splitlines()[0] for c in cells if c["cell_type"] == "markdown")
        links[nb.name[:2]] = (heading.lstrip("# ").strip(), f"../notebooks/{nb.name}")
    return links


def write_headline(stage: Path, profile: str) -> Path:
    """The landing page's results for ``profile``, from its records: the answer and its forest plot
    (:func:`untrainable.paper_comparison_display.answer`, :func:`untrainable.forest.forest_plot`) into :data:`ANSWER`
    and :data:`FOREST`, the per-chapter verdict counts (:func:`untrainable.paper_comparison_display.headline`) and
    what chapter 08's comparison shows (:func:`untrainable.paper_comparison_display.transfer_paragraph`) into
    :data:`HEADLINE`."""
    import matplotlib.pyplot as plt

    from untrainable import forest
    from untrainable import paper_comparison as PC  # loads every chapter's records: only when a book is staged
    from untrainable import paper_comparison_display as PD

    out, links = stage / HEADLINE, chapter_links()
    out.write_text(PD.headline(profile, links) + PD.transfer_paragraph(profile, links.get("08")))
    verdicts = PC.verdicts(profile)
    fig = forest.forest_plot(verdicts, profile)
    fig.savefig(stage / FOREST, dpi=150, bbox_inches="tight")
    plt.close(fig)
    page = links.get("98", ("", "../notebooks/98_paper_vs_reproduction.ipynb"))[1]
    (stage / ANSWER).write_text(PD.answer(PD.comparison(profile)) + "\n"
                                + forest.figure_markup(FOREST.name, verdicts, profile, page))
    return out


def stage_book(executed: Path, stage: Path, profile: str | None = None) -> Path:
    """Copy the book sources to ``stage``, every chapter notebook replaced by its executed copy, its cells
    tagged for the site (:func:`untrainable.pages.tag_for_site`); with ``profile``, the landing page's
    results are written from that profile's records (:func:`write_headline`)."""
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
        notebook = tag_for_site(json.loads((done if done.is_file() else nb).read_text()))
        (stage / "notebooks" / nb.name).write_text(json.dumps(notebook, indent=1, ensure_ascii=False) + "\n")
    if profile is not None:
        write_headline(stage, profile)
    return stage


def build_book(profile: str, html_out: Path | None = None) -> Path:
    """Build the book (warnings are errors) from the executed notebooks of ``profile``; return the html folder.

    Refuses, before building anything, when a notebook of ``profile`` has not been executed: a site
    of unexecuted notebooks has no figures. The old site is replaced only by a complete new one.
    """
    check_profile(profile)
    if todo := unexecuted(profile):
        raise ReproduceError(
            f"the book for profile {profile!r} needs every notebook executed first; not executed: {', '.join(todo)}\n"
            f"  run: python -m untrainable reproduce --profile {profile}"
        )
    executed = build_dir() / "executed" / profile
    stage = stage_book(executed, build_dir() / "stage" / profile, profile)
    cmd = [sys.executable, "-c", "from jupyter_book.cli.main import main; main()", "build", str(stage), "--builder", "html", "-W", "-n", "--keep-going"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-40:])
        raise ReproduceError(f"the book build failed (warnings count as errors):\n{tail}")
    html = html_out or build_dir() / "html"
    fresh = html.with_name(html.name + ".new")
    if fresh.exists():
        shutil.rmtree(fresh)
    shutil.copytree(stage / "_build" / "html", fresh)
    if html.exists():
        shutil.rmtree(html)
    fresh.rename(html)
    return html


def missing_runs(profile: str, chosen: list[Path]) -> list[str]:
    """``experiment/name/seed`` of each record the chosen notebooks need that is not stored."""
    from untrainable.experiments import CHAPTERS, missing_records

    prefixes = [nb.name[:2] for nb in chosen if nb.name[:2] in CHAPTERS]
    if not prefixes:
        return []
    return [f"{r.experiment}/{r.name}/seed {r.seed}" for r in missing_records(profile, prefixes)]


def _check_stored(profile: str, chosen: list[Path], force: bool, train_missing: bool) -> None:
    """Stop before any work when a guarded profile lacks records and training them was not asked for."""
    from untrainable.results import GUARDED_PROFILES, TRAIN_MISSING_ENV

    if profile not in GUARDED_PROFILES or force:
        return
    if train_missing:
        os.environ[TRAIN_MISSING_ENV] = "1"  # the notebook kernels inherit it
        return
    if missing := missing_runs(profile, chosen):
        listed = "\n".join(f"  {m}" for m in missing)
        raise ReproduceError(
            f"{len(missing)} record(s) of profile {profile!r} are not stored, and training them takes hours:\n{listed}\n"
            "  train them with --train-missing, or retrain everything with --force"
        )


def _interrupted(profile: str, during: str, runs: list[NotebookRun], started: float) -> ReproduceInterrupted:
    """What an interrupted :func:`reproduce` kept, in one line: the notebooks done, the records written."""
    from untrainable.paths import cache_root, results_root

    folder = results_root() / profile
    written = sum(1 for p in folder.rglob("*.json") if p.stat().st_mtime >= started) if folder.is_dir() else 0
    done = ", ".join(r.notebook for r in runs) or "none"
    return ReproduceInterrupted(
        f"interrupted during {during}; kept: the notebooks finished ({done}), the {written} record(s) written in "
        f"{folder}, and the checkpoint of the run in training (under {cache_root() / 'checkpoints'}): rerun the "
        "same command to resume")


def reproduce(profile: str = "full", only: list[str] | None = None, force: bool = False, device: str = "auto",
              book: bool = True, seeds: list[int] | None = None, train_missing: bool = False) -> list[NotebookRun]:
    """Execute the chosen notebooks in order (stopping at the first failure), then build the book.

    A guarded profile (``full``) first checks that every record the chosen chapters need is
    stored (see the module's docstring). With ``only``, the book is built when every notebook of
    the profile has an executed copy, and skipped with a note otherwise. ``seeds`` must be distinct
    and in range (:func:`untrainable.profiles.check_seeds`). Ctrl-C raises :class:`ReproduceInterrupted`.
    """
    check_profile(profile)
    if seeds is not None:
        try:
            seeds = list(check_seeds(seeds))
        except ValueError as err:
            raise ReproduceError(f"--seeds: {err}") from None
    chosen = notebooks(only)
    _check_stored(profile, chosen, force, train_missing)
    runs: list[NotebookRun] = []
    started, during = time.time(), "the start"
    try:
        for nb in chosen:
            during = nb.name
            print(f"[reproduce] {nb.name} (profile {profile}) ...", flush=True)
            run = execute_notebook(nb, build_dir() / "executed" / profile / nb.name, profile, device, force,
                                   seeds=seeds)
            print(f"[reproduce] {nb.name} done in {run.seconds:.0f} s", flush=True)
            runs.append(run)
        during = "the book build"
        _build_if_complete(profile, only, book)
    except KeyboardInterrupt:
        raise _interrupted(profile, during, runs, started) from None
    return runs


def _build_if_complete(profile: str, only: list[str] | None, book: bool) -> None:
    """Build the book, unless ``only`` ran a part of it and other notebooks have no executed copy yet."""
    if book and only is not None and (todo := unexecuted(profile)):
        print(f"[reproduce] book not built: not yet executed for {profile}: {', '.join(todo)}", flush=True)
    elif book:
        html = build_book(profile)
        print(f"[reproduce] book built: {html / 'index.html'}", flush=True)
