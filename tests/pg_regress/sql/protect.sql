-- crm.protect: errors, idempotence, restrictive policies that other policies cannot
-- widen, FORCE for the table owner, and crm.unprotect.
\set ECHO none
\o /dev/null
CREATE EXTENSION crm_access;
\i tests/fixtures/helpers.sql
\i tests/fixtures/org.sql
\o
\set ECHO all
CREATE TABLE sales.notes (id bigint PRIMARY KEY, body text, owner integer, author bigint);
SELECT regress.try($$SELECT crm.protect('sales.nothing', 'Leads')$$);
SELECT regress.try($$SELECT crm.protect('sales.notes', 'Leads')$$);
SELECT regress.try($$SELECT crm.protect('sales.notes', 'Leads', 'owner')$$);
SELECT regress.try($$SELECT crm.protect('sales.notes', 'Widgets', 'author')$$);
CREATE VIEW sales.note_view AS SELECT * FROM sales.notes;
SELECT regress.try($$SELECT crm.protect('sales.note_view', 'Leads', 'author')$$);
SELECT count(*) FROM crm.protected_tables;
SELECT count(*) FROM pg_policy WHERE polrelid = 'sales.notes'::regclass;

-- Protecting twice is the same as once (and warns about a missing owner index).
SELECT crm.protect('sales.notes', 'Leads', 'author');
SELECT crm.protect('sales.notes', 'Leads', 'author');
SELECT policyname, permissive, cmd, qual, with_check FROM pg_policies WHERE tablename = 'notes' ORDER BY policyname;
SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE oid = 'sales.notes'::regclass;
SELECT * FROM crm.protected_tables WHERE tbl = 'sales.notes'::regclass;

INSERT INTO sales.notes VALUES (1, 'by alice', NULL, crm.owner_id('alice')), (2, 'by carol', NULL, crm.owner_id('carol'));
-- A permissive policy added by someone else cannot widen access.
CREATE POLICY everyone ON sales.notes FOR SELECT USING (true);
-- The table owner is subject to the policies too (FORCE ROW LEVEL SECURITY).
CREATE ROLE notes_owner LOGIN;
ALTER TABLE sales.notes OWNER TO notes_owner;
SELECT crm.map_db_role('carol', 'notes_owner');
GRANT USAGE ON SCHEMA sales TO notes_owner;
GRANT SELECT ON sales.notes TO crm_app;
SET SESSION AUTHORIZATION notes_owner;
SELECT id, body FROM sales.notes ORDER BY id;
SET SESSION AUTHORIZATION crm_app;
BEGIN;
SET LOCAL crm.user_name = 'alice';
SELECT id, body FROM sales.notes ORDER BY id;
ROLLBACK;

-- Unprotecting removes exactly what protect added.
RESET SESSION AUTHORIZATION;
SELECT regress.try($$SELECT crm.unprotect('sales.note_view')$$);
SELECT crm.unprotect('sales.notes');
SELECT policyname FROM pg_policies WHERE tablename = 'notes' ORDER BY policyname;
SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE oid = 'sales.notes'::regclass;
SELECT count(*) FROM crm.protected_tables WHERE tbl = 'sales.notes'::regclass;
DROP TABLE sales.notes CASCADE;
DROP OWNED BY notes_owner;
DROP ROLE notes_owner;

-- clean up for the next suite
\set ECHO none
SET client_min_messages = warning;
RESET SESSION AUTHORIZATION;
DROP SCHEMA sales CASCADE;
DROP SCHEMA regress CASCADE;
DROP EXTENSION crm_access CASCADE;
