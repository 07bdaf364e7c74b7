"""Chapter 08's tables: effects against the labels alone come from Welch's test, cost from the records."""

from __future__ import annotations

import pytest
from scipy import stats

from untrainable import analysis as A


def _record(name: str, method: str, trained: bool, seed: int, acc: float, distance: str = "linear_cka",
            seconds: float = 0.1) -> dict:
    return {"name": name, "seed": seed, "profile": "full",
            "config": {"method": method, "teacher_trained": trained, "distance": distance},
            "metrics": {"test_acc": acc - 0.05, "mean_cka_teacher": 0.5, "seconds_per_step": seconds},
            # the book's estimate reads ``acc`` at epoch 2, the highest validation accuracy (not the last epoch)
            "history": [{"epoch": 1, "valid_acc": 0.1, "valid_loss": 2.0, "test_acc": 0.1},
                        {"epoch": 2, "valid_acc": 0.5, "valid_loss": 1.5, "test_acc": acc},
                        {"epoch": 3, "valid_acc": 0.4, "valid_loss": 1.0, "test_acc": acc - 0.05}]}


RECORDS = ([_record("labels", "labels", True, s, a, seconds=0.05) for s, a in enumerate((0.30, 0.31, 0.32))]
           + [_record("kd-trained", "kd", True, s, a) for s, a in enumerate((0.40, 0.41, 0.42))]
           + [_record("kd-untrained", "kd", False, s, a) for s, a in enumerate((0.30, 0.33, 0.31))]
           + [_record("guidance-untrained", "guidance", False, s, a, seconds=0.2) for s, a in enumerate((0.35, 0.36, 0.37))]
           + [_record("guidance-rsa-untrained", "guidance", False, s, a, "rsa") for s, a in enumerate((0.2, 0.21, 0.22))])


def test_each_method_is_read_against_the_labels_alone_by_welchs_test():
    t = A.method_table(RECORDS)
    assert list(t.index) == ["labels", "kd-trained", "kd-untrained", "guidance-untrained"]
    assert t.loc["kd-trained", "effect vs labels"] == pytest.approx(10.0)
    p = stats.ttest_ind([40, 41, 42], [30, 31, 32], equal_var=False).pvalue
    assert t.loc["kd-trained", "p"] == pytest.approx(p) and t.loc["kd-trained", "reading"] == "better"
    assert t.loc["kd-untrained", "reading"] == A.NO_EFFECT
    assert t.loc["guidance-untrained", "cost vs labels"] == pytest.approx(4.0)
    summary = A.transfer_summary(t)
    assert "**trained teacher**: KD (Hinton) (+10.0 points" in summary and "beat the labels alone" in summary
    assert "**untrained teacher**:" in summary and "KD (Hinton) (+0.3 points" in summary


def test_the_distance_study_reads_guidance_under_each_distance():
    t = A.distance_table(RECORDS)
    assert list(t.index) == ["guidance-untrained", "guidance-rsa-untrained"]
    assert list(t["distance"]) == ["linear CKA", "RSA"] and t.loc["guidance-rsa-untrained", "reading"] == "worse"


def test_the_findings_name_each_teachers_methods_each_distance_and_the_cost():
    text = A.transfer_findings(A.method_table(RECORDS), A.distance_table(RECORDS))
    methods, distances = text.split("**Guidance under each distance")
    assert A.transfer_summary(A.method_table(RECORDS)) in methods
    assert "RSA (-10.0 points" in distances and "did worse than the labels alone" in distances
    assert "KD (Hinton) 2.0×" in text  # 0.1 s a step against the labels' 0.05 s (trained teacher only)
    assert "RSA" not in text.split("**Cost")[1]  # its only run has the untrained teacher


def test_the_page_table_names_units_and_says_why_a_cell_is_empty():
    t = A.page_table(A.method_table(RECORDS))
    assert t.index.name == "method" and list(t.columns[:4]) == ["teacher", "seeds", "test acc (%)",
                                                                "effect vs labels (points) [95 % CI]"]
    first = t.iloc[0]
    assert first.name == "labels alone" and first["effect vs labels (points) [95 % CI]"] == "—" and first["Welch p"] == "—"
    assert t.iloc[1]["effect vs labels (points) [95 % CI]"] == "+10.0 [+7.7, +12.3]" and t.iloc[1]["test acc (%)"] == "41.0"
    assert "baseline" in t.attrs["na_note"] and not t.isna().to_numpy().any()


def test_a_student_without_records_gives_an_empty_table_not_rows_of_blanks():
    records = [_record("labels", "labels", True, s, 0.30) for s in range(3)]
    records += [_record("kd-trained", "kd", True, s, 0.32) for s in range(3)]
    assert A.method_table(records, prefix="plain_cnn-").empty


def test_the_landing_page_says_what_the_comparison_shows_once_it_has_records(monkeypatch):
    from untrainable import paper_comparison_display as PD
    from untrainable.paper_comparison_records import PlannedStore

    store = {"transfer_comparison": RECORDS}
    monkeypatch.setattr(PlannedStore, "records", lambda self, experiment: store.get(experiment, []))
    text = PD.transfer_paragraph("full", ("08 · Guidance vs distillation", "../notebooks/08.ipynb"))
    assert text.startswith("\n**Guidance vs distillation** ([08 · Guidance vs distillation](../notebooks/08.ipynb))")
    assert "3 seeds" in text and A.transfer_summary(A.method_table(RECORDS)) in text
    store.clear()
    assert PD.transfer_paragraph("full", ("08", "x")) == ""  # no records yet: no paragraph


def test_the_figure_shows_linear_cka_guidance_alone_with_the_tables_t_interval():
    import matplotlib

    matplotlib.use("Agg")
    from untrainable.plotting import transfer_methods

    fig = transfer_methods(A.method_frame(RECORDS), A.METHOD_LABELS, "t")
    dots = sum(len(c.get_offsets()) for c in fig.axes[0].collections)
    assert dots == 9  # KD x 2 teachers and guidance-untrained, 3 seeds each; the RSA runs are not pooled in
    low, high = stats.t.interval(0.95, 2, loc=36.0, scale=stats.sem([35, 36, 37]))
    bars = [sorted(line.get_ydata()) for line in fig.axes[0].lines if len(line.get_ydata()) == 2]
    assert any(b == pytest.approx([low, high]) for b in bars)
