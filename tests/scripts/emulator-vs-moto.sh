#!/usr/bin/env bash
# Runs the emulator's own tests (tests/tests/emulator.rs) against moto with no
# strict layer (EMULATOR_PLAIN=1: moto, the CloudWatch protocol bridge and the
# fault layer only) and checks that each test of a strict rule fails there:
# a rule no test would miss is not proven. The fault layer's tests run in both
# (the fault layer is not moto's), and are listed apart.
set -euo pipefail
cd "$(dirname "$0")/../.."
tests/scripts/setup.sh
cargo build -p e2e --test emulator
log=$(mktemp)
EMULATOR_PLAIN=1 cargo test -p e2e --test emulator -- --test-threads 4 > "$log" 2>&1 || true
# The fault layer's tests, and the request-rate buckets: not moto's, so they pass here too.
fault_layer='fault_kinds::|the_fault_layer_|a_burst_is_throttled|every_call_takes_the_set_latency'
passed=$(grep -E '^test .* \.\.\. ok$' "$log" | sed -E 's/^test (.*) \.\.\. ok$/\1/' || true)
failed=$(grep -E '^test .* \.\.\. FAILED$' "$log" | sed -E 's/^test (.*) \.\.\. FAILED$/\1/' || true)
printf '%-90s %s\n' "test (against plain moto)" "result"
for t in $failed; do printf '%-90s %s\n' "$t" "fails (the rule is the emulator's)"; done
unproven=()
for t in $passed; do
  if [[ "$t" =~ $fault_layer ]]; then
    printf '%-90s %s\n' "$t" "passes (fault layer, in both)"
  else
    printf '%-90s %s\n' "$t" "PASSES: moto alone would do"
    unproven+=("$t")
  fi
done
rm -f "$log"
if [ "${#unproven[@]}" -gt 0 ]; then
  echo "these tests pass against plain moto, so they prove no rule of the emulator: ${unproven[*]}" >&2
  exit 1
fi
[ -n "$failed" ] || { echo "no test ran" >&2; exit 1; }
echo "every strict rule's test fails against plain moto"
