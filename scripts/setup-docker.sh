#!/usr/bin/env bash
# Make a Docker engine available on this machine (Debian, root).
#
# Idempotent: exits 0 at once if `docker info` already answers. Otherwise
# installs Debian's docker.io when `dockerd` is missing, starts dockerd in the
# background detached from the caller, and waits until the engine answers.
#
# Env:
#   DOCKERD_LOG      log file for dockerd (default /var/log/dockerd.log)
#   DOCKERD_TIMEOUT  seconds to wait for the engine (default 60)
set -euo pipefail
# shellcheck source=scripts/lib/apt.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/apt.sh"

DOCKERD_LOG="${DOCKERD_LOG:-/var/log/dockerd.log}"
DOCKERD_TIMEOUT="${DOCKERD_TIMEOUT:-60}"

log() { printf '[setup-docker] %s\n' "$*" >&2; }
die() { printf '[setup-docker] ERROR: %s\n' "$*" >&2; exit 1; }

docker_answers() {
  command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1
}

# pgdbd gives each database's volume its size with a loop device and an ext4
# file system (PGDB_SIZE_LIMITS): losetup (mount) and e2fsprogs on the host.
if ! command -v mkfs.ext4 >/dev/null 2>&1 || ! command -v debugfs >/dev/null 2>&1 || ! command -v losetup >/dev/null 2>&1; then
  [[ "$(id -u)" -eq 0 ]] || die "must run as root to install e2fsprogs and mount (try: sudo $0)"
  log "installing e2fsprogs and mount (loop-device volumes)"
  apt_install e2fsprogs mount
fi

if docker_answers; then
  log "Docker engine already running."
  exit 0
fi

if [[ "$(id -u)" -ne 0 ]]; then
  die "must run as root to install and start dockerd (try: sudo $0)"
fi

if ! command -v dockerd >/dev/null 2>&1; then
  log "installing docker.io"
  apt_install docker.io
  command -v dockerd >/dev/null 2>&1 || die "dockerd still missing after installing docker.io"
fi

if pgrep -x dockerd >/dev/null 2>&1; then
  log "dockerd already running (pid $(pgrep -x dockerd | head -n1)); waiting for it to answer"
elif [[ -d /run/systemd/system ]] && systemctl list-unit-files docker.service >/dev/null 2>&1; then
  # A real server: let systemd own the engine so it comes back after a reboot.
  log "starting docker.service with systemd"
  systemctl enable --now docker.service
else
  log "starting dockerd (log: $DOCKERD_LOG)"
  mkdir -p "$(dirname "$DOCKERD_LOG")"
  # Detach fully from the caller: new session, no inherited stdio.
  # No TMPDIR from the caller: runc keeps exec state there, and a caller's
  # temporary directory (test.sh's) is gone when the caller ends.
  env -u TMPDIR setsid dockerd >"$DOCKERD_LOG" 2>&1 </dev/null &
  disown || true
fi

deadline=$((SECONDS + DOCKERD_TIMEOUT))
until docker_answers; do
  if ((SECONDS >= deadline)); then
    die "dockerd did not answer 'docker info' within ${DOCKERD_TIMEOUT}s; see $DOCKERD_LOG"
  fi
  if ! pgrep -x dockerd >/dev/null 2>&1; then
    die "dockerd exited during startup; see $DOCKERD_LOG or journalctl -u docker"
  fi
  sleep 0.5
done

log "Docker engine ready ($(docker version --format '{{.Server.Version}} (API {{.Server.APIVersion}})' 2>/dev/null || echo '?'))."
