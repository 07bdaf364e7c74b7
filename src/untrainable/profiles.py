"""The three run profiles every experiment offers.

* ``quick``: minutes on 2 CPU cores; executed by CI on every change.
* ``full``: the reproduction the book shows, as faithful as 2 CPU cores allow (a chapter up to
  about 4 hours of 2-core time, every single run under an hour and resumable); its records are committed.
* ``paper``: the papers' scale and hyper-parameters, for readers with a GPU.
"""

from __future__ import annotations

from typing import Literal

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
