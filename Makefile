.PHONY: dev test soak setup stack-up stack-down lint build release cli bench fuzz console-url deploy-console
# Run the whole system locally (foreground; Ctrl-C stops it).
dev:
	scripts/dev.sh
# Run all tests: installs and starts everything it needs, stops it afterwards.
test:
	scripts/test.sh
# The seeded chaos workload under faults, long: SOAK_OPS operations (default 20000);
# SEED=<seed> replays a run's operations and faults.
soak:
	scripts/test.sh soak
setup:
	scripts/setup.sh
stack-up:
	scripts/stack.sh up dev
stack-down:
	scripts/stack.sh down dev
lint:
	cargo clippy --workspace --all-targets -- -D warnings
	AWS_DEFAULT_REGION=us-east-1 .local/venv/bin/cfn-lint infra/template.yaml
	.local/checkov/bin/checkov -f infra/template.yaml --config-file infra/checkov.yaml
build:
	cargo build --workspace
# Developer CLI against the running `make dev` stack, e.g. make cli ARGS="stats alice".
# The same build as `make dev` (nothing to compile after it), run as a plain process: a
# `cargo run` would hold the target directory's lock a restarting function needs.
cli:
	@cargo build -q --workspace --bins && target/debug/market-cli $(ARGS)
# Benchmark: per-RPC latency vs direct DynamoDB calls, capacity units, size, RSS.
bench:
	scripts/bench.sh
# Fuzz targets of every parser of untrusted input (proptest, stable toolchain), longer than
# the test command's few thousand cases: FUZZ_CASES per target (default 200000).
fuzz:
	PROPTEST_CASES=$${FUZZ_CASES:-200000} cargo test --workspace --lib fuzz_
# A sign-in URL of the running `make dev` console: make console-url AS=alice (ADMIN=1 for
# an administrator); tokens last 10 minutes.
console-url:
	@cargo build -q -p market-cli && . .local/stacks/dev/env && \
	echo "$${CONSOLE_URL}#token=$$(target/debug/market-cli $(if $(ADMIN),admin-token,token) $(or $(AS),alice))"
# The console to a deployed stack: make deploy-console STACK=helium-market [ARGS="--signup-url ..."]
deploy-console:
	npm --prefix web ci --no-audit --no-fund && npm --prefix web run build
	.local/venv/bin/python scripts/deploy_console.py --stack $(STACK) $(ARGS)
