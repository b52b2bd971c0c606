#!/usr/bin/env bash
# Create .venv and install the project with its dev tools; quick when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-}
if [ -z "$PY" ]; then
  for candidate in python3.11 python3.12 python3.13 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      PY=$candidate; break
    fi
  done
fi
[ -n "$PY" ] || { echo "setup: Python 3.11 or newer is needed" >&2; exit 1; }
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.installed
lock=deploy/requirements.lock
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ "$lock" -nt "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  # The runtime dependencies at the versions the image ships (the lock without its hashes, as
  # constraints: the dev tools are not in it).
  sed -e '/--hash=/d' -e 's/ *\\$//' "$lock" > .venv/constraints.txt
  .venv/bin/python -m pip install --quiet -c .venv/constraints.txt -e ".[dev]"
  touch "$stamp"
fi
