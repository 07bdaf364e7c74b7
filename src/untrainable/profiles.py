"""The three run profiles every experiment offers.

* ``quick``: minutes on 2 CPU cores; executed by CI on every change.
* ``full``: the reproduction the book shows, as faithful as 2 CPU cores allow (at most about
  90 minutes per notebook, resumable); its records are committed.
* ``paper``: the papers' scale and hyper-parameters, for readers with a GPU.
"""

from __future__ import annotations

from typing import Literal

Profile = Literal["quick", "full", "paper"]
PROFILES: tuple[str, ...] = ("quick", "full", "paper")


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
