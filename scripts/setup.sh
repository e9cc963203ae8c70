#!/usr/bin/env bash
# Installs whatever is missing to build and test crm_access on a Debian bookworm machine
# with Rust 1.95 (see shared/TOOLCHAIN.md). Idempotent: a second run does nothing.
set -euo pipefail

PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config
SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo

packages=(postgresql-15 postgresql-contrib postgresql-server-dev-15 libclang-dev clang sudo)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# cargo-pgrx 0.19 needs Rust 1.96; 0.18.0 matches pgrx = "=0.18.0" in Cargo.toml.
if ! cargo pgrx --version 2>/dev/null | grep -q ' 0\.18\.0'; then
    echo "setup: installing cargo-pgrx 0.18.0 (about 5 minutes)"
    cargo install cargo-pgrx --version 0.18.0 --locked
fi

# Pin the versioned pg_config: /usr/bin/pg_config picks the newest installed version.
if ! grep -qs "^pg15 *= *\"$PG_CONFIG\"" "${PGRX_HOME:-$HOME/.pgrx}/config.toml"; then
    cargo pgrx init --pg15 "$PG_CONFIG"
fi
