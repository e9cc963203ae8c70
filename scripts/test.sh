#!/usr/bin/env bash
# Runs every test tier (see docs/testing.md): the engine's unit and property tests, then on
# each PostgreSQL version (pgrx-config/pg_configs.sh) a throwaway cluster with the extension
# installed: the upgrade test from 0.1.0, the pg_regress suites, the client integration
# tests and the read-replica test (tests/replica); on the main version (15) also the benchmark
# smoke test. The versions without a
# server here are type-checked (scripts/check-versions.sh). Other versions run the
# differential tests at CRM_DIFF_ORGS_OTHER organisations (default 10) instead of 50.
#   scripts/test.sh              every version
#   scripts/test.sh --pg 18      one version (or CRM_PG=18 scripts/test.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
only=${CRM_PG:-}
if [ "${1:-}" = --pg ]; then
    only=${2:?usage: scripts/test.sh [--pg VERSION]}
fi
mkdir -p target
log=target/test-output.log
exec > >(tee "$log") 2>&1
started=$SECONDS

. pgrx-config/pg_configs.sh
versions=${only:-$PG_VERSIONS}
main=${PG_VERSIONS%% *}
# shellcheck disable=SC2086
scripts/setup.sh --clients $versions
eval "$(pgrx-config/generate.sh)"
. scripts/packages.sh

echo "== README quickstart matches its regression suite"
diff <(sed -n '/<!-- quickstart/,/<!-- \/quickstart/p' README.md | sed '1,2d;$d' | sed '$d') tests/pg_regress/sql/quickstart.sql

echo "== README examples are the files the client tests run"
python3 scripts/check-readme-examples.py

echo "== engine: unit and property tests"
cargo test -p crm_model

# The versions without a server here (13, 14, 16, 17) are type-checked, not run.
[ -n "$only" ] || scripts/check-versions.sh

cargo build -p crm_client_tests --tests -q

port=5499
# PgBouncer in front of each version's cluster (scripts/pooler.sh). Both are sourced before
# the trap needs them: a failure before the first cluster starts must still end with its code.
. scripts/cluster.sh
. scripts/pooler.sh
trap 'pooler_stop; cluster_stop' EXIT
for v in $versions; do
    pg_config=$(pg_config_of "$v")
    if [ ! -x "$pg_config" ]; then
        case " $PG_REQUIRED " in
            *" $v "*) echo "PostgreSQL $v is required and not available (scripts/setup.sh $v)" >&2; exit 1 ;;
            *) echo "===== PostgreSQL $v: not available on this machine, skipped"; continue ;;
        esac
    fi
    echo "===== PostgreSQL $v ($("$pg_config" --version))"
    t0=$SECONDS

    echo "== build the extension for PostgreSQL $v"
    package_build "$v" "target/pkg/pg$v" >"target/build-pg$v.log" 2>&1 || { tail -40 "target/build-pg$v.log"; exit 1; }

    # From each release: installs it, then this build; nothing else may run against the
    # installation meanwhile.
    for from in v0.1.0 v0.2.0 v0.3.0; do
        tests/upgrade/run.sh "$v" $((port - 10)) "target/pkg/pg$v" "$from"
    done
    package_install "target/pkg/pg$v"

    PG_BIN=$("$pg_config" --bindir)
    . scripts/cluster.sh
    # Logical decoding for the logical replication test (operations.rs).
    CLUSTER_EXTRA_OPTS="-c wal_level=logical"
    cluster_start "$(cluster_dir test-cluster)" "$port"
    pooler_start $((port + 1))

    echo "== pg_regress suites (PostgreSQL $v)"
    regress=$(dirname "$("$pg_config" --pgxs)")/../test/regress/pg_regress
    rm -rf "target/pg_regress/pg$v" && mkdir -p "target/pg_regress/pg$v"
    if ! "$regress" --bindir="$PG_BIN" --host="$PGHOST" --port="$PGPORT" --user=postgres \
            --inputdir=tests/pg_regress --outputdir="target/pg_regress/pg$v" --dbname=crm_regress \
            --schedule=tests/pg_regress/schedule; then
        cat "target/pg_regress/pg$v/regression.diffs"
        exit 1
    fi

    echo "== client integration tests (PostgreSQL $v)"
    if [ "$v" = "$main" ]; then
        CRM_PG_BIN=$PG_BIN cargo test -p crm_client_tests -- --test-threads=1
    else
        CRM_PG_BIN=$PG_BIN CRM_DIFF_ORGS=${CRM_DIFF_ORGS_OTHER:-10} cargo test -p crm_client_tests -- --test-threads=1
    fi

    echo "== client tools: web app through PgBouncer, GraphQL API, BI report, psql (PostgreSQL $v)"
    target/clients-venv/bin/pytest -q -p no:cacheprovider tests/clients

    if [ "$v" = "$main" ]; then
        echo "== benchmark smoke test (small scale: equality of variants and plan shapes, no timings judged)"
        BENCH_OUT=target/bench-smoke bench/run.sh small --no-build --no-chart
    fi
    pooler_stop
    cluster_stop

    # A streaming standby behind its own PgBouncer, reads routed to it (docs/scaling.md).
    tests/replica/run.sh "$v" $((port + 10))
    echo "===== PostgreSQL $v: passed in $(( (SECONDS - t0) / 60 )) min $(( (SECONDS - t0) % 60 )) s"
    ran="${ran:-} $v"
done

# A major upgrade with pg_upgrade, from 15 to the newest version that ran (each with this
# build installed): tests/upgrade/major.sh.
newest=${ran:-}
newest=${newest##* }
if [[ " ${ran:-} " == *" 15 "* ]] && [ "$newest" != 15 ]; then
    t0=$SECONDS
    echo "===== pg_upgrade 15 -> $newest"
    tests/upgrade/major.sh "$newest" $((port - 20))
    echo "===== pg_upgrade 15 -> $newest: passed in $(( (SECONDS - t0) / 60 )) min $(( (SECONDS - t0) % 60 )) s"
fi

# One closing line over every tier (cargo's per-binary lines, pytest's, pg_regress's counts, the
# upgrade tests' checks, the benchmark's, and the versions type-checked; a tier one version
# does not run, such as the type check under --pg, counts 0).
passed=$({ grep -hoE 'test result: ok\. [0-9]+ passed' "$log" || true; } | awk '{s += $4} END {print s + 0}')
pytest=$({ grep -hoE '^[0-9]+ passed(,| in )' "$log" || true; } | awk '{s += $1} END {print s + 0}')
regress=$({ grep -hoE 'All [0-9]+ tests passed' "$log" || true; } | awk '{s += $2} END {print s + 0}')
upgrade=$({ grep -hoE '^upgrade: [0-9]+ passed' "$log" || true; } | awk '{s += $2} END {print s + 0}')
bench=$({ grep -hoE '^bench: [0-9]+ passed' "$log" || true; } | awk '{s += $2} END {print s + 0}')
checked=$({ grep -hoE '^check-versions: [0-9]+ passed' "$log" || true; } | awk '{s += $2} END {print s + 0}')
echo "crm_access: $((passed + pytest + regress + upgrade + bench + checked)) passed, 0 failed, on PostgreSQL $versions in $(( (SECONDS - started) / 60 )) min"
