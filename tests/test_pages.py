"""What the site shows: whole source listings, and the one rule that tags cells for the site."""

from __future__ import annotations

import inspect

import pytest

from untrainable import pages, similarity
from untrainable.paths import describe_data_root


def _code(source: str, outputs: list | None = None, tags: list | None = None) -> dict:
    return {"cell_type": "code", "source": source, "outputs": outputs or [], "metadata": {"tags": tags or []}}


def _markdown_output(text: str = "**prose**") -> dict:
    return {"output_type": "display_data", "data": {"text/markdown": text, "text/plain": "<Markdown>"}}


def test_show_source_lists_whole_functions_highlighted():
    listing = pages.show_source(similarity.linear_cka, similarity.center).data
    assert listing.startswith("```python\n") and listing.endswith("\n```")
    for fn in (similarity.linear_cka, similarity.center):
        assert inspect.getsource(fn).rstrip() in listing  # whole, never cut
    with pytest.raises(ValueError, match="at least one"):
        pages.show_source()


@pytest.mark.parametrize("cell, expected", [
    (_code("profile = 'quick'", tags=["parameters"]), ["parameters", "remove-cell"]),
    (_code("profile = 'full'\n", tags=["injected-parameters"]), ["injected-parameters", "remove-cell"]),
    (_code("# Setup. On Colab this installs the companion\nimport os"), ["remove-cell"]),
    (_code("display(Markdown(text))", [_markdown_output(), _markdown_output()]), ["remove-input"]),
    (_code("show_source(f)", [{"output_type": "execute_result", "data": {"text/markdown": "```python```"}}]),
     ["remove-input"]),  # a listing is the cell's value
    (_code("table", [{"output_type": "execute_result", "data": {"text/html": "<table>", "text/plain": "t"}}]),
     ["hide-input"]),
    (_code("display(Markdown(a))\nfig", [_markdown_output(), {"output_type": "display_data",
                                                              "data": {"image/png": "...", "text/plain": "fig"}}]),
     ["hide-input"]),
    (_code("x = 1"), ["hide-input"]),
    (_code("shown", tags=["show-input"]), ["show-input"]),
    ({"cell_type": "markdown", "source": "# Title", "metadata": {}}, []),
])
def test_site_tags_follow_one_rule(cell, expected):
    assert pages.site_tags(cell) == expected


def test_tag_for_site_tags_every_cell_in_place():
    nb = {"cells": [_code("x = 1"), {"cell_type": "markdown", "source": "text", "metadata": {}}]}
    assert pages.tag_for_site(nb) is nb
    assert nb["cells"][0]["metadata"]["tags"] == ["hide-input"] and "tags" not in nb["cells"][1]["metadata"]


def test_the_data_root_is_described_without_this_machines_folders(monkeypatch, tmp_path):
    monkeypatch.setenv("UNTRAINABLE_DATA", str(tmp_path / "somewhere"))
    assert str(tmp_path) not in describe_data_root() and "UNTRAINABLE_DATA" in describe_data_root()


def test_tables_print_every_column_with_empty_cells_explained():
    import numpy as np
    import pandas as pd

    wide = pd.DataFrame(np.arange(60.0).reshape(2, 30), columns=[f"column {i}" for i in range(30)])
    out = pages.table_html(wide)
    assert all(f"column {i}</th>" in out for i in range(30)) and "…" not in out and "book-table-note" not in out
    gaps = pd.DataFrame({"ratio": [np.nan, 1.5, -0.0]})
    gaps.attrs[pages.NA_NOTE_ATTR] = "— : a baseline has no ratio to itself"
    out = pages.table_html(gaps)
    assert "NaN" not in out and "—</td>" in out and "a baseline has no ratio to itself" in out
    assert "-0.0" not in out and ">0.0</td>" in out
    assert pages.DEFAULT_NA_NOTE in pages.table_html(pd.DataFrame({"x": [np.nan]}))
    empty = pages.table_html(pd.DataFrame(columns=["accuracy", "p"]))
    assert "<table" not in empty and pages.EMPTY_NOTE in empty  # no grid of headers over nothing


def test_a_table_styled_by_its_page_keeps_its_formats_in_the_book_style():
    import pandas as pd

    out = pages.styled_html(pd.DataFrame({"matched": [0.79, 0.125]}).style.format({"matched": "{:.0%}"}))
    assert 'class="book-table"' in out and ">79%<" in out and ">12%<" in out


def test_signed_effects_never_read_minus_zero():
    from untrainable.analysis.contrasts import signed

    assert signed(-0.04, 1) == "0.0" and signed(0.04, 1) == "0.0"
    assert signed(2.345, 1) == "+2.3" and signed(-1.25, 2) == "-1.25"


def test_the_landing_pages_results_count_each_chapters_verdicts(monkeypatch):
    import pandas as pd

    from untrainable import analysis as A
    from untrainable import paper_comparison_display as PD
    from untrainable import reproduce

    table = pd.DataFrame({"chapter": ["04", "04", "04", "06"],
                          "verdict": [A.REPRODUCED, A.NO_EFFECT, A.NOT_COMPARABLE, A.NOT_TESTABLE],
                          "setting": ["Wide FCN", "Deep FCN", "Deep FCN", "Parity"],
                          "condition": ["trained guide", "trained guide", "no guide", "trained guide"],
                          "effect (ours) [95 % CI]": ["+1.1 [+0.5, +1.8]", "+1.3 [-0.7, +3.3]", "", ""],
                          "p": ["0.004", "0.15", "", ""]})
    monkeypatch.setattr(PD, "comparison", lambda profile, path=None: table)
    links = reproduce.chapter_links()
    assert set(links) == {nb.name[:2] for nb in reproduce.notebooks()}
    assert all(title and not title.startswith("#") for title, _ in links.values())
    text = PD.headline("full", links)
    assert f"* [{links['04'][0]}]({links['04'][1]}): 1 reproduced, 1 no effect detected (of 2 judged rows). " \
           f"Reproduced: Wide FCN, trained guide: +1.1 [+0.5, +1.8] (p = 0.004)." in text  # what a test decided
    assert f"* [{links['06'][0]}]({links['06'][1]}): 1 not testable (of 1 judged row)" in text


def test_a_figures_alt_text_is_its_title_and_reaches_the_page():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2)
    axes[0].set_title("left")
    axes[1].set_title("right")
    assert pages.figure_alt(fig) == "Figure: left; right"
    fig.suptitle("Deep FCN (profile full, 3 seeds)")
    assert pages.figure_alt(fig) == "Figure: Deep FCN (profile full, 3 seeds)"
    plt.close(fig)
    png = {"output_type": "display_data", "data": {"image/png": "..."}, "metadata": {"image/png": {"alt": "Figure: a"}}}
    nb = {"cells": [_code("fig", [png, {**png, "metadata": {"image/png": {"alt": "Figure: b"}}}])]}
    assert pages.tag_for_site(nb)["cells"][0]["metadata"]["mystnb"]["image"]["alt"] == "Figure: a; Figure: b"
