"""Which of our records answer a row of ``book/paper_numbers.csv``: the records the chapters plan.

**Seeds.** A record name's values are those of exactly the seeds its chapter plans
(:func:`untrainable.experiments.planned_runs`), each loaded with the chapter's checks (its
``required_metrics``), so page 98, the landing page and the chapter read the same runs. A name with
some planned records stored and others not is an error naming the missing ones (a table must not
quietly average fewer seeds than it says); a name none of whose records are stored, or that the
profile does not plan (``quick`` runs no 4096-unit student), is "not run" (in ``full``, the book, every
row's record is planned: :func:`unplanned_records`). A stored seed no chapter plans (one trained from a
shell, say) is listed in ``extra_seeds`` and never pooled.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from untrainable.experiments import PlannedRun, planned_runs
from untrainable.paths import repo_root
from untrainable.results import MissingRecordError, run_key

__all__ = ["DATA_FILE", "paper_numbers", "PlannedStore", "is_set", "names_a_record", "precondition_specs", "row_records",
           "unplanned_records"]

#: The papers' numbers with their sources, one row per number.
DATA_FILE = Path("book") / "paper_numbers.csv"


def paper_numbers(path: Path | None = None) -> pd.DataFrame:
    """The data file of the papers' numbers, one row per number, indexed by ``row_id``."""
    df = pd.read_csv(path or repo_root() / DATA_FILE, dtype={"chapter": str})
    return df.set_index("row_id")


class PlannedStore:
    """The records the chapters plan in a profile (module docstring, "Seeds"), read once per name."""

    def __init__(self, profile: str):
        self.profile = profile
        self._plan: dict[tuple[str, str], list[PlannedRun]] | None = None
        self._cache: dict[tuple[str, str], list[dict[str, Any]]] = {}

    def plan(self) -> dict[tuple[str, str], list[PlannedRun]]:
        """Every planned run of the profile by (experiment, record name)."""
        if self._plan is None:
            self._plan = {}
            for run in planned_runs(self.profile):
                self._plan.setdefault((run.experiment, run.name), []).append(run)
        return self._plan

    def plans(self, experiment: str, name: str) -> bool:
        """Whether a chapter plans records of ``experiment/name``."""
        return (experiment, name) in self.plan()

    def named(self, experiment: str, name: str) -> list[dict[str, Any]]:
        """The records of ``name``, one per planned seed: all of them, or none when none is stored (or none is
        planned); an error naming the missing ones when only some are stored."""
        if (experiment, name) not in self._cache:
            runs = self._runs(experiment, name)
            loaded = [(run, run.load(self.profile)) for run in runs]
            missing = [run for run, record in loaded if record is None]
            if missing and len(missing) < len(runs):
                raise MissingRecordError(
                    f"{self.profile} records of {experiment}/{name}: {len(missing)} of the {len(runs)} planned seeds "
                    f"are not stored (seed {', '.join(str(r.seed) for r in missing)}: "
                    f"{', '.join(r.path(self.profile).name for r in missing)}); the page would average fewer seeds "
                    "than the chapter: train them (reproduce --train-missing) or restore them")
            self._cache[experiment, name] = [record for _, record in loaded if record is not None]
        return self._cache[experiment, name]

    def records(self, experiment: str) -> list[dict[str, Any]]:
        """The records of every name ``experiment`` plans (:meth:`named`)."""
        return [r for e, name in self.plan() if e == experiment for r in self.named(e, name)]

    def extra_seeds(self, experiment: str, name: str) -> list[int]:
        """Seeds stored for ``name`` under a planned config that no chapter plans: listed, never pooled."""
        runs = self._runs(experiment, name)
        if not runs:
            return []
        planned = {run.seed for run in runs}
        extra = set()
        for path in (runs[0].path(self.profile).parent).glob(f"{name}-seed*.json"):
            seed, _, key = path.stem[len(name) + len("-seed"):].partition("-")
            if seed.isdigit() and int(seed) not in planned and any(
                    key == run_key(experiment, run.config, int(seed)) for run in runs):
                extra.add(int(seed))
        return sorted(extra)

    def _runs(self, experiment: str, name: str) -> list[PlannedRun]:
        return self.plan().get((experiment, name), [])


def is_set(value: Any) -> bool:
    """Whether a cell of the data file holds something (a non-empty string, not NaN)."""
    return isinstance(value, str) and value != ""


def precondition_specs(row: pd.Series) -> list[str]:
    """The row's preconditions as written (``kind:args``, ``;``-separated in the data file); none when unset."""
    spec = row.get("precondition")
    return [part.strip() for part in spec.split(";") if part.strip()] if is_set(spec) else []


def names_a_record(row: pd.Series) -> bool:
    """Whether the row reads one record name (not a kappa pair, not a reference number without records)."""
    return is_set(row["experiment"]) and is_set(row["record"]) and row["our_metric"] != "kappa"


def row_records(row: pd.Series, store: PlannedStore) -> list[dict[str, Any]]:
    """The records of the row's record name (:meth:`PlannedStore.named`), an error naming the row."""
    if not names_a_record(row):
        return []
    try:
        return store.named(row["experiment"], row["record"])
    except MissingRecordError as e:
        raise MissingRecordError(f"row {row.name}: {e}") from None


def unplanned_records(profile: str, path: Path | None = None) -> list[str]:
    """The rows of the data file whose record no chapter plans in ``profile`` (``"row: experiment/record"``):
    such a row is "not run" in that profile, and in ``full`` a misspelt name."""
    store = PlannedStore(profile)
    return [f"{rid}: {row['experiment']}/{row['record']}" for rid, row in paper_numbers(path).iterrows()
            if names_a_record(row) and not store.plans(row["experiment"], row["record"])]
