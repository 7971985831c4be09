#!/usr/bin/env bash
# Builds Pebble, Let's Encrypt's test ACME server, from the Go module proxy,
# pinned, and caches the binary outside the checkout, keyed by version. A
# second run reuses the cached binary. Prints the binary's path on stdout
# (progress on stderr). Used by e2e/acme.e2e.ts (PGDB_TEST_PEBBLE).
#
#   PGDB_BUILD_CACHE  cache root (default /var/cache/pgdb-build)
#   PEBBLE_VERSION    version to build (default v2.10.3)
set -euo pipefail

version="${PEBBLE_VERSION:-v2.10.3}"
cache_root="${PGDB_BUILD_CACHE:-/var/cache/pgdb-build}"
dest_dir="$cache_root/pebble/$version"
dest="$dest_dir/pebble"

# `go version -m` reads the module version the binary was built from.
built_version() {
  go version -m "$1" 2>/dev/null | awk '$1 == "mod" && $2 == "github.com/letsencrypt/pebble/v2" { print $3 }'
}

if ! command -v go >/dev/null 2>&1; then
  if [[ -x "$dest" ]]; then
    echo "$dest"
    exit 0
  fi
  echo "build-pebble.sh: Go is needed to build Pebble $version (apt-get install golang, or a Go toolchain on PATH)" >&2
  exit 1
fi

if [[ -x "$dest" ]] && [[ "$(built_version "$dest")" == "$version" ]]; then
  echo "build-pebble.sh: using cached $dest" >&2
  echo "$dest"
  exit 0
fi

work="$(mktemp -d -t pgdb-pebble-build.XXXXXX)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$dest_dir"
start=$SECONDS
echo "build-pebble.sh: building Pebble $version (about 10 s when Go's caches are warm)" >&2
CGO_ENABLED=0 GOBIN="$work" go install -trimpath "github.com/letsencrypt/pebble/v2/cmd/pebble@$version" >&2
got="$(built_version "$work/pebble")"
if [[ "$got" != "$version" ]]; then
  echo "build-pebble.sh: the built binary reports '$got', expected '$version'" >&2
  exit 1
fi
# Atomic replace, so a concurrent reader never sees a half-written binary.
mv "$work/pebble" "$dest.tmp.$$"
mv -f "$dest.tmp.$$" "$dest"
echo "build-pebble.sh: built $dest in $((SECONDS - start)) s" >&2
echo "$dest"
