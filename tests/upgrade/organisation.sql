-- The organisation the upgrade test builds with the old release and checks after
-- ALTER EXTENSION crm_access UPDATE (tests/upgrade/run.sh): every part of the model, and the
-- decisions to compare.
\i tests/fixtures/full_org.sql
\i tests/upgrade/decisions.sql
