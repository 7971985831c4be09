#!/usr/bin/env bash
# Builds the driver probes that e2e/drivers.e2e.ts runs against a real pgdbd,
# pinned, and caches them outside the checkout under a key made of their
# versions, of this script and of the Go probe's sources. A second run reuses
# the cache at once. Prints the probes' directory on stdout (progress on
# stderr); the test reads it from PGDB_TEST_DRIVERS:
#
#   venv/bin/python Python of a virtual environment with psycopg 3 (the
#                   binary wheel, which carries its own libpq) and asyncpg,
#                   from PyPI; runs e2e/drivers/probe.py
#   pgx-probe       e2e/drivers/pgx built with github.com/jackc/pgx/v5 from
#                   the Go module proxy
#   postgresql.jar  pgjdbc from Maven Central (checksum pinned below), for
#                   `java -cp postgresql.jar e2e/drivers/Probe.java`
#
# postgres.js is an npm devDependency and needs nothing here.
#
# Needs python3 with venv, Go 1.25 or newer, curl, and a JDK 11 or newer
# (java with the source launcher, keytool). Run as root, it installs
# python3-venv and default-jdk-headless through apt when they are missing.
#
#   PGDB_BUILD_CACHE  cache root (default /var/cache/pgdb-build)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/apt.sh
source scripts/lib/apt.sh

PSYCOPG_VERSION=3.3.9
ASYNCPG_VERSION=0.32.0
PGJDBC_VERSION=42.7.14
PGJDBC_SHA256=73914527305a40cce504b0d3d90b23caf565136912d607ae8ae7c5895512332c
PGX_DIR=e2e/drivers/pgx

log() { printf 'build-driver-probes.sh: %s\n' "$*" >&2; }
die() { printf 'build-driver-probes.sh: %s\n' "$*" >&2; exit 1; }

# Go is on the base machine in /usr/local/go, not always on PATH.
if ! command -v go >/dev/null 2>&1 && [[ -x /usr/local/go/bin/go ]]; then
  PATH="/usr/local/go/bin:$PATH"
fi

# The test runs these, cached or not. The pgjdbc probe runs with the source
# launcher, which needs a JDK (its jdk.compiler module), not only a JRE.
has_jdk() { command -v keytool >/dev/null 2>&1 && java --list-modules 2>/dev/null | grep '^jdk\.compiler@' >/dev/null; }
if ! has_jdk; then
  [[ $EUID -eq 0 ]] || die "a JDK 11 or newer (java with the jdk.compiler module, and keytool) is needed for the pgjdbc probe: apt-get install default-jdk-headless"
  log "installing default-jdk-headless (java, keytool)"
  apt_install default-jdk-headless
  has_jdk || die "a JDK 11 or newer (java with the jdk.compiler module, and keytool) is needed for the pgjdbc probe, and default-jdk-headless did not provide it"
fi

pgx_version="$(awk '$1 == "require" && $2 == "github.com/jackc/pgx/v5" { print $3 }' "$PGX_DIR/go.mod")"
[[ -n "$pgx_version" ]] || die "cannot read the pgx version from $PGX_DIR/go.mod"
sources="$(cat scripts/build-driver-probes.sh "$PGX_DIR/go.mod" "$PGX_DIR/go.sum" "$PGX_DIR/main.go" | sha256sum | cut -c1-12)"
key="psycopg-$PSYCOPG_VERSION-asyncpg-$ASYNCPG_VERSION-pgx-$pgx_version-$sources-pgjdbc-$PGJDBC_VERSION"
cache_root="${PGDB_BUILD_CACHE:-/var/cache/pgdb-build}"
dest="$cache_root/drivers/$key"

if [[ -f "$dest/.complete" ]]; then
  log "using cached $dest"
  echo "$dest"
  exit 0
fi

command -v python3 >/dev/null 2>&1 || die "python3 is needed for the psycopg and asyncpg probes (apt-get install python3 python3-venv)"
command -v go >/dev/null 2>&1 || die "Go 1.25 or newer is needed to build the pgx probe (a Go toolchain on PATH or in /usr/local/go)"
command -v curl >/dev/null 2>&1 || die "curl is needed to fetch pgjdbc from Maven Central (apt-get install curl)"
if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
  [[ $EUID -eq 0 ]] || die "python3 has no venv module: run as root to install python3-venv, or apt-get install python3-venv"
  log "installing python3-venv"
  apt_install python3-venv
fi

start=$SECONDS
mkdir -p "$cache_root/drivers"
partial="$(mktemp -d "$cache_root/drivers/.partial.XXXXXX")"
trap 'rm -rf "$partial"' EXIT

log "Python probes: psycopg[binary] $PSYCOPG_VERSION and asyncpg $ASYNCPG_VERSION from PyPI"
python3 -m venv "$partial/venv" || die "python3 -m venv failed (apt-get install python3-venv)"
"$partial/venv/bin/python" -m pip install --quiet --disable-pip-version-check --only-binary=:all: \
  "psycopg[binary]==$PSYCOPG_VERSION" "asyncpg==$ASYNCPG_VERSION" >&2 \
  || die "pip could not install psycopg[binary]==$PSYCOPG_VERSION and asyncpg==$ASYNCPG_VERSION as wheels for $(python3 --version)"
"$partial/venv/bin/python" -c '
import asyncpg, psycopg, sys
assert psycopg.pq.__impl__ == "binary", "psycopg uses its " + psycopg.pq.__impl__ + " implementation, not the binary wheel"
print("psycopg", psycopg.__version__, "libpq", psycopg.pq.version(), "asyncpg", asyncpg.__version__, file=sys.stderr)
'

log "Go probe: pgx $pgx_version from the Go module proxy"
(cd "$PGX_DIR" && CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-mod=readonly go build -trimpath -o "$partial/pgx-probe" .) >&2 \
  || die "go build of $PGX_DIR failed (pgx $pgx_version needs Go 1.25 or newer; this is $(go version))"

log "pgjdbc $PGJDBC_VERSION from Maven Central"
curl -fsSL --retry 3 -o "$partial/postgresql.jar" \
  "https://repo1.maven.org/maven2/org/postgresql/postgresql/$PGJDBC_VERSION/postgresql-$PGJDBC_VERSION.jar" \
  || die "could not download pgjdbc $PGJDBC_VERSION from Maven Central"
echo "$PGJDBC_SHA256  $partial/postgresql.jar" | sha256sum --check --quiet >&2 \
  || die "pgjdbc $PGJDBC_VERSION does not have the pinned checksum"

touch "$partial/.complete"
chmod 755 "$partial"
# Rename into place; a concurrent build that got there first wins, and this one is dropped.
if ! mv -T "$partial" "$dest" 2>/dev/null; then
  [[ -f "$dest/.complete" ]] || die "cannot move the probes into $dest"
fi
log "built $dest in $((SECONDS - start)) s"
echo "$dest"
