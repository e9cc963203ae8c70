# Sourced after scripts/cluster.sh (by test.sh): PgBouncer, Debian's package, in transaction
# mode in front of the throwaway cluster, on 127.0.0.1 only. `pooler_start PORT` exports
# CRM_POOLER_PORT; `pooler_stop` stops it (cluster_stop removes its files with the cluster).
#
# The pool settings are the README's (examples/webapp/pgbouncer.ini): 3 server connections per
# database and role, so that many clients take turns on few connections. `pool_leak_one` and
# `crm_tools_one` serve databases pool_leak and crm_tools through a single server connection,
# so that one client's leftovers are certain to meet the next client.
# PgBouncer 1.18 forwards no session state between clients and resets nothing in transaction
# mode: whatever a client leaves on a server connection, the next client gets.

POOLER_EXAMPLE=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/examples/webapp/pgbouncer.ini
# The login roles that connect through the pooler (auth_type trust: the cluster decides);
# POOLER_POOL_SIZE overrides the example's pool size (the benchmark's).
POOLER_ROLES=${POOLER_ROLES:-"pool_app pool_legacy pool_default webapp crm_graphql bi_carol crm_app"}

pooler_start() {
    POOLER_DIR=$CLUSTER_DIR/pgbouncer
    mkdir -p "$POOLER_DIR"
    local port=$1 role
    : >"$POOLER_DIR/userlist.txt"
    for role in $POOLER_ROLES; do
        echo "\"$role\" \"\"" >>"$POOLER_DIR/userlist.txt"
    done
    cat >"$POOLER_DIR/pgbouncer.ini" <<EOF
[databases]
pool_leak_one = host=$CLUSTER_DIR port=$CLUSTER_PORT dbname=pool_leak pool_size=1
crm_tools_one = host=$CLUSTER_DIR port=$CLUSTER_PORT dbname=crm_tools pool_size=1
* = host=$CLUSTER_DIR port=$CLUSTER_PORT

%include $POOLER_DIR/site.ini
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
auth_type = trust
auth_file = $POOLER_DIR/userlist.txt
logfile = $POOLER_DIR/pgbouncer.log
pidfile = $POOLER_DIR/pgbouncer.pid
${POOLER_POOL_SIZE:+default_pool_size = $POOLER_POOL_SIZE}
EOF
    # The README's settings as they are (examples/webapp/pgbouncer.ini, which opens the
    # [pgbouncer] section; PgBouncer 1.18 starts that section anew at its header, so the
    # site's settings come after it).
    cp "$POOLER_EXAMPLE" "$POOLER_DIR/site.ini"
    [ "$(id -u)" = 0 ] && chown -R postgres: "$POOLER_DIR"
    # PgBouncer refuses to run as root; it runs as the cluster's OS user.
    as_postgres pgbouncer -d -q "$POOLER_DIR/pgbouncer.ini" || { tail -20 "$POOLER_DIR/pgbouncer.log"; return 1; }
    local i
    for i in $(seq 50); do
        (: </dev/tcp/127.0.0.1/"$port") 2>/dev/null && break
        sleep 0.1
    done
    export CRM_POOLER_PORT=$port
}

pooler_stop() {
    POOLER_DIR=${POOLER_DIR:-${CLUSTER_DIR:-}/pgbouncer}
    [ -f "$POOLER_DIR/pgbouncer.pid" ] || return 0
    local pid i
    pid=$(cat "$POOLER_DIR/pgbouncer.pid")
    kill "$pid" 2>/dev/null || true
    for i in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    rm -f "$POOLER_DIR/pgbouncer.pid"
}
