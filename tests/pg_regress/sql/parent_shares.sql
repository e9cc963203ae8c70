-- A share of a parent record reaches the child records of its directly related modules, with
-- the same access (DESIGN §9, as a rule's related modules): a share of an account reaches its
-- opportunities (Accounts -> Opportunities), a share of an opportunity its quotes
-- (Opportunities -> Quotes); not the quotes of a shared account's opportunities (one level),
-- not the contacts linked to an account (Contacts is not related to Accounts). Accounts are
-- private: alice owns account 4, bob account 5, carol account 7.
\set ECHO none
\o /dev/null
CREATE EXTENSION crm_access;
\i tests/fixtures/helpers.sql
\i tests/fixtures/org.sql
\o
\set ECHO all
SET client_min_messages = warning;
CREATE TABLE sales.opportunities (
    id         bigint PRIMARY KEY,
    name       text   NOT NULL,
    account_id bigint REFERENCES sales.accounts (id),
    owner_id   bigint NOT NULL
);
CREATE INDEX ON sales.opportunities (owner_id);
CREATE TABLE sales.quotes (
    id             bigint PRIMARY KEY,
    opportunity_id bigint REFERENCES sales.opportunities (id) ON DELETE CASCADE,
    owner_id       bigint NOT NULL
);
CREATE TABLE sales.contacts (
    id         bigint PRIMARY KEY,
    account_id bigint REFERENCES sales.accounts (id),
    owner_id   bigint NOT NULL
);
-- A key shares cannot name (two columns): its rows are reached by no share, its parent's
-- neither (a receiver's change of owner could not be refused there).
CREATE TABLE sales.tickets (
    account_id bigint REFERENCES sales.accounts (id),
    n          int,
    owner_id   bigint NOT NULL,
    PRIMARY KEY (account_id, n)
);
SELECT count(*) AS protected FROM (VALUES
    (crm.protect('sales.opportunities', 'Opportunities')), (crm.protect('sales.quotes', 'Quotes')),
    (crm.protect('sales.contacts', 'Contacts')), (crm.protect('sales.tickets', 'Tickets'))) AS p;
SELECT count(*) AS linked FROM (VALUES
    (crm.link_parent('sales.opportunities', 'account_id', 'sales.accounts')),
    (crm.link_parent('sales.quotes', 'opportunity_id', 'sales.opportunities')),
    (crm.link_parent('sales.contacts', 'account_id', 'sales.accounts')),
    (crm.link_parent('sales.tickets', 'account_id', 'sales.accounts'))) AS l;
SELECT count(*) AS granted FROM (SELECT crm.grant_privileges('Sales', m, ARRAY['read', 'create', 'edit', 'delete'])
    FROM unnest(ARRAY['Opportunities', 'Quotes', 'Contacts', 'Tickets']) AS m) AS g;
INSERT INTO sales.opportunities VALUES
    (41, 'alice on 4', 4, crm.owner_id('alice')), (42, 'bob on alice''s 4', 4, crm.owner_id('bob')),
    (51, 'bob on 5', 5, crm.owner_id('bob')), (71, 'carol on 7', 7, crm.owner_id('carol'));
INSERT INTO sales.quotes VALUES (411, 41, crm.owner_id('alice')), (511, 51, crm.owner_id('bob'));
INSERT INTO sales.contacts VALUES (401, 4, crm.owner_id('alice'));
INSERT INTO sales.tickets VALUES (4, 1, crm.owner_id('alice'));
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA sales TO crm_app;
RESET client_min_messages;

-- The policies: the parent branch by the link column where the child's key and the link can
-- be shared by; none on tickets.
SELECT tablename, policyname, qual, with_check FROM pg_policies
WHERE schemaname = 'sales' AND tablename IN ('opportunities', 'tickets') AND policyname IN ('crm_read', 'crm_edit')
ORDER BY 1, 2;

-- Nothing shared yet: carol reads her own only.
SET SESSION AUTHORIZATION crm_app;
SELECT t, (regress.reach('carol', t)).* FROM unnest(ARRAY['sales.opportunities', 'sales.quotes', 'sales.contacts']::regclass[]) AS t;
RESET SESSION AUTHORIZATION;

-- alice shares account 4 with carol for reading: carol and mgr_east above her read its
-- opportunities (alice's and bob's), not their quotes, not its contacts or tickets; bob
-- (alice's peer) gains nothing.
SET crm.require_local_user = off;
SET crm.user_name = 'alice';
SELECT crm.share_record('sales.accounts', 4, 'user', 'carol', 'read') AS share_4 \gset
RESET crm.user_name;
SELECT clock_timestamp() AS shared_moment \gset
SET SESSION AUTHORIZATION crm_app;
SELECT u, (regress.reach(u, 'sales.opportunities')).* FROM unnest(ARRAY['carol', 'mgr_east', 'bob']) AS u;
SELECT u, (regress.reach(u, 'sales.quotes')).read AS quotes, (regress.reach(u, 'sales.contacts')).read AS contacts
FROM unnest(ARRAY['carol', 'mgr_east']) AS u;
BEGIN;
SET LOCAL crm.user_name = 'carol';
SELECT count(*) AS carol_tickets FROM sales.tickets;
ROLLBACK;
-- Her plan: the account's key on the link column, which link_parent indexed; bob's has no
-- share branch at all.
BEGIN;
SET LOCAL crm.user_name = 'carol';
EXPLAIN (COSTS OFF) SELECT name FROM sales.opportunities;
SET LOCAL crm.user_name = 'bob';
EXPLAIN (COSTS OFF) SELECT name FROM sales.opportunities;
ROLLBACK;
RESET SESSION AUTHORIZATION;

-- explain_access says it came through the parent; who_can lists the receivers.
SELECT crm.explain_access('sales.opportunities', 42, 'read', 'carol');
SELECT crm.explain_access('sales.opportunities', 42, 'edit', 'carol');
SELECT crm.explain_access('sales.quotes', 411, 'read', 'carol');
SELECT array_agg(u ORDER BY u) AS can_read_42 FROM crm.who_can('sales.opportunities', 42, 'read') AS u;

-- read_write: carol edits the opportunities of account 4; she may not delete them, give one
-- away, or move one to a parent not shared with her for editing; each refusal changes nothing.
SET crm.user_name = 'alice';
SELECT crm.share_record('sales.accounts', 4, 'user', 'carol', 'read_write') = :share_4 AS same_share;
RESET crm.user_name;
SET SESSION AUTHORIZATION crm_app;
SELECT u, (regress.reach(u, 'sales.opportunities')).* FROM unnest(ARRAY['carol', 'mgr_east']) AS u;
BEGIN;
SET LOCAL crm.user_name = 'carol';
WITH u AS (UPDATE sales.opportunities SET name = name || ' (edited)' WHERE account_id = 4 RETURNING id) SELECT string_agg(id::text, ',' ORDER BY id) AS edited FROM u;
SELECT regress.try($$UPDATE sales.opportunities SET owner_id = crm.owner_id('carol') WHERE id = 41$$);
SELECT regress.try($$UPDATE sales.opportunities SET account_id = 7 WHERE id = 41$$);
SELECT regress.try($$UPDATE sales.opportunities SET account_id = 5 WHERE id = 41$$);
SELECT regress.try($$INSERT INTO sales.opportunities VALUES (43, 'carol''s new one on 4', 4, crm.owner_id('alice'))$$);
WITH d AS (DELETE FROM sales.opportunities WHERE account_id = 4 RETURNING id) SELECT count(*) AS deleted FROM d;
-- Nor rename one (its key: the shares of it its owner made would go), nor move one under a
-- parent she shared with herself, where she would keep it once alice unshares (red team).
SELECT regress.try($$UPDATE sales.opportunities SET id = 4200 WHERE id = 42$$);
SELECT crm.share_record('sales.accounts', 7, 'role', 'Rep_East', 'read_write') > 0 AS shared_her_own;
SELECT regress.try($$UPDATE sales.opportunities SET account_id = 7 WHERE id = 41$$);
SELECT id, name, account_id, owner_id = crm.owner_id('alice') AS alices FROM sales.opportunities ORDER BY id;
ROLLBACK;
RESET SESSION AUTHORIZATION;
-- A parent a rule gives her edit on through its related modules is no way out either: the
-- move needs her own rights on the record as it was (red team: she moved it there, then
-- took it, checked against the new parent's owner).
BEGIN;
SELECT crm.add_sharing_rule('Accounts', 'role', 'Mgr_East', 'role', 'Rep_East', 'read_write', ARRAY['Opportunities']) > 0 AS rule_added;
SET LOCAL SESSION AUTHORIZATION crm_app;
SET LOCAL crm.user_name = 'carol';
SELECT regress.try($$UPDATE sales.opportunities SET account_id = 6 WHERE id = 41$$);
SELECT regress.try($$UPDATE sales.opportunities SET account_id = 6, owner_id = crm.owner_id('carol') WHERE id = 41$$);
ROLLBACK;
-- A receiver of the record itself may not move it either; its owner's manager may, and the
-- record keeps its own shares.
SET crm.user_name = 'bob';
SELECT crm.share_record('sales.opportunities', 51, 'user', 'carol', 'read_write') AS share_51 \gset
RESET crm.user_name;
BEGIN;
SET LOCAL SESSION AUTHORIZATION crm_app;
SET LOCAL crm.user_name = 'carol';
SELECT regress.try($$UPDATE sales.opportunities SET account_id = 7 WHERE id = 51$$);
SELECT regress.try($$UPDATE sales.opportunities SET name = 'carol was here' WHERE id = 51$$);
SET LOCAL crm.user_name = 'mgr_west';
SELECT regress.try($$UPDATE sales.opportunities SET account_id = 3 WHERE id = 51$$);
SELECT count(*) AS shares_of_51 FROM crm.shares WHERE tbl = 'sales.opportunities'::regclass AND record_id = '51';
ROLLBACK;
SET crm.user_name = 'bob';
SELECT crm.unshare_record(:share_51);
RESET crm.user_name;

-- A share of an opportunity reaches its quotes (Opportunities -> Quotes).
SET crm.user_name = 'bob';
SELECT crm.share_record('sales.opportunities', 51, 'role', 'Rep_East', 'read') > 0 AS shared_51;
RESET crm.user_name;
SET SESSION AUTHORIZATION crm_app;
SELECT u, (regress.reach(u, 'sales.quotes')).read AS quotes FROM unnest(ARRAY['carol', 'mgr_east', 'alice']) AS u;
RESET SESSION AUTHORIZATION;
SELECT crm.explain_access('sales.quotes', 511, 'read', 'carol');

-- Shares never go beyond the module privileges: dave (ReadOnly: nothing on Opportunities)
-- reads the shared account, not its opportunities.
SET crm.user_name = 'alice';
SELECT crm.share_record('sales.accounts', 4, 'user', 'dave', 'read') > 0 AS shared_to_dave;
RESET crm.user_name;
SET SESSION AUTHORIZATION crm_app;
SELECT (regress.reach('dave', 'sales.accounts')).read AS accounts, (regress.reach('dave', 'sales.opportunities')).read AS opportunities;
RESET SESSION AUTHORIZATION;

-- The function as written (not folded): NULLs, another table, a wrong action or key type,
-- forged input all answer false for someone nothing is shared with; an acting receiver's own
-- shares answer true.
SET SESSION AUTHORIZATION crm_app;
BEGIN;
SET LOCAL crm.user_name = 'carol';
SELECT crm.parent_shared(NULL, 'read', 4) AS a, crm.parent_shared('sales.opportunities', NULL, 4) AS b,
       crm.parent_shared('sales.opportunities', 'read', NULL::bigint) AS c, crm.parent_shared('sales.opportunities', 'delete', 4) AS d,
       crm.parent_shared('sales.leads', 'read', 4) AS e, crm.parent_shared('sales.opportunities', 'read''; --', 4) AS f,
       crm.parent_shared('sales.opportunities', 'read', 4.0) AS g, crm.parent_shared('sales.opportunities', 'read', ROW(4)) AS h,
       crm.parent_shared(0, 'read', 4) AS k, crm.parent_shared('sales.contacts', 'read', 4) AS l;
SELECT crm.parent_shared('sales.opportunities', 'read', 4) AS carol_4, crm.parent_shared('sales.opportunities', 'edit', 4) AS carol_4_edit,
       crm.parent_shared('sales.opportunities', 'read', '4'::text) AS carol_4_text, crm.parent_shared('sales.opportunities', 'read', 5) AS carol_5;
SET LOCAL crm.user_name = 'bob';
SELECT crm.parent_shared('sales.opportunities', 'read', 4) AS bob_4;
ROLLBACK;
RESET SESSION AUTHORIZATION;

-- A change of the parent's owner removes its shares, and so the reach into its children.
SELECT count(*) AS shares_of_4 FROM crm.shares WHERE tbl = 'sales.accounts'::regclass AND record_id = '4';
UPDATE sales.accounts SET owner_id = crm.owner_id('bob') WHERE id = 4;
SELECT count(*) AS shares_of_4 FROM crm.shares WHERE tbl = 'sales.accounts'::regclass AND record_id = '4';
SET SESSION AUTHORIZATION crm_app;
SELECT u, (regress.reach(u, 'sales.opportunities')).read FROM unnest(ARRAY['carol', 'mgr_east']) AS u;
RESET SESSION AUTHORIZATION;

-- who_could and explain_access at a past moment know the shares that stood then, those
-- removed since too (the audit log keeps them).
SELECT array_agg(u ORDER BY u) AS could_read_42_then FROM crm.who_could('sales.opportunities', 42, 'read', :'shared_moment') AS u;
SELECT array_agg(u ORDER BY u) AS can_read_42_now FROM crm.who_can('sales.opportunities', 42, 'read') AS u;
SELECT array_agg(u ORDER BY u) AS could_read_4_then FROM crm.who_could('sales.accounts', 4, 'read', :'shared_moment') AS u;
SELECT crm.explain_access('sales.opportunities', 42, 'read', 'carol', :'shared_moment');
SELECT crm.explain_access('sales.opportunities', 42, 'edit', 'carol', :'shared_moment');

-- Unlinking a child takes the branch away with the link; linking again brings it back.
SELECT crm.unlink_parent('sales.opportunities');
SELECT count(*) AS branches FROM pg_policies WHERE schemaname = 'sales' AND tablename = 'opportunities' AND qual LIKE '%parent_shared%';
SELECT crm.link_parent('sales.opportunities', 'account_id', 'sales.accounts');
SELECT count(*) AS branches FROM pg_policies WHERE schemaname = 'sales' AND tablename = 'opportunities' AND qual LIKE '%parent_shared%';

SET client_min_messages = warning;
DROP SCHEMA sales CASCADE;
DROP SCHEMA regress CASCADE;
DROP EXTENSION crm_access CASCADE;
