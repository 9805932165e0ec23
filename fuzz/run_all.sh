#!/usr/bin/env bash
# A short pass of every fuzz target on the stable toolchain (libFuzzer
# through sancov flags, as fuzz/README.md explains):
#   fuzz/run_all.sh [SECONDS_PER_TARGET]   (default 30)
set -euo pipefail
cd "$(dirname "$0")"
SECS="${1:-30}"
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
  -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
  -Cllvm-args=-sanitizer-coverage-pc-table \
  -Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing"
TARGET=x86_64-unknown-linux-gnu
cargo build --release --target "$TARGET"
for t in frame_decode record_decode json_bodies text_inputs; do
  mkdir -p "corpus/$t"
  echo "== $t ($SECS s)"
  "target/$TARGET/release/$t" -max_total_time="$SECS" -print_final_stats=1 "corpus/$t" 2>&1 \
    | grep -E "stat::number_of_executed_units|ERROR|panicked" || true
done
