-- Catalog changes apply at the next statement, inside the changing transaction too, and a
-- rollback leaves nothing stale; no recalculation step exists. (Other sessions: client tests.)
-- Users are switched with session-level SET for brevity, which a superuser allows here
-- (crm.require_local_user; identity.sql tests the default).
SET crm.require_local_user = off;
\set ECHO none
\o /dev/null
CREATE EXTENSION crm_access;
\i tests/fixtures/helpers.sql
\i tests/fixtures/org.sql
\o
\set ECHO all
SET SESSION AUTHORIZATION crm_app;
SELECT crm.set_user('alice', is_local => false);
PREPARE visible AS SELECT array_agg(id ORDER BY id) FROM sales.leads;
SET plan_cache_mode = force_generic_plan;
EXECUTE visible;

-- The admin opens Leads inside a transaction: alice sees it at the next statement.
BEGIN;
SELECT crm.set_user('root');
SELECT crm.set_sharing_default('Leads', 'public_read');
SELECT crm.set_user('alice');
EXECUTE visible;
ROLLBACK;
-- Rolled back: alice is back to her own leads, from the same cached statement.
EXECUTE visible;

-- Committed: in effect for the next statement.
BEGIN;
SELECT crm.set_user('root');
SELECT crm.attach_profile('Rep_West', 'Auditor');
COMMIT;
EXECUTE visible;
BEGIN;
SELECT crm.set_user('root');
SELECT crm.detach_profile('Rep_West', 'Auditor');
COMMIT;
EXECUTE visible;

-- Moving a role moves what its users see.
RESET SESSION AUTHORIZATION;
SELECT crm.move_role('Rep_East', 'Rep_West');
SET SESSION AUTHORIZATION crm_app;
EXECUTE visible;
-- Revoking read takes everything away, ownership included.
RESET SESSION AUTHORIZATION;
SELECT crm.revoke_privileges('Sales', 'Leads', ARRAY['read']);
SET SESSION AUTHORIZATION crm_app;
EXECUTE visible;
RESET SESSION AUTHORIZATION;
SELECT crm.grant_privileges('Sales', 'Leads', ARRAY['read']);
SET SESSION AUTHORIZATION crm_app;
EXECUTE visible;

-- A catalog broken by a direct write (a cycle, which the API refuses) fails closed: no
-- rows, writes refused. Repaired, everything is back at the next statement, this cached
-- plan included.
RESET SESSION AUTHORIZATION;
UPDATE crm.roles SET parent_id = (SELECT id FROM crm.roles WHERE name = 'Rep_West') WHERE name = 'VP_Sales';
SET SESSION AUTHORIZATION crm_app;
EXECUTE visible;
SELECT regress.try($$UPDATE sales.leads SET company = company$$);
RESET SESSION AUTHORIZATION;
UPDATE crm.roles SET parent_id = (SELECT id FROM crm.roles WHERE name = 'CEO') WHERE name = 'VP_Sales';
SET SESSION AUTHORIZATION crm_app;
EXECUTE visible;

-- A change applied in replica mode (as a logical replication apply worker applies one, or a
-- superuser's session_replication_role = replica) takes effect and is logged too (issue 27:
-- the catalog's triggers did not fire there, and sessions kept the model they had).
RESET SESSION AUTHORIZATION;
SELECT max(id) AS mark FROM crm.audit_log \gset
SET session_replication_role = replica;
UPDATE crm.sharing_defaults SET level = 'public_read' WHERE module = 'Leads';
INSERT INTO crm.sharing_defaults SELECT 'Leads', 'public_read' WHERE NOT EXISTS (SELECT 1 FROM crm.sharing_defaults WHERE module = 'Leads');
RESET session_replication_role;
SET SESSION AUTHORIZATION crm_app;
EXECUTE visible;
RESET SESSION AUTHORIZATION;
SELECT operation, target FROM crm.audit_log WHERE id > :mark ORDER BY id;
SET session_replication_role = replica;
DELETE FROM crm.sharing_defaults WHERE module = 'Leads';
RESET session_replication_role;
SET SESSION AUTHORIZATION crm_app;
EXECUTE visible;
DEALLOCATE visible;
RESET plan_cache_mode;

-- clean up for the next suite
\set ECHO none
SET client_min_messages = warning;
RESET SESSION AUTHORIZATION;
DROP SCHEMA sales CASCADE;
DROP SCHEMA regress CASCADE;
DROP EXTENSION crm_access CASCADE;
