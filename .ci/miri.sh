#!/usr/bin/env bash
# Miri over the code that Miri can run: the pure format codecs, the frame scanner and the tail
# word (Miri cannot execute file-backed mappings, so the mapping layer is covered by the other
# tests). Needs the nightly toolchain with the miri component; when that cannot be had, the
# step is skipped with the reason printed, never failed.
set -uo pipefail
cd "$(dirname "$0")/.."

if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    echo "SKIPPED miri: no nightly toolchain on this machine"
    exit 0
fi
if ! cargo +nightly miri --version >/dev/null 2>&1; then
    if ! rustup component add --toolchain nightly miri rust-src >/dev/null 2>&1; then
        echo "SKIPPED miri: the miri component could not be installed"
        exit 0
    fi
fi
cargo +nightly miri --version
set -e
CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}/miri" \
    cargo +nightly miri test --lib -- format:: log::scan log::tail
