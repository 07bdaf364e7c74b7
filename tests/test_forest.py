"""The forest plot draws every judged claim, in words, one panel per unit; the landing page's files come from it."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd
import pytest

from untrainable import analysis as A
from untrainable import forest

HEADER = ("row_id,chapter,setting,condition,paper_metric,paper_mean,paper_spread,paper_direction,baseline_row,"
          "guide_row,precondition,experiment,record,our_metric,source,note\n")
CSV = HEADER + """d-none,04,Deep FCN (ResNet-18 guide),no guide,acc,10,,,,,,e,n,test_acc,paper,
d-up,04,Deep FCN (ResNet-18 guide),trained guide,acc,20,,,d-none,,,e,t,test_acc,paper,
d-init,04,Deep FCN guided early,trained guide (first steps),loss rise,,,lower,d-none,,,e,i,overfit_gap,paper,
m-up,07,Shallow net,mimics the ensemble,acc,20,,,m-none,,,e,m,test_acc,paper,
m-none,07,Shallow net,labels,acc,10,,,,,,e,l,test_acc,paper,
s-lm,06,RNN language model,trained guide,ppl,30,,,s-none,,,e,lm,perplexity,paper,
s-none,06,RNN language model,no guide,ppl,40,,,,,,e,ln,perplexity,paper,
"""
NAN = float("nan")


def _row(verdict, effect=NAN, scaled=NAN, seeds=3, fragile=False):
    return {"verdict": verdict, "effect": effect, "ci_low": effect - 1, "ci_high": effect + 1,
            "paper_effect_scaled": scaled, "seeds": seeds,
            "baseline_seeds": seeds if verdict != A.NOT_COMPARABLE else 0,
            "fragile": fragile}


@pytest.fixture()
def verdicts(tmp_path):
    path = tmp_path / "numbers.csv"
    path.write_text(CSV)
    frame = pd.DataFrame({"d-none": _row(A.NOT_COMPARABLE, seeds=5), "d-up": _row(A.REPRODUCED, 2.8, 1.2, 5, True),
                          "d-init": _row(A.OPPOSITE, 0.06), "m-up": _row(A.INCONCLUSIVE, 1.9, 1.8),
                          "m-none": _row(A.NOT_COMPARABLE), "s-lm": _row(A.NOT_TESTABLE),
                          "s-none": _row(A.NOT_COMPARABLE)}).T.rename_axis("row_id")
    frame[["effect", "ci_low", "ci_high", "paper_effect_scaled"]] = frame[
        ["effect", "ci_low", "ci_high", "paper_effect_scaled"]].astype(float)
    return frame, path


def _labels(fig):
    return [[t.get_text().replace("\n", " ").replace("\u00a0", " ") for t in ax.get_yticklabels()] for ax in fig.axes]


def test_the_forest_plot_draws_every_judged_row_one_panel_per_unit(verdicts):
    frame, path = verdicts
    fig = forest.forest_plot(frame, "full", path)
    try:
        labels = _labels(fig)
        assert len(fig.axes) == 3  # percentage points, nats, perplexity: never one axis for two units
        assert "points" in fig.axes[0].get_xlabel() and "nats" in fig.axes[1].get_xlabel()
        shown = [label for panel in labels for label in panel]
        for claim in ("Deep FCN (ResNet-18 guide), trained guide ⚠ fragile", "Shallow net, mimics the ensemble",
                      "Deep FCN guided early, trained guide (first steps)", "RNN language model, trained guide"):
            assert claim in shown  # every judged row, in words, a fragile one flagged
        assert not any("no guide" in s or "labels" in s or "d-up" in s for s in shown)  # reference rows, ids: never
        assert "chapter 04" in labels[0] and "chapter 07" in labels[0]
        drawn = [x for line in fig.axes[0].lines for x in line.get_xdata()]
        assert 2.8 in drawn and 1.2 in drawn and 1.9 in drawn  # our effects and the paper's on our scale
        assert "not testable" in [t.get_text() for t in fig.axes[2].texts]  # no test: the verdict in words
        title = fig.get_suptitle()
        assert "profile full" in title and "3 to 5 seeds per side" in title
        legend = [t.get_text() for t in fig.legends[0].get_texts()]
        assert {A.REPRODUCED, A.OPPOSITE, A.INCONCLUSIVE, A.NOT_TESTABLE} <= set(legend)
    finally:
        plt.close(fig)


def test_a_table_of_reference_numbers_alone_has_no_forest(verdicts):
    frame, path = verdicts
    with pytest.raises(ValueError, match="profile quick: no row judges a claim"):
        forest.forest_plot(frame[frame["verdict"] == A.NOT_COMPARABLE], "quick", path)


def test_the_landing_figure_says_profile_seeds_and_where_the_numbers_are(verdicts):
    frame, path = verdicts
    text = forest.figure_markup("_forest.png", frame, "full", "../notebooks/98.ipynb", path)
    assert text.startswith("```{figure} _forest.png\n") and "4 judged claims" in text
    assert "profile `full`, 3 to 5 seeds per side" in text and "(../notebooks/98.ipynb)" in text


def test_write_headline_writes_the_answer_its_forest_and_the_counts_from_the_records(tmp_path):
    """With no records stored (the tests' own empty store) every claim is "not run": the files say so."""
    from untrainable import reproduce

    (tmp_path / "stage" / "book").mkdir(parents=True)
    out = reproduce.write_headline(tmp_path / "stage", "full")
    answer = (tmp_path / "stage" / reproduce.ANSWER).read_text()
    assert out == tmp_path / "stage" / reproduce.HEADLINE and out.read_text()
    assert "No claim has been judged" in answer and "*not run*" not in answer and "```{figure} _forest.png" in answer
    assert (tmp_path / "stage" / reproduce.FOREST).read_bytes().startswith(b"\x89PNG")
