#!/usr/bin/env bash
# Builds the `distribution` container registry (the reference implementation
# of the OCI distribution API, what Docker Hub runs) from the Go module proxy,
# pinned, and caches the binary outside the checkout, keyed by version (about
# 2 minutes with cold Go caches, instant warm). Prints the binary's path on
# stdout (progress on stderr). Used by e2e/registry.e2e.ts
# (PGDB_TEST_REGISTRY): a real registry on loopback that images are pushed
# to and pgdbd pulls from.
#
#   PGDB_BUILD_CACHE   cache root (default /var/cache/pgdb-build)
#   REGISTRY_VERSION   version to build (default v3.1.2)
set -euo pipefail
# shellcheck source=scripts/lib/go-install.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/go-install.sh"

go_install_cached registry github.com/distribution/distribution/v3 github.com/distribution/distribution/v3/cmd/registry "${REGISTRY_VERSION:-v3.1.2}"
