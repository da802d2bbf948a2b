#!/usr/bin/env bash
# Sets up .venv (Python 3.11) with the project, then serves Pantheon on the embedded defaults:
# a SQLite file under ~/.local/share/pantheon, in-memory events, offline scripted agents.
# It installs only when pyproject.toml changed since the last install (scripts/venv.sh), so it
# starts offline once installed. On the very first start the log shows a demo admin token (once).
# Extra args go to `pantheon serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/venv.sh
source scripts/venv.sh
ensure_venv .
exec .venv/bin/pantheon serve "$@"
