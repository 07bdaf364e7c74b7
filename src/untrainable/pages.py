"""What a book page shows: whole source listings, tables as the book prints them, and which cells the site hides.

The notebooks stay the reader's working copies: every cell is there in JupyterLab or Colab. The
site is built from staged copies (:func:`untrainable.reproduce.stage_book`) whose cells get
Jupyter Book's display tags from one rule, :func:`site_tags`, so no notebook carries tags by hand:

* the setup cell and papermill's parameters cells (its own and the injected copy) are left out:
  every table and figure states its profile and seeds, and the setup only matters in a notebook;
* a cell whose outputs are prose alone (``display(Markdown(...))``, or a listing from
  :func:`show_source`) shows its output without the code that made it;
* every other code cell is folded behind a "show code" toggle, its outputs shown; one that shows a
  table or a figure too wide for the text column (:data:`PAGE_CHARS`, :data:`PAGE_PX`) also gets the
  theme's ``full-width`` tag, so that its key columns are not off-screen and its labels not shrunk
  past reading at 1280 px.

Tables: :func:`book_tables` (called by :func:`untrainable.plotting.set_theme`, once per notebook)
makes every DataFrame a notebook shows render through :func:`table_html`: all rows and columns
(the page scrolls sideways rather than hide a column), long text wrapped by the book's style
sheet, no negative zeros, and an empty cell as "—" with a note saying why.

Figures: :func:`book_figures` (also called by ``set_theme``) stores each figure's title with its
PNG as alt text, and :func:`tag_for_site` hands it to the page (cell metadata ``mystnb.image.alt``);
``_static/book.js`` makes every figure open full size when clicked.

A cell already tagged ``remove-cell``, ``remove-input``, ``hide-input`` or ``show-input`` keeps its
choice (``show-input``, not a Jupyter Book tag, keeps a cell's code open on the page).
"""

from __future__ import annotations

import base64
import html
import inspect
import json
import re
from collections import Counter
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from IPython.display import HTML, Markdown
    from pandas.io.formats.style import Styler

__all__ = ["show_source", "table_html", "styled_html", "folded", "book_tables", "figure_alt", "book_figures",
           "site_tags", "tag_for_site", "trained_precisions", "precision_statement", "measured_on", "SETUP_MARK",
           "CHOSEN_TAGS", "NA_NOTE_ATTR", "DEFAULT_NA_NOTE", "EMPTY_NOTE", "FULL_WIDTH", "PAGE_CHARS", "WRAP_CHARS",
           "COLUMN_GAP_CHARS", "PAGE_PX"]

#: The first line of every chapter's setup cell (a test holds each notebook to it).
SETUP_MARK = "# Setup."
#: Tags that already say how a cell is shown; :func:`site_tags` leaves such a cell alone.
CHOSEN_TAGS = frozenset({"remove-cell", "remove-input", "hide-input", "show-input"})
#: ``DataFrame.attrs`` key under which a table's maker says why some of its cells are empty.
NA_NOTE_ATTR = "na_note"
DEFAULT_NA_NOTE = "— : no value for this row (the column does not apply to it)"
EMPTY_NOTE = "No rows: no record of this profile fills this table."
#: The cell tag that lets sphinx-book-theme give a wide table or figure the page's whole width (margin included).
FULL_WIDTH = "full-width"
#: About how many characters of a table fit the page's text column at 1280 px (688 px of 0.9 em text);
#: a table wider than that is given :data:`FULL_WIDTH` by :func:`site_tags`.
PAGE_CHARS = 90
#: A table cell longer than this wraps (``_static/book.css``: at most 36 em), so it counts only this wide.
WRAP_CHARS = 60
COLUMN_GAP_CHARS = 2
#: A figure wider than this many pixels is given :data:`FULL_WIDTH` (about 935 px at 1280 px): the text
#: column is 688 px, and one up to this wide shrinks no further than about four fifths into it.
PAGE_PX = 880
_PARAMETER_TAGS = frozenset({"parameters", "injected-parameters"})
_PROSE_TYPES = frozenset({"text/markdown", "text/plain"})


def show_source(*objects: Any) -> "Markdown":
    """The whole source of each function, method or class, as one highlighted Python listing.

    Pages teach from the code that ran, never a copy: the listing is read from the installed
    library when the cell runs, so it cannot drift from what made the numbers.
    """
    from IPython.display import Markdown  # the notebooks' kernel has IPython; the library alone does not need it

    if not objects:
        raise ValueError("show_source needs at least one function, method or class")
    listings = [inspect.getsource(obj).rstrip() for obj in objects]
    return Markdown("```python\n" + "\n\n".join(listings) + "\n```")


def table_html(frame: pd.DataFrame) -> str:
    """``frame`` as the book prints it: every row and column, floats without negative zeros, an empty
    cell as "—" and, when there is one, a note under the table saying why (``frame.attrs["na_note"]``,
    else :data:`DEFAULT_NA_NOTE`); a table without rows as a sentence (:data:`EMPTY_NOTE`)."""
    if frame.empty:  # a table no record of this profile fills: say so in words, not with an empty grid
        return f'<p class="book-table-note">{html.escape(frame.attrs.get(NA_NOTE_ATTR, EMPTY_NOTE))}</p>'
    shown = frame.copy()
    floats = shown.select_dtypes("float").columns
    shown[floats] = shown[floats] + 0.0  # -0.0 + 0.0 is 0.0: a rounded "−0.0" reads as a sign that is not there
    out = shown.to_html(na_rep="—", classes="book-table", border=0)
    if frame.isna().to_numpy().any():
        note = frame.attrs.get(NA_NOTE_ATTR, DEFAULT_NA_NOTE)
        out += f'\n<p class="book-table-note">{html.escape(note)}</p>'
    return out


def _shell() -> Any:
    """The running IPython shell, or None (plain Python, or no IPython installed)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    return get_ipython()


def styled_html(styler: "Styler") -> str:
    """A table a page formats itself (``frame.style.format(...)``: percentages, exponents) in the book's
    table style, as :func:`table_html` prints a plain one."""
    return styler.set_table_attributes('class="book-table"').to_html()


def folded(table: "pd.DataFrame | Styler", summary: str) -> "HTML":
    """A long table folded behind a line that says what it holds (``<details>``): a page shows its
    conclusion first, and a reader who wants every row opens it. A Styler keeps its page's formats."""
    from IPython.display import HTML
    from pandas.io.formats.style import Styler

    body = styled_html(table) if isinstance(table, Styler) else table_html(table)
    return HTML(f'<details class="book-fold"><summary>{html.escape(summary)}</summary>\n{body}\n</details>')


def book_tables() -> None:
    """Make the running IPython kernel show DataFrames through :func:`table_html`, and tables styled
    by a page through :func:`styled_html` (a no-op outside IPython)."""
    if (shell := _shell()) is not None:
        from pandas.io.formats.style import Styler

        shell.display_formatter.formatters["text/html"].for_type(pd.DataFrame, table_html)
        shell.display_formatter.formatters["text/html"].for_type(Styler, styled_html)


def figure_alt(fig: Any) -> str:
    """A figure's alt text: its title (the suptitle, else its panels' titles), which every book figure
    has and which names what is plotted, the profile and the seeds."""
    title = fig._suptitle.get_text() if getattr(fig, "_suptitle", None) is not None else ""
    if not title:
        title = "; ".join(t for t in (ax.get_title() for ax in fig.axes) if t)
    return f"Figure: {title}" if title else "Figure"


def _png_with_alt(fig: Any) -> tuple[bytes, dict[str, str]]:
    from IPython.core.pylabtools import print_figure

    return print_figure(fig, "png", bbox_inches="tight"), {"alt": figure_alt(fig)}


def book_figures() -> None:
    """Make the running IPython kernel store each matplotlib figure's alt text beside its PNG."""
    if (shell := _shell()) is not None:
        import matplotlib.pyplot as plt
        from matplotlib.figure import Figure

        plt.close(plt.figure())  # the inline backend loads (and sets its own formatter) at the first figure: before ours
        shell.display_formatter.formatters["image/png"].for_type(Figure, _png_with_alt)


def _is_prose(output: dict[str, Any]) -> bool:
    """An output of Markdown (its plain-text twin aside): prose for the page, not a result table."""
    data = output.get("data", {})
    return output.get("output_type") in ("display_data", "execute_result") and "text/markdown" in data \
        and set(data) <= _PROSE_TYPES


def _table_chars(output: dict[str, Any]) -> int:
    """How many characters wide an output's widest HTML table reads: per column its longest cell (a
    cell past :data:`WRAP_CHARS` wraps, the style sheet lets it), plus room between columns; 0 without one."""
    text = "".join(output.get("data", {}).get("text/html", ""))
    widths = []
    for table in re.findall(r"<table.*?</table>", text, re.S):
        columns: dict[int, int] = {}
        for row in re.findall(r"<tr.*?</tr>", table, re.S):
            for i, cell in enumerate(re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)):
                shown = html.unescape(re.sub(r"<[^>]+>", "", cell)).strip()
                columns[i] = max(columns.get(i, 0), min(len(shown), WRAP_CHARS))
        widths.append(sum(columns.values()) + COLUMN_GAP_CHARS * len(columns))
    return max(widths, default=0)


def _png_px(output: dict[str, Any]) -> int:
    """The pixel width of an output's PNG (read from its header), 0 without one."""
    png = "".join(output.get("data", {}).get("image/png", ""))
    header = base64.b64decode(png[:44]) if png else b""
    return int.from_bytes(header[16:20], "big") if header.startswith(b"\x89PNG") else 0


def _wide(output: dict[str, Any]) -> bool:
    """Is ``output`` a table or a figure wider than the page's text column?"""
    return _table_chars(output) > PAGE_CHARS or _png_px(output) > PAGE_PX


def site_tags(cell: dict[str, Any]) -> list[str]:
    """The display tags the site gives ``cell`` (a cell of an nbformat notebook as a dict)."""
    tags = list(cell.get("metadata", {}).get("tags", []))
    if cell.get("cell_type") != "code" or CHOSEN_TAGS & set(tags):
        return tags
    source = "".join(cell.get("source", ""))
    if _PARAMETER_TAGS & set(tags) or source.lstrip().startswith(SETUP_MARK):
        return tags + ["remove-cell"]
    outputs = cell.get("outputs", [])
    if outputs and all(_is_prose(o) for o in outputs):
        return tags + ["remove-input"]
    wide = [FULL_WIDTH] if any(_wide(o) for o in outputs) and FULL_WIDTH not in tags else []
    return tags + ["hide-input"] + wide


def tag_for_site(notebook: dict[str, Any]) -> dict[str, Any]:
    """``notebook`` with every cell tagged by :func:`site_tags` and its figures' alt text (from
    :func:`book_figures`) as the page's (the notebook is changed in place and returned)."""
    for cell in notebook.get("cells", []):
        tags = site_tags(cell)
        if tags:
            cell.setdefault("metadata", {})["tags"] = tags
        alts = [o.get("metadata", {}).get("image/png", {}).get("alt") for o in cell.get("outputs", [])]
        if alts := list(dict.fromkeys(a for a in alts if a)):
            cell.setdefault("metadata", {}).setdefault("mystnb", {}).setdefault("image", {})["alt"] = "; ".join(alts)
    return notebook


def trained_precisions(profile: str = "full") -> Counter[str]:
    """How many stored training records of ``profile`` trained in each precision (a benchmark record,
    which trains nothing, is not counted). A record older than the precision setting says nothing and
    trained in fp32 (``tests/test_store.py`` holds each record's word to its config)."""
    from untrainable.paths import results_root

    records = sorted((results_root() / profile).glob("*/*-seed*-*.json"))  # results.record_path's names
    return Counter(json.loads(path.read_text()).get("precision", "fp32") for path in records)


def precision_statement(profile: str = "full") -> str:
    """The sentence the Running page and the README state about the committed records' precision,
    computed from the records, so that a test sees the text drift when records are added or retrained."""
    counts = trained_precisions(profile)
    if not counts:
        raise FileNotFoundError(f"no stored training record of profile {profile!r} to count")
    (first, n), *rest = sorted(counts.items())
    others = "".join(f" and {m} in {precision}" for precision, m in rest)
    return f"Of the {sum(counts.values())} committed `{profile}` training records, {n} trained in {first}{others}"


def measured_on(record: dict[str, Any], label: str) -> "Markdown":
    """Where and when a benchmark record was measured, in a sentence a reader can use: its profile and
    seeds (``label``), the device, the commit's short hash, the duration and, when stored, the machine's
    one-minute load average (a timing taken on a busy machine reads slow)."""
    from IPython.display import Markdown

    load = record.get("load_average")
    busy = f"; the machine's load average was {load[0]:.1f} when it started" if load else ""
    return Markdown(f"Measured for {label} on `{record['device']}` at commit `{record['git_commit'][:7]}`, "
                    f"in {record['wall_time_s'] / 60:.0f} minutes{busy}.")
