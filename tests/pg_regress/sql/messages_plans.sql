-- The inbox stays sargable at scale (issue: message module, Performance): with 200,000
-- conversations and 2,000,000 messages, a rep's "Assigned to Me" and "All Conversations"
-- pages (top 50 by last message) plan with index scans, constants for the rep, and no
-- function call or SubPlan; a conversation's messages come from their index.
\set ECHO none
\o /dev/null
CREATE EXTENSION crm_access;
\i tests/fixtures/helpers.sql
\i tests/fixtures/org.sql
\o
\set ECHO all
SET max_parallel_workers_per_gather = 0;
SELECT crm.grant_privileges('Sales', 'Messages', ARRAY['read', 'create', 'edit']);
SELECT crm.set_message_permissions('Sales', ARRAY['mine', 'new']);
CREATE TABLE sales.msg_leads (id bigint PRIMARY KEY, company text NOT NULL, owner_id bigint NOT NULL);
CREATE INDEX msg_leads_owner_id ON sales.msg_leads (owner_id);
SELECT crm.protect('sales.msg_leads', 'Leads');
-- alice owns 1% of 150,000 leads; each lead has one conversation, assigned (in 90% of
-- cases) to someone; alice is the assignee of another 1%; 2% are new.
INSERT INTO sales.msg_leads
SELECT g, 'company ' || g, CASE WHEN g % 100 = 0 THEN crm.owner_id('alice') ELSE crm.owner_id((ARRAY['ceo', 'vp', 'mgr_east', 'carol'])[1 + g % 4]) END
FROM generate_series(1, 150000) AS g;
INSERT INTO crm.conversations (subject, linked_table, linked_id, assigned_to, is_new, last_message_at)
SELECT 'conversation ' || g,
       CASE WHEN g <= 150000 THEN 'sales.msg_leads'::regclass END,
       CASE WHEN g <= 150000 THEN g END,
       CASE WHEN g % 10 = 3 THEN NULL
            WHEN g % 100 = 7 THEN crm.owner_id('alice')
            ELSE crm.owner_id((ARRAY['bob', 'carol', 'mgr_east'])[1 + g % 3]) END,
       g % 50 = 1,
       timestamptz '2026-01-01' + g * interval '1 minute'
FROM generate_series(1, 200000) AS g;
-- Ten messages per conversation, through the triggers that copy visibility onto them.
INSERT INTO crm.messages (conversation_id, direction, body, sent_at)
SELECT c, CASE WHEN k % 2 = 0 THEN 'inbound' ELSE 'outbound' END, 'message ' || k,
       timestamptz '2026-01-01' + c * interval '1 minute' - k * interval '1 second'
FROM generate_series(1, 200000) AS c, generate_series(1, 10) AS k;
VACUUM ANALYZE crm.conversations, crm.messages, sales.msg_leads;
SELECT count(*) AS conversations, (SELECT count(*) FROM crm.messages) AS messages FROM crm.conversations;
GRANT SELECT ON sales.msg_leads TO crm_app;
SET SESSION AUTHORIZATION crm_app;
SET max_parallel_workers_per_gather = 0;

BEGIN;
SET LOCAL crm.user_name = 'alice';
-- Assigned to Me: the assignee index, alice's id as a constant.
EXPLAIN (COSTS OFF) SELECT id, subject, last_message_at FROM crm.inbox_assigned_to_me ORDER BY last_message_at DESC LIMIT 50;
SELECT count(*), min(id), max(id) FROM (SELECT id FROM crm.inbox_assigned_to_me ORDER BY last_message_at DESC LIMIT 50) p;
-- All Conversations: the newest-first index, the policy as a constant filter.
EXPLAIN (COSTS OFF) SELECT id, subject, last_message_at FROM crm.inbox_all ORDER BY last_message_at DESC LIMIT 50;
SELECT count(*), min(id), max(id) FROM (SELECT id FROM crm.inbox_all ORDER BY last_message_at DESC LIMIT 50) p;
-- Everything she may see, and how it splits.
SELECT count(*) AS visible,
       count(*) FILTER (WHERE assigned_to = crm.acting_owner_id()) AS assigned,
       count(*) FILTER (WHERE linked_owner = crm.acting_owner_id()) AS her_leads,
       count(*) FILTER (WHERE is_new) AS new
FROM crm.conversations;
-- A conversation's messages: the conversation index, the same constant filter.
EXPLAIN (COSTS OFF) SELECT id, body FROM crm.messages WHERE conversation_id = 107 ORDER BY sent_at;
SELECT count(*) FROM crm.messages WHERE conversation_id = 107;
SELECT count(*) FROM crm.messages WHERE conversation_id = 108;
COMMIT;

-- The supervisor's page: no filter at all.
RESET SESSION AUTHORIZATION;
SELECT crm.create_profile('Supervisor');
SELECT crm.grant_privileges('Supervisor', 'Messages', ARRAY['read', 'edit']);
SELECT crm.set_message_permissions('Supervisor', ARRAY['all', 'archive']);
SELECT crm.attach_profile('Mgr_West', 'Supervisor');
SET SESSION AUTHORIZATION crm_app;
BEGIN;
SET LOCAL crm.user_name = 'mgr_west';
EXPLAIN (COSTS OFF) SELECT id, subject, last_message_at FROM crm.conversations ORDER BY last_message_at DESC LIMIT 50;
COMMIT;
RESET SESSION AUTHORIZATION;

-- clean up for the next suite
\set ECHO none
SET client_min_messages = warning;
RESET SESSION AUTHORIZATION;
DROP SCHEMA sales CASCADE;
DROP SCHEMA regress CASCADE;
DROP EXTENSION crm_access CASCADE;
