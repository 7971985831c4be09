#!/usr/bin/env bash
# Smoke test of a running pgdbd through the pgdb CLI:
#   deploys a database, runs SELECT 1 through psql with the DATABASE_URL the
#   CLI printed, destroys the database. Exits non-zero on any failure, and
#   destroys the database it made even when a later step fails.
#
#   PGDB_TOKEN=... PGDB_SERVER_URL=http://127.0.0.1:8080 scripts/integration_test.sh
#
# Env:
#   PGDB_TOKEN       the daemon's bearer token (required)
#   PGDB_SERVER_URL  the daemon's URL (required)
#   PGDB_CLI         the CLI to run (default: this checkout's dist/cli/bin/pgdb.cjs;
#                    run `npm run build` first)
# Needs psql.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PGDB_CLI="${PGDB_CLI:-$ROOT/dist/cli/bin/pgdb.cjs}"
NAME="it-$(date +%s)-$RANDOM"
DEPLOYED=""

log() { printf '[integration_test] %s\n' "$*" >&2; }
die() { printf '[integration_test] FAIL: %s\n' "$*" >&2; exit 1; }

pgdb() {
  if [[ "$PGDB_CLI" == *.js || "$PGDB_CLI" == *.cjs ]]; then node "$PGDB_CLI" "$@"; else "$PGDB_CLI" "$@"; fi
}

cleanup() {
  if [[ -n "$DEPLOYED" ]]; then
    pgdb destroy "$DEPLOYED" --yes >/dev/null || log "could not destroy $DEPLOYED; remove it with: pgdb destroy $DEPLOYED --yes"
  fi
}

[[ -n "${PGDB_TOKEN:-}" ]] || die "set PGDB_TOKEN to the daemon's token"
[[ -n "${PGDB_SERVER_URL:-}" ]] || die "set PGDB_SERVER_URL to the daemon's URL, e.g. http://127.0.0.1:8080"
command -v psql >/dev/null || die "psql is not installed"
if [[ "$PGDB_CLI" == *.js && ! -f "$PGDB_CLI" ]]; then die "$PGDB_CLI is missing; run npm run build"; fi
trap cleanup EXIT

log "deploying $NAME on $PGDB_SERVER_URL"
output="$(pgdb deploy --name "$NAME")" || die "pgdb deploy failed"
DEPLOYED="$NAME"
url="$(sed -n 's/^DATABASE_URL: //p' <<<"$output")"
[[ -n "$url" ]] || die "pgdb deploy printed no DATABASE_URL line"

log "SELECT 1 through psql"
# The password goes to psql through its environment, never on a command line
# (where ps and the process table would show it).
userinfo="${url#*://}"
userinfo="${userinfo%%@*}"
password="${userinfo#*:}"
printf -v password '%b' "${password//%/\\x}" # percent-decoding with a shell builtin: no new process sees it
url="${url/"$userinfo@"/"${userinfo%%:*}@"}"
answer="$(PGPASSWORD="$password" PGCONNECT_TIMEOUT=10 psql "$url" --no-psqlrc -v ON_ERROR_STOP=1 -tAc 'SELECT 1')" || die "psql could not run SELECT 1"
[[ "$answer" == 1 ]] || die "SELECT 1 returned '$answer'"

log "destroying $NAME"
pgdb destroy "$NAME" --yes >/dev/null || die "pgdb destroy failed"
DEPLOYED=""
log "ok"
