#!/usr/bin/env bash
# Runs every test of the workspace on a fresh machine (Rust toolchain + root only).
# Installs what the tests need first, then `cargo test` over the whole workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

# Tests that need a real broker start their own mosquitto on loopback; none exist
# yet for the codec, but the client's will: install it when missing.
if ! command -v mosquitto >/dev/null 2>&1 && [ -x "$(command -v apt-get)" ]; then
  echo "installing mosquitto" >&2
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq mosquitto >/dev/null
fi

cargo test --workspace --all-targets "$@"
# Doc tests (not part of --all-targets).
cargo test --workspace --doc "$@"
