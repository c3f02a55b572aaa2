#!/usr/bin/env bash
# Runs the faulty-store tests RUNS times (default 20) and prints, per faulty store, in how many
# runs the suite caught it. A store is caught in a run when its test passes (the test asserts that
# every check listed for it fails the store). Exit status 1 unless every store is caught in every
# run.
set -euo pipefail
runs="${RUNS:-20}"
cd "$(dirname "$0")/.."
bin=$(cargo test -p session-conformance --test catches_faulty_stores --no-run --message-format=json 2>/dev/null \
  | grep -o '"executable":"[^"]*catches_faulty_stores[^"]*"' | tail -1 | cut -d'"' -f4)
declare -A caught
for ((i = 1; i <= runs; i++)); do
  while read -r name verdict; do
    [[ "$verdict" == ok ]] && caught[$name]=$((${caught[$name]:-0} + 1)) || caught[$name]=${caught[$name]:-0}
  done < <("$bin" --test-threads=2 2>/dev/null | sed -n 's/^test \([a-z_0-9]*\) \.\.\. \(ok\|FAILED\)$/\1 \2/p')
done
missed=0
for name in $(printf '%s\n' "${!caught[@]}" | sort); do
  printf '%-40s %2d/%d\n' "$name" "${caught[$name]}" "$runs"
  [[ "${caught[$name]}" == "$runs" ]] || missed=$((missed + 1))
done
echo "tests: ${#caught[@]}; not caught in every run: $missed"
[[ $missed == 0 ]]
