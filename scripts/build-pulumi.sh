#!/usr/bin/env bash
# Builds the Pulumi CLI (engine) from the Go module proxy, pinned, and caches
# the binary outside the checkout, keyed by version. A second run reuses the
# cached binary. Prints the binary's path on stdout (progress on stderr).
#
#   PGDB_BUILD_CACHE  cache root (default /var/cache/pgdb-build)
#   PULUMI_VERSION    version to build (default v3.248.0, matching @pulumi/pulumi)
#
# The release's CLI cannot be downloaded on the test machines, and
# `go install .../cmd/pulumi@v` refuses pkg/v3 because its go.mod has replace
# lines, so a throw-away wrapper module is generated in a temporary folder.
set -euo pipefail

version="${PULUMI_VERSION:-v3.248.0}"
cache_root="${PGDB_BUILD_CACHE:-/var/cache/pgdb-build}"
dest_dir="$cache_root/pulumi/$version"
dest="$dest_dir/pulumi"

if [[ -x "$dest" ]] && [[ "$("$dest" version 2>/dev/null)" == "$version" ]]; then
  echo "build-pulumi.sh: using cached $dest" >&2
  echo "$dest"
  exit 0
fi

if ! command -v go >/dev/null 2>&1; then
  echo "build-pulumi.sh: Go is needed to build the Pulumi CLI $version (apt-get install golang, or a Go toolchain on PATH)" >&2
  exit 1
fi

work="$(mktemp -d -t pgdb-pulumi-build.XXXXXX)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$dest_dir"

cat >"$work/go.mod" <<GOMOD
module local/pulumicli

go 1.25.11

require (
	github.com/pulumi/pulumi/pkg/v3 $version
	github.com/pulumi/pulumi/sdk/v3 $version
)

// Copied from pkg/v3's own go.mod: replace lines do not carry over to the
// module that requires it.
replace github.com/atotto/clipboard => github.com/tgummerer/clipboard v0.0.0-20241001131231-d02d263e614e
GOMOD

cat >"$work/tools.go" <<'GOSRC'
//go:build tools

package tools

import _ "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi"
GOSRC

start=$SECONDS
echo "build-pulumi.sh: building the Pulumi CLI $version (measured 7 minutes on 2 cores with empty Go caches)" >&2
(
  cd "$work"
  GOFLAGS=-mod=mod go mod tidy >&2
  CGO_ENABLED=0 go build -trimpath \
    -ldflags "-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$version" \
    -o "$work/pulumi" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi >&2
)
got="$("$work/pulumi" version)"
if [[ "$got" != "$version" ]]; then
  echo "build-pulumi.sh: the built binary reports '$got', expected '$version'" >&2
  exit 1
fi
# Atomic replace, so a concurrent reader never sees a half-written binary.
mv "$work/pulumi" "$dest.tmp.$$"
mv -f "$dest.tmp.$$" "$dest"
echo "build-pulumi.sh: built $dest in $((SECONDS - start)) s" >&2
echo "$dest"
