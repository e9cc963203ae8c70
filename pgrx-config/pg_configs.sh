# The pg_config of each PostgreSQL major version crm_access builds for (sourced by the
# scripts). Each is pinned to its version: /usr/bin/pg_config picks the newest installed one.
# 15 comes with Debian bookworm; 17 and 18 are built from Debian's source packages into the
# cache by scripts/build-postgres.sh (17 when its source can be had).
# The cache sits outside the work tree and outside any home directory: the postgres OS user
# runs the servers built there, and root's home is readable by root alone.
CRM_CACHE=${CRM_CACHE:-/var/cache/crm_access}
PG_CONFIG_15=/usr/lib/postgresql/15/bin/pg_config
PG_CONFIG_17=$CRM_CACHE/pg17/bin/pg_config
PG_CONFIG_18=$CRM_CACHE/pg18/bin/pg_config
# The versions a test run covers, in order: the first is the main one (every tier, the
# benchmark smoke test); REQUIRED must be there, the others run when they could be built.
PG_VERSIONS="15 17 18"
PG_REQUIRED="15 18"
