"""Effects with intervals and tests, and the book's one verdict rule.

**Effects.** An effect is the difference of means ``treated - baseline`` over seeds. Its 95 %
interval uses Welch's standard error and the Welch–Satterthwaite degrees of freedom

    se² = s_a²/n_a + s_b²/n_b,    ν = se⁴ / ((s_a²/n_a)²/(n_a-1) + (s_b²/n_b)²/(n_b-1)),

    interval = effect ± t_{0.975, ν} · se,

and its p-value is Welch's two-sided t-test (``scipy.stats.ttest_ind(equal_var=False)``).

**Verdicts.** :func:`verdict` is the one rule: "reproduced" (p < 0.05 in the paper's direction),
"opposite" (p < 0.05 the other way); with p ≥ 0.05, "inconclusive" where the interval holds both 0
and the paper's effect (translated to our scale, or no size given: nothing to exclude) and "no effect
detected" only where it excludes the paper's effect; "not testable" (a named precondition of the claim
fails in our records), "rule not available" (the estimate's rule has no test value in a record,
:mod:`untrainable.analysis.estimates`), "not comparable" (no direction to test), "not run" (no
records). A side with fewer than :data:`MIN_SEEDS` seeds gets no verdict: "too few seeds".

**Power.** :func:`minimum_detectable_effect` is the smallest true effect the test finds with
probability :data:`POWER` at the observed spread and seeds: the noncentral t with Welch's degrees of
freedom, ``P(|T'| > t_{0.975, ν}) = 0.8`` for ``T' ~ t'(ν, δ / se)``, solved for δ (the normal
approximation ``(z_{0.975} + z_{0.8}) · se ≈ 2.80 se`` is its large-ν limit).

**Bimodal outcomes.** Where seeds either stay at chance or learn (parity), a mean hides the split;
:func:`escape_p` compares the share of seeds that escape chance with Fisher's exact test.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import optimize, stats

__all__ = ["SIGNIFICANCE", "POWER", "MIN_SEEDS", "VERDICTS", "REPRODUCED", "OPPOSITE", "INCONCLUSIVE", "NO_EFFECT",
           "NOT_TESTABLE", "RULE_NOT_AVAILABLE", "NOT_COMPARABLE", "NOT_RUN", "TOO_FEW_SEEDS", "Effect", "Precondition",
           "Verdict", "welch_effect", "verdict", "minimum_detectable_effect", "escapes_chance", "splits_at_chance",
           "escape_p"]

#: Significance level of every test in the book (not "alpha": that is the guidance weight).
SIGNIFICANCE = 0.05
#: The power :func:`minimum_detectable_effect` is computed for.
POWER = 0.8
#: Fewest seeds on each side of a comparison for a verdict.
MIN_SEEDS = 3

REPRODUCED = "reproduced"
OPPOSITE = "opposite"
INCONCLUSIVE = "inconclusive"
NO_EFFECT = "no effect detected"
NOT_TESTABLE = "not testable"
RULE_NOT_AVAILABLE = "rule not available"
NOT_COMPARABLE = "not comparable"
NOT_RUN = "not run"
TOO_FEW_SEEDS = "too few seeds"
VERDICTS = (REPRODUCED, OPPOSITE, INCONCLUSIVE, NO_EFFECT, NOT_TESTABLE, RULE_NOT_AVAILABLE, NOT_COMPARABLE, NOT_RUN,
            TOO_FEW_SEEDS)


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
        """p < :data:`SIGNIFICANCE` (a NaN p-value, from two spread-free sides, is not significant)."""
        return bool(self.p_value < SIGNIFICANCE)

    def holds(self, value: float) -> bool:
        """Whether the 95 % interval contains ``value``."""
        return bool(self.ci_low <= value <= self.ci_high)


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
            precondition: Precondition | None = None, min_seeds: int = MIN_SEEDS,
            paper_effect: float | None = None) -> Verdict:
    """The book's one verdict rule (module docstring), in the order its checks apply.

    ``paper_direction`` is the sign of the paper's effect (+1: the paper's treated value is higher,
    -1: lower; ``None``: the paper states no direction). A lower-is-better metric needs no special
    case: its direction is already in the sign. ``paper_effect``: the paper's effect on our scale
    (``None`` or NaN: the paper gives no size), which a test without significance must exclude for
    "no effect detected".
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
        return _not_significant(e, paper_effect)
    same = np.sign(e.effect) == paper_direction
    return Verdict(REPRODUCED if same else OPPOSITE,
                   f"p = {e.p_value:.2g}, {'the paper' if same else 'not the paper'}'s direction", e)


def _not_significant(e: Effect, paper_effect: float | None) -> Verdict:
    """"inconclusive" unless the interval excludes the paper's effect: only then is "no effect detected"
    a finding (the experiment could have seen the paper's effect and did not)."""
    p = f"p = {e.p_value:.2g} ≥ {SIGNIFICANCE}"
    if paper_effect is None or math.isnan(paper_effect):
        return Verdict(INCONCLUSIVE, f"{p}; the paper gives no effect size the interval could exclude", e)
    if e.holds(paper_effect) and e.holds(0.0):
        return Verdict(INCONCLUSIVE, f"{p}; the 95 % interval holds both 0 and the paper's effect "
                                     f"({paper_effect:+.3g})", e)
    return Verdict(NO_EFFECT, f"{p}; the 95 % interval excludes the paper's effect ({paper_effect:+.3g})", e)


def minimum_detectable_effect(baseline: Sequence[float], treated: Sequence[float], power: float = POWER) -> float:
    """The smallest true effect Welch's two-sided test at :data:`SIGNIFICANCE` detects with probability
    ``power`` at these seeds' spread (module docstring: noncentral t, Welch's degrees of freedom).
    NaN when a side has fewer than 2 seeds or neither side has spread."""
    a, b = np.asarray(baseline, dtype=float), np.asarray(treated, dtype=float)
    if a.size < 2 or b.size < 2:
        return float("nan")
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    se = math.sqrt(va + vb)
    if se == 0:
        return float("nan")
    df = se**4 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1))
    crit = float(stats.t.ppf(1 - SIGNIFICANCE / 2, df))

    def shortfall(ncp: float) -> float:  # the far tail is ~0 where scipy's nct returns NaN for it
        return float(stats.nct.sf(crit, df, ncp) + np.nan_to_num(stats.nct.cdf(-crit, df, ncp))) - power

    high = 1.0
    while shortfall(high) < 0:  # widen the bracket until the power is reached (nct is unstable far beyond it)
        high *= 2
    return float(optimize.brentq(shortfall, 0.0, high)) * se


def escapes_chance(values: Sequence[float], chance: float, margin: float) -> list[bool]:
    """Per seed: whether it got away from chance (at least ``margin`` above it)."""
    return [v >= chance + margin for v in values]


def splits_at_chance(values: Sequence[float], chance: float, margin: float) -> bool:
    """Whether the seeds split into stuck ones (within ``margin`` of chance) and learning ones (at least
    twice the margin above chance): the outcome is bimodal and a mean hides it."""
    return any(v < chance + margin for v in values) and any(v >= chance + 2 * margin for v in values)


def escape_p(baseline: Sequence[float], treated: Sequence[float], chance: float, margin: float) -> float:
    """Fisher's exact two-sided p for the share of seeds that escape chance, treated against baseline;
    NaN unless the baseline splits (:func:`splits_at_chance`), where a mean compares what it should."""
    if not splits_at_chance(baseline, chance, margin):
        return float("nan")
    t, b = escapes_chance(treated, chance, margin), escapes_chance(baseline, chance, margin)
    table = [[sum(t), len(t) - sum(t)], [sum(b), len(b) - sum(b)]]
    return float(stats.fisher_exact(table).pvalue)
