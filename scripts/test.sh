#!/usr/bin/env bash
# The whole test suite (CI runs exactly this via .ci/run): setup, formatting, lints, and
# every unit and integration test in release mode (the models run at real speed).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export SPECTRALD_TEST_PYTHON="$PWD/.cache/venv/bin/python"
cargo fmt --all -- --check
cargo clippy --release --all-targets -- -D warnings
# No module imports another that imports it back (docs/architecture.md, "Layers").
python3 scripts/module_cycles.py
# Every crate's licence accepted and listed in LICENSES-THIRD-PARTY.md.
python3 scripts/licences.py --check
# No dependency with a known vulnerability (RustSec; accepted warnings in .cargo/audit.toml).
scripts/audit.sh
# The RTSP reconnect tests start this example server; `cargo test` alone does not put it
# under target/release/examples/.
cargo build --release --example rtsp_test_server
cargo test --release --all-targets --no-fail-fast 2>&1
