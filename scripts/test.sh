#!/usr/bin/env bash
# Runs the whole test suite (unit, HTTP contract and e2e) on this machine,
# installing and starting what it needs first: the Docker engine, the npm
# packages and the locally built Postgres test images. On a 2-core machine,
# with the e2e files two at a time: 22.6 minutes with warm caches (measured
# 2026-12-07 from a fresh clone); set-up from empty caches took 13.5 minutes
# on a fresh machine (measured the same day), so about 36 from empty caches.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/apt.sh
source scripts/lib/apt.sh

if [[ $EUID -ne 0 ]] && ! docker info >/dev/null 2>&1; then
  echo "test.sh: the e2e tests need a Docker engine; run as root (or as a user in the docker group with dockerd running)" >&2
  exit 1
fi

bash scripts/setup-docker.sh
# psql runs scripts/integration_test.sh inside the e2e suite.
if ! command -v psql >/dev/null 2>&1; then
  apt_install postgresql-client
fi
# e2e/network-walls.e2e.ts: a client in a network namespace of its own (ip netns, veth).
if ! command -v ip >/dev/null 2>&1; then
  apt_install iproute2
fi
npm ci --no-audit --no-fund
npm run build
bash scripts/build-test-images.sh 15 17 18
# e2e/install.e2e.ts: shellcheck and systemd-analyze check the install files,
# and scripts/install.sh runs in a Debian 12 container with systemd.
if ! command -v shellcheck >/dev/null 2>&1 || ! command -v systemd-analyze >/dev/null 2>&1; then
  apt_install shellcheck systemd
fi
bash scripts/build-install-test-image.sh
# e2e/fuzz.e2e.ts: schemathesis in a virtual environment outside the checkout.
bash scripts/setup-schemathesis.sh >/dev/null
# e2e/infra.e2e.ts: the real Pulumi engine (built from the Go module proxy and
# cached outside the checkout; 6 to 7 minutes with empty Go caches, instant warm) and the
# image of its test servers (the install image plus sshd).
PGDB_TEST_PULUMI="$(bash scripts/build-pulumi.sh)"
export PGDB_TEST_PULUMI
bash scripts/build-infra-test-image.sh
# e2e/s3-store.e2e.ts and the backup tests: SeaweedFS, a real S3 store (built
# from the Go module proxy and cached like Pulumi; 7.5 minutes with the Go caches
# only Pulumi's build filled, as on a fresh machine).
PGDB_TEST_WEED="$(bash scripts/build-seaweedfs.sh)"
export PGDB_TEST_WEED
# e2e/acme.e2e.ts: Pebble, Let's Encrypt's test ACME server (Go module proxy, cached; 8 s after the builds above).
PGDB_TEST_PEBBLE="$(bash scripts/build-pebble.sh)"
export PGDB_TEST_PEBBLE
# e2e/registry.e2e.ts: the distribution registry (Go module proxy, cached;
# about 2 minutes cold, instant warm).
PGDB_TEST_REGISTRY="$(bash scripts/build-registry.sh)"
export PGDB_TEST_REGISTRY
# e2e/drivers.e2e.ts: psycopg 3 and asyncpg (PyPI), a Go pgx probe (Go module
# proxy) and pgjdbc (Maven Central), cached outside the checkout; 30 s to 3 minutes
# cold (with or without warm Go and pip caches), instant warm.
PGDB_TEST_DRIVERS="$(bash scripts/build-driver-probes.sh)"
export PGDB_TEST_DRIVERS

mapfile -t unit < <(find dist/contract dist/daemon dist/cli dist/infra dist/tools -name '*.spec.js' 2>/dev/null | sort)
mapfile -t e2e < <(find dist/e2e -name '*.e2e.js' | sort)
if [[ ${#e2e[@]} -eq 0 ]]; then
  echo "test.sh: no e2e tests were built" >&2
  exit 1
fi
# Everything the tests write to the temporary directory goes away with the run.
TMPDIR="$(mktemp -d -t pgdb-tests.XXXXXX)"
export TMPDIR
# Loop devices of test databases' volumes that a killed test left attached (their image files are gone with its TMPDIR).
release_test_disks() {
  losetup --list --noheadings --output NAME,BACK-FILE 2>/dev/null |
    awk '/pgdb-tests\..*\/disks\/pgdb-.*\(deleted\)/ { print $1 }' | xargs -r -n1 losetup --detach 2>/dev/null || true
}
# Network walls (firewall chains) of test daemons that a killed test left behind: their bridge is gone.
# A daemon whose bridge still exists (a real one on this machine) keeps its walls.
release_test_walls() {
  local chain rule bridge
  for chain in INPUT DOCKER-USER FORWARD; do
    iptables -w -S "$chain" 2>/dev/null | grep -E -- '-i br-[0-9a-f]+ -j PGDB-(IN|FWD)-[0-9a-f]+$' | while read -r rule; do
      bridge=$(awk '{ print $4 }' <<<"$rule")
      [[ -e "/sys/class/net/$bridge" ]] && continue
      # shellcheck disable=SC2086 # the rule's words, as iptables -S printed them
      iptables -w ${rule/#-A /-D } 2>/dev/null || true
      { iptables -w -F "${rule##* }" && iptables -w -X "${rule##* }"; } 2>/dev/null || true
    done || true # grep finds none: the usual case (set -e and pipefail would end the trap, and the run, with 1)
  done
}
# Network namespaces of clients that a killed network-walls test left (the veth pair goes with them).
release_test_namespaces() {
  { ip netns list 2>/dev/null | grep -oE '^pgdb-walls-[0-9a-f]+' | xargs -r -n1 ip netns del; } 2>/dev/null || true
}
trap 'rm -rf "$TMPDIR"; release_test_disks; release_test_walls; release_test_namespaces' EXIT

# Three runs of the test runner, each with its summary and a table of the
# time each file took: the unit and contract specs one file at a time (some
# measure timeouts against fakes); the e2e files two at a time
# (PGDB_TEST_CONCURRENCY; each file has its own daemons, ports, data
# directories and networks, and waiting on Docker and Postgres leaves the
# second core free: 20 minutes instead of 35 on the 2-core machines); then
# the files that must have the engine to themselves, alone (EXCLUSIVE:
# engine-restart stops and starts the Docker engine). A test that hangs fails
# after 10 minutes instead of stalling the whole run. Every run goes ahead
# when an earlier one failed; the exit status says whether any did.
EXCLUSIVE=(engine-restart)
alone=()
together=()
for file in "${e2e[@]}"; do
  name="$(basename "$file" .e2e.js)"
  if [[ " ${EXCLUSIVE[*]} " == *" $name "* ]]; then alone+=("$file"); else together+=("$file"); fi
done
report=tap
if [[ -t 1 ]]; then report=spec; fi
run_tests() {
  local concurrency="$1"
  shift
  node --test --test-concurrency="$concurrency" --test-timeout=600000 \
    --test-reporter="$report" --test-reporter-destination=stdout \
    --test-reporter=./dist/e2e/support/file-timings.js --test-reporter-destination=stdout \
    "$@"
}
failed=0
started=$SECONDS
run_tests 1 "${unit[@]}" || failed=1
run_tests "${PGDB_TEST_CONCURRENCY:-2}" "${together[@]}" || failed=1
run_tests 1 "${alone[@]}" || failed=1
echo "test.sh: the three runs took $(( (SECONDS - started) / 60 )) min $(( (SECONDS - started) % 60 )) s; set-up before them $(( started / 60 )) min $(( started % 60 )) s"
if [[ $failed -ne 0 ]]; then
  echo "test.sh: some tests failed (see the summaries above: 'not ok' lines)" >&2
  exit 1
fi
