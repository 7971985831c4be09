#!/usr/bin/env bash
# Installs schemathesis, the API fuzzer that e2e/fuzz.e2e.ts runs against a
# real pgdbd, into a Python virtual environment outside the checkout, and
# prints the path of its `st` command on stdout.
#
# Idempotent: reuses the environment when it already has this version.
# Needs python3 (3.9+) with the venv module, and PyPI.
#
# Env:
#   PGDB_TOOLS_DIR  where tools are cached (default ${XDG_CACHE_HOME:-$HOME/.cache}/pgdb)
set -euo pipefail

SCHEMATHESIS_VERSION=4.32.5
TOOLS_DIR="${PGDB_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/pgdb}"
VENV="$TOOLS_DIR/schemathesis-$SCHEMATHESIS_VERSION"
ST="$VENV/bin/st"

log() { printf '[setup-schemathesis] %s\n' "$*" >&2; }
die() { printf '[setup-schemathesis] ERROR: %s\n' "$*" >&2; exit 1; }

if [[ -x "$ST" ]] && "$ST" --version 2>/dev/null | grep -qF "$SCHEMATHESIS_VERSION"; then
  echo "$ST"
  exit 0
fi

command -v python3 >/dev/null 2>&1 || die "python3 is required (apt-get install -y python3 python3-venv)"
log "installing schemathesis $SCHEMATHESIS_VERSION into $VENV"
rm -rf "$VENV"
mkdir -p "$TOOLS_DIR"
python3 -m venv "$VENV" || die "python3 -m venv failed (apt-get install -y python3-venv)"
"$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION" >&2
"$ST" --version >&2
echo "$ST"
