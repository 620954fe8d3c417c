#!/usr/bin/env bash
# Fuzz smoke test: runs every cargo-fuzz target in fuzz/ for FUZZ_SECONDS seconds each (default
# 30) on the stable toolchain (no sanitizer), with debug assertions and overflow checks on.
# Installs cargo-fuzz if it is missing. Exits non-zero if any target crashes, hangs or fails to
# build.
#
# A crash leaves its input in fuzz/artifacts/<target>/; reproduce it with
#   cd fuzz && cargo fuzz run -s none -a <target> artifacts/<target>/<file>
# and once fixed keep it as a regression: copy it into fuzz/regressions/<target>/ (the root
# crate's tests/fuzz_corpus.rs runs every file there under `cargo test`).
#
# Environment:
#   FUZZ_SECONDS   seconds per target (default 30)
#   FUZZ_TARGETS   space-separated subset of targets (default: all)
#   FUZZ_SEED      1 (default): first write the deterministic inputs of tests/fuzz_corpus.rs
#                  into fuzz/corpus/<target>/ as seeds (builds that test with the root crate's
#                  CARGO_TARGET_DIR); 0: start from the corpus as it is
set -euo pipefail

cd "$(dirname "$0")/.."

if [[ "${FUZZ_SEED:-1}" == 1 ]]; then
    echo "fuzz: seeding fuzz/corpus/ from tests/fuzz_corpus.rs"
    MMLOG_FUZZ_SEED_DIR="$PWD/fuzz/corpus" \
        cargo test --quiet --test fuzz_corpus -- --ignored --exact write_seed_corpus
fi

cd fuzz
# The fuzz crate is its own workspace and builds in fuzz/target, whatever the caller's
# CARGO_TARGET_DIR (which is for the root crate).
unset CARGO_TARGET_DIR

seconds="${FUZZ_SECONDS:-30}"
targets=(${FUZZ_TARGETS:-frame_decode segment_header_decode checkpoint_decode segment_scan small_files_decode archive_open event_store_open log_ops})

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi
cargo fuzz --version

# -s none: no sanitizer, so no nightly toolchain is needed; -a: debug assertions.
flags=(-s none -a)
echo "fuzz: building ${targets[*]}"
for t in "${targets[@]}"; do
    cargo fuzz build "${flags[@]}" "$t"
done

failed=()
summary=()
crashes=()
for t in "${targets[@]}"; do
    echo "fuzz: $t for ${seconds}s"
    log="$(mktemp)"
    set +e
    cargo fuzz run "${flags[@]}" "$t" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=20 -print_final_stats=1 \
        2>&1 | tee "$log" |
        grep --line-buffered -E '^(#[0-9]+[[:space:]]+(INITED|DONE)|Done |==|SUMMARY|thread .* panicked)'
    status="${PIPESTATUS[0]}"
    set -e
    runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)"
    speed="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)"
    cov="$( (grep -Eo 'cov: [0-9]+' "$log" || true) | tail -n 1 | tr -dc 0-9)"
    summary+=("$t: exit $status, ${runs:-?} runs, ${speed:-?} exec/s, ${cov:-?} coverage points")
    if [[ "$status" -ne 0 ]]; then
        failed+=("$t")
        echo "fuzz: $t FAILED (exit $status):" >&2
        { sed -n '/panicked at/,/^SUMMARY/p' "$log" | head -n 60; tail -n 15 "$log"; } >&2
        ls "artifacts/$t" >&2 2>/dev/null || true
        # Kept for the end of the output, which survives when a long log is cut: the panic
        # message, and the crashing input itself (base64), enough to reproduce it anywhere.
        message="$(grep -m1 -A1 'panicked at' "$log" | cut -c1-400 | tr '\n' ' ' || true)"
        artifact="$(sed -n 's/.*Test unit written to //p' "$log" | tail -n 1)"
        input=""
        if [[ -n "$artifact" && -f "$artifact" ]]; then
            input="$(base64 -w0 "$artifact")"
        fi
        crashes+=("$t: ${message:-no panic message} input (base64): ${input:-none}")
    fi
    rm -f "$log"
done

echo
echo "fuzz summary (${seconds}s per target):"
printf '  %s\n' "${summary[@]}"
if [[ ${#failed[@]} -gt 0 ]]; then
    printf '  %s\n' "${crashes[@]}" >&2
    echo "fuzz: to reproduce: base64 -d > input <<< '...'; cd fuzz && cargo fuzz run -s none -a <target> input" >&2
    echo "fuzz: FAILED: ${failed[*]}" >&2
    exit 1
fi
echo "fuzz: all targets ran clean"
