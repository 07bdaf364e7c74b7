"""Record keys: a short hash of what defines a run (the experiment, every field of its config, the seed).

Every field of a config is part of the key, so adding a field would orphan every stored record; a
field added later is declared with :func:`added_field`, whose default leaves existing keys unchanged.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

__all__ = ["added_field", "config_dict", "key_payload", "run_key"]


def added_field(default: Any) -> Any:
    """A config field added after records were stored: at ``default`` it is left out of the key.

    Use it for a new setting whose default reproduces the old behaviour (``precision="fp32"``);
    every other value makes a new run with a new key.
    """
    return dataclasses.field(default=default, metadata={"key_default": default})


def config_dict(config: Any) -> dict[str, Any]:
    """A plain, JSON-ready dict of a dataclass config (or a dict passed through)."""
    return dataclasses.asdict(config) if dataclasses.is_dataclass(config) else dict(config)


def _drop_key_defaults(config: Any, d: dict[str, Any]) -> dict[str, Any]:
    """Remove from ``d`` (``asdict(config)``) the added fields that sit at their key default."""
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if "key_default" in f.metadata and value == f.metadata["key_default"]:
            d.pop(f.name)
        elif dataclasses.is_dataclass(value) and isinstance(d.get(f.name), dict):
            _drop_key_defaults(value, d[f.name])
    return d


def key_payload(config: Any) -> dict[str, Any]:
    """What of a config enters the record key: every field, except added fields at their default."""
    d = config_dict(config)
    return _drop_key_defaults(config, d) if dataclasses.is_dataclass(config) else d


def run_key(experiment: str, config: Any, seed: int) -> str:
    """A short, stable hash of what defines a run: the experiment, its full config and the seed."""
    payload = json.dumps({"experiment": experiment, "config": key_payload(config), "seed": seed},
                         sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:12]
