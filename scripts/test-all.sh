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
scripts/redis-topology.sh start all
trap 'scripts/redis-topology.sh stop all || true' EXIT

cargo test --workspace --all-features "$@"

# The umbrella crate again with its default features only: a store whose feature is off must be
# refused with a message naming the feature.
cargo test -p auth-sessions "$@"
