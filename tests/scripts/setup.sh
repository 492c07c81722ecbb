#!/usr/bin/env bash
# Installs what the demo and the tests need into .venv: the pinned emulator
# (moto + cbor2), cargo-lambda and, with --with-sam, the SAM CLI. With
# --bench-peer, also .venv-peer: boto3 alone, pinned, for make bench's Python
# peer (what a Lambda Python runtime holds; the tools in .venv would change
# what boto3 imports, and so the peer's memory).
# Re-running is cheap: pip runs only when a requirements file changed.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)

# ensure_venv DIR REQUIREMENTS...: DIR holds exactly what the files pin.
ensure_venv() {
  local venv=$1
  shift
  if [[ ! -x "$venv/bin/python" ]]; then
    echo "setup: creating $venv"
    python3 -m venv "$venv"
  fi
  local stamp wanted
  stamp="$venv/.installed-$(basename "${!#}").sha256"
  wanted=$(cat "$@" | sha256sum | cut -d' ' -f1)
  if [[ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]]; then
    echo "setup: installing pinned tools into $venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
    local args=()
    for r in "$@"; do args+=(-r "$r"); done
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${args[@]}"
    echo "$wanted" > "$stamp"
  fi
}

requirements=("$root/tests/emulator/requirements.txt")
peer=false
for arg in "$@"; do
  case "$arg" in
    --with-sam) requirements+=("$root/tests/emulator/requirements-sam.txt") ;;
    --bench-peer) peer=true ;;
    *) echo "setup: unknown option $arg" >&2; exit 2 ;;
  esac
done
ensure_venv "$root/.venv" "${requirements[@]}"
if $peer; then
  ensure_venv "$root/.venv-peer" "$root/tests/bench/requirements.txt"
fi
