#!/usr/bin/env bash
# Starts a local pgdbd with embedded defaults and deploys a first database.
#
#   scripts/quickstart.sh          set up, start the daemon, deploy "first", print its URL
#   scripts/quickstart.sh stop     stop the daemon (databases keep running in Docker)
#
# Everything lives under ./.pgdb (override with PGDB_HOME): the generated
# token, the daemon's data directory, its log and pid file. The daemon
# listens on 127.0.0.1:${PGDB_PORT:-8080} and publishes Postgres on loopback only.
# Where postgres:17 cannot be pulled, a local image is built once as
# ${PGDB_LOCAL_IMAGE_REPO:-pgdb-local/postgres}:17.
set -euo pipefail
cd "$(dirname "$0")/.."

home="${PGDB_HOME:-$PWD/.pgdb}"
port="${PGDB_PORT:-8080}"
url="http://127.0.0.1:${port}"
pid_file="$home/pgdbd.pid"

log() { printf '[quickstart] %s\n' "$*" >&2; }
running() { [[ -f "$pid_file" ]] && kill -0 "$(cat "$pid_file")" 2>/dev/null; }

if [[ "${1:-}" == "stop" ]]; then
  if running; then kill "$(cat "$pid_file")" && log "pgdbd stopped"; else log "pgdbd is not running"; fi
  rm -f "$pid_file"
  exit 0
fi

bash scripts/setup-docker.sh
if [[ ! -f node_modules/.package-lock.json || package-lock.json -nt node_modules/.package-lock.json ]]; then
  log "installing npm packages"
  npm ci --no-audit --no-fund --loglevel=error
fi
log "building"
npm run --silent build

# The official image when the server has it or can pull it; otherwise a
# locally built image with the same contract (air-gapped machines).
if docker image inspect postgres:17 >/dev/null 2>&1 || docker pull postgres:17 >/dev/null 2>&1; then
  template='postgres:{major}' versions='14,15,16,17,18'
else
  log "postgres:17 cannot be pulled here; building a local Postgres 17 image instead"
  local_repo="${PGDB_LOCAL_IMAGE_REPO:-pgdb-local/postgres}"
  PGDB_TEST_IMAGE_REPO="$local_repo" bash scripts/build-test-images.sh 17
  template="$local_repo:{major}" versions='17'
fi

mkdir -p "$home" && chmod 700 "$home"
if [[ ! -s "$home/token" ]]; then
  (umask 077 && node -e 'process.stdout.write(require("crypto").randomBytes(32).toString("hex"))' >"$home/token")
fi

if running; then
  log "pgdbd already running (pid $(cat "$pid_file"))"
else
  log "starting pgdbd on $url (log: $home/pgdbd.log)"
  PGDB_TOKEN_FILE="$home/token" PGDB_LISTEN="127.0.0.1:${port}" PGDB_DATA_DIR="$home/data" \
    PGDB_PUBLIC_HOST=127.0.0.1 PGDB_POSTGRES_BIND=127.0.0.1 \
    PGDB_IMAGE_TEMPLATE="$template" PGDB_POSTGRES_VERSIONS="$versions" \
    nohup node dist/daemon/src/main.js >>"$home/pgdbd.log" 2>&1 </dev/null &
  echo $! >"$pid_file"
  for _ in $(seq 1 100); do
    node -e 'fetch(process.argv[1]).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))' "$url/v1/health" && break
    running || { tail -n 20 "$home/pgdbd.log" >&2; log "pgdbd failed to start"; exit 1; }
    sleep 0.1
  done
fi

PGDB_TOKEN="$(cat "$home/token")"
export PGDB_TOKEN PGDB_SERVER_URL="$url"
pgdb() { node dist/cli/bin/pgdb.cjs "$@"; }
if pgdb status --json | grep -q '"name": *"first"'; then
  log 'database "first" already exists:'
  pgdb status
else
  pgdb deploy --name first
fi

cat >&2 <<EOT

pgdbd is running on $url. To use the CLI from this checkout:
  export PGDB_TOKEN="\$(cat $home/token)" PGDB_SERVER_URL=$url
  node dist/cli/bin/pgdb.cjs status        # or: npm link, then pgdb status
Stop the daemon with: scripts/quickstart.sh stop
EOT
