-- Modules are data (DESIGN §9, issue 25): the standard modules and their relations are rows
-- crm_access ships; a custom module and its relations work as a standard one does.
-- Accounts 1-7 belong to ceo, vp, mgr_west, alice, bob, mgr_east, carol.
\set ECHO none
\o /dev/null
CREATE EXTENSION crm_access;
\i tests/fixtures/helpers.sql
\i tests/fixtures/org.sql
\o
\set ECHO all
SELECT name, standard, controlled_by, holds, links_conversations FROM crm.modules ORDER BY name;
SELECT parent, child, standard FROM crm.module_relations ORDER BY 1, 2;

-- Projects under Accounts (the README's example), and Milestones controlled by Projects.
\o /dev/null
\i examples/modules/projects.sql
\o
SELECT crm.create_module('Milestones', 'Projects', controlled_by_parent => true);
SELECT name, standard, controlled_by, holds, links_conversations FROM crm.modules WHERE NOT standard ORDER BY name;
SELECT parent, child, standard FROM crm.module_relations WHERE NOT standard ORDER BY 1, 2;
SELECT tbl, module FROM crm.protected_tables WHERE module = 'Projects';
SELECT child, parent FROM crm.parent_links WHERE child = 'sales.projects'::regclass;
INSERT INTO sales.projects VALUES
    (1, 'alice''s project', crm.owner_id('alice'), 4),
    (2, 'bob''s project', crm.owner_id('bob'), 5),
    (3, 'carol''s project', crm.owner_id('carol'), 7);

-- Private by default: each user reads their own and their subordinates'.
SET SESSION AUTHORIZATION crm_app;
BEGIN;
SET LOCAL crm.user_name = 'alice';
SELECT 'alice' AS who, string_agg(id::text, ',' ORDER BY id) AS projects FROM sales.projects;
ROLLBACK;
BEGIN;
SET LOCAL crm.user_name = 'carol';
SELECT 'carol' AS who, string_agg(id::text, ',' ORDER BY id) AS projects FROM sales.projects;
ROLLBACK;
BEGIN;
SET LOCAL crm.user_name = 'mgr_west';
SELECT 'mgr_west' AS who, string_agg(id::text, ',' ORDER BY id) AS projects FROM sales.projects;
ROLLBACK;
BEGIN;
SET LOCAL crm.user_name = 'ceo';
SELECT 'ceo' AS who, string_agg(id::text, ',' ORDER BY id) AS projects FROM sales.projects;
ROLLBACK;
RESET SESSION AUTHORIZATION;
-- A rule on Accounts carries access to the projects under the source's accounts: carol
-- (Rep_East) reads what is under alice's (Rep_West) accounts.
SELECT crm.add_sharing_rule('Accounts', 'role', 'Rep_West', 'role', 'Rep_East', 'read', ARRAY['Projects']) > 0 AS rule_added;
SET SESSION AUTHORIZATION crm_app;
BEGIN;
SET LOCAL crm.user_name = 'carol';
SELECT 'carol' AS who, string_agg(id::text, ',' ORDER BY id) AS projects FROM sales.projects;
ROLLBACK;
RESET SESSION AUTHORIZATION;
SELECT crm.explain_access('sales.projects', 1, 'read', 'carol');
-- The org-wide default of a custom module: alice reads every project.
SELECT crm.set_sharing_default('Projects', 'public_read');
SET SESSION AUTHORIZATION crm_app;
BEGIN;
SET LOCAL crm.user_name = 'alice';
SELECT 'alice' AS who, string_agg(id::text, ',' ORDER BY id) AS projects FROM sales.projects;
ROLLBACK;
RESET SESSION AUTHORIZATION;
-- A private parent makes its related modules private, in the same transaction.
SELECT crm.set_sharing_default('Accounts', 'private');
SELECT module, level FROM crm.sharing_defaults WHERE module IN ('Accounts', 'Projects') ORDER BY 1;
-- A controlled module follows its parent: its own default and rules are refused.
SELECT regress.try($$SELECT crm.set_sharing_default('Milestones', 'public_read')$$);
SELECT regress.try($$SELECT crm.add_sharing_rule('Milestones', 'role', 'Rep_West', 'role', 'Rep_East', 'read')$$);
-- A module controlled by a controlled module follows the end of the chain.
SELECT crm.create_module('Tasks', 'Milestones', controlled_by_parent => true);
SELECT regress.try($$SELECT crm.set_sharing_default('Tasks', 'public_read')$$);
SELECT crm.drop_module('Tasks');

-- Refusals, each of which changes nothing (regress.catalog_digest(): every crm.* table's rows).
SELECT regress.catalog_digest() AS before \gset
SELECT regress.try($$SELECT crm.create_module('Projects')$$);
SELECT regress.try($$SELECT crm.create_module('Leads')$$);
SELECT regress.try($$SELECT crm.create_module('Tasks', 'Nowhere')$$);
SELECT regress.try($$SELECT crm.create_module('Tasks', controlled_by_parent => true)$$);
SELECT regress.try($$SELECT crm.create_module(NULL)$$);
SELECT regress.try($$SELECT crm.create_module('Tasks', controlled_by_parent => NULL)$$);
SELECT regress.try($$SELECT crm.create_module('')$$);
SELECT regress.try($$SELECT crm.create_module(E'bad\nname')$$);
-- Names that read like another (red team of issue 25): invisible, direction-changing, padded.
SELECT regress.try($$SELECT crm.create_module(E'Accounts\u200B')$$);
SELECT regress.try($$SELECT crm.create_module(E'\u202EstnuoccA')$$);
SELECT regress.try($$SELECT crm.create_module(E'Accounts\u3000')$$);
SELECT regress.try($$SELECT crm.create_module(' Leads')$$);
SELECT regress.try($$SELECT crm.drop_module('Projects')$$);
SELECT regress.try($$SELECT crm.drop_module('Tags')$$);
SELECT regress.try($$SELECT crm.drop_module('Nowhere')$$);
SELECT regress.try($$SELECT crm.drop_module(NULL)$$);
SELECT regress.try($$SELECT crm.relate_modules('Projects', 'Projects')$$);
SELECT regress.try($$SELECT crm.relate_modules('Accounts', 'Projects')$$);
SELECT regress.try($$SELECT crm.relate_modules('Leads', 'Milestones')$$);
SELECT regress.try($$SELECT crm.relate_modules('Leads', NULL)$$);
SELECT regress.try($$SELECT crm.unrelate_modules('Accounts', 'Opportunities')$$);
SELECT regress.try($$SELECT crm.unrelate_modules('Accounts', 'Projects')$$);
SELECT regress.try($$SELECT crm.unrelate_modules('Projects', 'Milestones')$$);
SELECT regress.try($$SELECT crm.unrelate_modules('Leads', 'Projects')$$);
SELECT regress.catalog_digest() = :'before' AS catalog_unchanged;
-- A module related to a parent that is private becomes private too.
SELECT crm.create_module('Notes');
SELECT crm.set_sharing_default('Notes', 'public_read');
SELECT crm.relate_modules('Accounts', 'Notes');
SELECT module, level FROM crm.sharing_defaults WHERE module IN ('Accounts', 'Notes') ORDER BY 1;
SELECT crm.drop_module('Notes');
-- Names are data: one that reads like SQL is a name like any other.
SELECT crm.create_module($$x'); DROP TABLE sales.leads; --$$);
SELECT crm.create_module('Ünïcode "quoted" module', 'Leads');
SELECT name FROM crm.modules WHERE NOT standard ORDER BY name;
SELECT crm.unrelate_modules('Leads', 'Ünïcode "quoted" module');
SELECT crm.drop_module('Ünïcode "quoted" module'), crm.drop_module($$x'); DROP TABLE sales.leads; --$$);
SELECT count(*) AS leads FROM sales.leads;
-- Only administrators may change modules.
SET SESSION AUTHORIZATION crm_stranger;
SELECT regress.try($$SELECT crm.create_module('Mine')$$);
-- Counting every row of the catalog is a superuser's (and the compile's); what to publish is
-- anyone's to read.
SELECT regress.try($$SELECT crm.catalog_problems()$$);
SELECT crm.publication_tables() LIKE '%crm.modules WHERE (NOT standard)%' AS publication_list;
RESET SESSION AUTHORIZATION;
SET SESSION AUTHORIZATION crm_app;
BEGIN;
SET LOCAL crm.user_name = 'alice';
SELECT regress.try($$SELECT crm.create_module('Mine')$$);
ROLLBACK;
RESET SESSION AUTHORIZATION;

-- Dropped once nothing names it; the drop is logged like every change.
SELECT crm.drop_sharing_rule(id) FROM crm.sharing_rules WHERE 'Projects' = ANY (related_modules);
SELECT crm.unlink_parent('sales.projects');
SELECT crm.unprotect('sales.projects');
SELECT crm.revoke_privileges('Sales', 'Projects', ARRAY['read', 'create', 'edit']);
SELECT regress.try($$SELECT crm.drop_module('Projects')$$);
SELECT crm.drop_module('Milestones');
SELECT crm.set_sharing_default('Projects', 'public_read');
SELECT regress.try($$SELECT crm.drop_module('Projects')$$);
SELECT crm.set_sharing_default('Projects', 'private');
SELECT crm.drop_module('Projects');
SELECT name FROM crm.modules WHERE NOT standard;
SELECT operation, target FROM crm.audit_log WHERE operation LIKE '%module%' ORDER BY id;

-- clean up for the next suite
\set ECHO none
SET client_min_messages = warning;
RESET SESSION AUTHORIZATION;
DROP SCHEMA sales CASCADE;
DROP SCHEMA regress CASCADE;
DROP EXTENSION crm_access CASCADE;
