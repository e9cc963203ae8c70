-- The decision procedure (DESIGN §3, steps 1-7c, and §3.3), user by user, through RLS.
-- Lead ids tell their owner: 1x ceo, 2x vp, 3x mgr_west, 4x alice, 5x bob, 6x mgr_east, 7x carol.
\set ECHO none
\o /dev/null
CREATE EXTENSION crm_access;
\i tests/fixtures/helpers.sql
\i tests/fixtures/org.sql
\o
\set ECHO all
SET SESSION AUTHORIZATION crm_app;

-- Private default: own records, plus those of users strictly below; never a peer's.
-- erin (View All) reads everything and may change nothing; root (admin) may do anything.
SELECT u AS "user", r.* FROM unnest(ARRAY['ceo', 'vp', 'mgr_west', 'alice', 'bob', 'mgr_east', 'carol', 'dave', 'erin', 'root']) AS u,
     regress.reach(u, 'sales.leads') AS r;

-- Revoked beats granted: dave's read-only profile stops him editing even his own records.
BEGIN;
SET LOCAL crm.user_name = 'dave';
INSERT INTO sales.leads VALUES (81, 'dave''s lead', crm.owner_id('dave'));
ROLLBACK;
RESET SESSION AUTHORIZATION;
INSERT INTO sales.leads VALUES (81, 'dave''s lead', crm.owner_id('dave'));
SET SESSION AUTHORIZATION crm_app;
SELECT r.* FROM regress.reach('dave', 'sales.leads') AS r;

-- Edit All: read, create and edit everything; delete only own (by the Sales grant).
RESET SESSION AUTHORIZATION;
SELECT crm.create_profile('Editor', edit_all => true);
SELECT crm.attach_profile('Mgr_East', 'Editor');
SET SESSION AUTHORIZATION crm_app;
SELECT r.* FROM regress.reach('mgr_east', 'sales.leads') AS r;

-- Several profiles on a role combine by union: detaching Editor takes Edit All away again.
RESET SESSION AUTHORIZATION;
SELECT crm.detach_profile('Mgr_East', 'Editor');
SET SESSION AUTHORIZATION crm_app;
SELECT r.* FROM regress.reach('mgr_east', 'sales.leads') AS r;

-- Org-wide defaults open records to everyone with the module privilege, level by level.
RESET SESSION AUTHORIZATION;
SELECT crm.set_sharing_default('Leads', 'public_read');
SET SESSION AUTHORIZATION crm_app;
SELECT r.* FROM regress.reach('carol', 'sales.leads') AS r;
RESET SESSION AUTHORIZATION;
SELECT crm.set_sharing_default('Leads', 'public_read_write');
SET SESSION AUTHORIZATION crm_app;
SELECT r.* FROM regress.reach('carol', 'sales.leads') AS r;
RESET SESSION AUTHORIZATION;
SELECT crm.set_sharing_default('Leads', 'public_read_write_delete');
SET SESSION AUTHORIZATION crm_app;
SELECT r.* FROM regress.reach('carol', 'sales.leads') AS r;
-- ... but never past a revoked privilege.
SELECT r.* FROM regress.reach('dave', 'sales.leads') AS r;
-- Defaults are per module: Accounts stay private.
SELECT r.* FROM regress.reach('carol', 'sales.accounts') AS r;
RESET SESSION AUTHORIZATION;
SELECT crm.set_sharing_default('Leads', 'private');
SET SESSION AUTHORIZATION crm_app;

-- Whole path elements: a role named Rep_West2 beside Rep_West is not below it, and
-- Rep_West's user does not see its records (nor the other way round).
RESET SESSION AUTHORIZATION;
SELECT crm.create_role('Rep_West2', 'Mgr_West');
SELECT crm.attach_profile('Rep_West2', 'Sales');
SELECT crm.create_user('frank', 'Rep_West2');
INSERT INTO sales.leads VALUES (91, 'frank''s lead', crm.owner_id('frank'));
SET SESSION AUTHORIZATION crm_app;
SELECT u AS "user", r.read FROM unnest(ARRAY['alice', 'frank', 'mgr_west']) AS u, regress.reach(u, 'sales.leads') AS r;

-- Assignment (§3.3): create or re-own only to someone whose records you may then edit.
BEGIN;
SET LOCAL crm.user_name = 'mgr_west';
INSERT INTO sales.leads VALUES (100, 'for alice', crm.owner_id('alice')) RETURNING id, owner_id = crm.owner_id('alice') AS alice_owns;
SELECT regress.try($$INSERT INTO sales.leads VALUES (101, 'for carol', crm.owner_id('carol'))$$);
SELECT regress.try($$INSERT INTO sales.leads VALUES (102, 'for nobody', 424242)$$);
SELECT regress.try($$INSERT INTO sales.leads VALUES (103, 'for nobody', NULL)$$);
UPDATE sales.leads SET owner_id = crm.owner_id('bob') WHERE id = 41 RETURNING id;
SELECT regress.try($$UPDATE sales.leads SET owner_id = crm.owner_id('vp') WHERE id = 42$$);
SELECT owner_id = crm.owner_id('alice') AS still_alice FROM sales.leads WHERE id = 42;
ROLLBACK;
-- A disabled user's records stay editable by their manager but cannot get new records.
RESET SESSION AUTHORIZATION;
SELECT crm.set_user_active('bob', false);
SET SESSION AUTHORIZATION crm_app;
BEGIN;
SET LOCAL crm.user_name = 'mgr_west';
UPDATE sales.leads SET company = company || ' (departed)' WHERE id = 51 RETURNING company;
SELECT regress.try($$INSERT INTO sales.leads VALUES (104, 'for bob', crm.owner_id('bob'))$$);
ROLLBACK;
RESET SESSION AUTHORIZATION;
SELECT crm.set_user_active('bob', true);

-- The admin may give anything to anyone.
SET SESSION AUTHORIZATION crm_app;
BEGIN;
SET LOCAL crm.user_name = 'root';
INSERT INTO sales.leads VALUES (105, 'for carol', crm.owner_id('carol')) RETURNING id;
UPDATE sales.leads SET owner_id = crm.owner_id('ceo') WHERE id = 105 RETURNING id;
ROLLBACK;

-- clean up for the next suite
\set ECHO none
SET client_min_messages = warning;
RESET SESSION AUTHORIZATION;
DROP SCHEMA sales CASCADE;
DROP SCHEMA regress CASCADE;
DROP EXTENSION crm_access CASCADE;
