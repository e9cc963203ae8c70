#!/usr/bin/env bash
# The read-replica test on one PostgreSQL major version (docs/scaling.md; issue 28, item 5):
#   tests/replica/run.sh VERSION PORT
# A primary and a streaming hot standby made from it with pg_basebackup, each behind its own
# PgBouncer (transaction mode, the README's settings): the app writes through the primary's
# and reads through the standby's. tests/replica/test_replica.py then checks that reads on the
# standby decide as on the primary, that a revocation committed with synchronous_commit =
# remote_apply is in force on the standby before the commit returns, and measures the lag
# without it. Uses ports PORT to PORT + 3; needs the current build installed.
set -euo pipefail
cd "$(dirname "$0")/../.."
version=$1 port=$2
. pgrx-config/pg_configs.sh
. scripts/packages.sh
PG_BIN=$("$(pg_config_of "$version")" --bindir)
export PATH=$PG_BIN:$PATH
. scripts/cluster.sh
. scripts/pooler.sh

primary_dir=$(cluster_dir "replica-primary-$version")
standby_dir=$(cluster_dir "replica-standby-$version")
stop_all() {
    POOLER_DIR=$standby_dir/pgbouncer pooler_stop || true
    POOLER_DIR=$primary_dir/pgbouncer pooler_stop || true
    as_postgres "$PG_BIN/pg_ctl" -D "$standby_dir/data" -m fast -w stop >/dev/null 2>&1 || true
    rm -rf "$standby_dir"
    CLUSTER_DIR=$primary_dir cluster_stop
}
trap stop_all EXIT

CLUSTER_EXTRA_OPTS="-c wal_level=replica -c max_wal_senders=4" cluster_start "$primary_dir" "$port"
primary_host=$PGHOST
psql -X -q -v ON_ERROR_STOP=1 -c "CREATE DATABASE crm_replica" >/dev/null
psql -X -q -v ON_ERROR_STOP=1 -d crm_replica -c "CREATE EXTENSION crm_access" -f tests/fixtures/helpers.sql -f tests/fixtures/org.sql >/dev/null

# The standby: a base backup of the primary, streaming from it under the name the primary's
# synchronous_standby_names gives (set once it is connected, so that nothing before waits).
rm -rf "$standby_dir" && mkdir -p "$standby_dir"
[ "$(id -u)" = 0 ] && chown postgres: "$standby_dir"
as_postgres "$PG_BIN/pg_basebackup" -h "$primary_host" -p "$port" -U postgres -D "$standby_dir/data" -X stream -c fast >/dev/null
as_postgres bash -c "touch '$standby_dir/data/standby.signal' && echo \"primary_conninfo = 'host=$primary_host port=$port user=postgres application_name=standby1'\" >> '$standby_dir/data/postgresql.auto.conf'"
as_postgres "$PG_BIN/pg_ctl" -D "$standby_dir/data" -l "$standby_dir/server.log" -w \
    -o "-p $((port + 1)) -k $standby_dir -c listen_addresses='' -c hot_standby=on -c max_connections=60 -c max_prepared_transactions=4 -c session_preload_libraries=crm_access" \
    start >/dev/null || { cat "$standby_dir/server.log"; exit 1; }
for i in $(seq 100); do
    [ "$(psql -X -At -c "SELECT count(*) FROM pg_stat_replication WHERE application_name = 'standby1' AND state = 'streaming'")" = 1 ] && break
    [ "$i" = 100 ] && { echo "the standby did not connect" >&2; cat "$standby_dir/server.log" >&2; exit 1; }
    sleep 0.1
done
psql -X -q -v ON_ERROR_STOP=1 -c "ALTER SYSTEM SET synchronous_standby_names = 'standby1'" -c "SELECT pg_reload_conf()" >/dev/null

# A PgBouncer in front of each (scripts/pooler.sh serves $CLUSTER_DIR at $CLUSTER_PORT).
POOLER_ROLES="crm_app" CLUSTER_DIR=$primary_dir CLUSTER_PORT=$port pooler_start $((port + 2))
POOLER_ROLES="crm_app" CLUSTER_DIR=$standby_dir CLUSTER_PORT=$((port + 1)) pooler_start $((port + 3))

echo "== read replica (PostgreSQL $version): writes through PgBouncer to the primary, reads through PgBouncer from a streaming standby"
CRM_PRIMARY_HOST=$primary_host CRM_PRIMARY_PORT=$port CRM_STANDBY_HOST=$standby_dir CRM_STANDBY_PORT=$((port + 1)) \
    CRM_PRIMARY_POOLER=$((port + 2)) CRM_STANDBY_POOLER=$((port + 3)) \
    target/clients-venv/bin/pytest -q -s -p no:cacheprovider tests/replica
