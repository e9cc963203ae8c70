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

-- Session-wide when asked; NULL or '' unsets.
SELECT crm.set_user('bob', is_local => false);
SELECT crm.acting_user(), array_agg(id ORDER BY id) FROM sales.leads;
SELECT crm.set_user(NULL, is_local => false);
SELECT crm.acting_user(), count(*) FROM sales.leads;
SET crm.user_name = '';
SELECT crm.acting_user(), count(*) FROM sales.leads;

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
