"""The three run profiles every experiment offers.

* ``quick``: minutes on 2 CPU cores; executed by CI on every change.
* ``full``: the reproduction the book shows, as faithful as 2 CPU cores allow (a chapter up to
  about 4 hours of 2-core time, every single run under an hour and resumable); its records are committed.
* ``paper``: the papers' scale and hyper-parameters, for readers with a GPU.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, Literal, TypeVar

Profile = Literal["quick", "full", "paper"]
PROFILES: tuple[str, ...] = ("quick", "full", "paper")

#: Seeds every chapter runs unless told otherwise (a chapter may ask for more on headline rows).
DEFAULT_SEEDS: dict[str, tuple[int, ...]] = {"quick": (0, 1), "full": (0, 1, 2), "paper": (0, 1, 2, 3, 4)}


class UnknownProfileError(ValueError):
    """Raised for a profile name that is not one of :data:`PROFILES`."""


def check_profile(profile: str) -> str:
    """Return ``profile`` unchanged, or raise a clear error naming the valid choices."""
    if profile not in PROFILES:
        raise UnknownProfileError(
            f"unknown profile {profile!r}: choose one of {', '.join(PROFILES)} "
            "(quick = minutes on a CPU, full = the book's reproduction, paper = the papers' scale)"
        )
    return profile


def default_seeds(profile: str) -> tuple[int, ...]:
    """The seeds a profile runs by default."""
    return DEFAULT_SEEDS[check_profile(profile)]


# ----------------------------------------------------------------------------- typed presets

P = TypeVar("P")


class PresetError(ValueError):
    """A chapter's preset names a key its preset type does not have, or misses a profile."""


def make_preset(chapter: str, cls: type[P], values: Mapping[str, Any]) -> P:
    """A chapter's preset of type ``cls`` (a frozen dataclass) from ``values``.

    A key that is not a field of ``cls`` is an error naming the key and the chapter: a typo must not
    fall back to a default silently.
    """
    fields = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(values) - fields)
    if unknown:
        raise PresetError(f"{chapter}: unknown preset key(s) {', '.join(map(repr, unknown))} for {cls.__name__}: "
                          f"the keys are {', '.join(sorted(fields))}")
    return cls(**values)


def replace_preset(chapter: str, preset: P, **overrides: Any) -> P:
    """``preset`` with ``overrides`` (checked as :func:`make_preset` checks keys)."""
    return make_preset(chapter, type(preset), {**{f.name: getattr(preset, f.name)
                                                  for f in dataclasses.fields(preset)}, **overrides})  # type: ignore[arg-type]


def preset_table(chapter: str, presets: Mapping[str, P]) -> dict[str, P]:
    """A chapter's presets by profile, checked to cover every profile of :data:`PROFILES`."""
    missing = [p for p in PROFILES if p not in presets]
    extra = [p for p in presets if p not in PROFILES]
    if missing or extra:
        raise PresetError(f"{chapter}: presets must be given for exactly the profiles {', '.join(PROFILES)} "
                          f"(missing {missing}, unknown {extra})")
    return dict(presets)



# ----------------------------------------------------------------------------- seeds

#: The largest seed: seeds must fit a signed 32-bit integer, which every library's seed accepts.
MAX_SEED = 2**31 - 1


def check_seeds(seeds: Sequence[int]) -> tuple[int, ...]:
    """``seeds`` as a tuple, checked to be a set of distinct integers in ``[0, MAX_SEED]``.

    A repeated seed would count one run twice in every mean and test (and change a finding), a
    negative one wraps round to another seed under another key: each is a ``ValueError`` naming
    the seeds at fault.
    """
    seeds = tuple(seeds)
    wrong = [s for s in seeds if isinstance(s, bool) or not isinstance(s, int)]
    if wrong:
        raise ValueError(f"seeds must be integers, got {', '.join(map(repr, wrong))}")
    repeated = sorted({s for s in seeds if seeds.count(s) > 1})
    if repeated:
        raise ValueError(f"seeds must be distinct (each is one run, counted once): {', '.join(map(str, repeated))} "
                         "repeated")
    outside = [s for s in seeds if not 0 <= s <= MAX_SEED]
    if outside:
        raise ValueError(f"seed(s) {', '.join(map(str, outside))} out of range: seeds are integers from 0 to "
                         f"2**31 - 1 = {MAX_SEED}")
    return seeds
