-- Identity (DESIGN §5): mapped logins, trusted roles asserting crm.user_name per
-- transaction, and fail-closed everywhere else.
\set ECHO none
\o /dev/null
CREATE EXTENSION crm_access;
\i tests/fixtures/helpers.sql
\i tests/fixtures/org.sql
\o
\set ECHO all

-- A mapped BI login acts as its CRM user; it cannot claim to be anyone else.
SET SESSION AUTHORIZATION bi_alice;
SELECT crm.acting_user();
SELECT id, company FROM sales.leads ORDER BY id;
SET crm.user_name = 'ceo';
SELECT regress.try($$SELECT count(*) FROM sales.leads$$);
RESET crm.user_name;
-- SET ROLE does not change who is acting: the login role decides.
RESET SESSION AUTHORIZATION;
SET ROLE bi_alice;
SELECT crm.acting_user();
RESET ROLE;

-- A login nobody trusts or maps sees nothing, and gets an error if it asserts a user.
SET SESSION AUTHORIZATION crm_stranger;
SELECT crm.acting_user(), count(*) FROM sales.leads;
SET crm.user_name = 'ceo';
SELECT regress.try($$SELECT count(*) FROM sales.leads$$);
SELECT regress.try($$SELECT crm.acting_user()$$);
SELECT regress.try($$SELECT crm.set_user('ceo')$$);
RESET crm.user_name;
SELECT count(*) FROM sales.leads;

-- The trusted app without an acting user: no rows; every write refused with an error.
SET SESSION AUTHORIZATION crm_app;
SELECT crm.acting_user(), count(*) FROM sales.leads;
SELECT regress.try($$UPDATE sales.leads SET company = 'x'$$);
SELECT regress.try($$DELETE FROM sales.leads$$);
SELECT regress.try($$INSERT INTO sales.leads VALUES (99, 'x', 4)$$);

-- SET LOCAL and crm.set_user() last for one transaction; nothing leaks into the next.
BEGIN;
SET LOCAL crm.user_name = 'alice';
SELECT crm.acting_user(), array_agg(id ORDER BY id) FROM sales.leads;
COMMIT;
SELECT crm.acting_user(), count(*) FROM sales.leads;
BEGIN;
SELECT crm.set_user('mgr_west');
SELECT crm.acting_user(), array_agg(id ORDER BY id) FROM sales.leads;
ROLLBACK;
SELECT crm.acting_user(), count(*) FROM sales.leads;

-- A session-level assertion (crm.require_local_user, on by default): behind a transaction
-- pooler it would act for the next client of the server connection, so it is refused at
-- its first use, reads and writes alike, and nothing is read or changed.
SHOW crm.require_local_user;
SELECT crm.set_user('bob', is_local => false);
SELECT regress.try($$SELECT count(*) FROM sales.leads$$);
SELECT regress.try($$UPDATE sales.leads SET company = 'x' WHERE id = 51$$);
SELECT regress.try($$SELECT crm.acting_user()$$);
-- SET without LOCAL inside a transaction outlives it: refused there too.
BEGIN;
SET crm.user_name = 'alice';
SELECT regress.try($$SELECT count(*) FROM sales.leads$$);
ROLLBACK;
-- SET LOCAL over the left-over value counts for its transaction only; a statement prepared
-- in it is planned again afterwards, and refused.
BEGIN;
SET LOCAL crm.user_name = 'bob';
SELECT crm.acting_user(), array_agg(id ORDER BY id) FROM sales.leads;
PREPARE bobs AS SELECT array_agg(id ORDER BY id) FROM sales.leads;
EXECUTE bobs;
COMMIT;
SELECT current_setting('crm.user_name');
SELECT regress.try($$SELECT count(*) FROM sales.leads$$);
EXECUTE bobs;
DEALLOCATE bobs;
-- Only a statement of the client's own sets the acting user (DESIGN §5): a function's SET
-- clause is refused when the function is made (its body is checked under its settings), and,
-- for one a superuser made, when it is called; nothing was read.
SET crm.user_name = '';
SELECT regress.try($q$CREATE FUNCTION pg_temp.as_bob() RETURNS bigint[] LANGUAGE sql SET crm.user_name = 'bob'
    AS $$ SELECT array_agg(id ORDER BY id) FROM sales.leads $$$q$);
RESET SESSION AUTHORIZATION;
CREATE FUNCTION regress.as_bob() RETURNS bigint[] LANGUAGE sql SET crm.user_name = 'bob'
    AS $$ SELECT array_agg(id ORDER BY id) FROM sales.leads $$;
SET SESSION AUTHORIZATION crm_app;
SELECT regress.as_bob();
SELECT crm.acting_user(), count(*) FROM sales.leads;
-- Nor may a query that reads a table, a statement inside a function or DO block, or one
-- reached through EXPLAIN or a cursor; each refusal leaves the acting user as it was.
BEGIN;
SET LOCAL crm.user_name = 'alice';
SELECT regress.try($$SELECT set_config('crm.user_name', 'root', true) FROM sales.leads LIMIT 1$$);
SELECT crm.acting_user();
SAVEPOINT s;
SELECT set_config('crm.user_name', 'root', true) FROM sales.leads LIMIT 1;
ROLLBACK TO s;
DO $$ BEGIN PERFORM set_config('crm.user_name', 'root', true); END $$;
ROLLBACK TO s;
DO $$ BEGIN SET LOCAL crm.user_name = 'root'; END $$;
ROLLBACK TO s;
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT set_config('crm.user_name', 'root', true);
ROLLBACK TO s;
DECLARE c CURSOR FOR SELECT set_config('crm.user_name', 'root', true);
FETCH c;
ROLLBACK TO s;
SELECT crm.acting_user(), array_agg(id ORDER BY id) FROM sales.leads;
-- A query of the client's own that reads nothing may: set_config, crm.set_user (through the
-- protocol's own prepared statements too: the client tests). Not a statement prepared with
-- SQL's PREPARE, which code running in the session could have replaced.
SELECT set_config('crm.user_name', 'bob', true);
SELECT crm.acting_user();
SELECT crm.set_user('mgr_west');
SELECT crm.acting_user();
PREPARE as_user(text) AS SELECT crm.set_user($1);
SAVEPOINT p;
EXECUTE as_user('alice');
ROLLBACK TO p;
SELECT crm.acting_user();
DEALLOCATE as_user;
COMMIT;
-- A connection option is session-level too, and so is ALTER ROLE ... SET, also when
-- SET LOCAL ... TO DEFAULT brings the value back inside a transaction (a function whose
-- plans were cached then would serve the next client of a pooled connection).
\c 'dbname=crm_regress user=crm_app options=-ccrm.user_name=bob'
SELECT regress.try($$SELECT count(*) FROM sales.leads$$);
BEGIN;
SET LOCAL crm.user_name TO DEFAULT;
SELECT regress.try($$SELECT count(*) FROM sales.leads$$);
ROLLBACK;
\c -reuse-previous=off 'dbname=crm_regress user=postgres'
CREATE FUNCTION regress.leads_seen() RETURNS bigint[] LANGUAGE plpgsql AS $$
BEGIN RETURN (SELECT array_agg(id ORDER BY id) FROM sales.leads); END $$;
ALTER ROLE crm_app IN DATABASE crm_regress SET crm.user_name = 'bob';
\c -reuse-previous=off 'dbname=crm_regress user=crm_app'
SELECT regress.try($$SELECT regress.leads_seen()$$);
BEGIN;
SET LOCAL crm.user_name TO DEFAULT;
SELECT regress.try($$SELECT regress.leads_seen()$$);
COMMIT;
SELECT regress.try($$SELECT regress.leads_seen()$$);
BEGIN;
SET LOCAL crm.user_name = 'bob';
SELECT regress.leads_seen();
COMMIT;
SELECT regress.try($$SELECT regress.leads_seen()$$);
\c -reuse-previous=off 'dbname=crm_regress user=postgres'
ALTER ROLE crm_app IN DATABASE crm_regress RESET crm.user_name;
DROP FUNCTION regress.leads_seen();
-- A session that does not load the library as it starts (the test cluster does, as the
-- README asks): until it loads, crm.user_name and the other settings are placeholders anyone's
-- code may set. Only a superuser may switch the check off, for a session or a role: not even
-- before the library is loaded (the value set then is dropped when it loads), nor after. And
-- an acting user set before it loads is refused (who set it cannot be told), until the app
-- sets one again, which crm.set_user() can do in a fresh session too.
ALTER ROLE crm_app IN DATABASE crm_regress SET session_preload_libraries = 'plpgsql';
\c -reuse-previous=off 'dbname=crm_regress user=crm_app'
SET crm.require_local_user = off;
SELECT crm.set_user('bob', is_local => false);
SHOW crm.require_local_user;
SELECT regress.try($$SELECT count(*) FROM sales.leads$$);
SELECT regress.try($$SET crm.require_local_user = off$$);
\c -reuse-previous=off 'dbname=crm_regress user=crm_app'
BEGIN;
SET LOCAL crm.user_name = 'alice';
SAVEPOINT s;
SELECT count(*) FROM sales.leads;
ROLLBACK TO s;
SELECT crm.set_user('alice');
SELECT crm.acting_user(), array_agg(id ORDER BY id) FROM sales.leads;
COMMIT;
\c -reuse-previous=off 'dbname=crm_regress user=crm_app'
BEGIN;
SELECT crm.set_user('alice');
SELECT crm.acting_user(), array_agg(id ORDER BY id) FROM sales.leads;
COMMIT;
-- Loaded by code nested in a statement (here a function's query), the library cannot tell
-- where the client's statement began: nothing may assert a user until the transaction ends.
\c -reuse-previous=off 'dbname=crm_regress user=crm_app'
BEGIN;
SELECT regress.try($$SELECT crm.acting_user()$$);
SELECT crm.set_user('alice');
COMMIT;
BEGIN;
SELECT crm.set_user('alice');
SELECT crm.acting_user(), array_agg(id ORDER BY id) FROM sales.leads;
COMMIT;
\c -reuse-previous=off 'dbname=crm_regress user=postgres'
ALTER ROLE crm_app IN DATABASE crm_regress RESET session_preload_libraries;
-- Switched off, the session-wide form works, and NULL or '' unsets.
RESET SESSION AUTHORIZATION;
SET crm.require_local_user = off;
SET SESSION AUTHORIZATION crm_app;
SELECT crm.set_user('bob', is_local => false);
SELECT crm.acting_user(), array_agg(id ORDER BY id) FROM sales.leads;
SELECT crm.set_user(NULL, is_local => false);
SELECT crm.acting_user(), count(*) FROM sales.leads;
SELECT crm.set_user('bob', is_local => false);
SET crm.user_name = '';
SELECT crm.acting_user(), count(*) FROM sales.leads;
RESET SESSION AUTHORIZATION;
RESET crm.require_local_user;
-- A superuser's session is not checked (superusers bypass row security anyway).
SET crm.user_name = 'bob';
SET ROLE crm_app;
SELECT crm.acting_user(), array_agg(id ORDER BY id) FROM sales.leads;
RESET ROLE;
RESET crm.user_name;
SET SESSION AUTHORIZATION crm_app;

-- An unknown user: no rows, writes refused.
BEGIN;
SET LOCAL crm.user_name = 'nobody';
SELECT crm.acting_user(), count(*) FROM sales.leads;
SELECT regress.try($$UPDATE sales.leads SET company = 'x'$$);
ROLLBACK;

-- A disabled user: no rows, writes refused; enabled again, back at the next statement.
RESET SESSION AUTHORIZATION;
SELECT crm.set_user_active('bob', false);
SET SESSION AUTHORIZATION crm_app;
BEGIN;
SET LOCAL crm.user_name = 'bob';
SELECT crm.acting_user(), count(*) FROM sales.leads;
SELECT regress.try($$INSERT INTO sales.leads VALUES (99, 'x', crm.owner_id('bob'))$$);
ROLLBACK;
RESET SESSION AUTHORIZATION;
SELECT crm.set_user_active('bob', true);
SET SESSION AUTHORIZATION crm_app;
BEGIN;
SET LOCAL crm.user_name = 'bob';
SELECT crm.acting_user(), array_agg(id ORDER BY id) FROM sales.leads;
ROLLBACK;

-- A trusted role can be distrusted, a mapping removed: effective at the next statement.
RESET SESSION AUTHORIZATION;
SELECT crm.distrust_role('crm_app');
SELECT crm.unmap_db_role('bi_alice');
SET SESSION AUTHORIZATION crm_app;
SELECT regress.try($$SELECT crm.set_user('alice')$$);
SET SESSION AUTHORIZATION bi_alice;
SELECT crm.acting_user(), count(*) FROM sales.leads;

-- clean up for the next suite
\set ECHO none
SET client_min_messages = warning;
RESET SESSION AUTHORIZATION;
DROP SCHEMA sales CASCADE;
DROP SCHEMA regress CASCADE;
DROP EXTENSION crm_access CASCADE;
