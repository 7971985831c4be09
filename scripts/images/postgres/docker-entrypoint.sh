#!/usr/bin/env bash
# Entrypoint of pgdb's locally built PostgreSQL test images
# (scripts/build-test-images.sh). It honours the contract of the official
# `postgres` Docker image that pgdb relies on, so the daemon's code path is the
# same against both:
#   - POSTGRES_USER (default postgres), POSTGRES_PASSWORD, POSTGRES_DB (default
#     $POSTGRES_USER) initialise an EMPTY $PGDATA on first start and are
#     ignored once $PGDATA holds a cluster; *_FILE variants are read too;
#     POSTGRES_INITDB_ARGS and POSTGRES_HOST_AUTH_METHOD are honoured;
#   - TCP clients authenticate with scram-sha-256 (`host all all all`);
#   - the server listens on 0.0.0.0:5432 only once initialisation is complete
#     (initialisation never listens on TCP), runs as `postgres`, and is PID 1
#     (STOPSIGNAL SIGINT = fast shutdown);
#   - /docker-entrypoint-initdb.d/*.sh|*.sql|*.sql.gz run once after initdb,
#     against a temporary server that listens on the unix socket only.
# Unlike the official image, SIGTERM/SIGINT during initialisation (e.g. a
# `docker stop` right after `docker run`) abort it at once and leave $PGDATA
# empty, so the container stops fast and the next start initialises afresh.
set -Eeuo pipefail

log() { printf '%s [entrypoint] %s\n' "$(date -u '+%Y-%m-%d %H:%M:%S UTC')" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# file_env VAR [DEFAULT]: VAR comes from $VAR, or from the file named by
# $VAR_FILE (not both), or DEFAULT.
file_env() {
  local var="$1" def="${2:-}" fvar="${1}_FILE" val
  if [[ -n "${!var:-}" && -n "${!fvar:-}" ]]; then
    die "both $var and $fvar are set (but are exclusive)"
  fi
  val="$def"
  if [[ -n "${!var:-}" ]]; then
    val="${!var}"
  elif [[ -n "${!fvar:-}" ]]; then
    val="$(<"${!fvar}")"
  fi
  export "$var"="$val"
  unset "$fvar"
}

# Double-quote an SQL identifier.
quote_ident() { printf '"%s"' "${1//\"/\"\"}"; }

# Arguments that only print something and exit need no setup.
wants_help() {
  local arg
  for arg; do
    case "$arg" in
      -'?' | --help | --describe-config | -V | --version) return 0 ;;
    esac
  done
  return 1
}

# From major 18 on, data lives in /var/lib/postgresql/<major>/docker and the
# volume belongs at /var/lib/postgresql; like the official image, refuse a
# volume mounted at the pre-18 location, where it would silently not be used.
check_volume_layout() {
  local old=/var/lib/postgresql/data
  if [[ "$PGDATA" != "$old"* ]] && awk -v p="$old" '$5 == p { found = 1 } END { exit !found }' /proc/self/mountinfo; then
    die "in PostgreSQL ${PG_MAJOR}+ images, PGDATA is $PGDATA and the volume must be mounted at /var/lib/postgresql, not at $old"
  fi
}

# Initialisation runs its steps as background children so that the shell
# (PID 1, which ignores signals it has no trap for) can act on a signal at once.
run_child() {
  "$@" &
  local rc=0
  wait "$!" || rc=$?
  return "$rc"
}

abort_init() { # SIGNAL EXIT_CODE
  trap '' INT TERM
  log "received SIG$1 during initialisation; aborting and emptying $PGDATA"
  kill -TERM 0 2>/dev/null || true # our process group: initdb and its children
  if [[ -s "$PGDATA/postmaster.pid" ]]; then # temporary server (own session)
    pg_ctl -D "$PGDATA" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  wait || true
  sleep 0.2 # let grandchildren (initdb's backends) exit
  find "$PGDATA" -mindepth 1 -delete 2>/dev/null || true
  exit "$2"
}

create_database() { # SQL; exec, so that run_child's pid is postgres itself
  exec postgres --single -D "$PGDATA" -c exit_on_error=on -c listen_addresses='' postgres <<<"$1" >/dev/null
}

init_cluster() {
  file_env POSTGRES_PASSWORD
  file_env POSTGRES_USER postgres
  file_env POSTGRES_DB "$POSTGRES_USER"
  file_env POSTGRES_INITDB_ARGS
  : "${POSTGRES_HOST_AUTH_METHOD:=scram-sha-256}"

  if [[ -z "$POSTGRES_PASSWORD" && "$POSTGRES_HOST_AUTH_METHOD" != trust ]]; then
    die "database is uninitialized and superuser password is not specified. Set POSTGRES_PASSWORD (or POSTGRES_HOST_AUTH_METHOD=trust, not recommended)."
  fi
  if [[ "$POSTGRES_USER$POSTGRES_DB" == *$'\n'* ]]; then
    die "POSTGRES_USER and POSTGRES_DB must not contain newlines"
  fi

  trap 'abort_init INT 130' INT
  trap 'abort_init TERM 143' TERM
  log "initialising $PGDATA (user \"$POSTGRES_USER\", database \"$POSTGRES_DB\")"
  local -a extra=()
  read -r -a extra <<<"$POSTGRES_INITDB_ARGS"
  local -a args=(-D "$PGDATA" --username="$POSTGRES_USER"
    --auth-local=trust --auth-host="$POSTGRES_HOST_AUTH_METHOD")
  if [[ -n "$POSTGRES_PASSWORD" ]]; then
    run_child initdb "${args[@]}" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") "${extra[@]}" >&2
  else
    run_child initdb "${args[@]}" "${extra[@]}" >&2
  fi

  printf '\nhost all all all %s\n' "$POSTGRES_HOST_AUTH_METHOD" >>"$PGDATA/pg_hba.conf"

  if [[ "$POSTGRES_DB" != postgres ]]; then
    # Single-user mode never opens a socket; its session user is the
    # bootstrap superuser (POSTGRES_USER). exit_on_error turns an SQL error
    # into a non-zero exit.
    run_child create_database "$(printf 'CREATE DATABASE %s OWNER %s' \
      "$(quote_ident "$POSTGRES_DB")" "$(quote_ident "$POSTGRES_USER")")" ||
      die "could not create database \"$POSTGRES_DB\""
  fi

  run_initdb_d
  trap - INT TERM
  log "initialisation complete"
}

run_initdb_d() {
  local dir=/docker-entrypoint-initdb.d f
  local -a files=()
  [[ -d "$dir" ]] || return 0
  shopt -s nullglob
  files=("$dir"/*)
  shopt -u nullglob
  ((${#files[@]})) || return 0

  log "running init scripts in $dir (temporary server, unix socket only)"
  run_child pg_ctl -D "$PGDATA" -w -o "-c listen_addresses='' -p 5432" start >&2
  export PGUSER="$POSTGRES_USER" PGDATABASE="$POSTGRES_DB" PGHOST=/var/run/postgresql PGPORT=5432
  local -a psql=(psql -v ON_ERROR_STOP=1 --no-password --no-psqlrc)
  for f in "${files[@]}"; do
    case "$f" in
      *.sh)
        if [[ -x "$f" ]]; then
          log "running $f"
          run_child "$f"
        else
          log "sourcing $f"
          # shellcheck disable=SC1090
          . "$f"
        fi
        ;;
      *.sql) log "running $f"; run_child "${psql[@]}" -f "$f" >&2 ;;
      *.sql.gz) log "running $f"; run_child psql_gz "$f" "${psql[@]}" >&2 ;;
      *) log "ignoring $f" ;;
    esac
  done
  unset PGUSER PGDATABASE PGHOST PGPORT
  run_child pg_ctl -D "$PGDATA" -m fast -w stop >&2
}

psql_gz() { # FILE PSQL...
  gzip -dc "$1" | "${@:2}"
}

main() {
  if [[ "${1:-}" == -* ]]; then
    set -- postgres "$@"
  fi
  if [[ "${1:-}" != postgres ]] || wants_help "${@:2}"; then
    exec "$@"
  fi

  check_volume_layout

  if [[ "$(id -u)" == 0 ]]; then
    mkdir -p "$PGDATA" /var/run/postgresql
    chown postgres:postgres /var/run/postgresql
    chmod 3777 /var/run/postgresql
    # Only what is not postgres's already (cheap on an initialised volume).
    find "$PGDATA" \! -user postgres -exec chown postgres:postgres '{}' +
    chmod 700 "$PGDATA"
    export HOME=/var/lib/postgresql
    if command -v setpriv >/dev/null 2>&1; then
      exec setpriv --reuid=postgres --regid=postgres --init-groups "${BASH_SOURCE[0]}" "$@"
    fi
    # runuser keeps a parent process, so postgres would not be PID 1.
    exec runuser -u postgres -- "${BASH_SOURCE[0]}" "$@"
  fi

  if [[ ! -s "$PGDATA/PG_VERSION" ]]; then
    init_cluster
  fi
  exec "$@"
}

main "$@"
