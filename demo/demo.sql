-- The crm_access demo: run by scripts/demo.sh on a throwaway cluster.
\set QUIET on
\pset footer off
\set ON_ERROR_STOP off
SET client_min_messages = warning;
CREATE EXTENSION crm_access;
\o /dev/null
\i tests/fixtures/org.sql
\o
CREATE SCHEMA demo;
GRANT USAGE ON SCHEMA demo TO PUBLIC;
-- Only a statement of the client's own may set the acting user (DESIGN §5), or a superuser's
-- code in a superuser's session. The demo's helpers show what each user sees from inside one
-- query, so demo.act_as(who) takes the demo's superuser session back for a moment, sets
-- crm.user_name there, and goes on as the role the caller was (crm_app): row security and
-- privileges stay the caller's, the acting user is `who`; demo.act_done() undoes it.
CREATE FUNCTION demo.act_as(who text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE was text := current_user;
BEGIN
    PERFORM set_config('demo.session_was', session_user, true);
    PERFORM set_config('session_authorization', 'postgres', true);
    PERFORM set_config('crm.user_name', coalesce(who, ''), true);
    PERFORM set_config('role', was, true);
END $$;
CREATE FUNCTION demo.act_done() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('role', 'none', true);
    PERFORM set_config('crm.user_name', '', true);
    PERFORM set_config('session_authorization', current_setting('demo.session_was'), true);
END $$;
-- What `who` sees, for the web app that sets the acting user per transaction.
CREATE FUNCTION demo.leads_seen_by(who text, OUT leads bigint, OUT owners text) LANGUAGE plpgsql AS $$
BEGIN
    PERFORM demo.act_as(who);
    SELECT count(*), string_agg(DISTINCT d.name, ', ') INTO leads, owners
    FROM sales.leads l JOIN crm.user_directory d ON d.owner_id = l.owner_id;
    PERFORM demo.act_done();
END $$;

\echo
\echo '=== The organisation: a role tree, users, profiles (tests/fixtures/org.sql)'
SELECT name AS "user", role, is_admin AS admin FROM crm.user_directory ORDER BY owner_id;

\echo '=== Leads each user sees, through the trusted web app (crm_app) with SET LOCAL crm.user_name'
\echo '    private default: own leads, plus those of users strictly below; erin has View All; root is admin'
SET SESSION AUTHORIZATION crm_app;
SELECT d.name AS "user", d.role, s.leads, s.owners AS "owned by"
FROM crm.user_directory d, LATERAL demo.leads_seen_by(d.name) s ORDER BY d.owner_id;

\echo '=== The planner sees constants: an owner filter for a rep, none at all for View All'
BEGIN;
SET LOCAL crm.user_name = 'alice';
EXPLAIN (COSTS OFF) SELECT * FROM sales.leads WHERE company LIKE '%lead%';
SET LOCAL crm.user_name = 'erin';
EXPLAIN (COSTS OFF) SELECT * FROM sales.leads WHERE company LIKE '%lead%';
COMMIT;

\echo '=== Writes'
\echo '--- alice updates all leads: only her own change'
BEGIN;
SET LOCAL crm.user_name = 'alice';
UPDATE sales.leads SET company = company || ' (checked)' RETURNING id, company;
\echo '--- alice creates a lead for bob (a peer): refused'
INSERT INTO sales.leads VALUES (43, 'for bob', crm.owner_id('bob'));
ROLLBACK;
BEGIN;
\echo '--- mgr_west hands alice''s lead 41 to bob (both below him): allowed'
SET LOCAL crm.user_name = 'mgr_west';
UPDATE sales.leads SET owner_id = crm.owner_id('bob') WHERE id = 41 RETURNING id, company;
\echo '--- dave (read-only profile) deletes everything he sees: nothing, revoked beats granted'
SET LOCAL crm.user_name = 'dave';
WITH gone AS (DELETE FROM sales.leads RETURNING id) SELECT count(*) AS deleted_by_dave FROM gone;
ROLLBACK;
\echo '--- no acting user: reads are empty, writes are refused'
SELECT count(*) AS leads_without_identity FROM sales.leads;
DELETE FROM sales.leads;

\echo
\echo '=== A catalog change applies at the next statement, with no recalculation'
\echo '--- root (CRM admin, through the web app) opens Leads: public_read'
\o /dev/null
BEGIN;
SELECT crm.set_user('root');
SELECT crm.set_sharing_default('Leads', 'public_read');
COMMIT;
\o
SELECT d.name AS "user", s.leads FROM crm.user_directory d, LATERAL demo.leads_seen_by(d.name) s
WHERE d.name IN ('alice', 'carol', 'dave') ORDER BY d.owner_id;
\echo '--- and back to private'
\o /dev/null
BEGIN;
SELECT crm.set_user('root');
SELECT crm.set_sharing_default('Leads', 'private');
COMMIT;
\o


\echo '=== The message module: conversations under the same row security, five inbox tabs'
\echo '    reps (Sales profile): mine + new; mgr_west also holds Supervisor: all + archive'
RESET SESSION AUTHORIZATION;
\o /dev/null
SELECT crm.grant_privileges('Sales', 'Messages', ARRAY['read', 'create', 'edit']);
SELECT crm.set_message_permissions('Sales', ARRAY['mine', 'new']);
SELECT crm.create_profile('Supervisor');
SELECT crm.grant_privileges('Supervisor', 'Messages', ARRAY['read', 'create', 'edit']);
SELECT crm.set_message_permissions('Supervisor', ARRAY['all', 'archive']);
SELECT crm.attach_profile('Mgr_West', 'Supervisor');
INSERT INTO crm.conversations (subject, linked_table, linked_id, assigned_to, is_new, last_message_at) VALUES
    ('alice''s lead 42, bob answers', 'sales.leads', 42, crm.owner_id('bob'), false, now() - interval '5 hours'),
    ('bob''s lead 51, nobody yet', 'sales.leads', 51, NULL, false, now() - interval '4 hours'),
    ('carol''s own chat', NULL, NULL, crm.owner_id('carol'), false, now() - interval '3 hours'),
    ('first contact, unknown number', NULL, NULL, NULL, true, now() - interval '2 hours'),
    ('a chat assigned to alice', NULL, NULL, crm.owner_id('alice'), false, now() - interval '1 hour');
\o
CREATE FUNCTION demo.inbox(who text) RETURNS TABLE (tab text, conversations text) LANGUAGE plpgsql AS $$
BEGIN
    PERFORM demo.act_as(who);
    RETURN QUERY
    SELECT t.tab, (SELECT string_agg(subject, ' | ' ORDER BY last_message_at DESC) FROM crm.inbox_all WHERE t.tab = 'All Conversations')
    FROM (VALUES ('All Conversations')) t(tab) UNION ALL
    SELECT 'Assigned to Me', (SELECT string_agg(subject, ' | ' ORDER BY last_message_at DESC) FROM crm.inbox_assigned_to_me) UNION ALL
    SELECT 'My Unassigned', (SELECT string_agg(subject, ' | ' ORDER BY last_message_at DESC) FROM crm.inbox_my_unassigned) UNION ALL
    SELECT 'Archive', (SELECT string_agg(subject, ' | ' ORDER BY last_message_at DESC) FROM crm.inbox_archive) UNION ALL
    SELECT 'New Messages', (SELECT string_agg(subject, ' | ' ORDER BY last_message_at DESC) FROM crm.inbox_new);
    PERFORM demo.act_done();
END $$;
SET SESSION AUTHORIZATION crm_app;
\echo '--- alice (rep): her lead''s conversation even though bob answers it, and new contacts'
SELECT * FROM demo.inbox('alice');
\echo '--- mgr_west (supervisor): everything; he archives the first contact for himself only'
BEGIN;
SELECT crm.set_user('mgr_west') IS NOT NULL AS acting;
\o /dev/null
SELECT crm.archive_conversation(4);
\o
SELECT * FROM demo.inbox('mgr_west');
COMMIT;
\echo '--- root disables bob: his conversations become unassigned in the same transaction;'
\echo '    the one on alice''s lead 42 moves to her My Unassigned; the supervisor still sees them all'
RESET SESSION AUTHORIZATION;
\o /dev/null
SELECT crm.set_user_active('bob', false);
\o
SET SESSION AUTHORIZATION crm_app;
SELECT * FROM demo.inbox('alice') WHERE tab IN ('All Conversations', 'My Unassigned');
SELECT * FROM demo.inbox('mgr_west') WHERE tab = 'All Conversations';
BEGIN;
SELECT crm.set_user('alice') IS NOT NULL AS acting;
EXPLAIN (COSTS OFF) SELECT subject FROM crm.inbox_all ORDER BY last_message_at DESC LIMIT 50;
COMMIT;
RESET SESSION AUTHORIZATION;

\echo '=== Field access: the same leads through sales.leads_secure, for a rep and an auditor'
\echo '    Sales hides phone and makes budget read-only; ssn is hidden globally (admins only)'
RESET SESSION AUTHORIZATION;
\o /dev/null
ALTER TABLE sales.leads ADD COLUMN phone text, ADD COLUMN budget int, ADD COLUMN ssn text;
UPDATE sales.leads SET phone = '555-01' || id, budget = 1000 * id, ssn = '078-05-11' || id;
SELECT crm.set_field_access('Sales', 'Leads', 'phone', 'hidden');
SELECT crm.set_field_access('Sales', 'Leads', 'budget', 'read_only');
SELECT crm.set_global_field_access('Leads', 'ssn', false);
SELECT crm.secure_view('sales.leads');
GRANT SELECT, INSERT, UPDATE, DELETE ON sales.leads_secure TO crm_app;
\o
SET SESSION AUTHORIZATION crm_app;
BEGIN;
SELECT crm.set_user('alice') IS NOT NULL AS "acting as alice";
SELECT id, company, phone, budget, ssn FROM sales.leads_secure ORDER BY id;
\echo '--- alice raises a budget (read-only for her): refused, naming the field'
UPDATE sales.leads_secure SET budget = 1 WHERE id = 42;
ROLLBACK;
BEGIN;
SELECT crm.set_user('erin') IS NOT NULL AS "acting as erin (View All)";
SELECT id, company, phone, budget, ssn FROM sales.leads_secure WHERE id IN (42, 71) ORDER BY id;
COMMIT;
RESET SESSION AUTHORIZATION;

\echo '=== Calendar: private events show as busy; details for the owner, an invitee (carol), a superior (mgr_west,'
\echo '    public events only); a colleague (mgr_east) sees busy slots'
\o /dev/null
SELECT crm.grant_privileges('Sales', 'Activities', ARRAY['read', 'create', 'edit', 'delete']);
\o
CREATE FUNCTION demo.calendar_of(who text) RETURNS TABLE (viewer text, event text, details text, busy_only boolean) LANGUAGE plpgsql AS $$
BEGIN
    PERFORM demo.act_as(who);
    RETURN QUERY SELECT who, c.owner || ' ' || to_char(c.starts_at, 'HH24:MI'), c.subject || coalesce(': ' || c.description, ''), c.busy_only
                 FROM crm.calendar c ORDER BY c.starts_at;
    PERFORM demo.act_done();
END $$;
SET SESSION AUTHORIZATION crm_app;
\o /dev/null
BEGIN;
SELECT crm.set_user('alice');
INSERT INTO crm.events (subject, description, starts_at, ends_at) VALUES
    ('doctor', 'annual check-up', '2026-12-01 09:00', '2026-12-01 10:00');
INSERT INTO crm.events (subject, description, starts_at, ends_at, visibility) VALUES
    ('customer visit', 'Acme renewal', '2026-12-01 14:00', '2026-12-01 16:00', 'public');
SELECT crm.invite(id, 'carol') FROM crm.events WHERE subject = 'doctor';
COMMIT;
\o
SELECT * FROM demo.calendar_of('alice') UNION ALL SELECT * FROM demo.calendar_of('carol')
UNION ALL SELECT * FROM demo.calendar_of('mgr_west') UNION ALL SELECT * FROM demo.calendar_of('mgr_east');
RESET SESSION AUTHORIZATION;

\echo '=== A BI login mapped to alice (bi_alice), granted only the secure view:'
\echo '    GRANT SELECT ON sales.leads_secure TO bi_alice; and no privilege on sales.leads'
\o /dev/null
REVOKE ALL ON sales.leads FROM bi_alice;
GRANT SELECT ON sales.leads_secure TO bi_alice;
\o
SET SESSION AUTHORIZATION bi_alice;
SELECT crm.acting_user(), id, company, phone, budget, ssn FROM sales.leads_secure ORDER BY id;
\echo '--- the table itself is refused by PostgreSQL privileges, so no client can read around the masking'
SELECT count(*) FROM sales.leads;
\echo '--- and it cannot claim to be someone else'
SET crm.user_name = 'ceo';
SELECT count(*) FROM sales.leads_secure;
RESET crm.user_name;
RESET SESSION AUTHORIZATION;

\echo
\echo '=== Your own modules: Projects, under Accounts (examples/modules/projects.sql)'
\o /dev/null
\i examples/modules/projects.sql
INSERT INTO sales.projects VALUES
    (1, 'alice''s project', crm.owner_id('alice'), 4), (2, 'bob''s project', crm.owner_id('bob'), 5),
    (3, 'carol''s project', crm.owner_id('carol'), 7);
SELECT crm.add_sharing_rule('Accounts', 'role', 'Rep_West', 'role', 'Rep_East', 'read', ARRAY['Projects']);
\o
CREATE FUNCTION demo.projects_seen_by(who text, OUT projects text) LANGUAGE plpgsql AS $$
BEGIN
    PERFORM demo.act_as(who);
    projects := (SELECT string_agg(name, ', ' ORDER BY id) FROM sales.projects);
    PERFORM demo.act_done();
END $$;
\echo '--- own projects and those below (bob was disabled above); carol (Rep_East) also reads those under Rep_West''s accounts,'
\echo '    by a sharing rule on Accounts that carries Projects'
SET SESSION AUTHORIZATION crm_app;
SELECT u AS "user", demo.projects_seen_by(u) AS projects FROM unnest(ARRAY['alice', 'carol', 'mgr_west']) AS u;
RESET SESSION AUTHORIZATION;
SELECT crm.explain_access('sales.projects', 1, 'read', 'carol');

\echo
\echo '=== Restriction rules: the West team reaches only leads of region West, whoever owns them'
\echo '    (examples/restrictions/regions.sql; odd leads are West); View All is restricted too'
\o /dev/null
\i examples/restrictions/regions.sql
UPDATE sales.leads SET region = CASE WHEN id % 2 = 1 THEN 'West' ELSE 'East' END;
SELECT crm.add_restriction_rule('Leads', 'role', 'Audit', 'region', ARRAY['East']);
\o
SELECT module, kind, name, column_name, allowed FROM crm.restriction_rules ORDER BY rule_id;
SET SESSION AUTHORIZATION crm_app;
SELECT d.name AS "user", d.role, s.leads, s.owners AS "owned by"
FROM crm.user_directory d, LATERAL demo.leads_seen_by(d.name) s WHERE d.name IN ('mgr_west', 'alice', 'carol', 'erin', 'root') ORDER BY d.owner_id;
\echo '--- folded at plan time, in the column''s own type: the index on region serves it'
BEGIN;
SET LOCAL crm.user_name = 'erin';
SET LOCAL enable_seqscan = off;
EXPLAIN (COSTS OFF) SELECT id, company FROM sales.leads;
COMMIT;
\echo '--- alice moves her lead 41 to the East: refused'
BEGIN;
SET LOCAL crm.user_name = 'alice';
UPDATE sales.leads SET region = 'East' WHERE id = 41;
ROLLBACK;
RESET SESSION AUTHORIZATION;
SELECT crm.explain_access('sales.leads', 42, 'read', 'alice');

\echo
\echo '=== Sharing one record: mgr_west brings carol (Rep_East) into his lead 31 for the week, read and write'
\echo '    (as examples/shares/deal_room.sql does); carol and mgr_east above her read it, alice does not'
SET SESSION AUTHORIZATION crm_app;
BEGIN;
SET LOCAL crm.user_name = 'mgr_west';
SELECT crm.share_record('sales.leads', 31, 'user', 'carol', 'read_write', until => now() + interval '7 days') > 0 AS shared;
COMMIT;
SELECT d.name AS "user", s.leads, s.owners AS "owned by"
FROM crm.user_directory d, LATERAL demo.leads_seen_by(d.name) s WHERE d.name IN ('carol', 'mgr_east', 'alice') ORDER BY d.owner_id;
\echo '--- the planner folds her shared leads next to her owners: the primary key index serves them'
BEGIN;
SET LOCAL crm.user_name = 'carol';
SET LOCAL enable_seqscan = off;
EXPLAIN (COSTS OFF) SELECT id, company FROM sales.leads;
\echo '--- carol edits it; she may not make it hers'
UPDATE sales.leads SET company = company || ' (carol)' WHERE id = 31 RETURNING id, company;
UPDATE sales.leads SET owner_id = crm.owner_id('carol') WHERE id = 31;
ROLLBACK;
RESET SESSION AUTHORIZATION;
SELECT crm.explain_access('sales.leads', 31, 'edit', 'carol');
SELECT record_id, kind, receiver, access, until > now() AS "until later", shared_by FROM crm.record_shares;
