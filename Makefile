# The two commands a new user needs; both set up everything they use.
.PHONY: demo test setup deploy deploy-rehearsal release bench fleet crash-matrix predict emulator-vs-moto

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
	tests/scripts/test-lanes.sh
	SAM_CLI_TELEMETRY=0 .venv/bin/sam validate --lint --template-file infra/template.yaml --region us-east-1
	.venv/bin/cfn-lint --include-checks I -- infra/template.yaml

# The emulator's tests against moto with no strict layer: each test of a
# strict rule must fail there (a rule moto alone keeps proves nothing).
emulator-vs-moto:
	tests/scripts/emulator-vs-moto.sh

# Deploys the stack from a folder of documents (see docs/deploy.md): checks
# them, ships them in a layer, sam build, sam deploy. DEPLOY_ARGS=--yes skips
# the change-set prompt.
deploy:
	@test -n "$(DOCUMENTS)" || { echo "make deploy DOCUMENTS=<folder>: the folder with your four documents and stack.json (start from: mkdir my-fleet && cp infra/*.json my-fleet/)"; exit 2; }
	tests/scripts/setup.sh --with-sam
	.venv/bin/python infra/deploy.py deploy "$(DOCUMENTS)" $(DEPLOY_ARGS)

# make deploy, followed literally for a 3-service fleet, against the local
# emulator (the functions are built as for a real deploy: about 10 minutes).
deploy-rehearsal:
	tests/scripts/deploy-rehearsal.sh

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

# The control loop at fleet scale, on the emulator with AWS's request rates
# and 30 ms a call: 300 services and 5,000 tasks, a rolling deploy's 2,000
# task events through SQS FIFO batches to the registrar, and a scaler tick
# over 300 services. One table, with the goals beside the figures.
# Kills a drill at every AWS call of every kind and checks the sweep undoes
# it each time (make test kills it at every third call).
crash-matrix: setup
	CRASH_AT_EVERY_CALL=1 cargo test -p e2e --test drill a_drill_killed_at_any_call -- --nocapture

fleet: setup
	cargo build -p registrar -p scaler --bins
	cargo build -p e2e --bin fleet
	target/debug/fleet

# Three weeks of load through target tracking alone, with a predictive
# policy, and with perfect foresight (tests/src/predict_replay.rs): one table
# per forecast period, the goals beside the figures. About 2 minutes.
predict:
	cargo build --release -p e2e --bin predict
	target/release/predict
