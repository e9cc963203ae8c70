-- Secure views with only the view granted (DESIGN §3.2, §4): a BI login granted
-- sales.leads_secure and nothing on sales.leads reads its user's rows with hidden fields
-- masked and cannot read the table; a writer granted only the view writes what its user may
-- write, with the same row counts and errors as on the table. Every view the extension
-- creates is read with the minimal grants a client gets.
-- Leads 41-42 are alice's, 51-52 bob's, 71-72 carol's.
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
SELECT crm.set_sharing_default('Leads', 'public_read');
SELECT crm.secure_view('sales.leads');
SELECT relowner::regrole AS view_owner, reloptions FROM pg_class WHERE oid = 'sales.leads_secure'::regclass;

-- The recipe: a BI login gets USAGE on the schema and SELECT on the view, nothing on the table.
CREATE ROLE bi_view LOGIN;
SELECT crm.map_db_role('alice', 'bi_view');
GRANT USAGE ON SCHEMA sales TO bi_view;
GRANT SELECT ON sales.leads_secure TO bi_view;
SET SESSION AUTHORIZATION bi_view;
SELECT id, company, owner_id = crm.owner_id('alice') AS own, phone, ssn FROM sales.leads_secure WHERE id IN (41, 51, 71) ORDER BY id;
SELECT count(*) AS visible FROM sales.leads_secure;
SELECT regress.try($$SELECT count(*) FROM sales.leads$$);
SELECT regress.try($$UPDATE sales.leads_secure SET company = 'x' WHERE id = 41$$);
-- Hidden fields read NULL even to a function that would record them.
CREATE FUNCTION pg_temp.peek(v text) RETURNS boolean LANGUAGE plpgsql COST 0.0001 AS $$
BEGIN RAISE NOTICE 'peeked %', v; RETURN true; END $$;
SELECT count(*) FROM sales.leads_secure WHERE pg_temp.peek(phone) AND id = 41;
RESET SESSION AUTHORIZATION;

-- A writer granted only the view, through the trusted app: as on the table, rows it may
-- read but not change count 0, and a refused field reads like the table's own error.
CREATE ROLE view_app LOGIN;
SELECT crm.trust_role('view_app');
GRANT USAGE ON SCHEMA sales TO view_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON sales.leads_secure TO view_app;
SET SESSION AUTHORIZATION view_app;
BEGIN;
SET LOCAL crm.user_name = 'alice';
WITH u AS (UPDATE sales.leads_secure SET company = 'renamed' WHERE id = 41 RETURNING id) SELECT count(*) AS renamed_own FROM u;
WITH u AS (UPDATE sales.leads_secure SET company = company WHERE id = 41 RETURNING id) SELECT count(*) AS no_op_own FROM u;
WITH u AS (UPDATE sales.leads_secure SET company = company WHERE id = 51 RETURNING id) SELECT count(*) AS no_op_bobs FROM u;
WITH u AS (UPDATE sales.leads_secure SET company = 'hijacked' WHERE id = 51 RETURNING id) SELECT count(*) AS renamed_bobs FROM u;
WITH d AS (DELETE FROM sales.leads_secure WHERE id = 51 RETURNING id) SELECT count(*) AS deleted_bobs FROM d;
UPDATE sales.leads_secure SET phone = 'x' WHERE id = 42;
ROLLBACK;
BEGIN;
SET LOCAL crm.user_name = 'alice';
INSERT INTO sales.leads_secure (id, company, owner_id) VALUES (49, 'via the view', crm.owner_id('alice')) RETURNING id, company;
INSERT INTO sales.leads_secure (id, company, owner_id, ssn) VALUES (48, 'planted', crm.owner_id('alice'), 'x');
ROLLBACK;
BEGIN;
SET LOCAL crm.user_name = 'alice';
DELETE FROM sales.leads_secure WHERE id = 42;
SELECT regress.try($$SELECT count(*) FROM sales.leads$$);
ROLLBACK;
RESET SESSION AUTHORIZATION;
-- The same statements on the table count the same.
BEGIN;
SET LOCAL crm.user_name = 'alice';
SET LOCAL ROLE crm_app;
WITH u AS (UPDATE sales.leads SET company = company WHERE id = 51 RETURNING id) SELECT count(*) AS no_op_bobs FROM u;
WITH d AS (DELETE FROM sales.leads WHERE id = 51 RETURNING id) SELECT count(*) AS deleted_bobs FROM d;
ROLLBACK;
SELECT id, company FROM sales.leads WHERE id IN (41, 42, 48, 49, 51) ORDER BY id;

-- The trigger refuses on any view crm.secure_view did not make; nobody else may attach it.
CREATE VIEW sales.other AS SELECT id, company, owner_id FROM sales.leads;
CREATE TRIGGER w INSTEAD OF UPDATE ON sales.other FOR EACH ROW EXECUTE FUNCTION crm.secure_view_write();
SELECT regress.try($$UPDATE sales.other SET company = 'x' WHERE id = 41$$);
SET SESSION AUTHORIZATION crm_stranger;
CREATE TEMP VIEW mine AS SELECT 1 AS id;
SELECT regress.try($$CREATE TRIGGER w INSTEAD OF UPDATE ON mine FOR EACH ROW EXECUTE FUNCTION crm.secure_view_write()$$);
RESET SESSION AUTHORIZATION;

-- Refreshing: a new column appears at the end; a renamed one rebuilds the view, and its
-- grants stay. A column dropped with CASCADE drops the view with it: make it again and
-- grant it again.
ALTER TABLE sales.leads ADD COLUMN budget numeric;
SELECT crm.secure_view('sales.leads');
ALTER TABLE sales.leads RENAME COLUMN budget TO forecast;
SELECT crm.secure_view('sales.leads');
SELECT attname FROM pg_attribute WHERE attrelid = 'sales.leads_secure'::regclass AND attnum > 0 ORDER BY attnum;
SELECT grantee, string_agg(privilege_type, ', ' ORDER BY privilege_type) FROM information_schema.role_table_grants
WHERE table_schema = 'sales' AND table_name = 'leads_secure' AND grantee IN ('bi_view', 'view_app') GROUP BY 1 ORDER BY 1;
ALTER TABLE sales.leads DROP COLUMN phone CASCADE;
SELECT count(*) AS still_registered FROM crm.secure_views;
SELECT crm.secure_view('sales.leads');
GRANT SELECT ON sales.leads_secure TO bi_view;
SET SESSION AUTHORIZATION bi_view;
SELECT id, ssn, forecast FROM sales.leads_secure WHERE id = 41;
RESET SESSION AUTHORIZATION;

-- Migration: a secure view made by crm_access 0.1.0 (as the extension owner, security_invoker,
-- not registered) is made again as the views role, with its grants.
CREATE TABLE sales.contacts (id bigint PRIMARY KEY, name text, email text, owner_id bigint NOT NULL);
SELECT crm.protect('sales.contacts', 'Contacts');
CREATE VIEW sales.contacts_secure WITH (security_invoker = true) AS
SELECT CASE WHEN crm.field_visible('sales.contacts'::regclass, 'id') THEN id END AS id,
       CASE WHEN crm.field_visible('sales.contacts'::regclass, 'name') THEN name END AS name,
       CASE WHEN crm.field_visible('sales.contacts'::regclass, 'email') THEN email END AS email,
       CASE WHEN crm.field_visible('sales.contacts'::regclass, 'owner_id') THEN owner_id END AS owner_id
FROM sales.contacts;
GRANT SELECT ON sales.contacts_secure TO bi_view;
SELECT crm.secure_view('sales.contacts');
SELECT relowner::regrole AS owner, reloptions, has_table_privilege('bi_view', oid, 'SELECT') AS bi_keeps_select
FROM pg_class WHERE oid = 'sales.contacts_secure'::regclass;

-- A table owner who is no superuser makes the secure view of their own table, and may
-- grant it to whom they like.
CREATE ROLE view_owner;
CREATE SCHEMA crmapp AUTHORIZATION view_owner;
GRANT view_owner TO crm_app;
SET SESSION AUTHORIZATION view_owner;
CREATE TABLE crmapp.accounts (id bigint PRIMARY KEY, name text, revenue numeric, owner_id bigint NOT NULL);
INSERT INTO crmapp.accounts VALUES (1, 'alice''s', 10, 4), (2, 'carol''s', 20, 7);
RESET SESSION AUTHORIZATION;
SELECT crm.protect('crmapp.accounts', 'Accounts');
SELECT crm.set_field_access('Sales', 'Accounts', 'revenue', 'read_only');
UPDATE crmapp.accounts SET owner_id = crm.owner_id(CASE id WHEN 1 THEN 'alice' ELSE 'carol' END);
SET SESSION AUTHORIZATION crm_app;
BEGIN;
SET LOCAL crm.user_name = 'root';
SET LOCAL ROLE view_owner;
SELECT crm.secure_view('crmapp.accounts');
GRANT USAGE ON SCHEMA crmapp TO bi_view, view_app;
GRANT SELECT ON crmapp.accounts_secure TO bi_view;
GRANT SELECT, UPDATE ON crmapp.accounts_secure TO view_app;
COMMIT;
RESET SESSION AUTHORIZATION;
SELECT has_schema_privilege('crm_access_views', 'crmapp', 'CREATE') AS views_role_keeps_create;
SET SESSION AUTHORIZATION bi_view;
SELECT id, name, revenue FROM crmapp.accounts_secure ORDER BY id;
RESET SESSION AUTHORIZATION;
SET SESSION AUTHORIZATION view_app;
BEGIN;
SET LOCAL crm.user_name = 'alice';
UPDATE crmapp.accounts_secure SET name = 'alice''s, renamed' WHERE id = 1;
UPDATE crmapp.accounts_secure SET revenue = 0 WHERE id = 1;
ROLLBACK;
RESET SESSION AUTHORIZATION;

-- A child linked to its parent reads the parent when written: through its view too, with
-- the views role granted the parent (crm.secure_view grants it).
CREATE TABLE sales.opportunities (id bigint PRIMARY KEY, owner_id bigint NOT NULL, account_id bigint);
SELECT crm.protect('sales.opportunities', 'Opportunities');
SELECT crm.grant_privileges('Sales', 'Opportunities', ARRAY['read', 'create', 'edit']);
SELECT crm.link_parent('sales.opportunities', 'account_id', 'sales.accounts');
SELECT crm.secure_view('sales.opportunities');
GRANT SELECT, INSERT ON sales.opportunities_secure TO view_app;
SET SESSION AUTHORIZATION view_app;
BEGIN;
SET LOCAL crm.user_name = 'alice';
INSERT INTO sales.opportunities_secure (id, owner_id, account_id) VALUES (1, crm.owner_id('alice'), 4);
SELECT regress.try($$INSERT INTO sales.opportunities_secure (id, owner_id, account_id) VALUES (2, crm.owner_id('alice'), 7)$$);
SELECT id, account_id, crm_parent_owner = crm.owner_id('alice') AS kept FROM sales.opportunities_secure;
ROLLBACK;
RESET SESSION AUTHORIZATION;

-- The extension's other views need no grant beyond what every role has: the inbox tabs
-- read crm.conversations as the caller (security_invoker), and crm.calendar reads
-- crm.events as its owner, crm_access_catalog, masking what the user may not read.
SELECT c.relname, c.relowner::regrole AS owner, coalesce(c.reloptions, '{}') AS options, has_table_privilege('bi_view', c.oid, 'SELECT') AS bi_may_read
FROM pg_class c WHERE c.relnamespace = 'crm'::regnamespace AND c.relkind = 'v' ORDER BY 1;
SELECT crm.grant_privileges('Sales', 'Activities', ARRAY['read', 'create', 'edit']);
SELECT crm.grant_privileges('Sales', 'Messages', ARRAY['read']);
SELECT crm.set_message_permissions('Sales', ARRAY['mine']);
INSERT INTO crm.events (owner_id, subject, description, starts_at, ends_at)
VALUES (crm.owner_id('alice'), 'alice''s call', 'details', '2026-12-01 10:00', '2026-12-01 11:00'),
       (crm.owner_id('bob'), 'bob''s call', 'details', '2026-12-01 12:00', '2026-12-01 13:00');
INSERT INTO crm.conversations (subject, assigned_to) VALUES ('for alice', crm.owner_id('alice')), ('for bob', crm.owner_id('bob'));
SET SESSION AUTHORIZATION bi_view;
SELECT owner, subject, description, busy_only FROM crm.calendar ORDER BY starts_at;
SELECT subject FROM crm.inbox_all ORDER BY subject;
SELECT subject FROM crm.inbox_assigned_to_me ORDER BY subject;
RESET SESSION AUTHORIZATION;

-- clean up for the next suite
\set ECHO none
SET client_min_messages = warning;
RESET SESSION AUTHORIZATION;
DROP SCHEMA crmapp CASCADE;
DROP SCHEMA sales CASCADE;
DROP SCHEMA regress CASCADE;
DROP EXTENSION crm_access CASCADE;
REVOKE view_owner FROM crm_app;
DROP OWNED BY bi_view, view_app, view_owner;
DROP ROLE bi_view, view_app, view_owner;
