"""The paper-vs-reproduction table: our numbers come from records, verdicts follow the stated rule."""

from __future__ import annotations

import pandas as pd

from untrainable import reproduction as R
from untrainable.paths import results_root
from untrainable.results import write_json_atomic

CSV = """row_id,chapter,setting,condition,paper_metric,paper_mean,paper_spread,paper_direction,baseline_row,experiment,record,our_metric,source,note
a-none,04,A,no guide,acc,10,1,,,exp,a-no_guide,test_acc,paper,
a-up,04,A,guide,acc,20,1,,a-none,exp,a-guide,test_acc,paper,
a-flat,04,A,other,acc,20,1,,a-none,exp,a-other,test_acc,paper,
a-later,,B,guide,acc,5,,,,,,,paper,
"""


def _record(name, seed, acc):
    return {"experiment": "exp", "profile": "full", "seed": seed, "name": name, "config": {"c": 1},
            "metrics": {"test_acc": acc}, "history": [{"test_loss": 1.0}], "git_commit": "x", "device": "cpu",
            "versions": {}, "wall_time_s": 1.0, "created": "2026-01-01T00:00:00"}


def test_verdicts_follow_the_rule(tmp_path):
    path = tmp_path / "numbers.csv"
    path.write_text(CSV)
    for seed, (none, up, other) in enumerate([(0.30, 0.40, 0.31), (0.32, 0.41, 0.30), (0.31, 0.42, 0.33)]):
        for name, acc in (("a-no_guide", none), ("a-guide", up), ("a-other", other)):
            write_json_atomic(_record(name, seed, acc), results_root() / "full" / "exp" / f"{name}-{seed}.json")
    table = R.comparison("full", path)
    assert table.loc["a-none", "verdict"] == "not comparable" and table.loc["a-none", "seeds"] == 3
    assert table.loc["a-up", "verdict"] == "reproduced in direction"
    assert table.loc["a-up", "ours"] == "41.0 ± 1.0"
    assert table.loc["a-flat", "verdict"] == "not reproduced"  # within the seed spread
    assert table.loc["a-later", "verdict"] == "not run yet" and table.loc["a-later", "ours"] == ""
    assert set(table["verdict"]) <= set(R.VERDICTS)


def test_the_book_data_file_has_sources_for_every_row():
    paper = R.paper_numbers()
    assert paper["source"].notna().all() and paper.index.is_unique
    assert isinstance(R.comparison("full"), pd.DataFrame)
