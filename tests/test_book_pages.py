"""The book a reader meets: statements that drift when the records or the code change, every page
linked, the citation and the repository's address in one place, figures a page can hold."""

from __future__ import annotations

import base64
import json
import re
import tomllib

import matplotlib
import pytest
import yaml

matplotlib.use("Agg")

from untrainable import pages, plotting  # noqa: E402
from untrainable.paths import repo_root  # noqa: E402


def _text(path: str) -> str:
    """A page's prose with its line breaks as spaces (a sentence may wrap anywhere)."""
    file = repo_root() / path
    if file.suffix == ".ipynb":
        cells = json.loads(file.read_text())["cells"]
        return " ".join(" ".join("".join(c["source"]).split()) for c in cells if c["cell_type"] == "markdown")
    return " ".join(file.read_text().split())


def _config() -> dict:
    return yaml.safe_load((repo_root() / "_config.yml").read_text())


def _toc_files() -> list[str]:
    toc = yaml.safe_load((repo_root() / "_toc.yml").read_text())
    return [c["file"] for part in toc["parts"] for c in part["chapters"]]


# ----------------------------------------------------------------------------- statements held to the records


def test_the_precision_the_pages_state_is_what_the_records_say(committed_store):
    statement = pages.precision_statement("full")
    counts = pages.trained_precisions("full")
    assert counts["bf16"] > counts["fp32"] > 0  # most trained in bf16: "trained in fp32" was stale
    for page in ("book/running.md", "README.md"):
        assert statement in _text(page), f"{page} must state: {statement}"
        assert "records were trained in fp32" not in _text(page)


def test_a_precision_count_refuses_an_empty_store(tmp_path, monkeypatch):
    monkeypatch.setenv("UNTRAINABLE_RESULTS", str(tmp_path / "nothing"))
    with pytest.raises(FileNotFoundError, match="'full'"):
        pages.precision_statement("full")


def test_chapter_03_maps_chapter_05s_own_guide_the_residual_twin():
    from untrainable.experiments import plain_cnn_guidance

    for profile in ("quick", "full"):
        target, guide = plain_cnn_guidance.describe_models(profile)
        assert (target["role"], guide["role"], guide["model"]) == ("target", "guide", "residual_twin")
        assert guide["recorded layers"] > target["recorded layers"], profile  # what 03 says: the twin is deeper
    prose = _text("notebooks/03_guides_and_targets.ipynb")
    assert "The twin records a few more layers than the plain net" in prose
    assert "more recorded layers than its ResNet-18 guide" not in prose
    code = json.loads((repo_root() / "notebooks/03_guides_and_targets.ipynb").read_text())["cells"]
    assert not any("ResNet-18 -> plain ConvNet" in "".join(c["source"]) for c in code)


@pytest.mark.parametrize("page", ["notebooks/00_overview.ipynb", "book/intro.md"])
def test_every_page_of_the_table_of_contents_is_linked(page):
    text = (repo_root() / page).read_text()
    own = page.rsplit(".", 1)[0]
    missing = [f for f in _toc_files() if f != own and f.rsplit("/", 1)[-1] + "." not in text]
    assert not missing, f"{page} does not link {missing}"


def test_the_training_costs_are_on_the_site_and_chapter_08_points_there():
    readme, running = (repo_root() / "README.md").read_text(), (repo_root() / "book/running.md").read_text()
    costs = readme[readme.index("Measured on 2 CPU cores"):readme.index("**Precision.**")]
    rows = [line for line in costs.splitlines() if line.startswith("| ")]
    assert len(rows) > 10 and all(row in running.splitlines() for row in rows), "the Running page holds README's tables"
    text = _text("notebooks/08_guidance_vs_distillation.ipynb")
    assert "README" not in text and "running.md#what-it-costs" in text
    assert "## What it costs" in running


# ----------------------------------------------------------------------------- citation, records, launch buttons


def test_the_citation_file_names_this_version_the_repository_and_both_papers():
    cff = yaml.safe_load((repo_root() / "CITATION.cff").read_text())
    version = tomllib.loads((repo_root() / "pyproject.toml").read_text())["project"]["version"]
    assert cff["cff-version"] == "1.2.0" and cff["title"] and cff["version"] == version
    assert cff["repository-code"] == _config()["repository"]["url"]
    titles = {r["title"] for r in cff["references"]}
    bib = (repo_root() / "book/references.bib").read_text()
    assert titles == {"Training the Untrainable: Introducing Inductive Bias via Representational Alignment",
                      "Do Deep Nets Really Need to be Deep?"} and all(t in bib for t in titles)
    from untrainable.reproduce import BOOK_SOURCES

    assert "CITATION.cff" in BOOK_SOURCES
    assert "{literalinclude} ../CITATION.cff" in (repo_root() / "book/intro.md").read_text()


def test_the_records_page_links_every_records_folder_and_every_csv_column():
    from untrainable.paper_comparison import VERDICT_COLUMNS

    config = _config()
    repository = config["repository"]
    target, caption = config["sphinx"]["config"]["extlinks"]["records"]
    assert target == f"{repository['url']}/tree/{repository['branch']}/results/full/%s" and "%s" in caption
    text = (repo_root() / "book/records.md").read_text()
    linked = set(re.findall(r"\{records\}`([\w-]+)`", text))
    folders = {p.name for p in (repo_root() / "results" / "full").iterdir() if p.is_dir()}
    assert linked == folders
    assert "verdicts --profile full --csv" in text and all(f"`{c}`" in text for c in VERDICT_COLUMNS)


def test_the_repository_address_is_written_once_and_the_launch_buttons_are_explained():
    url = _config()["repository"]["url"]
    owner = url.split("github.com/")[1].split("/")[0]
    for path in [*(repo_root() / "book").glob("*.md"), repo_root() / "CITATION.cff"]:
        for found in re.findall(r"https://github\.com/[\w./-]+", path.read_text()):
            if owner in found:
                assert found.startswith(url), f"{path.name}: {found} is not _config.yml's {url}"
    running = _text("book/running.md")
    section = running[running.index("## Launch buttons"):]
    assert "works offline" in section and "needs the repository published" in section
    buttons = {"colab_url": "Colab", "binderhub_url": "Binder"}
    assert all(buttons[key] in section for key in _config()["launch_buttons"] if key in buttons)


# ----------------------------------------------------------------------------- what a page shows


def test_a_table_wider_than_the_text_column_gets_the_full_width():
    import pandas as pd

    wide = pages.table_html(pd.DataFrame({f"a long column name {i}": [1.5] for i in range(8)}))
    narrow = pages.table_html(pd.DataFrame({"x": [1.0], "y": [2.0]}))
    cell = {"cell_type": "code", "source": "t", "metadata": {},
            "outputs": [{"output_type": "execute_result", "data": {"text/html": wide}}]}
    assert pages.site_tags(cell) == ["hide-input", pages.FULL_WIDTH]
    cell["outputs"][0]["data"]["text/html"] = narrow
    assert pages.site_tags(cell) == ["hide-input"]


def test_a_figure_wider_than_the_text_column_gets_the_full_width():
    import matplotlib.pyplot as plt
    from IPython.core.pylabtools import print_figure

    def cell_with(width: float) -> dict:
        fig = plt.figure(figsize=(width, 2), dpi=110)
        fig.add_subplot()  # a figure without axes prints nothing
        png = base64.b64encode(print_figure(fig, "png", bbox_inches=None)).decode()
        plt.close(fig)
        return {"cell_type": "code", "source": "fig", "metadata": {},
                "outputs": [{"output_type": "display_data", "data": {"image/png": png}}]}

    assert pages.site_tags(cell_with(10.4)) == ["hide-input", pages.FULL_WIDTH]  # 1,144 px
    assert pages.site_tags(cell_with(6.0)) == ["hide-input"]


def test_a_folded_table_says_what_it_holds():
    import pandas as pd

    out = pages.folded(pd.DataFrame({"loss": [0.123456]}).style.format("{:.3f}"), "Every run (1 row)").data
    assert out.startswith("<details") and "<summary>Every run (1 row)</summary>" in out and ">0.123<" in out


def test_a_benchmark_says_where_it_was_measured_in_a_sentence():
    record = {"device": "cpu:x86_64 x1 threads", "git_commit": "480eeaeaaa752fc93bfd4ef537ed8175ba71565c",
              "wall_time_s": 840.0, "load_average": [2.02490234375, 2.3, 2.2]}
    text = pages.measured_on(record, "profile full, 1 seed").data
    assert "`480eeae`" in text and "480eeaeaaa75" not in text and "[" not in text and "2.0" in text


def test_figure_titles_count_seeds_per_condition():
    records = [{"profile": "full", "name": n, "seed": s} for n, k in (("a", 5), ("b", 3)) for s in range(k)]
    assert plotting.run_label(records) == "profile full, 3 to 5 seeds per condition"
    assert plotting.run_label(records[:5]) == "profile full, 5 seeds"
    assert plotting.run_label(records[:1]) == "profile full, 1 seed"


def test_a_parameter_axis_within_a_decade_has_several_labelled_ticks():
    import pandas as pd

    size = pd.DataFrame({"family": ["mimic"] * 3, "parameters": [595_082, 1_058_617, 1_880_074],
                         "test_acc": [60.0, 62.0, 63.0]})
    fig = plotting.accuracy_vs_size(size, 70.0, 72.0, {}, "t")
    fig.canvas.draw()
    lo, hi = fig.axes[0].get_xlim()
    shown = [t.get_text() for t in fig.axes[0].get_xticklabels() if t.get_text() and lo <= t.get_position()[0] <= hi]
    assert len(shown) >= 3, shown
    matplotlib.pyplot.close(fig)


def test_the_pilot_figures_fit_a_page_and_keep_perplexities_apart(committed_store):
    from untrainable.experiments import image_pilots, pilot_regimes, sequence_pilots

    figures = [pilot_regimes.pilot_figure(image_pilots.run("full"), "image"),
               sequence_pilots.pilot_figure(sequence_pilots.run("full"), "sequence")]
    assert all(fig.get_figwidth() <= 7.5 for fig in figures)  # one panel per row: not shrunk past reading
    titles = [ax.get_title() for ax in figures[1].axes]
    assert any("on characters" in t for t in titles) and any("on words" in t for t in titles)
    for fig in figures:
        matplotlib.pyplot.close(fig)


def test_a_full_width_cell_is_drawn_above_the_contents_sidebar():
    """The theme paints its contents sidebar over a full-width cell's right-hand columns at the same
    stacking level (read at 1280 px: page 98's p and seeds columns were hidden); the style sheet lifts it."""
    css = (repo_root() / "_static" / "book.css").read_text()
    assert re.search(r"\.cell\.tag_full-width\s*\{\s*z-index:\s*3 !important;", css)
