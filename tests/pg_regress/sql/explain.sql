-- crm.explain_access names the deciding step; crm.who_can lists who can reach a record;
-- users and roles move and leave without stranding records. (Lead 41 is alice's.)
\set ECHO none
\o /dev/null
CREATE EXTENSION crm_access;
\i tests/fixtures/helpers.sql
\i tests/fixtures/org.sql
\o
\set ECHO all
SELECT crm.create_group('Key Accounts') > 0;
SELECT crm.add_group_member('Key Accounts', 'role', 'Rep_East');
INSERT INTO sales.leads VALUES (81, 'key account lead', crm.owner_id('Key Accounts'));
SELECT crm.add_sharing_rule('Leads', 'role', 'Rep_West', 'role', 'Mgr_East', 'read_write');
SELECT crm.set_sharing_default('Accounts', 'public_read');

-- An admin may ask about anyone.
SELECT u AS "user", a AS action, crm.explain_access('sales.leads', 41, a, u)
FROM unnest(ARRAY['alice', 'mgr_west', 'bob', 'mgr_east', 'carol', 'erin', 'dave', 'root']) AS u,
     unnest(ARRAY['read', 'edit', 'delete']) AS a
ORDER BY u, a;
SELECT crm.explain_access('sales.leads', 81, 'edit', 'carol'), crm.explain_access('sales.leads', 81, 'read', 'mgr_east');
SELECT crm.explain_access('sales.accounts', 4, 'read', 'carol'), crm.explain_access('sales.leads', 41, 'import', 'alice');
SELECT crm.who_can('sales.leads', 41);
SELECT crm.who_can('sales.leads', 41, 'delete');
SELECT crm.who_can('sales.leads', 81, 'edit');

-- A user may ask about themselves, only for records they can read; nothing leaks otherwise.
SET SESSION AUTHORIZATION crm_app;
BEGIN;
SET LOCAL crm.user_name = 'bob';
SELECT regress.try($$SELECT crm.explain_access('sales.leads', 41)$$);
SELECT regress.try($$SELECT crm.explain_access('sales.leads', 9999)$$);
SELECT regress.try($$SELECT crm.explain_access('sales.leads', 41, 'read', 'alice')$$);
SELECT regress.try($$SELECT crm.who_can('sales.leads', 51)$$);
SELECT crm.explain_access('sales.leads', 51, 'delete');
COMMIT;
-- Without an acting user, an existing record and a missing one answer alike.
SELECT regress.try($$SELECT crm.explain_access('sales.leads', 51)$$) AS existing,
       regress.try($$SELECT crm.explain_access('sales.leads', 9999)$$) AS missing;
RESET SESSION AUTHORIZATION;
SELECT regress.try($$SELECT crm.explain_access('sales.leads', 41, 'fly', 'alice')$$);
SELECT regress.try($$SELECT crm.explain_access('crm.roles', 1, 'read', 'alice')$$);
SELECT regress.try($$SELECT crm.explain_access('sales.leads', 41, 'read', 'nobody')$$);

-- who_can agrees with what RLS shows, user by user.
SET SESSION AUTHORIZATION crm_app;
WITH users AS MATERIALIZED (SELECT name FROM crm.user_directory)
SELECT array_agg(name ORDER BY name) AS rls_readers_of_41
FROM users, LATERAL regress.reach(users.name, 'sales.leads') r WHERE 41 = ANY(r.read);
RESET SESSION AUTHORIZATION;

-- Lifecycle: move a user, delete a user (transferring records), delete a role.
SELECT crm.set_user_role('bob', 'Rep_East');
SELECT crm.who_can('sales.leads', 51);
SELECT regress.try($$SELECT crm.delete_user('bob')$$);
SELECT crm.delete_user('bob', transfer_to => 'carol');
SELECT array_agg(id ORDER BY id) AS carols FROM sales.leads WHERE owner_id = crm.owner_id('carol');
SELECT regress.try($$SELECT crm.owner_id('bob')$$);
SELECT regress.try($$SELECT crm.delete_user('alice', transfer_to => 'nobody')$$);
SELECT regress.try($$SELECT crm.delete_role('CEO')$$);
SELECT regress.try($$SELECT crm.delete_role('Rep_West')$$);
SELECT regress.try($$SELECT crm.delete_role('Rep_East')$$);
SELECT crm.drop_sharing_rule(1);
SELECT regress.try($$SELECT crm.delete_role('Mgr_West')$$);
SELECT crm.delete_role('Mgr_West', transfer_role => 'Mgr_East');
SELECT r.name, p.name AS parent FROM crm.roles r LEFT JOIN crm.roles p ON p.id = r.parent_id WHERE r.name IN ('Rep_West', 'Mgr_East') ORDER BY r.name;
SELECT name, role FROM crm.user_directory WHERE name = 'mgr_west';
SET SESSION AUTHORIZATION crm_app;
SELECT r.read FROM regress.reach('mgr_west', 'sales.leads') AS r;

-- clean up for the next suite
\set ECHO none
SET client_min_messages = warning;
RESET SESSION AUTHORIZATION;
DROP SCHEMA sales CASCADE;
DROP SCHEMA regress CASCADE;
DROP EXTENSION crm_access CASCADE;
