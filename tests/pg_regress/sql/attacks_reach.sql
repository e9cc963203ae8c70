-- Attack tier (docs/security.md): reaching rows or fields around the policies, through leaky
-- functions, plans reused across users, and identity asserted where it may not be. Every
-- attack runs as a non-superuser role and shows that nothing beyond the acting user's rows
-- and fields came out. Leads 41-42 are alice's, 51-52 bob's, 71-72 carol's.
\set ECHO none
\o /dev/null
CREATE EXTENSION crm_access;
\i tests/fixtures/helpers.sql
\i tests/fixtures/org.sql
\o
\set ECHO all
ALTER TABLE sales.leads ADD COLUMN phone text, ADD COLUMN ssn text;
UPDATE sales.leads SET phone = 'phone ' || id, ssn = 'ssn ' || id;
SELECT crm.set_field_access('Sales', 'Leads', 'phone', 'hidden');
SELECT crm.set_global_field_access('Leads', 'ssn', false);
SELECT crm.secure_view('sales.leads');
GRANT SELECT ON sales.leads_secure TO crm_app;
SELECT crm.grant_privileges('Sales', m, ARRAY['read', 'create', 'edit']) FROM unnest(ARRAY['Messages', 'Activities']) m;
SELECT crm.set_message_permissions('Sales', ARRAY['mine']);
INSERT INTO crm.conversations (subject, assigned_to) VALUES ('for alice', crm.owner_id('alice')), ('for bob', crm.owner_id('bob'));
INSERT INTO crm.messages (conversation_id, direction, body) SELECT id, 'inbound', 'body of ' || subject FROM crm.conversations;
INSERT INTO crm.events (owner_id, subject, description, starts_at, ends_at) VALUES
    (crm.owner_id('alice'), 'alice private', 'alice details', '2026-12-01 10:00', '2026-12-01 11:00'),
    (crm.owner_id('bob'), 'bob private', 'bob details', '2026-12-01 12:00', '2026-12-01 13:00');

-- A cheap function that is not leakproof records every value it is shown.
CREATE TABLE regress.leaked (what text, value text);
GRANT INSERT, SELECT, DELETE ON regress.leaked TO PUBLIC;
CREATE FUNCTION regress.leak(what text, v anyelement) RETURNS boolean LANGUAGE plpgsql COST 0.0000001 AS $$
BEGIN INSERT INTO regress.leaked VALUES (what, v::text); RETURN true; END $$;

SET SESSION AUTHORIZATION crm_app;
BEGIN;
SET LOCAL crm.user_name = 'alice';
SELECT count(*) FROM sales.leads WHERE regress.leak('leads.company', company);
SELECT count(*) FROM sales.leads WHERE regress.leak('leads.ssn', ssn) AND id > 0;
SELECT count(*) FROM sales.leads_secure WHERE regress.leak('secure.phone', phone) AND regress.leak('secure.ssn', ssn);
SELECT count(*) FROM sales.leads l JOIN sales.accounts a ON a.owner_id = l.owner_id WHERE regress.leak('join.account', a.name);
SELECT count(*) FROM sales.leads WHERE id IN (SELECT id FROM sales.leads_secure WHERE regress.leak('subquery.phone', phone));
SELECT count(*) FROM crm.conversations WHERE regress.leak('conversations', subject);
SELECT count(*) FROM crm.messages WHERE regress.leak('messages', body);
SELECT count(*) FROM crm.inbox_all WHERE regress.leak('inbox_all', subject);
SELECT count(*) FROM crm.inbox_assigned_to_me WHERE regress.leak('inbox_assigned_to_me', subject);
SELECT count(*) FROM crm.inbox_my_unassigned WHERE regress.leak('inbox_my_unassigned', subject);
SELECT count(*) FROM crm.inbox_archive WHERE regress.leak('inbox_archive', subject);
SELECT count(*) FROM crm.inbox_new WHERE regress.leak('inbox_new', subject);
SELECT count(*) FROM crm.events WHERE regress.leak('events', description);
SELECT count(*) FROM crm.calendar WHERE regress.leak('calendar.subject', subject) AND regress.leak('calendar.description', description);
COMMIT;
-- Everything shown belongs to alice (or is a busy slot); through the secure view phone and
-- ssn came out NULL. The table itself shows every column of alice's rows to whoever holds a
-- privilege on it (crm_app here): that is why clients that must not see hidden fields are
-- granted the view only (the secure_views suite).
SELECT what, string_agg(coalesce(value, 'NULL'), ', ' ORDER BY value) FROM regress.leaked GROUP BY what ORDER BY what;
DELETE FROM regress.leaked;

-- Plans reused across users: prepared statements (custom and generic), PL/pgSQL and SQL
-- functions, parallel query. Each user gets their own rows.
PREPARE visible AS SELECT array_agg(id ORDER BY id) FROM sales.leads;
CREATE FUNCTION pg_temp.visible_plpgsql() RETURNS bigint[] LANGUAGE plpgsql AS $$
BEGIN RETURN (SELECT array_agg(id ORDER BY id) FROM sales.leads); END $$;
CREATE FUNCTION pg_temp.visible_sql() RETURNS bigint[] LANGUAGE sql STABLE AS $$ SELECT array_agg(id ORDER BY id) FROM sales.leads $$;
SELECT set_config(CASE WHEN current_setting('server_version_num')::int >= 160000 THEN 'debug_parallel_query' ELSE 'force_parallel_mode' END, 'off', false) IS NOT NULL AS serial;
SET plan_cache_mode = force_generic_plan;
BEGIN; SET LOCAL crm.user_name = 'alice'; EXECUTE visible; SELECT pg_temp.visible_plpgsql(), pg_temp.visible_sql(); COMMIT;
BEGIN; SET LOCAL crm.user_name = 'carol'; EXECUTE visible; SELECT pg_temp.visible_plpgsql(), pg_temp.visible_sql(); COMMIT;
EXECUTE visible;
SELECT pg_temp.visible_plpgsql(), pg_temp.visible_sql();
SET plan_cache_mode = force_custom_plan;
BEGIN; SET LOCAL crm.user_name = 'mgr_west'; EXECUTE visible; SELECT pg_temp.visible_plpgsql(), pg_temp.visible_sql(); COMMIT;
RESET plan_cache_mode;
SELECT set_config(CASE WHEN current_setting('server_version_num')::int >= 160000 THEN 'debug_parallel_query' ELSE 'force_parallel_mode' END, 'on', false) IS NOT NULL AS parallel;
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
BEGIN; SET LOCAL crm.user_name = 'alice'; EXECUTE visible; SELECT count(*) FROM sales.leads_secure WHERE phone IS NOT NULL; COMMIT;
BEGIN; SET LOCAL crm.user_name = 'carol'; EXECUTE visible; COMMIT;
SELECT set_config(CASE WHEN current_setting('server_version_num')::int >= 160000 THEN 'debug_parallel_query' ELSE 'force_parallel_mode' END, 'off', false) IS NOT NULL AS serial;
RESET parallel_setup_cost;
RESET parallel_tuple_cost;
-- A plan of a mapped login is not reused after the session turns into another login.
RESET SESSION AUTHORIZATION;
SET SESSION AUTHORIZATION bi_alice;
PREPARE visible_bi AS SELECT array_agg(id ORDER BY id) FROM sales.leads;
EXECUTE visible_bi;
RESET SESSION AUTHORIZATION;
SET SESSION AUTHORIZATION crm_stranger;
EXECUTE visible_bi;
RESET SESSION AUTHORIZATION;
DEALLOCATE visible_bi;

-- A cursor WITH HOLD keeps the rows of the transaction that opened it, whoever acts later on
-- the connection (docs/security.md: poolers must DISCARD ALL between clients).
SET SESSION AUTHORIZATION crm_app;
BEGIN;
SET LOCAL crm.user_name = 'alice';
DECLARE held CURSOR WITH HOLD FOR SELECT id FROM sales.leads ORDER BY id;
COMMIT;
BEGIN;
SET LOCAL crm.user_name = 'carol';
FETCH ALL FROM held;
COMMIT;
DISCARD ALL;
SELECT regress.try($$FETCH ALL FROM held$$);
RESET SESSION AUTHORIZATION;

-- Identity asserted where it may not be: by SET, set_config, the role's or the database's
-- settings, or the connection's options; always an error, never someone's rows.
SET SESSION AUTHORIZATION crm_stranger;
SELECT set_config('crm.user_name', 'alice', false);
SELECT regress.try($$SELECT count(*) FROM sales.leads$$);
RESET crm.user_name;
ALTER ROLE crm_stranger SET crm.user_name = 'alice';
RESET SESSION AUTHORIZATION;
\c - crm_stranger
SHOW crm.user_name;
SELECT regress.try($$SELECT count(*) FROM sales.leads$$);
SELECT regress.try($$SELECT count(*) FROM sales.leads_secure$$);
ALTER ROLE crm_stranger RESET crm.user_name;
\c - postgres
ALTER DATABASE crm_regress SET crm.user_name = 'ceo';
\c - bi_alice
SELECT regress.try($$SELECT count(*) FROM sales.leads$$);
\c - postgres
ALTER DATABASE crm_regress RESET crm.user_name;
\c 'dbname=crm_regress user=crm_stranger options=-ccrm.user_name=ceo'
SELECT regress.try($$SELECT count(*) FROM sales.leads$$);
\c - postgres
-- The trusted app that asserts an unknown, disabled or deleted user gets nothing, and no write.
SELECT crm.create_user('leaving', 'Rep_West');
INSERT INTO sales.leads (id, company, owner_id) VALUES (91, 'left behind', crm.owner_id('leaving'));
SELECT crm.delete_user('leaving', transfer_to => 'alice');
SET SESSION AUTHORIZATION crm_app;
BEGIN;
SET LOCAL crm.user_name = 'leaving';
SELECT crm.acting_user(), count(*) FROM sales.leads;
SELECT regress.try($$INSERT INTO sales.leads (id, company, owner_id) VALUES (92, 'x', 4)$$);
ROLLBACK;
RESET SESSION AUTHORIZATION;

-- What errors tell (docs/security.md): a duplicate key tells that a record exists, as
-- PostgreSQL's unique index does for anyone who may insert; crm_access's own answers tell
-- nothing more than "not visible", whoever asks.
SET SESSION AUTHORIZATION crm_app;
BEGIN;
SET LOCAL crm.user_name = 'alice';
SELECT regress.try($$INSERT INTO sales.leads (id, company, owner_id) VALUES (71, 'probe', crm.owner_id('alice'))$$);
SELECT regress.try($$INSERT INTO sales.leads (id, company, owner_id) VALUES (79, 'probe', crm.owner_id('alice'))$$);
SELECT regress.try($$SELECT crm.explain_access('sales.leads', 71)$$) AS invisible, regress.try($$SELECT crm.explain_access('sales.leads', 79)$$) AS created;
SELECT regress.try($$SELECT crm.explain_access('sales.leads', 71, 'read', 'carol')$$);
SELECT regress.try($$SELECT crm.who_can('sales.leads', 41)$$);
ROLLBACK;
RESET SESSION AUTHORIZATION;

-- Decisions kept outside any plan (red team): PostgreSQL simplifies a domain's CHECK once
-- per backend and an index predicate once per relcache entry, for whoever acts then. The
-- policy functions are specialised only inside a query being planned, so a domain check
-- decides for the user acting at each use, and an index predicate that could stand in for
-- the row policy cannot be created (the call is not immutable).
CREATE DOMAIN regress.readable_owner AS bigint CHECK (crm.can('sales.leads', 'read', VALUE));
SET crm.user_name = '';
SET SESSION AUTHORIZATION crm_app;
BEGIN;
SET LOCAL crm.user_name = 'alice';
SELECT regress.try($$SELECT crm.owner_id('alice')::regress.readable_owner$$) AS alice_as_alice;
COMMIT;
SELECT regress.try($$SELECT crm.owner_id('alice')::regress.readable_owner$$) AS alice_as_nobody;
BEGIN;
SET LOCAL crm.user_name = 'carol';
SELECT regress.try($$SELECT crm.owner_id('alice')::regress.readable_owner$$) AS alice_as_carol,
       regress.try($$SELECT crm.owner_id('carol')::regress.readable_owner$$) AS carol_as_carol;
COMMIT;
RESET SESSION AUTHORIZATION;
BEGIN;
SET LOCAL crm.user_name = 'ceo';
SELECT regress.try($$CREATE INDEX leads_readable ON sales.leads (id) WHERE crm.can('sales.leads', 'read', owner_id)$$);
SELECT regress.try($$CREATE INDEX leads_readable ON sales.leads ((crm.can('sales.leads', 'read', owner_id)))$$);
SELECT regress.try($$CREATE INDEX leads_writes ON sales.leads (id) WHERE crm.field_values('sales.leads', leads)$$);
ROLLBACK;
DROP DOMAIN regress.readable_owner;

-- clean up for the next suite
\set ECHO none
SET client_min_messages = warning;
RESET SESSION AUTHORIZATION;
DROP SCHEMA sales CASCADE;
DROP SCHEMA regress CASCADE;
DROP EXTENSION crm_access CASCADE;
