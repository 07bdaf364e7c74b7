#!/usr/bin/env bash
# Creates .venv/ at the repository root with the pinned requirements and the library installed
# in editable mode, then registers the venv's Jupyter kernel as `python3`.
# Idempotent: when the pins have not changed since the last successful run it only checks the
# imports, which takes seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
VENV=.venv
STAMP="$VENV/.untrainable-setup"
want=$(cat requirements.txt requirements-dev.txt pyproject.toml | sha256sum | cut -d' ' -f1)

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] \
   && "$VENV/bin/python" -c "import importlib.util as u, untrainable; assert all(u.find_spec(m) for m in ('torch', 'torchvision', 'papermill', 'jupyter_book', 'pytest'))" 2>/dev/null; then
  echo "setup: .venv is up to date"
  exit 0
fi

echo "setup: creating $VENV with $("$PYTHON" --version)"
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -e .
"$VENV/bin/python" -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (untrainable)" >/dev/null
"$VENV/bin/python" -c "import torch, torchvision, untrainable; print('setup: torch', torch.__version__, 'torchvision', torchvision.__version__)"
echo "$want" > "$STAMP"
