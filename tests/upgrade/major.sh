#!/usr/bin/env bash
# The major-upgrade test of scripts/test.sh: pg_upgrade from PostgreSQL 15 to NEW
# (tests/upgrade/pg_upgrade.sh) with this build of crm_access on both sides.
#   tests/upgrade/major.sh NEW PORT
# The old side is bookworm's own 15 (15.18) built from source, with crm_access built for it:
# the installed 15 (15.20, from bookworm-security) gives every column a `pg_attver` option
# that PostgreSQL 18.6 refuses, so pg_upgrade from it fails for any table, crm_access or not.
# NEW must have this build installed already (scripts/test.sh has, by then).
set -euo pipefail
cd "$(dirname "$0")/../.."
new=$1 port=$2
old_config=$(scripts/build-postgres.sh 15-bookworm | tail -1)

# crm_access for that 15: its own pgrx home (naming that pg_config for pg15) and target
# directory, so the main build's are left alone.
home=$PWD/target/pgrx-home-15-bookworm
mkdir -p "$home"
{ cat pgrx-config/config.toml.in; echo "pg15 = \"$old_config\""; } >"$home/config.toml"
pkg=$PWD/target/pkg/pg15-bookworm
rm -rf "$pkg"
echo "== build crm_access for PostgreSQL 15 from bookworm's source"
PGRX_HOME=$home CARGO_TARGET_DIR=$PWD/target/pg15-bookworm \
    cargo pgrx package --debug --no-default-features --features pg15 -c "$old_config" --out-dir "$pkg" \
    >target/build-pg15-bookworm.log 2>&1 || { tail -40 target/build-pg15-bookworm.log; exit 1; }
sudo=; [ "$(id -u)" = 0 ] || sudo=sudo
$sudo cp -r --remove-destination "$pkg/." /

OLD_PG_CONFIG=$old_config tests/upgrade/pg_upgrade.sh 15 "$new" "$port"
