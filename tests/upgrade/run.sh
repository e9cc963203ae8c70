#!/usr/bin/env bash
# The upgrade test on one PostgreSQL major version (docs/testing.md, docs/releasing.md):
#   tests/upgrade/run.sh VERSION PORT NEW_PACKAGE [FROM]
# Installs the release FROM (a tag: v0.1.0, the oldest, by default; built from its tag),
# builds an organisation with it
# (tests/upgrade/organisation.sql), records every user's decisions, installs NEW_PACKAGE
# (the current build) and runs ALTER EXTENSION crm_access UPDATE along the chain of upgrade
# scripts. Then checks: the same decisions; the catalog rows kept; the schema, user tables'
# protection included, identical to a fresh install of the current version given the same
# organisation; the same again after a dump and restore. Leaves NEW_PACKAGE installed.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
version=$1 port=$2 new=$3 from=${4:-v0.1.0}
from_version=${from#v}
. pgrx-config/pg_configs.sh
. scripts/packages.sh
PG_BIN=$("$(pg_config_of "$version")" --bindir)
. scripts/cluster.sh
export PATH=$PG_BIN:$PATH
out=target/upgrade/pg$version-from-$from_version
rm -rf "$out" && mkdir -p "$out"

old=$(release_package "$from" "$version")
package_install "$old"
cluster_start "$(cluster_dir "upgrade-cluster-$version-$from_version")" "$port"
# UPGRADE_KEEP=1 leaves the cluster running, to look into a failure.
[ "${UPGRADE_KEEP:-}" = 1 ] || trap 'cluster_stop; package_install "$new"' EXIT

sql() { psql -X -q -v ON_ERROR_STOP=1 "$@"; }
extversion() { psql -X -At -d "$1" -c "SELECT extversion FROM pg_extension WHERE extname = 'crm_access'"; }
fail() { echo "upgrade test (PostgreSQL $version, from $from_version): $*" >&2; exit 1; }

# The same comparisons run on the fresh install: what differs from one database to another
# (oids, transaction ids, the order of a privilege's grants, how far the audit log's own
# history has gone, how many models were published) is masked, nothing else.
schema_of() {
    pg_dump --schema-only --binary-upgrade -d "$1" \
        | grep -v -e '^\\restrict' -e '^\\unrestrict' -e 'binary_upgrade_set_next_' \
        | perl -e 'my @g; while (<>) { if (/^GRANT /) { push @g, $_; next } print sort @g; @g = (); print } print sort @g' \
        | sed -E -e "s/relfrozenxid = '[0-9]+', relminmxid = '[0-9]+'/relfrozenxid = X, relminmxid = X/" \
                 -e "s/^WHERE oid = '[0-9]+';/WHERE oid = X;/" \
                 -e "s/^SELECT pg_catalog.setval\('crm.(audit_log|compiled_model)_id_seq', [0-9]+, (true|false)\);/SELECT pg_catalog.setval('crm.\1_id_seq', X);/" \
                 -e "s/(binary_upgrade_create_empty_extension\('crm_access', 'crm', false, '[^']*'), '\{[0-9,]*\}', '\{[^}]*\}'/\1, X, X/"
}
# Which relations the extension dumps the rows of, and with which conditions (the order of
# pg_extension.extconfig is that of the scripts' calls, which an upgrade cannot reproduce).
config_of() {
    psql -X -At -d "$1" -c "SELECT c::regclass || ' ' || coalesce(w, '') FROM pg_extension e,
        unnest(e.extconfig, e.extcondition) AS x(c, w) WHERE e.extname = 'crm_access' ORDER BY 1"
}
checks=0
same() {
    diff -u "$1" "$2" >"$out/$3.diff" || fail "$4 (see $out/$3.diff)"
    checks=$((checks + 1))
}

echo "== upgrade from $from_version on PostgreSQL $version: build the organisation with $from_version"
createdb upgraded
createdb empty_upgraded
# Empty but for what the release left of a protected table that was dropped (0.1.0 kept its
# catalog row).
sql -d empty_upgraded -c "CREATE EXTENSION crm_access" \
    -c "CREATE TABLE dropped (id bigint PRIMARY KEY, owner_id bigint)" -c "SELECT crm.protect('dropped', 'Leads')" -c "DROP TABLE dropped" >/dev/null
sql -d upgraded -c "CREATE EXTENSION crm_access" -f tests/upgrade/organisation.sql >/dev/null
[ "$(extversion upgraded)" = "$from_version" ] || fail "$from_version is not what was installed"
sql -d upgraded -f tests/upgrade/report.sql >"$out/before.txt"
# The catalog's rows, in the columns the release has (an upgrade may add columns); not the
# registry of the extension's tables (crm.catalog_tables), which an upgrade extends.
psql -X -At -d upgraded >"$out/catalog.sql" -c "
    SELECT format('SELECT %L, %s FROM %s ORDER BY %s;', c.oid::regclass, string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum),
                  c.oid::regclass, string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum))
    FROM pg_depend d JOIN pg_class c ON c.oid = d.objid AND d.classid = 'pg_class'::regclass
    JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
    WHERE d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'crm_access') AND d.deptype = 'e' AND c.relkind = 'r'
      AND c.relname <> 'catalog_tables'
    GROUP BY c.oid ORDER BY c.oid::regclass::text"
psql -X -At -d upgraded -f "$out/catalog.sql" >"$out/catalog-before.txt"

echo "== install the new release (server stopped, as a package upgrade does) and ALTER EXTENSION UPDATE"
cluster_pause
package_install "$new"
cluster_resume
for db in upgraded empty_upgraded; do
    sql -d "$db" -c "ALTER EXTENSION crm_access UPDATE"
done
current=$(sed -n "s/^version = \"\(.*\)\"/\1/p" Cargo.toml | head -1)
[ "$(extversion upgraded)" = "$current" ] || fail "the update ended at $(extversion upgraded), not $current"
# Snapshots before anything else runs: a report's rolled-back inserts still advance sequences,
# so each database is compared after exactly one report (the one the release gave above).
snapshot() {
    schema_of "$1" >"$out/schema-$1.sql"
    config_of "$1" >"$out/config-$1.txt"
    # The audit log holds each database's own history (0.1.0 and 0.2.0 kept none).
    pg_dump --data-only --schema=crm --exclude-table-data='crm.audit_log*' -d "$1" 2>/dev/null \
        | grep -v -e '^\\restrict' -e '^\\unrestrict' >"$out/data-$1.sql"
}
snapshot upgraded
snapshot empty_upgraded

echo "== the same decisions, and the catalog kept"
sql -d upgraded -f tests/upgrade/report.sql >"$out/after.txt"
same "$out/before.txt" "$out/after.txt" decisions "decisions differ after the update"
psql -X -At -d upgraded -f "$out/catalog.sql" >"$out/catalog-after.txt"
same "$out/catalog-before.txt" "$out/catalog-after.txt" catalog "catalog rows differ after the update"

echo "== the same schema, catalog and decisions as a fresh install of $current given the same organisation"
createdb fresh
createdb empty_fresh
sql -d empty_fresh -c "CREATE EXTENSION crm_access"
sql -d fresh -c "CREATE EXTENSION crm_access" -f tests/upgrade/organisation.sql >/dev/null
sql -d fresh -f tests/upgrade/report.sql >"$out/fresh.txt"
snapshot fresh
snapshot empty_fresh
same "$out/schema-empty_fresh.sql" "$out/schema-empty_upgraded.sql" schema-empty "the upgraded extension differs from a fresh install"
same "$out/config-empty_fresh.txt" "$out/config-empty_upgraded.txt" config-empty "the extension dumps other tables than a fresh install"
same "$out/data-empty_fresh.sql" "$out/data-empty_upgraded.sql" data-empty "the upgraded empty catalog differs from a fresh one"
same "$out/schema-fresh.sql" "$out/schema-upgraded.sql" schema "the upgraded organisation's schema differs from a fresh one"
same "$out/config-fresh.txt" "$out/config-upgraded.txt" config "the upgraded extension dumps other tables than a fresh install"
same "$out/data-fresh.sql" "$out/data-upgraded.sql" data "the upgraded catalog's rows differ from a fresh one's"
same "$out/before.txt" "$out/fresh.txt" fresh "a fresh install decides otherwise than $from_version did"

echo "== the audit log records a change after the update as on a fresh install"
for db in upgraded fresh; do
    sql -d "$db" -c "SELECT crm.create_group('audit probe')" >/dev/null
    psql -X -At -d "$db" -c "SELECT operation, target, details->'args', jsonb_path_query_array(details, '$.changes[*].table')
                              FROM crm.audit_log ORDER BY id DESC LIMIT 1" >"$out/audit-$db.txt"
done
grep -q '^create_group|audit probe|' "$out/audit-fresh.txt" || fail "a fresh install did not log crm.create_group"
same "$out/audit-fresh.txt" "$out/audit-upgraded.txt" audit "the upgraded database logs a change otherwise than a fresh install"

echo "== dump and restore of the upgraded database"
pg_dump -Fc -d upgraded -f "$out/upgraded.dump"
createdb restored
pg_restore -d restored --exit-on-error "$out/upgraded.dump"
sql -d restored -f tests/upgrade/report.sql >"$out/restored.txt"
same "$out/before.txt" "$out/restored.txt" restored "decisions differ after a dump and restore of the upgraded database"
psql -X -At -d upgraded -c "SELECT id, at, operation, details FROM crm.audit_log ORDER BY id" >"$out/log-upgraded.txt"
psql -X -At -d restored -c "SELECT id, at, operation, details FROM crm.audit_log WHERE id <= (SELECT max(id) FROM crm.audit_log WHERE operation = 'create_group') ORDER BY id" >"$out/log-restored.txt"
same "$out/log-upgraded.txt" "$out/log-restored.txt" log-restored "the audit log differs after a dump and restore"
echo "upgrade test (PostgreSQL $version, from $from_version): $(grep -c . "$out/before.txt") decisions identical before and after the update and after a restore; schema identical to a fresh install"
echo "upgrade: $checks passed"
