"""Checks a config runs on itself when it is made, so a bad setting fails at once and by name.

A negative learning rate or a zero batch size used to surface minutes later, deep in a training
loop, or never (a NaN metric, an empty epoch). A chapter config calls :func:`check_fields` from its
``__post_init__``::

    @dataclass(frozen=True)
    class FcnConfig:
        lr: float
        epochs: int
        alpha: float | None = None

        def __post_init__(self) -> None:
            check_fields(self, positive=("lr", "epochs"), non_negative=("alpha",))

The checks read fields and raise; they change no field, so no record key changes.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from typing import Any

__all__ = ["check_fields"]


def check_fields(config: Any, *, positive: Collection[str] = (), non_negative: Collection[str] = (),
                 fractions: Collection[str] = (), choices: Mapping[str, Collection[Any]] | None = None) -> None:
    """Raise ``ValueError`` naming the config type and field when a field breaks its rule.

    ``positive``: finite numbers > 0; ``non_negative``: finite numbers >= 0; ``fractions``: numbers
    in [0, 1]; ``choices``: field -> the values it may take. A field set to ``None`` (an optional
    setting left to its default) is not checked; a field the config lacks is a ``TypeError`` (a
    misspelt rule must not pass silently).
    """
    rules = [(positive, lambda v: v > 0, "> 0"), (non_negative, lambda v: v >= 0, ">= 0"),
             (fractions, lambda v: 0 <= v <= 1, "in [0, 1]")]
    for names, holds, wanted in rules:
        for name in names:
            value = _field(config, name)
            if value is not None and not (_is_number(value) and holds(value)):
                raise ValueError(f"{type(config).__name__}.{name} must be a finite number {wanted}, got {value!r}")
    for name, allowed in (choices or {}).items():
        value = _field(config, name)
        if value is not None and value not in allowed:
            raise ValueError(f"{type(config).__name__}.{name} must be one of {', '.join(map(repr, allowed))}, "
                             f"got {value!r}")


def _field(config: Any, name: str) -> Any:
    """The value of ``config.name``; a ``TypeError`` naming both when the config has no such field."""
    if not hasattr(config, name):
        raise TypeError(f"check_fields: {type(config).__name__} has no field {name!r}")
    return getattr(config, name)


def _is_number(value: Any) -> bool:
    """A finite int or float (``True`` is not a learning rate)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
