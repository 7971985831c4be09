#!/usr/bin/env bash
# Builds Pebble, Let's Encrypt's test ACME server, from the Go module proxy,
# pinned, and caches the binary outside the checkout, keyed by version. A
# second run reuses the cached binary. Prints the binary's path on stdout
# (progress on stderr). Used by e2e/acme.e2e.ts (PGDB_TEST_PEBBLE).
#
#   PGDB_BUILD_CACHE  cache root (default /var/cache/pgdb-build)
#   PEBBLE_VERSION    version to build (default v2.10.3)
set -euo pipefail
# shellcheck source=scripts/lib/go-install.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/go-install.sh"

go_install_cached pebble github.com/letsencrypt/pebble/v2 github.com/letsencrypt/pebble/v2/cmd/pebble "${PEBBLE_VERSION:-v2.10.3}"
