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
# The demo shows some refusals on purpose; any other error means a scene broke (since issue
# 24 a scene that set the acting user from a function printed an error in place of its table,
# and nothing noticed), so the run fails.
psql -X -d crm_demo -f demo/demo.sql 2>&1 | tee target/demo-output.log
intended='may not create a Leads record owned by bob|no acting CRM user: delete on table sales.leads is refused|field "budget" of sales.leads is read-only|permission denied for table leads|role "bi_alice" may not set crm.user_name|violates row-level security policy "crm_restrict"|permission denied to change the owner of a record shared with you'
if grep -E '^(psql:[^ ]+: )?ERROR' target/demo-output.log | grep -Evq "$intended"; then
    echo "demo: a scene failed:" >&2
    grep -E '^(psql:[^ ]+: )?ERROR' target/demo-output.log | grep -Ev "$intended" >&2
    exit 1
fi

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
