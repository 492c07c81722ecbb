# The two commands a new user needs; both set up everything they use.
.PHONY: demo test setup deploy-parameters release bench

setup:
	tests/scripts/setup.sh

# The functions against the local AWS emulator, fed sample events.
demo: setup
	cargo build -p scaler -p registrar -p probe -p e2e --bins
	target/debug/demo

# Every test: domain, handler, adapters, end to end (emulator and Lambda runtime
# API), lints, and the SAM template.
test:
	tests/scripts/setup.sh --with-sam
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	cargo test --workspace --no-fail-fast
	SAM_CLI_TELEMETRY=0 .venv/bin/sam validate --lint --template-file infra/template.yaml --region us-east-1

# sam deploy's parameter overrides derived from the documents in infra/ (the
# registrar's target groups come from its document alone).
deploy-parameters:
	@python3 infra/deploy_parameters.py

# Release zips of the four functions for Lambda (x86_64, and arm64 where the
# toolchain has it), with their sizes.
release:
	tests/scripts/release.sh

# What the functions cost beside the Python boto3 functions a user would
# otherwise write (tests/bench/peer.py), against one emulator: one table.
bench: release
	tests/scripts/setup.sh --bench-peer
	cargo build -p e2e --bin bench
	target/debug/bench
