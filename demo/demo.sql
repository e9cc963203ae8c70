-- The crm_access demo: run by scripts/demo.sh on a throwaway cluster.
\set QUIET on
\pset footer off
\set ON_ERROR_STOP off
SET client_min_messages = warning;
CREATE EXTENSION crm_access;
\o /dev/null
\i tests/fixtures/org.sql
\o
CREATE SCHEMA demo;
GRANT USAGE ON SCHEMA demo TO PUBLIC;
-- What `who` sees, for the web app that sets the acting user per transaction.
CREATE FUNCTION demo.leads_seen_by(who text, OUT leads bigint, OUT owners text) LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('crm.user_name', who, true);
    SELECT count(*), string_agg(DISTINCT d.name, ', ') INTO leads, owners
    FROM sales.leads l JOIN crm.user_directory d ON d.owner_id = l.owner_id;
END $$;

\echo
\echo '=== The organisation: a role tree, users, profiles (tests/fixtures/org.sql)'
SELECT name AS "user", role, is_admin AS admin FROM crm.user_directory ORDER BY owner_id;

\echo '=== Leads each user sees, through the trusted web app (crm_app) with SET LOCAL crm.user_name'
\echo '    private default: own leads, plus those of users strictly below; erin has View All; root is admin'
SET SESSION AUTHORIZATION crm_app;
SELECT d.name AS "user", d.role, s.leads, s.owners AS "owned by"
FROM crm.user_directory d, LATERAL demo.leads_seen_by(d.name) s ORDER BY d.owner_id;

\echo '=== The planner sees constants: an owner filter for a rep, none at all for View All'
BEGIN;
SET LOCAL crm.user_name = 'alice';
EXPLAIN (COSTS OFF) SELECT * FROM sales.leads WHERE company LIKE '%lead%';
SET LOCAL crm.user_name = 'erin';
EXPLAIN (COSTS OFF) SELECT * FROM sales.leads WHERE company LIKE '%lead%';
COMMIT;

\echo '=== Writes'
\echo '--- alice updates all leads: only her own change'
BEGIN;
SET LOCAL crm.user_name = 'alice';
UPDATE sales.leads SET company = company || ' (checked)' RETURNING id, company;
\echo '--- alice creates a lead for bob (a peer): refused'
INSERT INTO sales.leads VALUES (43, 'for bob', crm.owner_id('bob'));
ROLLBACK;
BEGIN;
\echo '--- mgr_west hands alice''s lead 41 to bob (both below him): allowed'
SET LOCAL crm.user_name = 'mgr_west';
UPDATE sales.leads SET owner_id = crm.owner_id('bob') WHERE id = 41 RETURNING id, company;
\echo '--- dave (read-only profile) deletes everything he sees: nothing, revoked beats granted'
SET LOCAL crm.user_name = 'dave';
WITH gone AS (DELETE FROM sales.leads RETURNING id) SELECT count(*) AS deleted_by_dave FROM gone;
ROLLBACK;
\echo '--- no acting user: reads are empty, writes are refused'
SELECT count(*) AS leads_without_identity FROM sales.leads;
DELETE FROM sales.leads;

\echo
\echo '=== A catalog change applies at the next statement, with no recalculation'
\echo '--- root (CRM admin, through the web app) opens Leads: public_read'
\o /dev/null
BEGIN;
SELECT crm.set_user('root');
SELECT crm.set_sharing_default('Leads', 'public_read');
COMMIT;
\o
SELECT d.name AS "user", s.leads FROM crm.user_directory d, LATERAL demo.leads_seen_by(d.name) s
WHERE d.name IN ('alice', 'carol', 'dave') ORDER BY d.owner_id;
\echo '--- and back to private'
\o /dev/null
BEGIN;
SELECT crm.set_user('root');
SELECT crm.set_sharing_default('Leads', 'private');
COMMIT;
\o

\echo '=== A BI login mapped to alice (bi_alice) sees alice''s rows whatever SQL it sends'
SET SESSION AUTHORIZATION bi_alice;
SELECT crm.acting_user(), owner_id, count(*) FROM sales.leads GROUP BY owner_id;
\echo '--- and cannot claim to be someone else'
SET crm.user_name = 'ceo';
SELECT count(*) FROM sales.leads;
RESET crm.user_name;
RESET SESSION AUTHORIZATION;
