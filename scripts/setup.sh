#!/usr/bin/env bash
# Installs whatever is missing to build and test crm_access on a Debian bookworm machine
# with Rust 1.95 (see shared/TOOLCHAIN.md), for the PostgreSQL versions given (default: 15,
# the one the demo and the benchmarks use), then writes the pgrx configuration
# (pgrx-config/). Idempotent: a second run does nothing. With --clients, also the client
# tools the tests drive (tests/clients): Node.js and the GraphQL example's npm packages, in
# examples/graphql/node_modules, and the Python packages, in target/clients-venv.
#   scripts/setup.sh [--clients] [VERSION...]     e.g. scripts/setup.sh 15 17 18
set -euo pipefail
cd "$(dirname "$0")/.."
clients=
if [ "${1:-}" = --clients ]; then
    clients=1
    shift
fi
versions=("$@")
[ ${#versions[@]} -gt 0 ] || versions=(15)
SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo

# PostgreSQL 15 comes from bookworm; its server and headers are needed whatever else is.
# PgBouncer (1.18) is the pooler of the client tests (scripts/pooler.sh).
packages=(postgresql-15 postgresql-contrib postgresql-server-dev-15 libclang-dev clang sudo perl pgbouncer)
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

# Other versions are built from Debian's source packages, once (scripts/build-postgres.sh).
# 17 is tried and skipped when its source cannot be had (trixie's files are not served here).
for v in "${versions[@]}"; do
    [ "$v" = 15 ] && continue
    status=0
    scripts/build-postgres.sh "$v" >/dev/null || status=$?
    case $status in
        0) ;;
        3) echo "setup: PostgreSQL $v skipped: its source package cannot be had here" ;;
        *) echo "setup: building PostgreSQL $v failed" >&2; exit 1 ;;
    esac
done

if [ -n "$clients" ]; then
    if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
        echo "setup: installing Node.js"
        $SUDO apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nodejs npm >/dev/null
    fi
    # Into the work tree, from the lock file; again only when the lock file changed.
    if [ ! -f examples/graphql/node_modules/.installed ] || [ examples/graphql/package-lock.json -nt examples/graphql/node_modules/.installed ]; then
        echo "setup: installing the GraphQL example's npm packages (examples/graphql/node_modules)"
        (cd examples/graphql && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
        touch examples/graphql/node_modules/.installed
    fi
    venv=target/clients-venv
    if [ ! -f $venv/.installed ] || [ tests/clients/requirements.txt -nt $venv/.installed ]; then
        echo "setup: installing the Python clients' packages ($venv)"
        python3 -m venv $venv
        $venv/bin/pip install -q -r tests/clients/requirements.txt
        touch $venv/.installed
    fi
fi

# The pgrx configuration every script uses (no `cargo pgrx init`, no ~/.pgrx).
pgrx-config/generate.sh >/dev/null
