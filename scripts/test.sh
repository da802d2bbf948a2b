#!/usr/bin/env bash
# Sets up .venv (Python 3.11) with the project and its dev tools (installing only when
# pyproject.toml changed: scripts/venv.sh), then runs the linters, the type checker and every
# test. PostgreSQL/Redis tests run when PANTHEON_TEST_DATABASE_URL / PANTHEON_TEST_REDIS_URL are
# set (see README); .ci/run sets both and requires them.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/venv.sh
source scripts/venv.sh
ensure_venv '.[dev]'  # CI starts from a fresh .venv, so it always installs
echo "== ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "== mypy (domain, strict)"
.venv/bin/mypy
echo "== pytest"
exec .venv/bin/python -m pytest "$@"
