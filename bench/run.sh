#!/usr/bin/env bash
# The benchmark harness (docs/benchmarks.md): builds crm_access in release mode, starts a
# throwaway PostgreSQL 15 (and PgBouncer in front of it), generates a synthetic CRM at the given scale, runs the workload
# for every variant and viewer, checks that they agree, and writes bench/results/SCALE.*
#   bench/run.sh [small|medium|large] [--no-build] [--no-chart]   (BENCH_OUT=dir to write elsewhere)
#   bench/run.sh large-org --cache-only   (the cache rebuild at 20,000 users, without the workload)
#   bench/run.sh replans   (re-plans per transaction of a pooled connection; bench/replans.py)
#   bench/run.sh history   (past catalogs at 100,000 audit entries; bench/history.py)
#   bench/run.sh shares   (record shares at 20,000 users; bench/shares.py)
#   bench/run.sh fixed-cost   (a sub-millisecond read's fixed cost, d/b and d/b'; bench/fixed_cost.py)
set -euo pipefail
cd "$(dirname "$0")/.."
scale=${1:-small}; shift || true
build=true; chart=--chart; only=
for arg in "$@"; do
    case $arg in
        --no-build) build=false ;;
        --no-chart) chart=--no-chart ;;
        --cache-only) only=--cache-only ;;
        *) echo "unknown option $arg" >&2; exit 2 ;;
    esac
done

scripts/setup.sh
eval "$(pgrx-config/generate.sh)"
. pgrx-config/pg_configs.sh
mkdir -p target
if $build; then
    echo "== building crm_access (release)"
    cargo pgrx install --release --sudo --no-default-features --features pg15 -c "$PG_CONFIG_15" >target/bench-build.log 2>&1 \
        || { cat target/bench-build.log; exit 1; }
fi
venv=target/bench-venv
if [ ! -x $venv/bin/python ] || ! $venv/bin/python -c 'import psycopg, matplotlib' 2>/dev/null; then
    echo "== installing the harness's Python packages into $venv"
    python3 -m venv $venv
    $venv/bin/pip install -q "psycopg[binary]==3.3.*" "matplotlib==3.*"
fi

. scripts/cluster.sh
. scripts/pooler.sh
if [ "$scale" = replans ]; then
    # pg_stat_statements counts plannings; only this measurement loads it.
    CLUSTER_EXTRA_OPTS="-c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track_planning=on" \
        cluster_start "$(cluster_dir bench-cluster)" 5496
    trap cluster_stop EXIT
    createdb crm_bench
    $venv/bin/python bench/replans.py --out "${BENCH_OUT:-bench/results}"
    exit
fi
if [ "$scale" = shares ]; then
    cluster_start "$(cluster_dir bench-cluster)" 5496
    trap cluster_stop EXIT
    createdb crm_bench
    $venv/bin/python bench/shares.py --out "${BENCH_OUT:-bench/results}"
    exit
fi
if [ "$scale" = fixed-cost ]; then
    cluster_start "$(cluster_dir bench-cluster)" 5496
    trap cluster_stop EXIT
    createdb crm_bench
    $venv/bin/python bench/fixed_cost.py --out "${BENCH_OUT:-bench/results}"
    exit
fi
if [ "$scale" = history ]; then
    cluster_start "$(cluster_dir bench-cluster)" 5496
    trap cluster_stop EXIT
    createdb crm_bench
    $venv/bin/python bench/history.py --out "${BENCH_OUT:-bench/results}"
    exit
fi
cluster_start "$(cluster_dir bench-cluster)" 5496
# pgbench also runs through PgBouncer (transaction mode, the README's settings), with a pool of
# 8 server connections.
POOLER_ROLES="postgres bench_app" POOLER_POOL_SIZE=8 pooler_start 5497
trap 'pooler_stop; cluster_stop' EXIT
createdb crm_bench
$venv/bin/python bench/harness.py --scale "$scale" --out "${BENCH_OUT:-bench/results}" $chart $only
