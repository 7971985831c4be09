#!/usr/bin/env bash
# Build the image e2e/infra.e2e.ts runs its "Hetzner servers" in:
#   scripts/build-infra-test-image.sh
#
# ${PGDB_INFRA_TEST_IMAGE:-pgdb-test/infra-server:12}: the install test image
# (scripts/build-install-test-image.sh, built first if needed) plus
# openssh-server, from scripts/images/infra-server/Dockerfile. Idempotent: an
# image whose label matches the hash of the recipe and of its base is reused.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

IMAGE="${PGDB_INFRA_TEST_IMAGE:-pgdb-test/infra-server:12}"
BASE="${PGDB_INSTALL_TEST_IMAGE:-pgdb-test/install-debian:12}"
HASH_LABEL=org.pgdb.infra-test-image.hash

log() { printf '[build-infra-test-image] %s\n' "$*" >&2; }

bash scripts/build-install-test-image.sh
base_id="$(docker image inspect --format '{{.Id}}' "$BASE")"
hash="$({ printf '%s\n' "$base_id"; cat scripts/images/infra-server/Dockerfile scripts/images/infra-server/pgdb-test-volumes.service; } | sha256sum | cut -c1-64)"
current="$(docker image inspect --format "{{ index .Config.Labels \"$HASH_LABEL\" }}" "$IMAGE" 2>/dev/null || true)"
if [[ "$current" == "$hash" ]]; then
  log "$IMAGE: reusing (recipe hash ${hash:0:12})"
  exit 0
fi
started=$SECONDS
log "$IMAGE: building from $BASE"
docker build -q --build-arg "BASE=$BASE" --label "$HASH_LABEL=$hash" -t "$IMAGE" scripts/images/infra-server >/dev/null
log "$IMAGE: built in $((SECONDS - started)) s"
