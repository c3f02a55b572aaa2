#!/usr/bin/env bash
# test-all.sh - the whole test suite against real servers.
#
# Starts PostgreSQL, MariaDB and Redis if they are down, starts the throwaway Redis Sentinel and
# Cluster topologies (stopped again on exit), then runs every test of the workspace: unit,
# integration, conformance (every store), doctests and examples' builds, and the benches'
# throughput harness in smoke mode (benches/tests/smoke.rs).
#
# Usage: scripts/test-all.sh [extra cargo test arguments]
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/services.sh up

# The browser test drives Chromium over WebDriver; install both from the distribution's packages
# when missing (about 30 s), unless the run opts the browser test out.
if [[ ",${SESSION_TEST_SKIP:-}," != *",browser,"* ]] && ! command -v chromedriver >/dev/null; then
  echo "test-all: installing chromium and chromium-driver for the browser test" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
fi
scripts/redis-topology.sh start all
trap 'scripts/redis-topology.sh stop all || true' EXIT

cargo test --workspace --all-features "$@"

# The umbrella crate again with its default features only: a store whose feature is off must be
# refused with a message naming the feature.
cargo test -p auth-sessions "$@"
