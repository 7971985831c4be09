#!/usr/bin/env bash
# Build the image e2e/install.e2e.ts runs scripts/install.sh in, WITHOUT a
# container registry:
#   scripts/build-install-test-image.sh
#
# A Debian 12 (bookworm) minbase root file system with systemd as init, made
# with mmdebstrap and `docker import`ed as ${PGDB_INSTALL_TEST_IMAGE:-pgdb-test/install-debian:12}.
# It stands in for a fresh server: no Node.js, no Docker, no compiler; only
# what a minimal Debian or Ubuntu server has (curl, ca-certificates, systemd).
# The test runs it with systemd as PID 1 and the host's Docker socket mounted.
#
# Idempotent: an image whose label org.pgdb.install-test-image.hash matches the
# hash of this recipe is reused. Needs a running Docker engine
# (scripts/setup-docker.sh) and, to build, root.
set -euo pipefail
# shellcheck source=scripts/lib/apt.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/apt.sh"

IMAGE="${PGDB_INSTALL_TEST_IMAGE:-pgdb-test/install-debian:12}"
HASH_LABEL=org.pgdb.install-test-image.hash
SUITE=bookworm
PACKAGES=systemd,systemd-sysv,dbus,ca-certificates,curl

log() { printf '[build-install-test-image] %s\n' "$*" >&2; }
die() { printf '[build-install-test-image] ERROR: %s\n' "$*" >&2; exit 1; }

# Runs in the new root file system after the packages are installed. Part of
# the recipe hash. Makes systemd boot quietly and harmlessly in a container:
# an empty machine-id (systemd makes a transient one per boot), no gettys, no
# kernel or clock settings from inside a container, no docs.
# shellcheck disable=SC2016 # $1 is expanded by mmdebstrap's hook shell.
CUSTOMIZE_HOOK='set -e
: >"$1/etc/machine-id"
rm -f "$1/var/lib/dbus/machine-id"
for unit in getty@.service serial-getty@.service console-getty.service systemd-sysctl.service \
    systemd-modules-load.service systemd-binfmt.service systemd-firstboot.service \
    systemd-timesyncd.service sys-kernel-debug.mount sys-kernel-tracing.mount; do
  ln -sf /dev/null "$1/etc/systemd/system/$unit"
done
rm -rf "$1"/usr/share/doc/* "$1"/usr/share/man/* "$1"/usr/share/info/* "$1"/var/log/apt/* "$1"/var/cache/apt/*.bin'

mmdebstrap_args() {
  printf '%s\0' --variant=minbase --include="$PACKAGES" --customize-hook="$CUSTOMIZE_HOOK"
}

recipe_hash() {
  {
    printf 'recipe-version=1\nsuite=%s\n' "$SUITE"
    mmdebstrap_args
  } | sha256sum | cut -c1-64
}

ensure_mmdebstrap() {
  command -v mmdebstrap >/dev/null 2>&1 && return 0
  log "installing mmdebstrap"
  apt_install mmdebstrap
}

main() {
  local hash current tmp started=$SECONDS old_id new_id
  local -a args=()
  docker info >/dev/null 2>&1 || die "Docker engine not reachable; run scripts/setup-docker.sh (as root) first"

  # Serialise concurrent runs on this machine.
  local lock="${TMPDIR:-/tmp}/pgdb-build-install-test-image.lock"
  : >>"$lock" 2>/dev/null || true
  exec 9<"$lock"
  flock 9

  hash="$(recipe_hash)"
  current="$(docker image inspect --format "{{ index .Config.Labels \"$HASH_LABEL\" }}" "$IMAGE" 2>/dev/null || true)"
  if [[ "$current" == "$hash" ]]; then
    log "$IMAGE: reusing (recipe hash ${hash:0:12})"
    return 0
  fi

  [[ "$(id -u)" == 0 ]] || die "building $IMAGE needs root (mmdebstrap, apt-get); re-run as root"
  ensure_mmdebstrap
  tmp="$(mktemp -d "${TMPDIR:-/tmp}/pgdb-install-test-image.XXXXXX")"
  # shellcheck disable=SC2064 # expand now: tmp is local.
  trap "rm -rf '$tmp'" EXIT
  mapfile -d '' -t args < <(mmdebstrap_args)
  log "$IMAGE: mmdebstrap $SUITE with $PACKAGES (log: $tmp/mmdebstrap.log)"
  if ! mmdebstrap "${args[@]}" "$SUITE" "$tmp/rootfs.tar" >"$tmp/mmdebstrap.log" 2>&1 </dev/null; then
    tail -n 30 "$tmp/mmdebstrap.log" >&2
    die "mmdebstrap failed for $IMAGE"
  fi
  old_id="$(docker image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)"
  log "$IMAGE: root fs $(du -m "$tmp/rootfs.tar" | cut -f1) MB after $((SECONDS - started)) s; docker import"
  docker import \
    --change 'ENV container=docker' \
    --change 'CMD ["/sbin/init"]' \
    --change "LABEL $HASH_LABEL=$hash" \
    "$tmp/rootfs.tar" "$IMAGE" >/dev/null
  new_id="$(docker image inspect --format '{{.Id}}' "$IMAGE")"
  if [[ -n "$old_id" && "$old_id" != "$new_id" ]]; then
    docker rmi "$old_id" >/dev/null 2>&1 || log "$IMAGE: previous image $old_id is still in use; not removed"
  fi
  log "$IMAGE: built in $((SECONDS - started)) s"
}

main "$@"
