#!/usr/bin/env bash
# Runs every test tier (see docs/testing.md): engine unit and property tests, then on a
# throwaway PostgreSQL 15 with the extension installed, the pg_regress suites and the
# client integration tests.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

scripts/setup.sh

echo "== engine: unit and property tests"
cargo test -p crm_model

echo "== build and install the extension"
cargo pgrx install --sudo -c /usr/lib/postgresql/15/bin/pg_config >/dev/null
cargo build -p crm_client_tests --tests -q

. scripts/cluster.sh
cluster_start "$root/target/test-cluster" 5499
trap cluster_stop EXIT

echo "== pg_regress suites"
regress=$(dirname "$(/usr/lib/postgresql/15/bin/pg_config --pgxs)")/../test/regress/pg_regress
rm -rf target/pg_regress && mkdir -p target/pg_regress
if ! "$regress" --bindir=/usr/lib/postgresql/15/bin --host="$PGHOST" --port="$PGPORT" --user=postgres \
        --inputdir=tests/pg_regress --outputdir=target/pg_regress --dbname=crm_regress \
        --schedule=tests/pg_regress/schedule; then
    cat target/pg_regress/regression.diffs
    exit 1
fi

echo "== client integration tests"
cargo test -p crm_client_tests -- --test-threads=1
