#!/usr/bin/env bash
# Install or upgrade pgdbd, the pgdb daemon, as a systemd service on this
# server, from this checkout. Debian 12+ or Ubuntu 22.04+, x86_64 or arm64, as root:
#
#   export PGDB_TOKEN="$(openssl rand -hex 32)" PGDB_LISTEN=":8080" PGDB_PUBLIC_HOST="<ip-or-dns>"
#   sudo -E ./scripts/install.sh [--domain <dns name>] [--acme-email <address>]
#
# --domain sets PGDB_DOMAIN (the name on the ACME certificate and in URLs; its
# DNS record must point here) and --acme-email sets PGDB_ACME_EMAIL.
#
# What it does, in order (nothing is changed until every check has passed):
#  1. refuses without root, on an unsupported system, or without a token on
#     the first install;
#  2. installs Debian's/Ubuntu's docker.io unless a Docker engine already
#     answers on PGDB_DOCKER_SOCKET (default /var/run/docker.sock);
#  3. uses the system's Node.js if it is 22.12 or newer, else installs the
#     pinned Node.js 22 below under /opt/pgdb/runtime (from the npm registry,
#     sha512-verified; no compiler needed);
#  4. builds the daemon in a staging directory (npm ci, npm run compile, npm
#     prune --omit=dev with the pinned npm below; without the optional
#     dependencies, which are the CLI's Pulumi packages) and only then moves it to
#     /opt/pgdb/releases/<id> and points /opt/pgdb/app at it: a failed build
#     leaves the running daemon untouched;
#  5. writes /etc/pgdb/pgdbd.env (mode 0600, root), creates /var/lib/pgdb
#     (0700), installs systemd/pgdbd.service, enables and (re)starts pgdbd and
#     waits until GET /v1/health answers 200 (over https, verified against the
#     daemon's CA /var/lib/pgdb/tls/ca.crt, when the API serves HTTPS). If an
#     upgrade does not come up healthy, the previous release, configuration
#     and unit are restored;
#  6. prints the CA's fingerprint and the pgdb commands that trust the server.
#
# Running it again upgrades in place: the token and every other setting in
# /etc/pgdb/pgdbd.env are kept unless given again in the environment, and the
# registry and the databases (Docker containers and volumes) are not touched.
#
# Configuration taken from the environment (written to /etc/pgdb/pgdbd.env;
# see docs/configuration.md for their meaning): PGDB_TOKEN (or PGDB_TOKEN_FILE, read once
# here), PGDB_LISTEN (default :8080), PGDB_PUBLIC_HOST (default: this
# server's first address), PGDB_POSTGRES_BIND, PGDB_PORT_RANGE,
# PGDB_IMAGE_TEMPLATE, PGDB_POSTGRES_VERSIONS, PGDB_DEFAULT_VERSION,
# PGDB_DOCKER_SOCKET, PGDB_READY_TIMEOUT_MS, PGDB_LOG_LEVEL, PGDB_API_TLS
# (auto, on, off), PGDB_TLS_CERT_FILE and PGDB_TLS_KEY_FILE (the operator's
# own certificate, e.g. certbot's fullchain.pem and privkey.pem),
# PGDB_DEFAULT_MEMORY_MB, PGDB_POOL, and the backup settings PGDB_BACKUP,
# PGDB_BACKUP_SCHEDULE, PGDB_BACKUP_RETENTION_FULL and PGDB_BACKUP_S3_*
# (ENDPOINT, BUCKET, REGION, ACCESS_KEY_FILE, SECRET_KEY_FILE, URI_STYLE,
# CA_FILE, ADDRESS; the key files must be readable by root only),
# PGDB_BACKUP_KEY_FILE (the backup key saved from the lost server, when
# rebuilding one: readable by root only),
# PGDB_TLS (auto, acme, own-ca), PGDB_DOMAIN, PGDB_ACME_DIRECTORY,
# PGDB_ACME_EMAIL, PGDB_ACME_PROFILE, PGDB_ACME_HTTP_PORT, PGDB_ACME_TLS_PORT,
# PGDB_BACKUP_DRILL_SCHEDULE, PGDB_ALERT_WEBHOOK, PGDB_SIZE_LIMITS (on, off),
# PGDB_NETWORK_WALLS (on, off), PGDB_EGRESS (closed, open) and
# PGDB_BACKUP_GATEWAY_PORT.
# PGDB_DATA_DIR is fixed to /var/lib/pgdb (mount a volume there if needed).
#
# Installer settings:
#   PGDB_NPM_REGISTRY            registry (or mirror) for Node.js, npm and the
#                                daemon's packages (default https://registry.npmjs.org)
#   PGDB_INSTALL_HEALTH_TIMEOUT  seconds to wait for /v1/health (default 60)
#   PGDB_INSTALL_OS_RELEASE      os-release file to check (tests only)
#
# The token is never printed, logged or passed on a command line.
if [ -z "${BASH_VERSION:-}" ]; then
  echo "install.sh needs bash: run sudo -E ./scripts/install.sh" >&2
  exit 1
fi
set -euo pipefail
umask 022

readonly PREFIX=/opt/pgdb
readonly RELEASES="$PREFIX/releases"
readonly RUNTIME="$PREFIX/runtime"
readonly APP_LINK="$PREFIX/app"
readonly NODE_LINK="$PREFIX/bin/node"
readonly CONF_DIR=/etc/pgdb
readonly ENV_FILE="$CONF_DIR/pgdbd.env"
readonly ENV_BACKUP="$CONF_DIR/pgdbd.env.previous"
readonly DATA_DIR=/var/lib/pgdb
# The daemon's own CA (created by pgdbd on first start): what clients pin.
readonly CA_FILE="$DATA_DIR/tls/ca.crt"
readonly UNIT_FILE=/etc/systemd/system/pgdbd.service
readonly CACHE_DIR=/var/cache/pgdb
readonly LOCK_FILE=/run/pgdb-install.lock

# Node.js for servers whose own is missing or older than NODE_MIN: the newest
# Node 22 LTS build the npm registry holds per architecture, as the
# node-linux-<arch> package (its tarball holds package/bin/node). sha512 in hex
# (the registry's dist.integrity is the same digest in base64).
# The daemon runs on a maintained LTS line on servers: Node 20 reached its end
# of life in April 2026 and some dependencies already declare Node >= 22.
readonly NODE_MIN=22.12
declare -rA NODE_VERSION=([x64]=22.23.5 [arm64]=22.23.3)
declare -rA NODE_SHA512=(
  [x64]=de3842fb07285b1299c5c46a176b144a5d1cf47117167babfe7b883f1e8ee8258a5748ce516426ec7b70e52b97aaa94c084862d1c26ac9b14f11be6185c06233
  [arm64]=9770c01d9adeca5a3ea7d4170edb0eae31b625726a5736179c01a621034e50d01170ca694ced9c99ec1540ffb7ead8c99d213e773a4c36d816f9cde8883bd7b4
)
# npm to build with (the node-linux-* packages carry no npm; the npm package
# bundles all its dependencies and runs with any Node >= 20.17).
readonly NPM_VERSION=11.21.2
readonly NPM_SHA512=ec73c0a64f807e53146af4ac78bd4f9ba0a762a3081e4e77c7e2a6ba1aa64c3a8f9233cc8312294cf713aac13dd4428dc3880504957d7e75e249d1a6d435eaf4

# Settings install.sh takes from its environment into the env file.
readonly CONFIG_VARS=(PGDB_TOKEN PGDB_LISTEN PGDB_PUBLIC_HOST PGDB_POSTGRES_BIND PGDB_PORT_RANGE
  PGDB_IMAGE_TEMPLATE PGDB_POSTGRES_VERSIONS PGDB_DEFAULT_VERSION PGDB_DOCKER_SOCKET
  PGDB_READY_TIMEOUT_MS PGDB_LOG_LEVEL PGDB_API_TLS PGDB_TLS_CERT_FILE PGDB_TLS_KEY_FILE
  PGDB_DEFAULT_MEMORY_MB PGDB_POOL PGDB_BACKUP PGDB_BACKUP_SCHEDULE PGDB_BACKUP_RETENTION_FULL
  PGDB_BACKUP_S3_ENDPOINT PGDB_BACKUP_S3_BUCKET PGDB_BACKUP_S3_REGION PGDB_BACKUP_S3_ACCESS_KEY_FILE
  PGDB_BACKUP_S3_SECRET_KEY_FILE PGDB_BACKUP_S3_URI_STYLE PGDB_BACKUP_S3_CA_FILE PGDB_BACKUP_S3_ADDRESS PGDB_BACKUP_GATEWAY_PORT
  PGDB_BACKUP_KEY_FILE PGDB_TLS PGDB_DOMAIN PGDB_ACME_DIRECTORY PGDB_ACME_EMAIL PGDB_ACME_PROFILE PGDB_ACME_HTTP_PORT PGDB_ACME_TLS_PORT
  PGDB_BACKUP_DRILL_SCHEDULE PGDB_ALERT_WEBHOOK PGDB_SIZE_LIMITS PGDB_NETWORK_WALLS PGDB_EGRESS)

# Of those, the ones whose values have spaces (cron patterns).
readonly SPACED_VARS=(PGDB_BACKUP_SCHEDULE PGDB_BACKUP_DRILL_SCHEDULE)

SRC_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly SRC_DIR
# What a release is built from (plus .npmrc when the checkout has one). The
# daemon imports nothing outside daemon/.
readonly BUILD_INPUTS=(package.json package-lock.json tsconfig.json contract daemon systemd/pgdbd.service)

REGISTRY="${PGDB_NPM_REGISTRY:-https://registry.npmjs.org}"
REGISTRY="${REGISTRY%/}"
HEALTH_TIMEOUT="${PGDB_INSTALL_HEALTH_TIMEOUT:-60}"
OS_RELEASE="${PGDB_INSTALL_OS_RELEASE:-/etc/os-release}"

log() { printf '[pgdb-install] %s\n' "$*" >&2; }
warn() { printf '[pgdb-install] WARNING: %s\n' "$*" >&2; }
die() { printf '[pgdb-install] ERROR: %s\n' "$*" >&2; exit 1; }

# --- Checks (change nothing) -------------------------------------------------

# shellcheck disable=SC2034 # load_config reads them through CONFIG_VARS
parse_args() { # the command line: --domain and --acme-email, as the settings they stand for
  while (($#)); do
    case "$1" in
      --domain | --acme-email)
        if (($# < 2)) || [[ -z "$2" ]]; then die "$1 needs a value; nothing was changed"; fi
        if [[ "$1" == --domain ]]; then PGDB_DOMAIN="$2"; else PGDB_ACME_EMAIL="$2"; fi
        shift 2
        ;;
      --domain=* | --acme-email=*)
        [[ -n "${1#*=}" ]] || die "${1%%=*} needs a value; nothing was changed"
        if [[ "$1" == --domain=* ]]; then PGDB_DOMAIN="${1#*=}"; else PGDB_ACME_EMAIL="${1#*=}"; fi
        shift
        ;;
      -h | --help)
        printf 'usage: sudo -E %s [--domain <dns name>] [--acme-email <address>]\n(settings come from the environment; see the top of this script)\n' "$0"
        exit 0
        ;;
      *) die "unknown argument \"$1\" (usage: $0 [--domain <dns name>] [--acme-email <address>]); nothing was changed" ;;
    esac
  done
}

check_root() {
  [[ "$(id -u)" == 0 ]] || die "must run as root (try: sudo -E $0); nothing was changed"
}

os_field() { # KEY FILE: the value, without quotes (the file is never sourced)
  local line
  line="$(grep -E "^$1=" "$2" | tail -n 1 || true)"
  line="${line#*=}"
  line="${line#[\"\']}"
  printf '%s' "${line%[\"\']}"
}

NODE_ARCH=""
check_system() {
  local id version pretty major minor
  [[ -r "$OS_RELEASE" ]] || die "cannot read $OS_RELEASE; supported systems: Debian 12+, Ubuntu 22.04+; nothing was changed"
  id="$(os_field ID "$OS_RELEASE")"
  version="$(os_field VERSION_ID "$OS_RELEASE")"
  pretty="$(os_field PRETTY_NAME "$OS_RELEASE")"
  IFS=. read -r major minor _ <<<"$version."
  case "$id" in
    debian) [[ "$major" =~ ^[0-9]+$ ]] && ((major >= 12)) ;;
    ubuntu) [[ "$major" =~ ^[0-9]+$ ]] && ((major > 22 || (major == 22 && 10#${minor:-0} >= 4))) ;;
    *) false ;;
  esac || die "unsupported system: ${pretty:-${id:-unknown} ${version}}; supported: Debian 12 or newer, Ubuntu 22.04 or newer; nothing was changed"

  case "$(uname -m)" in
    x86_64 | amd64) NODE_ARCH=x64 ;;
    aarch64 | arm64) NODE_ARCH=arm64 ;;
    *) die "unsupported architecture $(uname -m); supported: x86_64, aarch64; nothing was changed" ;;
  esac
  [[ "$HEALTH_TIMEOUT" =~ ^[0-9]+$ ]] || die "PGDB_INSTALL_HEALTH_TIMEOUT must be a number of seconds; nothing was changed"
  [[ -d /run/systemd/system ]] || die "systemd is not running as init here; install.sh needs systemd; nothing was changed"
  command -v systemctl >/dev/null 2>&1 || die "systemctl not found; nothing was changed"

  local input
  for input in "${BUILD_INPUTS[@]}"; do
    [[ -e "$SRC_DIR/$input" ]] || die "$SRC_DIR is not a complete pgdb checkout ($input is missing); nothing was changed"
  done
}

# The configuration: the existing env file, then the environment on top.
declare -A CONF=()
OLD_LISTEN=""
OLD_API_TLS=""
UPGRADE=0
TOKEN_NOTE=""
API_KEY_FINGERPRINT="" # the API key's sha256, from the daemon's health, for the summary
load_config() {
  local line key value n=0 var
  if [[ -e "$ENV_FILE" ]]; then
    UPGRADE=1
    while IFS= read -r line || [[ -n "$line" ]]; do
      n=$((n + 1))
      [[ "$line" =~ ^[[:space:]]*(#|$) ]] && continue
      if [[ "$line" =~ ^([A-Za-z_][A-Za-z0-9_]*)=(.*)$ ]]; then
        key="${BASH_REMATCH[1]}" value="${BASH_REMATCH[2]}"
        if [[ "$value" =~ ^\"(.*)\"$ || "$value" =~ ^\'(.*)\'$ ]]; then value="${BASH_REMATCH[1]}"; fi
        CONF[$key]="$value"
      else
        warn "$ENV_FILE line $n is not KEY=VALUE; it will be dropped"
      fi
    done <"$ENV_FILE"
    OLD_LISTEN="${CONF[PGDB_LISTEN]:-:8080}"
    OLD_API_TLS="${CONF[PGDB_API_TLS]:-auto}"
  fi

  if [[ -z "${PGDB_TOKEN:-}" && -n "${PGDB_TOKEN_FILE:-}" ]]; then
    [[ -r "$PGDB_TOKEN_FILE" ]] || die "PGDB_TOKEN_FILE $PGDB_TOKEN_FILE cannot be read; nothing was changed"
    PGDB_TOKEN="$(<"$PGDB_TOKEN_FILE")"
    PGDB_TOKEN="${PGDB_TOKEN//[[:space:]]/}"
  fi
  if [[ -n "${PGDB_TOKEN:-}" ]]; then
    if [[ -z "${CONF[PGDB_TOKEN]:-}" ]]; then TOKEN_NOTE="token set"
    elif [[ "${CONF[PGDB_TOKEN]}" == "$PGDB_TOKEN" ]]; then TOKEN_NOTE="token unchanged"
    else TOKEN_NOTE="token replaced"; fi
  elif [[ -n "${CONF[PGDB_TOKEN]:-}" ]]; then
    TOKEN_NOTE="token kept"
  fi
  for var in "${CONFIG_VARS[@]}"; do
    if [[ -n "${!var:-}" ]]; then CONF[$var]="${!var}"; fi
  done
  # Nothing this script starts (apt, curl, npm, tsc) inherits the settings.
  unset "${CONFIG_VARS[@]}" PGDB_TOKEN_FILE

  if [[ -n "${PGDB_DATA_DIR:-}" && "${PGDB_DATA_DIR%/}" != "$DATA_DIR" ]]; then
    die "PGDB_DATA_DIR is fixed to $DATA_DIR for a server install (mount a volume there instead); nothing was changed"
  fi
  unset PGDB_DATA_DIR
  if [[ -n "${CONF[PGDB_DATA_DIR]:-}" && "${CONF[PGDB_DATA_DIR]%/}" != "$DATA_DIR" ]]; then
    die "$ENV_FILE sets PGDB_DATA_DIR to something else than $DATA_DIR, which the unit cannot write; remove that line; nothing was changed"
  fi

  if [[ -z "${CONF[PGDB_TOKEN]:-}" ]]; then
    if ((UPGRADE)); then
      die "$ENV_FILE holds no PGDB_TOKEN; export PGDB_TOKEN and run sudo -E $0 again; nothing was changed"
    fi
    die "PGDB_TOKEN is not set. Run: export PGDB_TOKEN=\"\$(openssl rand -hex 32)\"; sudo -E $0 (sudo needs -E to pass it on); nothing was changed"
  fi
  if ((${#CONF[PGDB_TOKEN]} < 16)); then
    die "PGDB_TOKEN must be at least 16 characters (try: openssl rand -hex 32); nothing was changed"
  fi

  : "${CONF[PGDB_LISTEN]:=:8080}"
  if [[ -z "${CONF[PGDB_PUBLIC_HOST]:-}" ]]; then
    local first=""
    read -r first _ < <(hostname -I 2>/dev/null || true) || true
    CONF[PGDB_PUBLIC_HOST]="${first:-127.0.0.1}"
    warn "PGDB_PUBLIC_HOST not set; using ${CONF[PGDB_PUBLIC_HOST]} in database URLs (set PGDB_PUBLIC_HOST to the server's public IP or DNS name and re-run to change it)"
  fi

  # The env file is read by systemd: keep every value one plain word.
  # Cron schedules have spaces: those are written in double quotes.
  local unsafe='[[:space:][:cntrl:]"'"'"'\`$]' unsafe_spaced='[[:cntrl:]"'"'"'\`$]'
  for key in "${!CONF[@]}"; do
    if [[ " ${SPACED_VARS[*]} " == *" $key "* ]]; then
      if [[ -z "${CONF[$key]}" || "${CONF[$key]}" =~ $unsafe_spaced ]]; then
        die "$key must be one line without quotes, backslashes or \$ (its value is not shown); nothing was changed"
      fi
    elif [[ -z "${CONF[$key]}" || "${CONF[$key]}" =~ $unsafe ]]; then
      die "$key must be one word without spaces, quotes, backslashes or \$ (its value is not shown); nothing was changed"
    fi
  done
  listen_url "${CONF[PGDB_LISTEN]}" >/dev/null ||
    die "PGDB_LISTEN must look like \":8080\", \"127.0.0.1:8080\" or \"[::1]:8080\" with a port above 0, got \"${CONF[PGDB_LISTEN]}\"; nothing was changed"
  case "${CONF[PGDB_API_TLS]:-auto}" in
    auto | on | off) ;;
    *) die "PGDB_API_TLS must be auto, on or off, got \"${CONF[PGDB_API_TLS]}\"; nothing was changed" ;;
  esac
  if [[ -n "${CONF[PGDB_TLS_CERT_FILE]:-}" || -n "${CONF[PGDB_TLS_KEY_FILE]:-}" ]]; then
    local file
    for file in PGDB_TLS_CERT_FILE PGDB_TLS_KEY_FILE; do
      [[ -n "${CONF[$file]:-}" ]] || die "PGDB_TLS_CERT_FILE and PGDB_TLS_KEY_FILE go together: $file is missing; nothing was changed"
    done
    for file in PGDB_TLS_CERT_FILE PGDB_TLS_KEY_FILE; do
      [[ -r "${CONF[$file]}" ]] || die "$file ${CONF[$file]} cannot be read; nothing was changed"
    done
  fi
}

# listen_url LISTEN [API_TLS]: the URL install.sh checks health on. https when
# the daemon serves its API over TLS: PGDB_API_TLS=on, or auto (the default)
# with a listen address beyond loopback (all addresses, or a specific one).
listen_url() {
  local host port scheme=http beyond=1 bracketed='^\[([0-9A-Fa-f:.]+)\]:([0-9]+)$' plain='^([^]:[]*):([0-9]+)$'
  if [[ "$1" =~ $bracketed ]]; then
    host="[${BASH_REMATCH[1]}]" port="${BASH_REMATCH[2]}"
  elif [[ "$1" =~ ^([0-9]+)$ ]]; then
    host="" port="${BASH_REMATCH[1]}"
  elif [[ "$1" =~ $plain ]]; then
    host="${BASH_REMATCH[1]}" port="${BASH_REMATCH[2]}"
  else
    return 1
  fi
  ((10#$port >= 1 && 10#$port <= 65535)) || return 1
  case "$host" in
    127.* | "[::1]" | localhost) beyond=0 ;;
  esac
  case "${2:-auto}" in
    on) scheme=https ;;
    auto) ((beyond)) && scheme=https ;;
  esac
  case "$host" in
    "" | 0.0.0.0) host=127.0.0.1 ;;
    "[::]") host="[::1]" ;;
  esac
  printf '%s://%s:%d\n' "$scheme" "$host" "$((10#$port))"
}

url_host() { # HOST: as it goes in a URL (an IPv6 address in brackets)
  if [[ "$1" == *:* && "$1" != \[* ]]; then printf '[%s]' "$1"; else printf '%s' "$1"; fi
}

health_get() { # URL [any]: GET URL/v1/health, verifying an https API as a client would; with "any", a 503 body too
  local url="$1" hostport port public
  # The token (for the version and problems) goes in a header read from stdin, never in curl's arguments.
  local -a args=(-sS --max-time 3 -H @-)
  local auth="Authorization: Bearer ${CONF[PGDB_TOKEN]}"
  if [[ "${2:-}" != any ]]; then args+=(-f); fi
  if [[ "$url" == https://* ]]; then
    if [[ -n "${CONF[PGDB_TLS_CERT_FILE]:-}" ]]; then
      # The operator's certificate names the public host: ask for it by that name, at the local address.
      hostport="${url#https://}"
      port="${hostport##*:}"
      args+=(--resolve "${CONF[PGDB_PUBLIC_HOST]}:$port:${hostport%:*}")
      url="https://$(url_host "${CONF[PGDB_PUBLIC_HOST]}"):$port"
    else
      # Until pgdbd has created its CA there is nothing to verify against: not healthy yet.
      [[ -r "$CA_FILE" ]] || return 1
      if curl "${args[@]}" --cacert "$CA_FILE" "$url/v1/health" 2>/dev/null <<<"$auth"; then return 0; fi
      # With ACME the API serves a publicly trusted certificate for the public host: verify that one.
      public="${CONF[PGDB_DOMAIN]:-${CONF[PGDB_PUBLIC_HOST]}}"
      hostport="${url#https://}"
      port="${hostport##*:}"
      args+=(--resolve "$public:$port:${hostport%:*}")
      url="https://$(url_host "$public"):$port"
    fi
  fi
  curl "${args[@]}" "$url/v1/health" <<<"$auth"
}

ca_fingerprint() { # sha256:<hex> of the daemon's CA certificate, as pgdb and GET /v1/health show it
  # shellcheck disable=SC2016 # JavaScript, not shell
  "$NODE_BIN" -e '
    const { X509Certificate } = require("node:crypto");
    const certificate = new X509Certificate(require("node:fs").readFileSync(process.argv[1]));
    console.log(`sha256:${certificate.fingerprint256.replaceAll(":", "").toLowerCase()}`);
  ' "$CA_FILE"
}

cli_alias() { # a pgdb alias for this server: its short host name
  local name
  name="$(hostname -s 2>/dev/null || true)"
  name="${name//[^A-Za-z0-9_-]/-}"
  printf '%s' "${name:-pgdb}"
}

# --- Helpers that change the system ------------------------------------------

APT_UPDATED=0
apt_install() {
  export DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1
  if ((!APT_UPDATED)); then
    log "apt-get update"
    apt-get update -qq
    APT_UPDATED=1
  fi
  log "apt-get install $*"
  apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

ensure_tools() {
  local -a missing=()
  command -v curl >/dev/null 2>&1 || missing+=(curl)
  [[ -e /etc/ssl/certs/ca-certificates.crt ]] || missing+=(ca-certificates)
  command -v tar >/dev/null 2>&1 || missing+=(tar)
  command -v gzip >/dev/null 2>&1 || missing+=(gzip)
  # Each database's volume is a file system of its own size (PGDB_SIZE_LIMITS, on by default).
  if [[ "${CONF[PGDB_SIZE_LIMITS]:-on}" != off ]]; then
    command -v mkfs.ext4 >/dev/null 2>&1 && command -v debugfs >/dev/null 2>&1 || missing+=(e2fsprogs)
    command -v losetup >/dev/null 2>&1 || missing+=(mount)
  fi
  # The firewall around the databases' bridge (PGDB_NETWORK_WALLS, on by default).
  if [[ "${CONF[PGDB_NETWORK_WALLS]:-on}" != off ]]; then
    command -v iptables-restore >/dev/null 2>&1 || missing+=(iptables)
  fi
  ((${#missing[@]} == 0)) || apt_install "${missing[@]}"
}

docker_answers() {
  curl -fsS --max-time 5 --unix-socket "$1" http://localhost/_ping >/dev/null 2>&1
}

ensure_docker() {
  local socket="${CONF[PGDB_DOCKER_SOCKET]:-/var/run/docker.sock}" deadline
  if docker_answers "$socket"; then
    log "Docker engine answers on $socket; not installing Docker"
    return 0
  fi
  if ! command -v dockerd >/dev/null 2>&1; then
    apt_install docker.io
  fi
  if systemctl cat docker.service >/dev/null 2>&1; then
    log "enabling and starting docker.service"
    systemctl enable --now docker.service >/dev/null 2>&1 || systemctl start docker.service
  else
    die "dockerd is installed but there is no docker.service; start your Docker engine (socket $socket) and re-run"
  fi
  deadline=$((SECONDS + 60))
  until docker_answers "$socket"; do
    ((SECONDS < deadline)) || die "the Docker engine does not answer on $socket (see: systemctl status docker)"
    sleep 1
  done
  log "Docker engine ready on $socket"
}

sha512_of() { sha512sum "$1" | cut -d ' ' -f 1; }

fetch_verified() { # URL SHA512 DEST
  local got
  log "downloading $1"
  curl -fsSL --retry 3 --connect-timeout 20 -o "$3" "$1" || die "download failed: $1 (set PGDB_NPM_REGISTRY to a reachable mirror)"
  got="$(sha512_of "$3")"
  if [[ "$got" != "$2" ]]; then
    rm -f "$3"
    die "checksum mismatch for $1: expected sha512 $2, got $got"
  fi
}

install_package_tarball() { # URL SHA512 DIR: extract an npm package tarball's package/ as DIR
  local work
  work="$(mktemp -d "$RUNTIME/.download.XXXXXX")"
  fetch_verified "$1" "$2" "$work/package.tgz"
  tar -xzf "$work/package.tgz" -C "$work" --no-same-owner
  rm -rf "$3"
  mv -T "$work/package" "$3"
  rm -rf "$work"
}

version_at_least() { # VERSION MIN (major.minor)
  local major minor min_major min_minor
  IFS=. read -r major minor _ <<<"$1."
  IFS=. read -r min_major min_minor _ <<<"$2."
  [[ "$major" =~ ^[0-9]+$ && "$minor" =~ ^[0-9]+$ ]] || return 1
  ((major > min_major || (major == min_major && minor >= min_minor)))
}

NODE_BIN=""
NODE_DESC=""
choose_node() {
  local system version dir ver="${NODE_VERSION[$NODE_ARCH]}"
  system="$(command -v node 2>/dev/null || true)"
  if [[ -n "$system" ]]; then
    system="$(readlink -f "$system")"
    version="$("$system" -p 'process.versions.node' 2>/dev/null || true)"
    if [[ "$system" != /snap/* && "$system" != "$PREFIX"/* ]] && version_at_least "$version" "$NODE_MIN"; then
      NODE_BIN="$system" NODE_DESC="system Node.js $version ($system)"
      log "using the $NODE_DESC"
      return 0
    fi
    log "the system's Node.js (${version:-unknown version}) is older than $NODE_MIN or unusable; installing Node.js $ver under $RUNTIME"
  fi
  dir="$RUNTIME/node-v$ver-linux-$NODE_ARCH"
  if [[ "$("$dir/bin/node" --version 2>/dev/null || true)" != "v$ver" ]]; then
    install_package_tarball "$REGISTRY/node-linux-$NODE_ARCH/-/node-linux-$NODE_ARCH-$ver.tgz" "${NODE_SHA512[$NODE_ARCH]}" "$dir"
    rm -rf "$dir/include" # C headers, only for compiling native addons
    [[ "$("$dir/bin/node" --version 2>/dev/null || true)" == "v$ver" ]] || die "the downloaded Node.js $ver does not run here"
  fi
  NODE_BIN="$dir/bin/node" NODE_DESC="Node.js $ver ($dir)"
  log "using $NODE_DESC"
}

NPM_CLI=""
ensure_npm() {
  local dir="$RUNTIME/npm-$NPM_VERSION"
  if [[ ! -f "$dir/bin/npm-cli.js" ]]; then
    install_package_tarball "$REGISTRY/npm/-/npm-$NPM_VERSION.tgz" "$NPM_SHA512" "$dir"
  fi
  NPM_CLI="$dir/bin/npm-cli.js"
}

release_id() { # content hash of what a release is built from
  {
    printf 'release-recipe=1 npm=%s\n' "$NPM_VERSION"
    (cd "$SRC_DIR" && find "${BUILD_INPUTS[@]}" -type f -print0 && find . -maxdepth 1 -name .npmrc -type f -print0) |
      LC_ALL=C sort -z | (cd "$SRC_DIR" && xargs -0 sha256sum)
  } | sha256sum | cut -c1-16
}

STAGE=""
RELEASE=""
build_release() {
  local id log_file
  id="$(release_id)"
  RELEASE="$RELEASES/$id"
  if [[ -f "$RELEASE/dist/daemon/src/main.js" ]]; then
    log "release $id is already built; reusing it"
    return 0
  fi
  install -d -m 0755 "$RELEASES"
  find "$RELEASES" -mindepth 1 -maxdepth 1 -name '.staging.*' -exec rm -rf {} +
  STAGE="$(mktemp -d "$RELEASES/.staging.XXXXXX")"
  chmod 0755 "$STAGE"
  log_file="$STAGE.log"
  log "building release $id in $STAGE (log: $log_file)"
  mkdir -p "$STAGE/systemd"
  # Plain copies: owned by root whoever owns the checkout.
  cp -R "$SRC_DIR/package.json" "$SRC_DIR/package-lock.json" "$SRC_DIR/tsconfig.json" "$SRC_DIR/contract" "$SRC_DIR/daemon" "$STAGE/"
  cp "$SRC_DIR/systemd/pgdbd.service" "$STAGE/systemd/"
  if [[ -f "$SRC_DIR/.npmrc" ]]; then cp "$SRC_DIR/.npmrc" "$STAGE/"; fi
  local started=$SECONDS
  if ! (
    cd "$STAGE" || exit 1
    # tsc's `#!/usr/bin/env node` must find the same Node.js.
    PATH="$(dirname "$NODE_BIN"):$PATH"
    export PATH npm_config_cache="$CACHE_DIR/npm" npm_config_update_notifier=false
    if [[ "$REGISTRY" != https://registry.npmjs.org ]]; then export npm_config_registry="$REGISTRY/"; fi
    # Trust the system's CA store too (servers behind a TLS-inspecting proxy).
    if [[ -z "${NODE_EXTRA_CA_CERTS:-}" && -r /etc/ssl/certs/ca-certificates.crt ]]; then
      export NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt
    fi
    npm() { printf '+ npm %s\n' "$*" && "$NODE_BIN" "$NPM_CLI" "$@"; }
    # Chained: errexit does not apply inside an `if` condition. `compile` is
    # tsc alone: the CLI's bundle (the rest of `npm run build`) is not built
    # here, the CLI's sources are not copied to a server. The optional
    # dependencies are the CLI's Pulumi packages (pgdb infra): never on a server.
    npm ci --omit=optional --ignore-scripts --no-audit --no-fund --loglevel=warn &&
      npm run compile &&
      npm prune --omit=dev --omit=optional --ignore-scripts --no-audit --no-fund --loglevel=warn
  ) >"$log_file" 2>&1 </dev/null; then
    tail -n 40 "$log_file" >&2
    rm -rf "$STAGE"
    STAGE=""
    die "the build failed (log: $log_file); the installed pgdbd was not changed"
  fi
  [[ -f "$STAGE/dist/daemon/src/main.js" ]] || die "the build produced no dist/daemon/src/main.js (log: $log_file); the installed pgdbd was not changed"
  find "$STAGE" -name '*.spec.js' -delete -o -name '*.spec.js.map' -delete
  printf 'release=%s\nbuilt=%s\nnpm=%s\nnode=%s\n' "$id" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$NPM_VERSION" "$("$NODE_BIN" --version)" >"$STAGE/.pgdb-release"
  chown -R root:root "$STAGE"
  chmod -R go-w "$STAGE"
  rm -rf "$RELEASE"
  mv -T "$STAGE" "$RELEASE"
  STAGE=""
  rm -f "$log_file"
  log "built release $id in $((SECONDS - started)) s"
}

swap_link() { # TARGET LINK: atomically point LINK at TARGET
  ln -sfn "$1" "$2.new"
  mv -Tf "$2.new" "$2"
}

write_env_file() {
  local tmp key
  install -d -m 0700 -o root -g root "$CONF_DIR"
  tmp="$(mktemp "$CONF_DIR/.pgdbd.env.XXXXXX")"
  {
    printf '# pgdbd configuration, written by scripts/install.sh. Readable by root only: it holds the token.\n'
    printf '# Values are kept when install.sh runs again; variables given to install.sh replace them.\n'
    printf '# After editing: systemctl restart pgdbd\n'
    while IFS= read -r key; do
      if [[ "${CONF[$key]}" == *" "* ]]; then
        printf '%s="%s"\n' "$key" "${CONF[$key]}"
      else
        printf '%s=%s\n' "$key" "${CONF[$key]}"
      fi
    done < <(printf '%s\n' "${!CONF[@]}" | LC_ALL=C sort)
  } >"$tmp"
  chmod 0600 "$tmp"
  mv -f "$tmp" "$ENV_FILE"
}

# wait_healthy URL...: 0 when /v1/health answers 200 at one of them before the
# timeout; 2 when, by then, pgdbd answered but only as degraded (a 503 with its
# JSON body: it started, but Docker did not answer, e.g. while the engine
# restarts), which is no reason to roll a release back; 1 when it never answered.
wait_healthy() {
  local deadline=$((SECONDS + HEALTH_TIMEOUT)) state url started=0
  while ((SECONDS < deadline)); do
    for url in "$@"; do
      if health_get "$url" >/dev/null 2>&1; then return 0; fi
      if health_get "$url" any 2>/dev/null | grep -q '"status":"degraded"'; then started=1; fi
    done
    state="$(systemctl show -p ActiveState --value pgdbd.service 2>/dev/null || true)"
    if [[ "$state" == failed ]]; then return 1; fi
    sleep 0.5
  done
  if ((started)); then return 2; fi
  return 1
}

show_journal() { # SINCE (epoch seconds)
  log "the daemon's log since the restart (journalctl -u pgdbd):"
  journalctl -u pgdbd.service --since "@$1" -n 40 --no-pager -o cat >&2 || true
}

cleanup() {
  if [[ -n "$STAGE" ]]; then rm -rf "$STAGE" "$STAGE.log"; fi
  rm -f "$APP_LINK.new" "$NODE_LINK.new"
}

prune_old() { # keep the current and the previous release and runtime
  local keep_app="$1" keep_node="$2" dir
  for dir in "$RELEASES"/*/; do
    dir="${dir%/}"
    [[ "$dir" == "$(readlink -f "$APP_LINK")" || "$dir" == "$keep_app" ]] || rm -rf "$dir"
  done
  for dir in "$RUNTIME"/node-v*/; do
    dir="${dir%/}"
    case "$(readlink -f "$NODE_LINK")" in "$dir"/*) continue ;; esac
    case "$keep_node" in "$dir"/*) continue ;; esac
    rm -rf "$dir"
  done
  for dir in "$RUNTIME"/npm-*/; do
    [[ "${dir%/}" == "$RUNTIME/npm-$NPM_VERSION" ]] || rm -rf "${dir%/}"
  done
}

# --- Main --------------------------------------------------------------------

main() {
  parse_args "$@"
  check_root
  check_system
  load_config

  exec 9>"$LOCK_FILE"
  flock -n 9 || die "another install.sh is running"
  trap cleanup EXIT

  local url previous_app previous_node started=$SECONDS health version restarted_at
  url="$(listen_url "${CONF[PGDB_LISTEN]}" "${CONF[PGDB_API_TLS]:-auto}")"
  previous_app="$(readlink -f "$APP_LINK" 2>/dev/null || true)"
  previous_node="$(readlink -f "$NODE_LINK" 2>/dev/null || true)"
  if ((UPGRADE)); then
    log "upgrading the pgdbd installed under $PREFIX ($TOKEN_NOTE; configuration in $ENV_FILE kept)"
  else
    log "installing pgdbd under $PREFIX"
  fi

  ensure_tools
  ensure_docker
  install -d -m 0755 "$PREFIX" "$PREFIX/bin" "$RUNTIME"
  install -d -m 0700 "$CACHE_DIR"
  choose_node
  ensure_npm
  build_release

  # Switch over. From here on a failure is rolled back.
  if [[ -e "$ENV_FILE" ]]; then cp -p "$ENV_FILE" "$ENV_BACKUP"; fi
  write_env_file
  install -d -m 0700 -o root -g root "$DATA_DIR"
  chmod 0700 "$DATA_DIR"
  swap_link "$NODE_BIN" "$NODE_LINK"
  swap_link "$RELEASE" "$APP_LINK"
  install -m 0644 "$RELEASE/systemd/pgdbd.service" "$UNIT_FILE"
  systemctl daemon-reload
  systemctl enable --quiet pgdbd.service
  log "restarting pgdbd; waiting for $url/v1/health"
  restarted_at="$(date +%s)"
  systemctl restart pgdbd.service || true

  local waited=0 back=0
  wait_healthy "$url" || waited=$?
  if ((waited == 2)); then
    warn "pgdbd started but reports Docker unreachable (GET /v1/health: degraded); the new release is kept: check Docker (systemctl status docker); pgdbd recovers by itself once Docker answers"
  elif ((waited != 0)); then
    show_journal "$restarted_at"
    if [[ -n "$previous_app" && -d "$previous_app" && -n "$previous_node" && -x "$previous_node" ]]; then
      warn "the new pgdbd did not start; rolling back to the previous release and configuration"
      if [[ -f "$ENV_BACKUP" ]]; then mv -f "$ENV_BACKUP" "$ENV_FILE"; fi
      swap_link "$previous_node" "$NODE_LINK"
      swap_link "$previous_app" "$APP_LINK"
      if [[ -f "$previous_app/systemd/pgdbd.service" ]]; then install -m 0644 "$previous_app/systemd/pgdbd.service" "$UNIT_FILE"; fi
      systemctl daemon-reload
      systemctl restart pgdbd.service || true
      url="$(listen_url "$OLD_LISTEN" "$OLD_API_TLS" || echo "$url")"
      # The previous release may predate TLS: plain HTTP counts too.
      wait_healthy "$url" "http://${url#*://}" || back=$?
      if ((back != 1)); then
        die "upgrade failed: the new release or configuration did not start (see the log above); the previous version and configuration run again"
      fi
      die "upgrade failed and the previous version did not come back either; see: journalctl -u pgdbd"
    fi
    # A first install that never started must not restart forever in the background.
    systemctl disable --now --quiet pgdbd.service || true
    die "pgdbd did not start (no answer at $url/v1/health); the unit is stopped and disabled; fix $ENV_FILE or the cause above and re-run"
  fi
  rm -f "$ENV_BACKUP"
  if [[ "$previous_app" == "$(readlink -f "$APP_LINK")" ]]; then previous_app=""; fi
  prune_old "$previous_app" "$previous_node"

  health="$(health_get "$url" 2>/dev/null || true)"
  version="$(sed -n 's/.*"version":"\([^"]*\)".*/\1/p' <<<"$health")"
  API_KEY_FINGERPRINT="$(sed -n 's/.*"api_key_fingerprint":"\(sha256:[0-9a-f]*\)".*/\1/p' <<<"$health")"
  log "pgdbd ${version:-?} is running and healthy after $((SECONDS - started)) s"
  if [[ "$health" == *'"acme":{'* ]]; then
    log "certificates come from ACME ($(sed -n 's/.*"acme":{"directory":"\([^"]*\)".*/\1/p' <<<"$health")): port 80 must be open to the internet; until one is issued pgdbd serves its own CA's (GET /v1/health shows tls.acme)"
  fi
  summary "$url"
}

summary() { # URL: where things are, and how to point the CLI at this server
  local url="$1" port="${1##*:}" alias fingerprint="" tls_line public
  alias="$(cli_alias)"
  public="https://$(url_host "${CONF[PGDB_PUBLIC_HOST]}"):$port"
  if [[ -r "$CA_FILE" ]]; then fingerprint="$(ca_fingerprint)"; fi
  if [[ -n "${CONF[PGDB_TLS_CERT_FILE]:-}" ]]; then
    tls_line="the API uses ${CONF[PGDB_TLS_CERT_FILE]} (key ${API_KEY_FINGERPRINT:-unknown}); the databases, CA $CA_FILE"
  else
    tls_line="CA $CA_FILE, fingerprint ${fingerprint:-unknown}; API key ${API_KEY_FINGERPRINT:-unknown}"
  fi
  cat >&2 <<EOF

  service:  systemctl status pgdbd        logs: journalctl -u pgdbd
  API:      ${url%%://*} on ${CONF[PGDB_LISTEN]} (checked at $url)
  TLS:      $tls_line
  config:   $ENV_FILE ($TOKEN_NOTE)
  data:     $DATA_DIR (registry, tls/), Docker volumes labelled pgdb.managed
  release:  $(readlink "$APP_LINK") with $NODE_DESC

EOF
  if [[ "$url" == http://* ]]; then
    # Under "auto", an address beyond loopback would have served HTTPS.
    if [[ "$(listen_url "${CONF[PGDB_LISTEN]}" auto)" == https://* ]]; then
      warn "the API serves plain HTTP beyond loopback (PGDB_API_TLS=off): the token crosses the network unencrypted, and pgdb needs --insecure"
    fi
    cat >&2 <<EOF
The API answers plain HTTP. Use the CLI on this server, or through an SSH
tunnel (ssh -L $port:127.0.0.1:$port root@${CONF[PGDB_PUBLIC_HOST]}):
  export PGDB_SERVER_URL=http://127.0.0.1:$port
  export PGDB_TOKEN=...   # sudo grep ^PGDB_TOKEN= $ENV_FILE
EOF
  elif [[ -n "${CONF[PGDB_TLS_CERT_FILE]:-}" ]]; then
    cat >&2 <<EOF
Point the CLI at it and pin the API's key (the token is in $ENV_FILE, never printed here):
  API key fingerprint: ${API_KEY_FINGERPRINT:-unknown}
  pgdb config set server.$alias $public
  pgdb config set server.$alias.api_key ${API_KEY_FINGERPRINT:-sha256:...}
  pgdb config set server.$alias.token ...   # sudo grep ^PGDB_TOKEN= $ENV_FILE
  pgdb status --server $alias
EOF
  else
    cat >&2 <<EOF
Point the CLI at it and trust its CA (the token is in $ENV_FILE, never printed here):
  CA fingerprint: $fingerprint
  pgdb config set server.$alias $public
  pgdb config set server.$alias.token ...   # sudo grep ^PGDB_TOKEN= $ENV_FILE
  pgdb status --server $alias --trust-fingerprint $fingerprint
EOF
  fi
  printf 'Keep the API port and the database ports firewalled to trusted addresses.\n' >&2
}

main "$@"
