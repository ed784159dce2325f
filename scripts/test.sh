#!/usr/bin/env bash
# Runs every test Ametist has. Works on a fresh machine with Rust, Python 3.11 and pip:
# whatever else a test needs, this script installs.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== cargo test (workspace)"
cargo test --workspace --locked 2>&1

if [ -d tests/python ]; then
    echo "== python tests (real qdrant-client against a real ametist serve)"
    # The server binary `cargo test` built for the Rust integration tests.
    AMETIST_BIN="$(realpath "${CARGO_TARGET_DIR:-target}")/debug/ametist" bash tests/python/run.sh
fi

if [ -d tests/hostile ]; then
    echo "== hostile suite (bad input, slow clients, crafted snapshots, fuzzing, memory ceiling)"
    AMETIST_BIN="$(realpath "${CARGO_TARGET_DIR:-target}")/debug/ametist" bash tests/hostile/run.sh
fi

if [ -d tests/browser ]; then
    echo "== browser suite (the dashboard in a real headless Chromium against a real ametist serve)"
    AMETIST_BIN="$(realpath "${CARGO_TARGET_DIR:-target}")/debug/ametist" bash tests/browser/run.sh
fi
