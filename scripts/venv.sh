# Sourced by serve.sh and test.sh (from the repository root): `ensure_venv SPEC` makes .venv
# (Python 3.11, or $PYTHON) and runs `pip install -e SPEC` only when pyproject.toml changed since
# the last install with that SPEC, so starting again needs no network. A stamp in .venv holds
# pyproject.toml's hash and the specs installed under it; a `.[dev]` install covers `.` too.
# When an install fails (offline, say) but Pantheon is installed, it warns and carries on.

ensure_venv() {
  local spec=$1
  local stamp=.venv/.pantheon-install-stamp
  local hash
  if [ ! -x .venv/bin/python ]; then
    "${PYTHON:-python3.11}" -m venv .venv
    .venv/bin/python -m pip install --quiet --upgrade pip || true  # a newer pip is optional
  fi
  hash=$(sha256sum pyproject.toml | cut -d' ' -f1)
  if [ -f "$stamp" ] && { grep -qxF "$hash $spec" "$stamp" || grep -qxF "$hash .[dev]" "$stamp"; }; then
    return 0
  fi
  if .venv/bin/python -m pip install --quiet -e "$spec"; then
    { grep -F "$hash " "$stamp" 2>/dev/null || true; echo "$hash $spec"; } >"$stamp.new"
    mv "$stamp.new" "$stamp"
  elif [ -x .venv/bin/pantheon ]; then
    echo "warning: pip install -e '$spec' failed (offline?); using what .venv has" >&2
  else
    echo "error: pip install -e '$spec' failed and .venv has no Pantheon yet" >&2
    return 1
  fi
}
