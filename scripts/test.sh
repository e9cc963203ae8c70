#!/usr/bin/env bash
# Runs every test tier (see docs/testing.md): engine unit and property tests, then on a
# throwaway PostgreSQL 15 with the extension installed, the pg_regress suites and the
# client integration tests.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
mkdir -p target
log=target/test-output.log
exec > >(tee "$log") 2>&1

scripts/setup.sh

echo "== README quickstart matches its regression suite"
diff <(sed -n '/<!-- quickstart/,/<!-- \/quickstart/p' README.md | sed '1,2d;$d' | sed '$d') tests/pg_regress/sql/quickstart.sql

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

echo "== benchmark smoke test (small scale: equality of variants and plan shapes, no timings judged)"
BENCH_OUT=target/bench-smoke bench/run.sh small --no-build --no-chart

# One closing line over every tier (cargo's per-binary lines plus pg_regress's count).
passed=$(grep -hoE 'test result: ok\. [0-9]+ passed' "$log" | awk '{s += $4} END {print s + 0}')
regress=$(grep -hoE 'All [0-9]+ tests passed' "$log" | awk '{print $2}')
bench=$(grep -hoE '^bench: [0-9]+ passed' "$log" | awk '{print $2}')
echo "crm_access: $((passed + regress + bench)) passed, 0 failed"
