#!/usr/bin/env bash
# Builds the four functions for Lambda (provided.al2023) as release zips with
# cargo-lambda, for x86_64 always and for arm64 when the aarch64 standard
# library is installed (rustup target add aarch64-unknown-linux-gnu), and
# prints each artifact's size.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
tests/scripts/setup.sh
export PATH="$root/.venv/bin:$PATH"

architectures=(x86-64)
if rustup target list --installed 2>/dev/null | grep -q '^aarch64-unknown-linux-gnu$'; then
  architectures+=(arm64)
else
  echo "release: no aarch64 standard library here; building x86_64 only" \
       "(rustup target add aarch64-unknown-linux-gnu adds arm64)"
fi

rows=()
for arch in "${architectures[@]}"; do
  out="target/lambda-$arch"
  echo "release: building scaler, registrar, probe and drill for $arch into $out"
  cargo lambda build --release "--$arch" --output-format zip --lambda-dir "$out" \
    -p scaler -p registrar -p probe -p drill
  for function in scaler registrar probe drill; do
    zip="$out/$function/bootstrap.zip"
    binary_size=$(unzip -l "$zip" | awk '$4 == "bootstrap" {print $1}')
    rows+=("$(printf '%-10s %-7s %12s %12s  %s' "$function" "$arch" \
      "$binary_size" "$(stat -c %s "$zip")" "$zip")")
  done
done

printf '\n%-10s %-7s %12s %12s  %s\n' function arch "binary (B)" "zip (B)" artifact
printf '%s\n' "${rows[@]}"
