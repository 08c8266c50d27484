#!/usr/bin/env bash
# Checks Cargo.lock against the RustSec advisory database: any vulnerability fails, and so
# does any warning (unmaintained, unsound, yanked) not accepted with a reason in
# .cargo/audit.toml. Run by scripts/test.sh.
#
# The database: $SPECTRALD_ADVISORY_DB, else ../shared/advisory-db (an offline snapshot),
# else cargo-audit fetches the current one (needs github.com). Where none can be had (a
# machine that reaches only the package registries, without the snapshot) the audit is
# skipped with a warning rather than failing the whole suite; CI has the snapshot, so there
# it always runs. SPECTRALD_AUDIT_REQUIRED=1 makes a missing database an error.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { echo "audit: $*" >&2; }

AUDIT_VERSION=0.22.2
if ! cargo audit --version 2>/dev/null | grep -q "$AUDIT_VERSION"; then
    say "installing cargo-audit $AUDIT_VERSION (one time, a few minutes)"
    cargo install --quiet --locked cargo-audit --version "$AUDIT_VERSION"
fi
db=${SPECTRALD_ADVISORY_DB:-../shared/advisory-db}
if [ -d "$db/crates" ]; then
    say "advisory database: $db ($(sed -n 's/.*commit \([0-9a-f]\{12\}\).* of \([0-9-]*\).*/\1, \2/p' "$db/SNAPSHOT.md" 2>/dev/null || echo snapshot))"
    cargo audit --no-fetch --db "$db" --deny warnings
else
    say "no advisory snapshot at $db: fetching the current database"
    if ! git ls-remote --quiet https://github.com/RustSec/advisory-db.git HEAD >/dev/null 2>&1; then
        say "WARNING: audit skipped: no advisory database here and github.com is not reachable; set SPECTRALD_ADVISORY_DB to a RustSec snapshot (the CI machine has ../shared/advisory-db)"
        [ "${SPECTRALD_AUDIT_REQUIRED:-0}" = 1 ] && exit 1
        exit 0
    fi
    cargo audit --deny warnings
fi
