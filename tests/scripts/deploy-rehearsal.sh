#!/usr/bin/env bash
# The README's deploy, followed literally (make deploy: check, stage the
# documents layer, sam build, sam deploy) for a small placeholder-free fleet,
# against the local emulator instead of an account: SAM CLI parses the real
# arguments, builds the functions and creates the stack through CloudFormation
# on loopback. No request leaves the machine: every AWS endpoint is the emulator.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
tests/scripts/setup.sh --with-sam
work=$(mktemp -d)
cleanup() { [[ -n "${emulator_pid:-}" ]] && kill "$emulator_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
.venv/bin/python tests/emulator/emulator.py --port 0 > "$work/emulator.out" 2> "$work/emulator.err" &
emulator_pid=$!
for _ in $(seq 100); do grep -q '^READY ' "$work/emulator.out" && break; sleep 0.2; done
endpoint=$(sed -n 's/^READY //p' "$work/emulator.out")
[[ -n "$endpoint" ]] || { echo "deploy-rehearsal: the emulator did not start" >&2; cat "$work/emulator.err" >&2; exit 1; }
.venv/bin/python tests/scripts/fleet_documents.py --services 3 --out "$work/fleet"
export AWS_ENDPOINT_URL="$endpoint" AWS_ACCESS_KEY_ID=rehearsal AWS_SECRET_ACCESS_KEY=rehearsal
unset AWS_PROFILE AWS_SESSION_TOKEN
make deploy DOCUMENTS="$work/fleet" DEPLOY_ARGS=--yes
echo "deploy-rehearsal: the stack was created on the emulator at $endpoint"
