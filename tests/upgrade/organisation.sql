-- The organisation the upgrade test builds with the old release and checks after
-- ALTER EXTENSION crm_access UPDATE (tests/upgrade/run.sh). It uses only the API of 0.1.0,
-- which every later release keeps, and touches every part of the model whose objects an
-- upgrade must carry over: groups, sharing rules with related modules, permission sets, a
-- parent link, field access and secure views, conversations and messages, events,
-- invitations and calendar shares, a trusted role and a mapped login. Timestamps are fixed
-- and every id is given, so that two databases built from it hold the same rows.
\set ON_ERROR_STOP on
SET client_min_messages = warning;
\i tests/fixtures/org.sql

-- A child table reached through its parent (DESIGN §3.1), and a Contacts table.
CREATE TABLE sales.opportunities (
    id         bigint  PRIMARY KEY,
    name       text    NOT NULL,
    amount     numeric NOT NULL,
    account_id bigint  REFERENCES sales.accounts (id),
    owner_id   bigint  NOT NULL
);
CREATE INDEX opportunities_owner_id ON sales.opportunities (owner_id);
SELECT crm.protect('sales.opportunities', 'Opportunities');
SELECT crm.link_parent('sales.opportunities', 'account_id', 'sales.accounts');
CREATE TABLE sales.contacts (
    id       bigint PRIMARY KEY,
    name     text   NOT NULL,
    owner_id bigint NOT NULL
);
CREATE INDEX contacts_owner_id ON sales.contacts (owner_id);
SELECT crm.protect('sales.contacts', 'Contacts');
SELECT crm.grant_privileges('Sales', m, ARRAY['read', 'create', 'edit', 'delete'])
FROM unnest(ARRAY['Opportunities', 'Contacts']) AS m;
SELECT crm.grant_privileges('ReadOnly', m, ARRAY['read']) FROM unnest(ARRAY['Opportunities', 'Contacts']) AS m;
-- Opportunity 10n+k belongs to account n (and to its owner); bob owns one on alice's account.
INSERT INTO sales.opportunities (id, name, amount, account_id, owner_id)
SELECT 10 * a.id + k, a.name || ' deal ' || k, 1000 * a.id + k, a.id, a.owner_id
FROM sales.accounts a, generate_series(1, 2) AS k;
UPDATE sales.opportunities SET owner_id = crm.owner_id('bob') WHERE id = 42;
INSERT INTO sales.accounts (id, name, owner_id) VALUES (8, 'alice''s second account', crm.owner_id('alice'));
INSERT INTO sales.contacts (id, name, owner_id)
SELECT 100 + u.n, u.name || '''s contact', crm.owner_id(u.name)
FROM unnest(ARRAY['alice', 'bob', 'carol', 'mgr_east']) WITH ORDINALITY AS u(name, n);

-- Groups: a group owns a lead; its members (a user and a whole role) share that ownership.
SELECT crm.create_group('Key Accounts');
SELECT crm.add_group_member('Key Accounts', 'user', 'alice');
SELECT crm.add_group_member('Key Accounts', 'role', 'Rep_East');
SELECT crm.create_group('Outer');
SELECT crm.add_group_member('Outer', 'group', 'Key Accounts');
INSERT INTO sales.leads (id, company, owner_id) VALUES (91, 'Key Accounts'' lead', crm.owner_id('Key Accounts'));

-- Sharing rules, one of them carrying access to a related module (opportunities of the
-- shared accounts).
SELECT crm.add_sharing_rule('Leads', 'group', 'Key Accounts', 'role_and_subordinates', 'Mgr_West', 'read_write');
SELECT crm.add_sharing_rule('Leads', 'role', 'Rep_West', 'role', 'Rep_East', 'read');
SELECT crm.add_sharing_rule('Accounts', 'role', 'Rep_West', 'role', 'Rep_East', 'read_write', ARRAY['Opportunities']);

-- Permission sets: delete on leads for the read-only dave, View All for the Outer group.
SELECT crm.create_permission_set('Lead Exporter');
SELECT crm.grant_permission_set_privileges('Lead Exporter', 'Leads', ARRAY['delete']);
SELECT crm.assign_permission_set('Lead Exporter', 'user', 'dave');
SELECT crm.create_permission_set('Peek', view_all => true);
SELECT crm.grant_permission_set_privileges('Peek', 'Contacts', ARRAY['read']);
SELECT crm.assign_permission_set('Peek', 'user', 'vp');

-- Field access and the secure views: Sales hides phone and reads budget only; ssn is hidden
-- from everyone but admins; ReadOnly does not see the amount of an opportunity.
ALTER TABLE sales.leads ADD COLUMN phone text, ADD COLUMN budget int, ADD COLUMN ssn text;
UPDATE sales.leads SET phone = '555-01' || id, budget = 1000 * id, ssn = '078-05-11' || id;
SELECT crm.set_field_access('Sales', 'Leads', 'phone', 'hidden');
SELECT crm.set_field_access('Sales', 'Leads', 'budget', 'read_only');
SELECT crm.set_global_field_access('Leads', 'ssn', false);
SELECT crm.set_field_access('ReadOnly', 'Opportunities', 'amount', 'hidden');
SELECT crm.secure_view('sales.leads');
SELECT crm.secure_view('sales.opportunities');
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA sales TO crm_app, bi_alice;

-- The message module: reps see their own and new conversations; mgr_west's Supervisor
-- profile sees them all and archives; alice archives through a permission set.
SELECT crm.grant_privileges(p, 'Messages', ARRAY['read', 'create', 'edit']) FROM unnest(ARRAY['Sales', 'ReadOnly']) AS p;
SELECT crm.set_message_permissions('Sales', ARRAY['mine', 'new']);
SELECT crm.create_profile('Supervisor');
SELECT crm.grant_privileges('Supervisor', 'Messages', ARRAY['read', 'create', 'edit', 'delete']);
SELECT crm.set_message_permissions('Supervisor', ARRAY['all', 'archive']);
SELECT crm.attach_profile('Mgr_West', 'Supervisor');
SELECT crm.create_permission_set('Archivers');
SELECT crm.set_permission_set_message_permissions('Archivers', ARRAY['archive']);
SELECT crm.assign_permission_set('Archivers', 'user', 'alice');
INSERT INTO crm.conversations (id, subject, linked_table, linked_id, assigned_to, is_new, last_message_at, created_at)
OVERRIDING SYSTEM VALUE VALUES
    (1, 'alice''s lead 42, bob answers', 'sales.leads', 42, crm.owner_id('bob'), false, '2026-11-01 09:00+00', '2026-11-01 08:00+00'),
    (2, 'bob''s lead 51, nobody yet', 'sales.leads', 51, NULL, false, '2026-11-01 10:00+00', '2026-11-01 08:00+00'),
    (3, 'carol''s own chat', NULL, NULL, crm.owner_id('carol'), false, '2026-11-01 11:00+00', '2026-11-01 08:00+00'),
    (4, 'first contact, unknown number', NULL, NULL, NULL, true, '2026-11-01 12:00+00', '2026-11-01 08:00+00'),
    (5, 'a chat assigned to alice', NULL, NULL, crm.owner_id('alice'), false, '2026-11-01 13:00+00', '2026-11-01 08:00+00'),
    (6, 'carol''s contact 103', 'sales.contacts', 103, NULL, false, '2026-11-01 14:00+00', '2026-11-01 08:00+00');
SELECT setval('crm.conversations_id_seq', 6);
INSERT INTO crm.messages (id, conversation_id, direction, body, sent_at) OVERRIDING SYSTEM VALUE
SELECT 10 * c + k, c, CASE k WHEN 1 THEN 'inbound' ELSE 'outbound' END, 'message ' || k || ' of ' || c,
       timestamptz '2026-11-01 08:00+00' + (c || ' hours')::interval + (k || ' minutes')::interval
FROM generate_series(1, 6) AS c, generate_series(1, 2) AS k;
SELECT setval('crm.messages_id_seq', 62);
-- mgr_west archives conversation 4 for himself.
BEGIN;
SELECT crm.set_user('mgr_west');
SELECT crm.archive_conversation(4);
COMMIT;

-- Calendar: alice's private and public events, carol invited to one; alice shares her
-- calendar with mgr_east; carol's event, public.
SELECT crm.grant_privileges(p, 'Activities', ARRAY['read', 'create', 'edit', 'delete']) FROM unnest(ARRAY['Sales', 'Supervisor']) AS p;
INSERT INTO crm.events (id, owner_id, subject, description, starts_at, ends_at, visibility) OVERRIDING SYSTEM VALUE VALUES
    (1, crm.owner_id('alice'), 'doctor', 'annual check-up', '2026-12-01 09:00+00', '2026-12-01 10:00+00', 'private'),
    (2, crm.owner_id('alice'), 'customer visit', 'Acme renewal', '2026-12-01 14:00+00', '2026-12-01 16:00+00', 'public'),
    (3, crm.owner_id('carol'), 'team lunch', 'east team', '2026-12-02 12:00+00', '2026-12-02 13:00+00', 'public');
SELECT setval('crm.events_id_seq', 3);
BEGIN;
SELECT crm.set_user('alice');
SELECT crm.invite(1, 'carol');
SELECT crm.share_calendar('mgr_east');
COMMIT;

\i tests/upgrade/decisions.sql
