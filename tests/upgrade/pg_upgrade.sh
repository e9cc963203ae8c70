#!/usr/bin/env bash
# A major-version upgrade with pg_upgrade (issue 27, README "Major upgrades"):
#   tests/upgrade/pg_upgrade.sh OLD NEW PORT
# Builds the full organisation (tests/fixtures/full_org.sql: secure views, conversations,
# events, a parent link) on PostgreSQL OLD with the current build, records every user's
# decisions, the audit log and a past answer (crm.who_could at a moment of the log), stops
# it, upgrades the cluster to PostgreSQL NEW with pg_upgrade, and checks the same again.
# Both versions' builds of the current crm_access must be installed. OLD_PG_CONFIG and
# NEW_PG_CONFIG point at other builds of either version than pgrx-config/pg_configs.sh's:
# scripts/test.sh runs it through tests/upgrade/major.sh, from a 15 built from source.
set -euo pipefail
cd "$(dirname "$0")/../.."
old=$1 new=$2 port=$3
. pgrx-config/pg_configs.sh
. scripts/packages.sh
. scripts/cluster.sh
old_bin=$("${OLD_PG_CONFIG:-$(pg_config_of "$old")}" --bindir)
new_bin=$("${NEW_PG_CONFIG:-$(pg_config_of "$new")}" --bindir)
dir=$(cluster_dir "pg_upgrade-$old-$new")
out=target/upgrade/pg_upgrade-$old-$new
rm -rf "$dir" "$out" && mkdir -p "$dir" "$out"
[ "$(id -u)" = 0 ] && chown postgres: "$dir"
fail() { echo "pg_upgrade test ($old -> $new): $*" >&2; exit 1; }

start() {
    as_postgres "$1/pg_ctl" -D "$dir/$2" -l "$dir/$2.log" -w \
        -o "-p $port -k $dir -c listen_addresses='' -c fsync=off -c session_preload_libraries=crm_access" start >/dev/null \
        || { cat "$dir/$2.log"; return 1; }
}
stop() { as_postgres "$1/pg_ctl" -D "$dir/$2" -m fast -w stop >/dev/null; }
trap 'stop "$new_bin" new 2>/dev/null || true; stop "$old_bin" old 2>/dev/null || true; rm -rf "$dir"' EXIT
export PGHOST=$dir PGPORT=$port PGUSER=postgres

# The same answers, asked of either server with its own psql.
report() {
    local psql="$1/psql -X -q -v ON_ERROR_STOP=1 -d upgraded"
    $psql -f tests/upgrade/report.sql
    $psql -At -c "SELECT id, at, actor, operation, target, details FROM crm.audit_log ORDER BY id"
    $psql -At -c "SELECT crm.who_could('sales.leads', 41::bigint, 'read', (SELECT at FROM crm.audit_log ORDER BY id DESC OFFSET 3 LIMIT 1))"
    $psql -At -c "SET ROLE crm_app" -c "BEGIN" -c "SELECT crm.set_user('alice')" \
        -c "SELECT * FROM sales.leads_secure ORDER BY id" -c "SELECT id, subject FROM crm.inbox_all ORDER BY id" -c "COMMIT"
}

echo "== pg_upgrade from PostgreSQL $old to $new"
# PostgreSQL 18's initdb turns data checksums on by default; pg_upgrade needs both alike.
checksums=
[ "$new" -ge 18 ] && checksums=--no-data-checksums
as_postgres "$old_bin/initdb" -D "$dir/old" -A trust -U postgres --no-sync >"$dir/initdb-old.log" 2>&1 || { cat "$dir/initdb-old.log"; exit 1; }
as_postgres "$new_bin/initdb" -D "$dir/new" -A trust -U postgres --no-sync $checksums >"$dir/initdb-new.log" 2>&1 || { cat "$dir/initdb-new.log"; exit 1; }
start "$old_bin" old
"$old_bin/createdb" upgraded
"$old_bin/psql" -X -q -v ON_ERROR_STOP=1 -d upgraded -c "CREATE EXTENSION crm_access" -f tests/upgrade/organisation.sql >/dev/null
report "$old_bin" >"$out/before.txt"
stop "$old_bin" old

# pg_upgrade writes its logs into the new cluster and its working files where it runs.
(cd "$dir" && as_postgres "$new_bin/pg_upgrade" -b "$old_bin" -B "$new_bin" -d "$dir/old" -D "$dir/new" \
    -p "$port" -P "$port" --socketdir="$dir" >"$dir/pg_upgrade.log" 2>&1) \
    || { cat "$dir/pg_upgrade.log"; find "$dir/new" -name 'pg_upgrade_dump_*.log' -exec grep -B3 -A3 -E 'ERROR|FATAL|error:' {} + ; exit 1; }

start "$new_bin" new
[ "$("$new_bin/psql" -X -At -d upgraded -c "SHOW server_version_num" | cut -c1-2)" = "$new" ] || fail "the upgraded server is not PostgreSQL $new"
report "$new_bin" >"$out/after.txt"
diff -u "$out/before.txt" "$out/after.txt" >"$out/diff.txt" || fail "decisions, audit log or past answers differ after pg_upgrade (see $out/diff.txt)"
grep -q 'alice' "$out/before.txt" || fail "the report is empty"
echo "pg_upgrade test ($old -> $new): $(grep -c . "$out/before.txt") lines of decisions, audit log, past answers and masked rows identical"
echo "upgrade: 1 passed"
