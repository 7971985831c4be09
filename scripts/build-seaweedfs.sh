#!/usr/bin/env bash
# Builds SeaweedFS (`weed`, an S3-compatible object store the backup tests
# write to) from the Go module proxy, pinned, and caches the binary outside the
# checkout, keyed by version. A second run reuses the cached binary. Prints the
# binary's path on stdout (progress on stderr).
#
#   PGDB_BUILD_CACHE    cache root (default /var/cache/pgdb-build)
#   SEAWEEDFS_VERSION   module version to build (default below)
#
# `go install github.com/seaweedfs/seaweedfs/weed@v` refuses the module because
# its go.mod has a replace line, so a throw-away wrapper module is generated in
# a temporary folder.
set -euo pipefail

version="${SEAWEEDFS_VERSION:-v0.0.0-20261109003541-7506e5f91cd6}"
module=github.com/seaweedfs/seaweedfs
cache_root="${PGDB_BUILD_CACHE:-/var/cache/pgdb-build}"
dest_dir="$cache_root/seaweedfs/$version"
dest="$dest_dir/weed"

# The binary records the module version it was built from (go version -m: the
# `mod` line, since weed is the main package of that module); without Go on
# PATH a cached binary that runs is trusted by its folder name.
built_from() {
  go version -m "$1" 2>/dev/null | awk -v m="$module" '$1 == "mod" && $2 == m { print $3 }'
}

if [[ -x "$dest" ]] && "$dest" version >/dev/null 2>&1; then
  if ! command -v go >/dev/null 2>&1 || [[ "$(built_from "$dest")" == "$version" ]]; then
    echo "build-seaweedfs.sh: using cached $dest" >&2
    echo "$dest"
    exit 0
  fi
fi

if ! command -v go >/dev/null 2>&1; then
  echo "build-seaweedfs.sh: Go is needed to build SeaweedFS $version (apt-get install golang, or a Go toolchain on PATH)" >&2
  exit 1
fi

work="$(mktemp -d -t pgdb-seaweedfs-build.XXXXXX)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$dest_dir"

cat >"$work/go.mod" <<GOMOD
module local/seaweedfs

go 1.25

require $module $version

// Copied from seaweedfs's own go.mod: replace lines do not carry over to the
// module that requires it.
replace github.com/tyler-smith/go-bip39 => github.com/cosmos/go-bip39 v1.0.0
GOMOD

cat >"$work/tools.go" <<GOSRC
//go:build tools

package tools

import _ "$module/weed"
GOSRC

start=$SECONDS
echo "build-seaweedfs.sh: building SeaweedFS $version (measured 7.5 minutes on 2 cores after build-pulumi.sh filled empty Go caches, as test.sh runs them; under a minute with warm ones)" >&2
(
  cd "$work"
  GOFLAGS=-mod=mod go mod tidy >&2
  CGO_ENABLED=0 go build -trimpath -o "$work/weed" "$module/weed" >&2
)
got="$(built_from "$work/weed")"
if [[ "$got" != "$version" ]]; then
  echo "build-seaweedfs.sh: the built binary records $module '$got', expected '$version'" >&2
  exit 1
fi
"$work/weed" version >/dev/null
# Atomic replace, so a concurrent reader never sees a half-written binary.
mv "$work/weed" "$dest.tmp.$$"
mv -f "$dest.tmp.$$" "$dest"
echo "build-seaweedfs.sh: built $dest in $((SECONDS - start)) s" >&2
echo "$dest"
