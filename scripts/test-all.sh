#!/usr/bin/env bash
# test-all.sh - the whole test suite against real servers.
#
# Starts PostgreSQL, MariaDB and Redis if they are down, starts the throwaway Redis Sentinel and
# Cluster topologies (stopped again on exit), then runs every test of the workspace: unit,
# integration, conformance (every store), doctests and examples' builds, and the benches'
# throughput harness in smoke mode.
#
# Usage: scripts/test-all.sh [extra cargo test arguments]
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/services.sh up
scripts/redis-topology.sh start all
trap 'scripts/redis-topology.sh stop all || true' EXIT

cargo test --workspace --all-features "$@"

# The throughput harness in smoke mode (every store, its raw limit and its tower-sessions peer,
# a fraction of a second per row), so the benches cannot rot. Debug profile: it shares the test
# build; the figures are not the point here, an error in any store fails the run.
cargo run -p session-benches --bin throughput -- --smoke

# The umbrella crate again with its default features only: a store whose feature is off must be
# refused with a message naming the feature.
cargo test -p auth-sessions "$@"
