"""``python -m untrainable``: see :mod:`untrainable.cli`."""

from untrainable.cli import main

__all__: list[str] = []

raise SystemExit(main())
