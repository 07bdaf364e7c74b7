"""``python -m untrainable``: see :mod:`untrainable.cli`."""

from untrainable.cli import main

raise SystemExit(main())
