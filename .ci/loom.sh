#!/usr/bin/env bash
# Model-checks the append protocol with loom: src/log/loom_model.rs (reserve / publish / seal,
# the waiter flag and the reader's wake-up), including the deliberately broken twins that loom
# must catch (they are `#[should_panic]`, so they pass only if loom finds the bug).
#
# Exits non-zero if a model fails or if fewer models ran than expected.
#
# Environment:
#   CARGO_TARGET_DIR       where to build (default: target/loom, kept apart from the normal
#                          build because `--cfg loom` changes every crate's flags)
#   LOOM_MAX_PREEMPTIONS   preemption bound (default 2)
set -euo pipefail

cd "$(dirname "$0")/.."

readonly MIN_MODELS=16

export RUSTFLAGS="${RUSTFLAGS:-} --cfg loom"
export LOOM_MAX_PREEMPTIONS="${LOOM_MAX_PREEMPTIONS:-2}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target/loom}"
# The negative twins panic on purpose; keep their output short.
export RUST_BACKTRACE=0

log="$(mktemp)"
trap 'rm -f "$log"' EXIT

echo "loom: LOOM_MAX_PREEMPTIONS=$LOOM_MAX_PREEMPTIONS CARGO_TARGET_DIR=$CARGO_TARGET_DIR"
status=0
cargo test --release --lib loom_model -- --nocapture 2>&1 | tee "$log" || status=$?
if [[ $status -ne 0 ]]; then
    echo "loom: FAILED (cargo test exited with $status)" >&2
    exit "$status"
fi

passed="$(sed -n 's/^test result: ok\. \([0-9]*\) passed.*/\1/p' "$log" | tail -n 1)"
if [[ -z "$passed" || "$passed" -lt "$MIN_MODELS" ]]; then
    echo "loom: FAILED: expected at least $MIN_MODELS models to pass, got '${passed:-none}'" >&2
    exit 1
fi
echo "loom: $passed models passed"
