#!/usr/bin/env bash
# GraphQL over HTTP compliance: runs the `graphql-http` package's server audits (pinned below)
# against Pantheon and fails on ANY result that is not `ok` (warnings and notices included).
#
#   scripts/graphql_http_audit.sh                 # serves Pantheon on the embedded defaults
#   scripts/graphql_http_audit.sh URL             # audits a running server, e.g. http://127.0.0.1:8000/graphql
#
# Every operation needs a token (anonymous ones get 401): the audits send one. Against the server
# this script starts, it is the demo admin's, read from the server log of its first start; against
# a running server, set PANTHEON_AUDIT_TOKEN (e.g. from `pantheon create-user`).
#
# Needs node >= 18 (built-in fetch) and npm; graphql-http is installed into a temporary folder
# (nothing is committed or left behind). PANTHEON_BIN overrides the `pantheon` executable.
set -euo pipefail
cd "$(dirname "$0")/.."
GRAPHQL_HTTP_VERSION=1.23.1

for tool in node npm; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "FATAL: $tool is required for the GraphQL over HTTP audit and is not installed" >&2
    exit 1
  fi
done
if ! node -e 'process.exit(typeof fetch === "function" ? 0 : 1)'; then
  echo "FATAL: node $(node --version) has no built-in fetch (need >= 18)" >&2
  exit 1
fi

work=$(mktemp -d)
server_pid=""
cleanup() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill "$server_pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== installing graphql-http@$GRAPHQL_HTTP_VERSION into a temporary folder"
if ! npm install --prefix "$work/npm" --no-audit --no-fund --no-save --loglevel=error \
  "graphql-http@$GRAPHQL_HTTP_VERSION" >"$work/npm.log" 2>&1; then
  cat "$work/npm.log" >&2
  echo "FATAL: npm could not install graphql-http@$GRAPHQL_HTTP_VERSION" >&2
  exit 1
fi

url=${1:-}
if [ -z "$url" ]; then
  if [ -n "${PANTHEON_BIN:-}" ]; then
    pantheon=$PANTHEON_BIN
  elif [ -x .venv/bin/pantheon ]; then
    pantheon=.venv/bin/pantheon
  elif command -v pantheon >/dev/null 2>&1; then
    pantheon=$(command -v pantheon)
  else
    echo "FATAL: no pantheon executable (run scripts/test.sh first, or set PANTHEON_BIN)" >&2
    exit 1
  fi
  port=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
  url="http://127.0.0.1:$port/graphql"
  echo "== starting Pantheon (embedded defaults, temporary data dir) on $url"
  env -u PANTHEON_DATABASE_URL -u PANTHEON_REDIS_URL PANTHEON_DATA_DIR="$work/data" \
    "$pantheon" serve --host 127.0.0.1 --port "$port" >"$work/server.log" 2>&1 &
  server_pid=$!
  ready=""
  for _ in $(seq 1 120); do
    if ! kill -0 "$server_pid" 2>/dev/null; then break; fi
    if node -e 'fetch(process.argv[1]).then(r=>process.exit(r.ok?0:1),()=>process.exit(1))' \
      "http://127.0.0.1:$port/api/v1/health"; then
      ready=yes
      break
    fi
    sleep 0.5
  done
  if [ -z "$ready" ]; then
    cat "$work/server.log" >&2
    echo "FATAL: Pantheon did not become healthy on port $port" >&2
    exit 1
  fi
  # The first start on an empty data dir logs the demo admin's token, once.
  PANTHEON_AUDIT_TOKEN=$(grep -o 'demo admin.*' "$work/server.log" | grep -oE 'pnt_[A-Za-z0-9_-]+' | head -n 1 || true)
  if [ -z "$PANTHEON_AUDIT_TOKEN" ]; then
    cat "$work/server.log" >&2
    echo "FATAL: the server log shows no demo admin token" >&2
    exit 1
  fi
fi
if [ -z "${PANTHEON_AUDIT_TOKEN:-}" ]; then
  echo "FATAL: set PANTHEON_AUDIT_TOKEN to a valid token to audit $url" >&2
  exit 1
fi
export PANTHEON_AUDIT_TOKEN

echo "== graphql-http server audits"
status=0
node scripts/graphql_http_audit.mjs "$url" "$work/npm" || status=$?
if [ "$status" -ne 0 ] && [ -n "$server_pid" ]; then
  echo "-- server log (tail)" >&2
  tail -n 40 "$work/server.log" >&2 || true
fi
exit "$status"
