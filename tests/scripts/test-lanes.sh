#!/usr/bin/env bash
# Every test of the workspace, in two lanes at once: the end-to-end runs spend
# most of their time waiting (on holds, drains, the emulator's clock and
# hung calls), so two lanes on two cores take about half as long as one.
# Lane 1 holds the longest end-to-end binaries; lane 2 everything else. Each
# lane's output is kept whole (lane 1's printed after lane 2's), and the
# command fails if either lane failed.
set -uo pipefail
cd "$(dirname "$0")/../.."

# The longest end-to-end binaries (tests/tests/<name>.rs), about half the time.
LANE_ONE=(faults drill scaler_triggers control_loop)

# Builds once, so the lanes never wait on each other's build.
cargo test --workspace --no-run || exit 1

lane_one_args=()
for name in "${LANE_ONE[@]}"; do lane_one_args+=(--test "$name"); done
lane_two_args=()
for file in tests/tests/*.rs; do
  name=$(basename "$file" .rs)
  [[ " ${LANE_ONE[*]} " == *" $name "* ]] || lane_two_args+=(--test "$name")
done

lane_one_log=$(mktemp)
cargo test -p e2e --no-fail-fast "${lane_one_args[@]}" > "$lane_one_log" 2>&1 &
lane_one=$!

status=0
cargo test --workspace --exclude e2e --no-fail-fast || status=1
cargo test -p e2e --no-fail-fast --lib --bins "${lane_two_args[@]}" || status=1
cargo test -p e2e --doc || status=1

wait "$lane_one" || status=1
echo "---- lane 1: ${LANE_ONE[*]}"
cat "$lane_one_log"
rm -f "$lane_one_log"
exit "$status"
