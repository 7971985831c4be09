#!/usr/bin/env bash
# Build local PostgreSQL test images WITHOUT a container registry:
#   scripts/build-test-images.sh [MAJOR...]      (default: 15 17 18)
#
# For each major: mmdebstrap a Debian minbase root file system holding
# postgresql-<major> (15: bookworm, 17: trixie, 18: sid) and that suite's
# pgbackrest (the backup engine pgdb runs inside every database container:
# 2.45, 2.55, 2.60), `docker import` it as
# a base image, then `docker build` scripts/images/postgres/ on top of it. The
# result, ${PGDB_TEST_IMAGE_REPO:-pgdb-test/postgres}:<major>, honours the
# official `postgres` image contract (see images/postgres/docker-entrypoint.sh).
# Deliberate differences: initdb uses --auth-host=scram-sha-256, so TCP
# connections from inside the container to 127.0.0.1 need the password too
# (the official image trusts them); signals during initialisation abort it.
# The 18 image (from sid) has no LLVM JIT: sid ships it outside postgresql-18.
#
# Idempotent: an image whose label org.pgdb.test-image.hash matches the hash of
# its recipe (Dockerfile, entrypoint, major, suite, root fs recipe) is reused.
# Needs a running Docker engine (scripts/setup-docker.sh) and, to build, root.
set -euo pipefail

REPO="${PGDB_TEST_IMAGE_REPO:-pgdb-test/postgres}"
HASH_LABEL=org.pgdb.test-image.hash
SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CONTEXT_DIR="$SCRIPT_DIR/images/postgres"
# shellcheck source=scripts/lib/apt.sh
source "$SCRIPT_DIR/lib/apt.sh"
DEFAULT_MAJORS=(15 17 18)

log() { printf '[build-test-images] %s\n' "$*" >&2; }
die() { printf '[build-test-images] ERROR: %s\n' "$*" >&2; exit 1; }

suite_for_major() {
  case "$1" in
    15) echo bookworm ;;
    17) echo trixie ;;
    18) echo sid ;;
    16) die "PostgreSQL 16 is not packaged in any Debian suite (bookworm has 15, trixie 17, sid 18); supported majors: ${DEFAULT_MAJORS[*]}" ;;
    *) die "unsupported PostgreSQL major '$1'; supported majors: ${DEFAULT_MAJORS[*]}" ;;
  esac
}

# Root file system recipe. Part of the image hash, so editing it rebuilds.
#  - essential hook: create the postgres user/group with uid/gid 999 (as the
#    official image) before postgresql-common's postinst would pick another
#    id, and tell postgresql-common not to create the default "main" cluster;
#  - customize hook: compile the en_US.UTF-8 locale (the official image's
#    default; sid's glibc ships no locale.alias), then drop docs, man pages,
#    translations, locale sources and any default cluster or config so they
#    cost no space.
# shellcheck disable=SC2016 # $1 is expanded by mmdebstrap's hook shell.
ESSENTIAL_HOOK='set -e
echo "postgres:x:999:999:PostgreSQL administrator,,,:/var/lib/postgresql:/bin/bash" >>"$1/etc/passwd"
echo "postgres:x:999:" >>"$1/etc/group"
mkdir -p "$1/etc/postgresql-common/createcluster.d"
echo "create_main_cluster = false" >"$1/etc/postgresql-common/createcluster.d/pgdb-no-main-cluster.conf"'
# shellcheck disable=SC2016
CUSTOMIZE_HOOK='set -e
aliases=""
for f in /usr/share/locale/locale.alias /etc/locale.alias; do
  if [ -e "$1$f" ]; then aliases="-A $f"; break; fi
done
chroot "$1" localedef -i en_US -c -f UTF-8 $aliases en_US.UTF-8
rm -rf "$1"/var/lib/postgresql/* "$1"/etc/postgresql/* "$1"/usr/share/doc/* "$1"/usr/share/man/* \
  "$1"/usr/share/info/* "$1"/usr/share/i18n/* "$1"/var/cache/debconf/*-old "$1"/var/log/apt/* "$1"/var/log/*.log
find "$1/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +'

mmdebstrap_args() { # MAJOR SUITE
  local -a args=(--variant=minbase --include="postgresql-$1,pgbackrest"
    --essential-hook="$ESSENTIAL_HOOK" --customize-hook="$CUSTOMIZE_HOOK")
  if [[ "$2" == sid ]]; then
    # sid's Release file on the reachable archive is expired.
    args+=(--aptopt='Acquire::Check-Valid-Until "false"')
  fi
  printf '%s\0' "${args[@]}"
}

recipe_hash() { # MAJOR SUITE
  {
    printf 'recipe-version=2\nmajor=%s\nsuite=%s\n' "$1" "$2"
    mmdebstrap_args "$1" "$2"
    cat "$CONTEXT_DIR/Dockerfile" "$CONTEXT_DIR/docker-entrypoint.sh"
  } | sha256sum | cut -c1-64
}

ensure_mmdebstrap() {
  command -v mmdebstrap >/dev/null 2>&1 && return 0
  log "installing mmdebstrap"
  apt_install mmdebstrap
}

# Start mmdebstrap for MAJOR in the background; its pid goes to ROOTFS_PID[MAJOR].
start_rootfs() { # MAJOR SUITE
  local major="$1" suite="$2" work="$TMP_DIR/$1"
  local -a args=()
  mkdir -p "$work"
  mapfile -d '' -t args < <(mmdebstrap_args "$major" "$suite")
  log "$REPO:$major: mmdebstrap $suite with postgresql-$major (log: $work/mmdebstrap.log)"
  mmdebstrap "${args[@]}" "$suite" "$work/rootfs.tar" >"$work/mmdebstrap.log" 2>&1 </dev/null &
  ROOTFS_PID[$major]=$!
}

build_image() { # MAJOR HASH
  local major="$1" hash="$2" image="$REPO:$1"
  local base="$REPO-rootfs:$1" work="$TMP_DIR/$1" old_id new_id
  local pgdata=/var/lib/postgresql/data volume=/var/lib/postgresql/data
  if ((major >= 18)); then
    pgdata="/var/lib/postgresql/$major/docker"
    volume=/var/lib/postgresql
  fi

  if ! wait "${ROOTFS_PID[$major]}"; then
    unset "ROOTFS_PID[$major]"
    tail -n 30 "$work/mmdebstrap.log" >&2
    die "mmdebstrap failed for $image"
  fi
  unset "ROOTFS_PID[$major]"
  log "$image: root fs $(du -m "$work/rootfs.tar" | cut -f1) MB after $((SECONDS - STARTED)) s; docker import as $base"
  docker import "$work/rootfs.tar" "$base" >/dev/null
  rm -f "$work/rootfs.tar"

  mkdir -p "$work/context"
  cp "$CONTEXT_DIR/Dockerfile" "$CONTEXT_DIR/docker-entrypoint.sh" "$work/context/"
  old_id="$(docker image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)"
  log "$image: docker build"
  if ! DOCKER_BUILDKIT=0 docker build --quiet --force-rm \
    --build-arg "BASE_IMAGE=$base" \
    --build-arg "PG_MAJOR=$major" \
    --build-arg "PGDATA_DIR=$pgdata" \
    --build-arg "VOLUME_DIR=$volume" \
    --build-arg "PGDB_IMAGE_HASH=$hash" \
    -t "$image" "$work/context" >"$work/build.log" 2>&1; then
    cat "$work/build.log" >&2
    docker rmi "$base" >/dev/null 2>&1 || true
    die "docker build failed for $image"
  fi
  # The base is a parent of the new image: this only drops its tag.
  docker rmi "$base" >/dev/null 2>&1 || true
  new_id="$(docker image inspect --format '{{.Id}}' "$image")"
  if [[ -n "$old_id" && "$old_id" != "$new_id" ]]; then
    docker rmi "$old_id" >/dev/null 2>&1 || log "$image: previous image $old_id is still in use; not removed"
  fi
  rm -rf "$work"
  log "$image: built after $((SECONDS - STARTED)) s ($(docker image inspect --format '{{.Size}}' "$image" | awk '{printf "%d MB", $1 / 1e6}'))"
}

cleanup() {
  local pid
  for pid in "${ROOTFS_PID[@]}"; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if [[ -n "$TMP_DIR" ]]; then rm -rf "$TMP_DIR"; fi
}

main() {
  local -a majors=() todo=()
  local major suite hash current
  declare -A seen=() hashes=()
  for major in "${@:-${DEFAULT_MAJORS[@]}}"; do
    suite_for_major "$major" >/dev/null # validate all before doing anything
    [[ -n "${seen[$major]:-}" ]] || majors+=("$major")
    seen[$major]=1
  done

  docker info >/dev/null 2>&1 || die "Docker engine not reachable; run scripts/setup-docker.sh (as root) first"

  # Serialise concurrent runs (e.g. parallel test workers) on this machine.
  local lock="${TMPDIR:-/tmp}/pgdb-build-test-images.lock"
  : >>"$lock" 2>/dev/null || true
  exec 9<"$lock"
  flock 9

  for major in "${majors[@]}"; do
    hash="$(recipe_hash "$major" "$(suite_for_major "$major")")"
    current="$(docker image inspect --format "{{ index .Config.Labels \"$HASH_LABEL\" }}" "$REPO:$major" 2>/dev/null || true)"
    if [[ "$current" == "$hash" ]]; then
      log "$REPO:$major: reusing (recipe hash ${hash:0:12})"
    else
      todo+=("$major")
      hashes[$major]="$hash"
    fi
  done
  ((${#todo[@]})) || return 0

  [[ "$(id -u)" == 0 ]] || die "building ${todo[*]/#/$REPO:} needs root (mmdebstrap, apt-get); re-run as root"
  ensure_mmdebstrap
  STARTED=$SECONDS
  TMP_DIR="$(mktemp -d "${TMPDIR:-/tmp}/pgdb-test-images.XXXXXX")"
  trap cleanup EXIT
  # Root file systems are built concurrently (download- and dpkg-bound),
  # then imported and built one by one.
  for major in "${todo[@]}"; do
    start_rootfs "$major" "$(suite_for_major "$major")"
  done
  for major in "${todo[@]}"; do
    build_image "$major" "${hashes[$major]}"
  done
  log "done in $((SECONDS - STARTED)) s"
}

declare -A ROOTFS_PID=()
TMP_DIR=""
STARTED=$SECONDS
main "$@"
