# shellcheck shell=bash
# Sourced by the scripts that build a test tool from the Go module proxy with
# `go install <package>@<version>` (build-pebble.sh, build-registry.sh).

# go_install_cached NAME MODULE PACKAGE VERSION: builds PACKAGE of MODULE at
# VERSION into $PGDB_BUILD_CACHE/NAME/VERSION/<binary> (default cache root
# /var/cache/pgdb-build), or reuses a binary built there from that version
# (`go version -m` names the module version it was built from). Prints the
# binary's path on stdout, progress on stderr. Without Go on PATH, a cached
# binary is trusted by its folder name.
go_install_cached() {
  local name="$1" module="$2" package="$3" version="$4"
  local binary="${package##*/}"
  local dest_dir="${PGDB_BUILD_CACHE:-/var/cache/pgdb-build}/$name/$version"
  local dest="$dest_dir/$binary"
  built_from() { go version -m "$1" 2>/dev/null | awk -v m="$module" '$1 == "mod" && $2 == m { print $3 }'; }
  if ! command -v go >/dev/null 2>&1; then
    if [[ -x "$dest" ]]; then
      echo "$dest"
      return 0
    fi
    echo "build-$name.sh: Go is needed to build $name $version (apt-get install golang, or a Go toolchain on PATH)" >&2
    return 1
  fi
  if [[ -x "$dest" ]] && [[ "$(built_from "$dest")" == "$version" ]]; then
    echo "build-$name.sh: using cached $dest" >&2
    echo "$dest"
    return 0
  fi
  local work start got
  work="$(mktemp -d -t "pgdb-$name-build.XXXXXX")"
  mkdir -p "$dest_dir"
  start=$SECONDS
  echo "build-$name.sh: building $name $version" >&2
  if ! CGO_ENABLED=0 GOBIN="$work" go install -trimpath "$package@$version" >&2; then
    rm -rf "$work"
    return 1
  fi
  got="$(built_from "$work/$binary")"
  if [[ "$got" != "$version" ]]; then
    echo "build-$name.sh: the built binary reports '$got', expected '$version'" >&2
    rm -rf "$work"
    return 1
  fi
  # Atomic replace, so a concurrent reader never sees a half-written binary.
  mv "$work/$binary" "$dest.tmp.$$"
  mv -f "$dest.tmp.$$" "$dest"
  rm -rf "$work"
  echo "build-$name.sh: built $dest in $((SECONDS - start)) s" >&2
  echo "$dest"
}
