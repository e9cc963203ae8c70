-- The message module (DESIGN §3.5, seed 000): message permissions, conversation and
-- message visibility, the five inbox tabs, the FAQ behaviours, assignment and archiving.
-- Lead ids tell their owner: 4x alice, 5x bob, 7x carol.
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

-- Sales users (alice, bob, carol, the managers): mine + new. Mgr_West also holds the
-- Supervisor profile (all + archive). ivan handles first contacts only (new). alice may
-- archive through a permission set. dave (ReadOnly) has no Messages privilege at all.
SELECT crm.grant_privileges('Sales', 'Messages', ARRAY['read', 'create', 'edit']);
SELECT crm.set_message_permissions('Sales', ARRAY['new', 'mine', 'mine']);
SELECT crm.create_profile('Supervisor');
SELECT crm.grant_privileges('Supervisor', 'Messages', ARRAY['read', 'create', 'edit', 'delete']);
SELECT crm.set_message_permissions('Supervisor', ARRAY['all', 'archive']);
SELECT crm.attach_profile('Mgr_West', 'Supervisor');
SELECT crm.create_role('Inbound', 'CEO');
SELECT crm.create_profile('Inbound');
SELECT crm.grant_privileges('Inbound', 'Messages', ARRAY['read', 'edit']);
SELECT crm.set_message_permissions('Inbound', ARRAY['new']);
SELECT crm.attach_profile('Inbound', 'Inbound');
SELECT crm.create_user('ivan', 'Inbound') > 0 AS created;
SELECT crm.create_permission_set('Archivers');
SELECT crm.set_permission_set_message_permissions('Archivers', ARRAY['archive']);
SELECT crm.assign_permission_set('Archivers', 'user', 'alice');
SELECT name, message_permissions FROM crm.profiles ORDER BY id;

-- 1: alice's lead, assigned to bob. 2: bob's lead, unassigned. 3: no lead, assigned to
-- carol. 4: a first contact from an unknown sender. 5: alice's lead, assigned to alice.
INSERT INTO crm.conversations (subject, linked_table, linked_id, assigned_to, is_new, last_message_at) VALUES
    ('alice lead, bob assigned', 'sales.leads', 41, crm.owner_id('bob'), false, '2026-01-01'),
    ('bob lead, unassigned', 'sales.leads', 51, NULL, false, '2026-01-02'),
    ('carol chat', NULL, NULL, crm.owner_id('carol'), false, '2026-01-03'),
    ('unknown sender', NULL, NULL, NULL, true, '2026-01-04'),
    ('alice lead, alice assigned', 'sales.leads', 42, crm.owner_id('alice'), false, '2026-01-05');
-- Messages 11, 12 belong to conversation 1, 21, 22 to 2, and so on.
INSERT INTO crm.messages (id, conversation_id, direction, body, sent_at)
SELECT 10 * c.id + k, c.id, 'inbound', 'message ' || k, c.last_message_at - interval '1 hour' * k
FROM crm.conversations c, generate_series(1, 2) AS k;
SELECT setval('crm.messages_id_seq', 100) > 0 AS later_messages_from_101;
SELECT id, linked_owner = crm.owner_id('alice') AS alice_owns, linked_owner = crm.owner_id('bob') AS bob_owns
FROM crm.conversations ORDER BY id;

CREATE FUNCTION regress.inbox(who text) RETURNS TABLE (tab text, ids bigint[]) LANGUAGE plpgsql AS $$
BEGIN
    PERFORM regress.act_as(who);
    RETURN QUERY
    SELECT 'conversations', (SELECT array_agg(id ORDER BY id) FROM crm.conversations) UNION ALL
    SELECT 'messages', (SELECT array_agg(id ORDER BY id) FROM crm.messages) UNION ALL
    SELECT 'inbox_all', (SELECT array_agg(id ORDER BY id) FROM crm.inbox_all) UNION ALL
    SELECT 'assigned_to_me', (SELECT array_agg(id ORDER BY id) FROM crm.inbox_assigned_to_me) UNION ALL
    SELECT 'my_unassigned', (SELECT array_agg(id ORDER BY id) FROM crm.inbox_my_unassigned) UNION ALL
    SELECT 'archive', (SELECT array_agg(id ORDER BY id) FROM crm.inbox_archive) UNION ALL
    SELECT 'new', (SELECT array_agg(id ORDER BY id) FROM crm.inbox_new);
    PERFORM regress.act_done();
END $$;

-- What each user sees of a relation, as ids.
CREATE FUNCTION regress.ids(who text, rel regclass) RETURNS bigint[] LANGUAGE plpgsql AS $$
DECLARE ids bigint[];
BEGIN
    PERFORM regress.act_as(who);
    EXECUTE format('SELECT array_agg(id ORDER BY id) FROM %s', rel) INTO ids;
    PERFORM regress.act_done();
    RETURN ids;
END $$;

SET SESSION AUTHORIZATION crm_app;
-- The lead owner (alice) and the assignee (bob) both see conversation 1: alice under All
-- Conversations, bob under Assigned to Me. Messages follow their conversation.
SELECT * FROM regress.inbox('alice');
SELECT * FROM regress.inbox('bob');
-- mine does not follow the hierarchy: carol's manager's manager (vp) sees only new ones.
SELECT * FROM regress.inbox('vp');
-- The supervisor (all) sees every conversation, as do View All (erin) and the admin (root).
SELECT u AS "user", regress.ids(u, 'crm.conversations') FROM unnest(ARRAY['mgr_west', 'erin', 'root']) AS u;
-- new without mine: only new conversations, even one assigned to ivan.
RESET SESSION AUTHORIZATION;
UPDATE crm.conversations SET assigned_to = crm.owner_id('ivan') WHERE id = 3;
SET SESSION AUTHORIZATION crm_app;
SELECT * FROM regress.inbox('ivan');
-- No Messages privilege (dave), no identity: nothing.
SELECT * FROM regress.inbox('dave');
RESET crm.user_name;
SELECT count(*) FROM crm.conversations;
SELECT regress.try($$INSERT INTO crm.conversations (subject, is_new) VALUES ('anonymous', true)$$);

-- A change of lead owner: the new owner (carol) sees conversation 1 at once, the assignee
-- (bob) keeps it, the old owner (alice) loses it.
RESET SESSION AUTHORIZATION;
UPDATE sales.leads SET owner_id = crm.owner_id('carol') WHERE id = 41;
SET SESSION AUTHORIZATION crm_app;
SELECT u AS "user", regress.ids(u, 'crm.conversations') AS conversations, regress.ids(u, 'crm.messages') AS messages
FROM unnest(ARRAY['alice', 'bob', 'carol']) AS u;
RESET crm.user_name;

-- Assignment needs edit on the conversation, and an active assignee.
SET crm.user_name = 'alice';
SELECT crm.assign_conversation(5, 'bob');
SELECT regress.try($$SELECT crm.assign_conversation(2, 'alice')$$);
SELECT regress.try($$SELECT crm.assign_conversation(5, 'nobody')$$);
SET crm.user_name = 'erin';
SELECT regress.try($$SELECT crm.assign_conversation(5, 'alice')$$);
SET crm.user_name = 'bob';
SELECT crm.assign_conversation(5, NULL);
SELECT * FROM regress.inbox('bob');
SET crm.user_name = 'alice';
SELECT * FROM regress.inbox('alice');
RESET crm.user_name;

-- Disabling a user unassigns their conversations in the same transaction; then the lead
-- owner sees them as unassigned, and the supervisor and the admin still see them.
RESET SESSION AUTHORIZATION;
BEGIN;
SELECT crm.set_user_active('bob', false);
SELECT id, assigned_to FROM crm.conversations WHERE id IN (1, 2) ORDER BY id;
SELECT count(*) AS bob_messages FROM crm.messages WHERE crm_assigned_to = crm.owner_id('bob');
COMMIT;
SET SESSION AUTHORIZATION crm_app;
SELECT * FROM regress.inbox('carol');
SELECT u AS "user", regress.ids(u, 'crm.inbox_all') FROM unnest(ARRAY['mgr_west', 'root']) AS u;
SET crm.user_name = 'carol';
SELECT regress.try($$SELECT crm.assign_conversation(1, 'bob')$$);
SELECT regress.try($$UPDATE crm.conversations SET assigned_to = crm.owner_id('bob') WHERE id = 1$$);
SET crm.user_name = 'mgr_west';
SELECT crm.assign_conversation(1, 'alice');
RESET crm.user_name;

-- Archiving is per user and needs the archive permission (alice has it through a
-- permission set, carol has not).
SET crm.user_name = 'alice';
SELECT crm.archive_conversation(1);
SELECT crm.archive_conversation(1);
SELECT * FROM regress.inbox('alice');
SELECT * FROM regress.inbox('mgr_west');
SET crm.user_name = 'carol';
SELECT regress.try($$SELECT crm.archive_conversation(1)$$);
SET crm.user_name = 'alice';
SELECT regress.try($$UPDATE crm.conversations SET archived_by = '{}' WHERE id = 1$$);
-- Without the archive permission, what alice archived is hidden from her.
RESET SESSION AUTHORIZATION;
SELECT crm.unassign_permission_set('Archivers', 'user', 'alice');
SET SESSION AUTHORIZATION crm_app;
SELECT * FROM regress.inbox('alice');
RESET SESSION AUTHORIZATION;
SELECT crm.assign_permission_set('Archivers', 'user', 'alice');
SET SESSION AUTHORIZATION crm_app;
SET crm.user_name = 'alice';
SELECT crm.unarchive_conversation(1);
SELECT array_agg(id ORDER BY id) AS archive FROM crm.inbox_archive;
RESET crm.user_name;

-- Writes are plain INSERTs under the same policies: a conversation its creator could see,
-- linked only to a lead its creator can read; a message only as a reply (edit).
SET crm.user_name = 'alice';
INSERT INTO crm.conversations (subject, linked_table, linked_id) VALUES ('on my lead', 'sales.leads', 42) RETURNING id, linked_owner = crm.owner_id('alice') AS mine;
SELECT regress.try($$INSERT INTO crm.conversations (subject, linked_table, linked_id) VALUES ('on bob''s lead', 'sales.leads', 51)$$);
SELECT regress.try($$INSERT INTO crm.conversations (subject) VALUES ('nobody''s')$$);
SELECT regress.try($$INSERT INTO crm.conversations (subject, linked_table, linked_id) VALUES ('an account', 'sales.accounts', 4)$$);
SET crm.user_name = 'root';
SELECT regress.try($$INSERT INTO crm.conversations (subject, linked_table) VALUES ('half a link', 'sales.leads')$$);
SET crm.user_name = 'alice';
INSERT INTO crm.messages (conversation_id, direction, body) VALUES (1, 'outbound', 'reply') RETURNING id, crm_assigned_to = crm.owner_id('alice') AS copied;
SELECT regress.try($$INSERT INTO crm.messages (conversation_id, direction, body) VALUES (3, 'outbound', 'not mine')$$);
SELECT last_message_at > '2026-06-01' AS bumped FROM crm.conversations WHERE id = 1;
SET crm.user_name = 'erin';
SELECT regress.try($$INSERT INTO crm.messages (conversation_id, direction, body) VALUES (1, 'outbound', 'auditor')$$);
WITH d AS (DELETE FROM crm.conversations WHERE id = 1 RETURNING id) SELECT count(*) AS erin_deleted FROM d;
SET crm.user_name = 'mgr_west';
WITH d AS (DELETE FROM crm.conversations WHERE id = 3 RETURNING id) SELECT array_agg(id) AS mgr_west_deleted FROM d;
SELECT count(*) AS messages_of_3 FROM crm.messages WHERE conversation_id = 3;
RESET crm.user_name;
RESET SESSION AUTHORIZATION;

-- Catalog errors.
SELECT regress.try($$SELECT crm.set_message_permissions('Sales', ARRAY['everything'])$$);
SELECT regress.try($$SELECT crm.set_message_permissions('Nope', ARRAY['all'])$$);
SELECT regress.try($$SELECT crm.set_sharing_default('Messages', 'public_read')$$);
SELECT regress.try($$SELECT crm.add_sharing_rule('Messages', 'role', 'CEO', 'role', 'VP_Sales', 'read')$$);
SELECT regress.try($$SELECT crm.unprotect('sales.leads')$$);
SET SESSION AUTHORIZATION crm_app;
SET crm.user_name = 'alice';
SELECT regress.try($$SELECT crm.set_message_permissions('Sales', ARRAY['all'])$$);
RESET crm.user_name;
RESET SESSION AUTHORIZATION;

-- Deleting a lead unlinks its conversations (now visible only through assignment).
DELETE FROM sales.leads WHERE id = 42;
SELECT id, linked_table, linked_id, linked_owner FROM crm.conversations WHERE id = 5;

-- clean up for the next suite
\set ECHO none
SET client_min_messages = warning;
RESET SESSION AUTHORIZATION;
DROP SCHEMA sales CASCADE;
DROP SCHEMA regress CASCADE;
DROP EXTENSION crm_access CASCADE;
