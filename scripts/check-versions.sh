#!/usr/bin/env bash
# Type-checks the extension against every PostgreSQL version pgrx 0.18 supports that the test
# run does not build and test (13, 14, 16, 17): their headers cannot be had here, so
# pgrx-pg-sys is compiled from the bindings pgrx ships (scripts/rustc-committed-bindings.sh;
# DOCS_RS=1 makes its build script skip generating them). A type error against any version's
# structs fails the run. Own target directory: the flags differ from a real build's.
#   scripts/check-versions.sh [VERSION...]
set -euo pipefail
cd "$(dirname "$0")/.."
versions=("$@")
[ ${#versions[@]} -gt 0 ] || versions=(13 14 16 17)
for v in "${versions[@]}"; do
    echo "== cargo check for PostgreSQL $v (pgrx's shipped bindings)"
    DOCS_RS=1 RUSTC_WRAPPER="$PWD/scripts/rustc-committed-bindings.sh" CARGO_TARGET_DIR=target/check-versions \
        cargo check -q --lib --no-default-features --features "pg$v"
done
echo "check-versions: ${#versions[@]} passed"
