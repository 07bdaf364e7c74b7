"""Effects with intervals and tests, and the book's one verdict rule.

**Effects.** An effect is the difference of means ``treated - baseline`` over seeds. Its 95 %
interval uses Welch's standard error and the Welch–Satterthwaite degrees of freedom

    se² = s_a²/n_a + s_b²/n_b,    ν = se⁴ / ((s_a²/n_a)²/(n_a-1) + (s_b²/n_b)²/(n_b-1)),

    interval = effect ± t_{0.975, ν} · se,

and its p-value is Welch's two-sided t-test (``scipy.stats.ttest_ind(equal_var=False)``).

**Verdicts.** :func:`verdict` is the one rule: "reproduced" (p < 0.05 in the paper's direction),
"opposite" (p < 0.05 the other way), "no effect detected" (p ≥ 0.05), "not testable" (a named
precondition of the claim fails in our records), "not comparable" (no direction to test), "not
run" (no records). A side with fewer than :data:`MIN_SEEDS` seeds gets no verdict: "too few seeds".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

__all__ = ["ALPHA", "MIN_SEEDS", "VERDICTS", "REPRODUCED", "OPPOSITE", "NO_EFFECT", "NOT_TESTABLE", "NOT_COMPARABLE",
           "NOT_RUN", "TOO_FEW_SEEDS", "Effect", "Precondition", "Verdict", "welch_effect", "verdict"]

#: Significance level of every test in the book.
ALPHA = 0.05
#: Fewest seeds on each side of a comparison for a verdict.
MIN_SEEDS = 3

REPRODUCED = "reproduced"
OPPOSITE = "opposite"
NO_EFFECT = "no effect detected"
NOT_TESTABLE = "not testable"
NOT_COMPARABLE = "not comparable"
NOT_RUN = "not run"
TOO_FEW_SEEDS = "too few seeds"
VERDICTS = (REPRODUCED, OPPOSITE, NO_EFFECT, NOT_TESTABLE, NOT_COMPARABLE, NOT_RUN, TOO_FEW_SEEDS)


@dataclass(frozen=True)
class Effect:
    """``treated - baseline`` over seeds, with its 95 % Welch interval and Welch's two-sided p-value."""

    baseline_mean: float
    treated_mean: float
    effect: float
    ci_low: float
    ci_high: float
    p_value: float
    n_baseline: int
    n_treated: int

    @property
    def seeds(self) -> int:
        """The smaller side's seed count: what limits the comparison."""
        return min(self.n_baseline, self.n_treated)

    @property
    def significant(self) -> bool:
        """p < :data:`ALPHA` (a NaN p-value, from two spread-free sides, is not significant)."""
        return bool(self.p_value < ALPHA)


def welch_effect(baseline: Sequence[float], treated: Sequence[float]) -> Effect:
    """The effect ``mean(treated) - mean(baseline)``, its 95 % interval and p (module docstring).

    Needs at least two values per side (a variance); fewer is a clear error, not a NaN.
    """
    a, b = np.asarray(baseline, dtype=float), np.asarray(treated, dtype=float)
    if a.size < 2 or b.size < 2:
        raise ValueError(f"an effect needs at least 2 seeds per side, got {a.size} (baseline) and {b.size} (treated)")
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    se = math.sqrt(va + vb)
    diff = float(b.mean() - a.mean())
    if se == 0:
        return Effect(float(a.mean()), float(b.mean()), diff, diff, diff, float("nan"), a.size, b.size)
    df = se**4 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1))
    half = float(stats.t.ppf(0.975, df)) * se
    p = float(stats.ttest_ind(b, a, equal_var=False).pvalue)
    return Effect(float(a.mean()), float(b.mean()), diff, diff - half, diff + half, p, a.size, b.size)


@dataclass(frozen=True)
class Precondition:
    """A condition a claim needs from our records (e.g. "the unguided Deep FCN overfits"), checked."""

    name: str
    holds: bool
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.name}: {'yes' if self.holds else 'no'}" + (f"; {self.detail}" if self.detail else "")


@dataclass(frozen=True)
class Verdict:
    """One of :data:`VERDICTS`, why, and the effect it rests on (``None`` when no test was made)."""

    verdict: str
    reason: str
    effect: Effect | None = None


def verdict(baseline: Sequence[float], treated: Sequence[float], paper_direction: int | None,
            precondition: Precondition | None = None, min_seeds: int = MIN_SEEDS) -> Verdict:
    """The book's one verdict rule (module docstring), in the order its checks apply.

    ``paper_direction`` is the sign of the paper's effect (+1: the paper's treated value is higher,
    -1: lower; ``None``: the paper states no direction). A lower-is-better metric needs no special
    case: its direction is already in the sign.
    """
    if paper_direction not in (1, -1, None):
        raise ValueError(f"paper_direction must be +1, -1 or None, got {paper_direction!r}")
    if not len(baseline) or not len(treated):
        return Verdict(NOT_RUN, f"no records: {len(baseline)} baseline and {len(treated)} treated seeds")
    if paper_direction is None:
        return Verdict(NOT_COMPARABLE, "the paper states no effect to compare")
    if precondition is not None and not precondition.holds:
        return Verdict(NOT_TESTABLE, str(precondition))
    if min(len(baseline), len(treated)) < min_seeds:
        return Verdict(TOO_FEW_SEEDS, f"{len(baseline)} and {len(treated)} seeds; a verdict needs {min_seeds} per side")
    e = welch_effect(baseline, treated)
    if not e.significant:
        return Verdict(NO_EFFECT, f"p = {e.p_value:.2g} ≥ {ALPHA}", e)
    same = np.sign(e.effect) == paper_direction
    return Verdict(REPRODUCED if same else OPPOSITE,
                   f"p = {e.p_value:.2g}, {'the paper' if same else 'not the paper'}'s direction", e)
