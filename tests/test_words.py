"""Words match records: the static prose of the landing page and the chapters states the papers'
claims as the papers', and the few facts it states itself hold in the committed records."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from untrainable.paths import repo_root
from untrainable.results import load_record

#: Pages whose prose the issue on words-match-records names.
PAGES = ["book/intro.md", "notebooks/00_overview.ipynb", "notebooks/01_inductive_bias.ipynb",
         "notebooks/03_guides_and_targets.ipynb", "notebooks/04_fcn_guidance.ipynb",
         "notebooks/05_plain_cnn_guidance.ipynb", "notebooks/98_paper_vs_reproduction.ipynb"]
#: Phrases that state a paper's result; in static prose they must be attributed or put as a question.
CLAIMS = ("stops overfitting", "stop overfitting", "transfers its architecture", "transfers the architecture",
          "memorises", "approaches the deep net", "learns parity", "copies better")
ATTRIBUTION = re.compile(r"paper|report|claim|argue|ask|whether|\?|test", re.IGNORECASE)


def _prose(page: str) -> str:
    path = repo_root() / page
    if path.suffix == ".md":
        return path.read_text()
    cells = json.loads(path.read_text())["cells"]
    return "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+|\n\n", " ".join(text.split("\n"))) if s.strip()]


@pytest.mark.parametrize("page", PAGES)
def test_static_prose_attributes_every_claim_of_the_papers(page):
    offending = [s for s in _sentences(_prose(page)) if any(c in s.lower() for c in CLAIMS)
                 and not ATTRIBUTION.search(s)]
    assert offending == [], f"{page} states a paper's claim as a fact: {offending}"


def _inductive_bias(metric: str) -> dict[str, float]:
    folder = repo_root() / "results" / "full" / "inductive_bias"
    records = [load_record(p) for p in sorted(Path(folder).glob("*.json"))]
    names = {r["name"] for r in records}
    return {n: 100 * float(np.mean([r["metrics"][metric] for r in records if r["name"] == n])) for n in names}


def test_the_landing_page_summary_of_chapter_01_holds_in_its_records():
    """'a CNN reaches far higher test accuracy than a fully connected net, and a deep plain FCN trains slowly'."""
    assert "a CNN reaches far\n   higher test accuracy than a fully connected net" in _prose("book/intro.md")
    test, train = _inductive_bias("test_acc"), _inductive_bias("train_acc")
    assert test["cnn"] >= test["fcn"] + 10
    assert train["deep_fcn"] < train["fcn"]


def test_chapter_01_does_not_call_the_fcn_the_net_that_memorises_when_the_cnn_has_the_larger_gap():
    train, test = _inductive_bias("train_acc"), _inductive_bias("test_acc")
    if train["cnn"] - test["cnn"] >= train["fcn"] - test["fcn"]:
        assert "fully connected net memorises" not in _prose("notebooks/01_inductive_bias.ipynb")
