-- Every admin function refuses unknown names, bad values, a second root, a cycle and a
-- caller who may not administer, with a clear error, and leaves the catalog unchanged.
\set ECHO none
\o /dev/null
CREATE EXTENSION crm_access;
\i tests/fixtures/helpers.sql
\i tests/fixtures/org.sql
\o
\set ECHO all
SELECT * FROM regress.catalog_size;

-- unknown names
SELECT regress.try($$SELECT crm.create_role('Rep_North', 'Mgr_North')$$);
SELECT regress.try($$SELECT crm.move_role('Nobody', 'CEO')$$);
SELECT regress.try($$SELECT crm.grant_privileges('Nobody', 'Leads', ARRAY['read'])$$);
SELECT regress.try($$SELECT crm.grant_privileges('Sales', 'Widgets', ARRAY['read'])$$);
SELECT regress.try($$SELECT crm.revoke_privileges('Sales', 'Widgets', ARRAY['read'])$$);
SELECT regress.try($$SELECT crm.attach_profile('Nobody', 'Sales')$$);
SELECT regress.try($$SELECT crm.attach_profile('CEO', 'Nobody')$$);
SELECT regress.try($$SELECT crm.detach_profile('CEO', 'Nobody')$$);
SELECT regress.try($$SELECT crm.create_user('zed', 'Nobody')$$);
SELECT regress.try($$SELECT crm.set_user_active('nobody', false)$$);
SELECT regress.try($$SELECT crm.map_db_role('nobody', 'crm_app')$$);
SELECT regress.try($$SELECT crm.map_db_role('alice', 'no_such_login')$$);
SELECT regress.try($$SELECT crm.unmap_db_role('crm_app')$$);
SELECT regress.try($$SELECT crm.trust_role('no_such_login')$$);
SELECT regress.try($$SELECT crm.distrust_role('crm_stranger')$$);
SELECT regress.try($$SELECT crm.set_sharing_default('Widgets', 'private')$$);
SELECT regress.try($$SELECT crm.owner_id('nobody')$$);
SELECT regress.try($$SELECT crm.set_user('nobody')$$);

-- bad values
SELECT regress.try($$SELECT crm.set_sharing_default('Leads', 'public')$$);
SELECT regress.try($$SELECT crm.grant_privileges('Sales', 'Tags', ARRAY['read', 'fly'])$$);
SELECT regress.try($$SELECT crm.grant_privileges('Sales', 'Tags', ARRAY[]::text[])$$);
SELECT regress.try($$SELECT crm.grant_privileges('Sales', 'Tags', ARRAY[NULL]::text[])$$);
SELECT regress.try($$SELECT crm.create_role('', 'CEO')$$);
SELECT regress.try($$SELECT crm.create_user(' ', 'CEO')$$);

-- duplicates, a second root, cycles
SELECT regress.try($$SELECT crm.create_role('Mgr_West', 'CEO')$$);
SELECT regress.try($$SELECT crm.create_profile('Sales')$$);
SELECT regress.try($$SELECT crm.create_user('alice', 'Rep_East')$$);
SELECT regress.try($$SELECT crm.create_role('Board', NULL)$$);
SELECT regress.try($$SELECT crm.move_role('VP_Sales', 'Rep_West')$$);
SELECT regress.try($$SELECT crm.move_role('CEO', 'CEO')$$);

-- Callers who may not administer: no identity, a non-admin CRM user, a mapped non-admin,
-- a stranger. A CRM admin acting through the trusted app may.
SET SESSION AUTHORIZATION crm_app;
SELECT regress.try($$SELECT crm.create_role('Intern', 'CEO')$$);
BEGIN;
SET LOCAL crm.user_name = 'vp';
SELECT regress.try($$SELECT crm.set_sharing_default('Leads', 'public_read')$$);
SELECT regress.try($$SELECT crm.create_user('mallory', 'CEO', is_admin => true)$$);
COMMIT;
SET SESSION AUTHORIZATION bi_alice;
SELECT regress.try($$SELECT crm.set_user_active('bob', false)$$);
SET SESSION AUTHORIZATION crm_stranger;
SELECT regress.try($$SELECT crm.trust_role('crm_stranger')$$);
SELECT regress.try($$INSERT INTO crm.roles (name, parent_id) VALUES ('Sneaky', 1)$$);
SELECT regress.try($$UPDATE crm.users SET is_admin = true$$);
RESET SESSION AUTHORIZATION;

-- Nothing above changed the catalog.
SELECT * FROM regress.catalog_size;

-- The admin, acting through the trusted app, may.
SET SESSION AUTHORIZATION crm_app;
BEGIN;
SELECT crm.set_user('root');
SELECT crm.create_role('Intern', 'Support');
SELECT crm.move_role('Intern', 'Audit');
COMMIT;
RESET SESSION AUTHORIZATION;
SELECT name, (SELECT name FROM crm.roles p WHERE p.id = r.parent_id) AS parent FROM crm.roles r WHERE name = 'Intern';

-- clean up for the next suite
\set ECHO none
SET client_min_messages = warning;
RESET SESSION AUTHORIZATION;
DROP SCHEMA sales CASCADE;
DROP SCHEMA regress CASCADE;
DROP EXTENSION crm_access CASCADE;
