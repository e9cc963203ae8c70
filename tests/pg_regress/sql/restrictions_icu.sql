-- Restriction rules and nondeterministic collations (ICU; restrictions_icu_1.out is the
-- output of a PostgreSQL built without it). Under such a collation `=` admits values whose
-- text differs, so a rule's column may not have one (42804); where a column got one anyway
-- (a superuser's change: the guard refuses a table's owner), the planner keeps the policy's
-- call, which compares the text itself.
\set ECHO none
\o /dev/null
CREATE EXTENSION crm_access;
\i tests/fixtures/helpers.sql
\i tests/fixtures/org.sql
\o
\set ECHO all
DO $$
BEGIN
    CREATE COLLATION regress_ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
EXCEPTION WHEN feature_not_supported THEN NULL;
END $$;
SELECT EXISTS (SELECT 1 FROM pg_collation WHERE collname = 'regress_ci') AS icu \gset
\if :icu
ALTER TABLE sales.leads ADD COLUMN region text, ADD COLUMN city text COLLATE regress_ci;
UPDATE sales.leads SET region = CASE WHEN id % 2 = 1 THEN 'West' ELSE 'WEST' END;
GRANT SELECT ON sales.leads TO crm_app;
SELECT regress.try($$SELECT crm.add_restriction_rule('Leads', 'role', 'Audit', 'city', ARRAY['x'])$$);
SELECT crm.add_restriction_rule('Leads', 'role_and_subordinates', 'Mgr_West', 'region', ARRAY['West']) > 0 AS rule_added;
ALTER TABLE sales.leads ALTER COLUMN region TYPE text COLLATE regress_ci;
SET SESSION AUTHORIZATION crm_app;
BEGIN;
SET LOCAL crm.user_name = 'alice';
SELECT id, region FROM sales.leads ORDER BY id;
EXPLAIN (COSTS OFF) SELECT id FROM sales.leads;
ROLLBACK;
RESET SESSION AUTHORIZATION;
\else
\echo 'no ICU in this build: nondeterministic collations cannot be made'
\endif

SET client_min_messages = warning;
DROP SCHEMA sales CASCADE;
DROP SCHEMA regress CASCADE;
DROP EXTENSION crm_access CASCADE;
DROP COLLATION IF EXISTS regress_ci;
