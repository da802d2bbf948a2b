#!/usr/bin/env bash
# Sets up .venv (Python 3.11) with the project, then serves Pantheon on the embedded defaults:
# a SQLite file under ~/.local/share/pantheon, in-memory events, offline scripted agents.
# On the very first start the log shows a demo admin token (once). Extra args go to `pantheon serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3.11}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e .
exec .venv/bin/pantheon serve "$@"
