-- The decisions of every user, of nobody, and of the mapped login bi_alice, then the same
-- reads after a few ownership changes (whose pushes to conversations and child records
-- are triggers an upgrade replaces). Run by tests/upgrade/run.sh as postgres; compared as
-- text before and after ALTER EXTENSION crm_access UPDATE.
\set ON_ERROR_STOP on
\pset footer off
\pset format unaligned
SET ROLE crm_app;
SELECT coalesce(nullif(u, ''), '(nobody)') AS who, d.what, d.outcome
FROM unnest(ARRAY(SELECT name FROM crm.user_directory ORDER BY name) || ''::text) AS u,
     LATERAL upgrade_check.decisions(u) d
ORDER BY 1, 2;
RESET ROLE;
-- A mapped login acts as its CRM user from its own session (SET ROLE would not do).
\connect - bi_alice
SELECT 'bi_alice' AS who, d.what, d.outcome FROM upgrade_check.decisions(NULL) d ORDER BY 2;
\connect - postgres

-- Ownership changes: mgr_west gives alice's lead 41 (and lead 42, whose conversation bob
-- answers) and alice's account 4 to bob, and deletes lead 51; then who reads what.
SET ROLE crm_app;
BEGIN;
SELECT set_config('crm.user_name', 'mgr_west', true) IS NOT NULL AS acting;
UPDATE sales.leads SET owner_id = crm.owner_id('bob') WHERE id IN (41, 42) RETURNING id;
UPDATE sales.accounts SET owner_id = crm.owner_id('bob') WHERE id = 4 RETURNING id;
DELETE FROM sales.leads WHERE id = 51 RETURNING id;
SELECT coalesce(nullif(u, ''), '(nobody)') AS who, d.what, d.outcome
FROM unnest(ARRAY['alice', 'bob', 'carol', 'mgr_west']) AS u, LATERAL upgrade_check.decisions(u, 'read') d
ORDER BY 1, 2;
ROLLBACK;
RESET ROLE;
