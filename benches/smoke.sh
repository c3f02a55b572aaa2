#!/usr/bin/env bash
# smoke.sh - the throughput harness's smoke run by hand (CI runs the same through
# benches/tests/smoke.rs, from scripts/test-all.sh): every store, its raw limit
# and its tower-sessions peer, a fraction of a second per row, small session counts. Exits
# non-zero on any store error. Starts nothing itself except through scripts/services.sh up.
#
# Usage: benches/smoke.sh [extra throughput flags, e.g. --stores memory,redis]
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/services.sh up
cargo run --release -p session-benches --bin throughput -- --smoke "$@"
