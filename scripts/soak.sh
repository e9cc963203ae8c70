#!/usr/bin/env bash
# The long soak with catalog churn (issue 14; tests/client/tests/soak.rs, which CI runs for 20
# seconds): builds and installs crm_access for PostgreSQL 15, starts a throwaway cluster, runs
# CLIENTS clients for SECONDS seconds while an administrator keeps changing the catalog, and
# writes the figures to bench/results/soak.md (BENCH_OUT=dir to write elsewhere).
#   scripts/soak.sh [SECONDS (600)] [CLIENTS (16)]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-600}
clients=${2:-16}
scripts/setup.sh
eval "$(pgrx-config/generate.sh)"
. pgrx-config/pg_configs.sh
. scripts/packages.sh
mkdir -p target
echo "== build and install crm_access for PostgreSQL 15"
package_build 15 target/pkg/pg15 >target/build-pg15.log 2>&1 || { tail -40 target/build-pg15.log; exit 1; }
package_install target/pkg/pg15
. scripts/cluster.sh
cluster_start "$(cluster_dir soak-cluster)" 5486
trap cluster_stop EXIT
echo "== soak: $clients clients, $seconds s"
CRM_SOAK_SECONDS=$seconds CRM_SOAK_CLIENTS=$clients cargo test -q -p crm_client_tests --test soak -- --nocapture 2>&1 \
    | tee target/soak.log | grep -E '^soak:|stale|wrong|error' || true
line=$(grep '^soak:' target/soak.log) || { tail -40 target/soak.log; exit 1; }
grep -q 'test result: ok' target/soak.log || { echo "soak failed"; exit 1; }
out=${BENCH_OUT:-bench/results}
mkdir -p "$out"
echo "${line#soak: } ($(date -u +%F), PostgreSQL 15, debug build)" >"$out/soak.md"
echo "== wrote $out/soak.md"
