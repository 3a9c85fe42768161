#!/usr/bin/env bash
# Builds every fuzz target and runs each for SECONDS (default 30), one after the other.
# Fails (exit 1) if any target crashes, times out or runs out of memory; the input is
# left in fuzz/artifacts/<target>/ and libFuzzer's report in the output.
#
#   bash fuzz/run-all.sh [SECONDS]
#
# Needs cargo-fuzz (`cargo install cargo-fuzz --locked --version 0.13.2`). It uses
# nightly-only rustc flags (-Zsanitizer=address); RUSTC_BOOTSTRAP=1 lets the stable
# toolchain accept them.
set -euo pipefail
cd "$(dirname "$0")"

seconds="${1:-30}"
case "$seconds" in
  '' | *[!0-9]*) echo "usage: $0 [SECONDS]" >&2; exit 2 ;;
esac
export RUSTC_BOOTSTRAP=1

targets=()
for f in fuzz_targets/*.rs; do
  targets+=("$(basename "$f" .rs)")
done

echo "building ${targets[*]}"
for t in "${targets[@]}"; do
  cargo fuzz build "$t"
done

failed=()
for t in "${targets[@]}"; do
  echo
  echo "=== fuzz $t for ${seconds}s"
  mkdir -p "corpus/$t"
  # -timeout: an input that takes over 10 s is a hang (reported as a crash).
  # Progress lines (NEW/REDUCE/pulse, NEW_FUNC) are dropped to keep CI logs short.
  set +e
  cargo fuzz run "$t" "corpus/$t" -- \
    -max_total_time="$seconds" -timeout=10 -print_final_stats=1 2>&1 |
    grep -vE '^#[0-9]+[[:space:]]+(NEW|REDUCE|pulse)|^[[:space:]]+NEW_FUNC'
  status="${PIPESTATUS[0]}"
  set -e
  if [ "$status" -ne 0 ]; then
    echo "!!! $t failed (exit $status)"
    failed+=("$t")
  fi
done

echo
if [ "${#failed[@]}" -ne 0 ]; then
  echo "fuzzing found problems in: ${failed[*]}"
  exit 1
fi
echo "fuzzing: ${#targets[@]} targets, ${seconds}s each, no crash"
