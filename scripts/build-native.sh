#!/usr/bin/env bash
# Build the native close (native/, Rust) and put it where `streams` imports it from:
# streams/tradewatch_native<EXT_SUFFIX>. Needs cargo (rustup); the crates come from
# crates.io, pinned by native/Cargo.lock. Safe to run again: cargo rebuilds what changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
PY="$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY")"  # absolute: cargo runs PyO3's build elsewhere
# rustup puts cargo in ~/.cargo/bin, which a non-login shell may not have on its PATH
if ! command -v cargo >/dev/null; then
    for dir in "${CARGO_HOME:-$HOME/.cargo}/bin" /usr/local/cargo/bin; do
        [ -x "$dir/cargo" ] && PATH="$dir:$PATH" && break
    done
fi
command -v cargo >/dev/null || { echo "build-native: cargo not found (install Rust with rustup)" >&2; exit 1; }
suffix=$("$PY" -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')
PYO3_PYTHON="$PY" cargo build --quiet --release --locked --manifest-path native/Cargo.toml
cp native/target/release/libtradewatch_native.so "streams/tradewatch_native${suffix}.tmp"
mv "streams/tradewatch_native${suffix}.tmp" "streams/tradewatch_native${suffix}"
