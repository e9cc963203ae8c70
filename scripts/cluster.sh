# Sourced by test.sh, demo.sh and bench scripts: a throwaway PostgreSQL cluster of the
# version whose binaries are in $PG_BIN (PostgreSQL 15 by default), owned by the postgres OS
# user (PostgreSQL refuses to run as root), listening only on a Unix socket inside the
# cluster directory. `cluster_start DIR PORT` exports PGHOST/PGPORT/PGUSER;
# `cluster_stop` stops it and removes DIR (the callers run it from an EXIT trap).
# CLUSTER_EXTRA_OPTS adds server options (`-c name=value ...`). Every session loads crm_access
# as it starts (session_preload_libraries), as the README asks of production servers: only
# then can crm_access tell who set crm.user_name (docs/security.md); so the package must be
# installed before the cluster starts.

PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}

# Where a cluster named NAME lives: under target/ when the server runs as the invoking user;
# as root (the server then runs as postgres), under /var/tmp/crm_access, since a checkout may
# sit in a directory postgres cannot enter (a clone under `mktemp -d` is mode 0700). The path
# is keyed by the checkout so two checkouts do not share a cluster.
cluster_dir() {
    if [ "$(id -u)" = 0 ]; then
        local base=/var/tmp/crm_access
        mkdir -p "$base" && chmod 755 "$base"
        echo "$base/$1-$(printf %s "$PWD" | md5sum | cut -c1-8)"
    else
        echo "$PWD/target/$1"
    fi
}

as_postgres() {
    if [ "$(id -u)" = 0 ]; then sudo -u postgres "$@"; else "$@"; fi
}

cluster_start() {
    CLUSTER_DIR=$1
    CLUSTER_PORT=$2
    rm -rf "$CLUSTER_DIR"
    mkdir -p "$CLUSTER_DIR"
    [ "$(id -u)" = 0 ] && chown postgres: "$CLUSTER_DIR"
    as_postgres "$PG_BIN/initdb" -D "$CLUSTER_DIR/data" -A trust -U postgres --no-sync >"$CLUSTER_DIR/initdb.log" 2>&1 \
        || { cat "$CLUSTER_DIR/initdb.log"; return 1; }
    cluster_resume
    export PGHOST=$CLUSTER_DIR PGPORT=$CLUSTER_PORT PGUSER=postgres
}

# Stop the server and start it again (`cluster_pause`, then `cluster_resume`), as around a
# change of the installed extension files.
cluster_pause() {
    as_postgres "$PG_BIN/pg_ctl" -D "$CLUSTER_DIR/data" -m fast -w stop >/dev/null
}

cluster_resume() {
    as_postgres "$PG_BIN/pg_ctl" -D "$CLUSTER_DIR/data" -l "$CLUSTER_DIR/server.log" -w \
        -o "-p $CLUSTER_PORT -k $CLUSTER_DIR -c listen_addresses='' -c fsync=off -c shared_buffers=512MB -c max_connections=60 -c max_prepared_transactions=4 -c session_preload_libraries=crm_access ${CLUSTER_EXTRA_OPTS:-}" \
        start >/dev/null || { cat "$CLUSTER_DIR/server.log"; return 1; }
}

cluster_stop() {
    [ -n "${CLUSTER_DIR:-}" ] && [ -d "$CLUSTER_DIR/data" ] || return 0
    as_postgres "$PG_BIN/pg_ctl" -D "$CLUSTER_DIR/data" -m fast -w stop >/dev/null 2>&1 || true
    rm -rf "$CLUSTER_DIR"
}
