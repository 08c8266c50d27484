#!/usr/bin/env bash
# The main job: set up (idempotent), build, and replay the bundled fixture session through
# the DMSL models, printing one landmark JSON line per visible/thermal pair on stdout.
# Extra arguments go to `spectrald replay` (e.g. --speed 1, --backend tract, --out FILE).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release --quiet
exec target/release/spectrald replay tests/fixtures/session-pexels "$@"
