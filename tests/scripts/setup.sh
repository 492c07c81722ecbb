#!/usr/bin/env bash
# Installs what the demo and the tests need into .venv: the pinned emulator
# (moto + cbor2), cargo-lambda and, with --with-sam, the SAM CLI.
# Re-running is cheap: pip runs only when a requirements file changed.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
venv="$root/.venv"
requirements=("$root/tests/emulator/requirements.txt")
if [[ "${1:-}" == "--with-sam" ]]; then
  requirements+=("$root/tests/emulator/requirements-sam.txt")
fi

if [[ ! -x "$venv/bin/python" ]]; then
  echo "setup: creating $venv"
  python3 -m venv "$venv"
fi
stamp="$venv/.installed-$(basename "${requirements[-1]}").sha256"
wanted=$(cat "${requirements[@]}" | sha256sum | cut -d' ' -f1)
if [[ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]]; then
  echo "setup: installing pinned tools into $venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
  args=()
  for r in "${requirements[@]}"; do args+=(-r "$r"); done
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${args[@]}"
  echo "$wanted" > "$stamp"
fi
