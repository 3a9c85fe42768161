#!/usr/bin/env bash
# Runs every test of the workspace on a fresh machine (Rust toolchain + root only).
# Installs what the tests need first, then `cargo test` over the whole workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

# The client's integration tests and the end-to-end bench start their own
# mosquitto on 127.0.0.1 (tests/src/broker.rs): install it when missing.
bash scripts/install-mosquitto.sh

# The examples as programs: tests/tests/examples_*.rs run them (`cargo test`
# builds examples only as test harnesses).
cargo build --workspace --examples "$@"
cargo test --workspace --all-targets "$@"
# Doc tests (not part of --all-targets).
cargo test --workspace --doc "$@"
