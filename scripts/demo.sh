#!/usr/bin/env bash
# The crm_access demo: sets up the toolchain, builds and installs the extension, starts a
# throwaway PostgreSQL 15 (socket under target/demo-cluster, or /var/tmp/crm_access when run as root), loads a sample organisation
# and shows, user by user, what each sees and what a few writes do. The cluster is stopped
# at the end; with --keep it stays up so you can explore it with psql.
set -euo pipefail
cd "$(dirname "$0")/.."
keep=false; [ "${1:-}" = "--keep" ] && keep=true

scripts/setup.sh
eval "$(pgrx-config/generate.sh)"
. pgrx-config/pg_configs.sh
echo "== building and installing crm_access"
mkdir -p target
cargo pgrx install --sudo --no-default-features --features pg15 -c "$PG_CONFIG_15" >target/demo-build.log 2>&1 \
    || { cat target/demo-build.log; exit 1; }

. scripts/cluster.sh
cluster_start "$(cluster_dir demo-cluster)" 5497
$keep || trap cluster_stop EXIT
createdb crm_demo
psql -X -d crm_demo -f demo/demo.sql

echo
if $keep; then
    echo "The demo cluster is still running. Explore it as the web app, acting as a user:"
    echo "  psql -h $PGHOST -p $PGPORT -U crm_app crm_demo -c \"BEGIN; SET LOCAL crm.user_name = 'mgr_west'; TABLE sales.leads; COMMIT;\""
    echo "or as the BI login mapped to alice:  psql -h $PGHOST -p $PGPORT -U bi_alice crm_demo"
    echo "Stop it with:  sudo -u postgres $PG_BIN/pg_ctl -D $PGHOST/data stop && rm -rf $PGHOST"
else
    echo "To explore the same organisation yourself, run: scripts/demo.sh --keep"
    echo "(it keeps the cluster running and prints the psql commands to connect)."
fi
