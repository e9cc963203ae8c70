-- Field access (DESIGN §3.2): profile field access combined by union, global field access
-- overriding profiles, View All / Edit All, admins; secure views masking hidden fields;
-- writes to hidden and read-only fields refused (through the view or the table), naming the
-- field and changing nothing; row rules still apply through the view.
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

ALTER TABLE sales.leads ADD COLUMN phone text, ADD COLUMN budget int, ADD COLUMN ssn text, ADD COLUMN notes text;
UPDATE sales.leads SET phone = '555-' || id, budget = id * 100, ssn = 'ssn-' || id, notes = 'note ' || id;
-- Sales: phone hidden, budget read-only, notes hidden. Carol's role also carries Wide
-- (phone read-only, notes hidden): the most open wins. ssn is hidden globally.
SELECT crm.set_field_access('Sales', 'Leads', 'phone', 'hidden');
SELECT crm.set_field_access('Sales', 'Leads', 'budget', 'read_only');
SELECT crm.set_field_access('Sales', 'Leads', 'notes', 'hidden');
SELECT crm.create_profile('Wide');
SELECT crm.grant_privileges('Wide', 'Leads', ARRAY['read']);
SELECT crm.set_field_access('Wide', 'Leads', 'phone', 'read_only');
SELECT crm.set_field_access('Wide', 'Leads', 'notes', 'hidden');
SELECT crm.attach_profile('Rep_East', 'Wide');
SELECT crm.set_global_field_access('Leads', 'ssn', false);
SELECT crm.create_permission_set('Editors', edit_all => true);
SELECT crm.create_user('edith', 'Support') > 0 AS created;
SELECT crm.assign_permission_set('Editors', 'user', 'edith');
SELECT p.name, f.module, f.field, f.access FROM crm.field_access f JOIN crm.profiles p ON p.id = f.profile_id ORDER BY 1, 3;
SELECT * FROM crm.hidden_fields;
SELECT crm.secure_view('sales.leads');
GRANT SELECT, INSERT, UPDATE, DELETE ON sales.leads_secure TO crm_app, bi_alice;

CREATE FUNCTION regress.masked(who text) RETURNS SETOF sales.leads_secure LANGUAGE plpgsql AS $$
BEGIN
    PERFORM regress.act_as(who);
    RETURN QUERY SELECT * FROM sales.leads_secure WHERE id IN (41, 42, 71) ORDER BY id;
    PERFORM regress.act_done();
END $$;

-- The field check triggers an UPDATE fired, from EXPLAIN ANALYZE (the update is rolled back).
CREATE FUNCTION regress.field_checks(sql text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE line text; fired text := '';
BEGIN
    FOR line IN EXECUTE 'EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) ' || sql LOOP
        IF line ~ '^Trigger crm_field_check' THEN fired := fired || line; END IF;
    END LOOP;
    RAISE EXCEPTION USING ERRCODE = 'P0004', MESSAGE = coalesce(nullif(fired, ''), 'no field check trigger call');
EXCEPTION WHEN assert_failure THEN
    GET STACKED DIAGNOSTICS line = MESSAGE_TEXT;
    RETURN line;
END $$;

SET SESSION AUTHORIZATION crm_app;
-- alice (Sales): phone, notes and ssn read NULL; her own rows only.
SELECT * FROM regress.masked('alice');
-- carol (Sales + Wide): phone is visible (read-only in Wide beats hidden in Sales).
SELECT * FROM regress.masked('carol');
-- erin (View All, Auditor profile mentions no field): every field but ssn, every row.
SELECT * FROM regress.masked('erin');
-- edith (Edit All through a permission set; her ReadOnly profile mentions no field): the same.
SELECT * FROM regress.masked('edith');
-- root (admin): ssn too.
SELECT * FROM regress.masked('root');
-- No identity: no rows.
SELECT count(*) FROM sales.leads_secure;

-- The view stays sargable: the masking folds away at plan time.
BEGIN;
SET LOCAL crm.user_name = 'alice';
EXPLAIN (COSTS OFF) SELECT company, phone FROM sales.leads_secure WHERE id = 41;
COMMIT;

-- Writes: a writable field through the view; a read-only or hidden one is refused, through
-- the view or directly, naming the field; leaving a hidden field alone is not a change.
BEGIN;
SET LOCAL crm.user_name = 'alice';
UPDATE sales.leads_secure SET company = 'renamed' WHERE id = 41;
SELECT regress.try($$UPDATE sales.leads_secure SET budget = 1 WHERE id = 41$$);
SELECT regress.try($$UPDATE sales.leads_secure SET phone = 'x' WHERE id = 42$$);
SELECT regress.try($$UPDATE sales.leads SET notes = 'x' WHERE id = 42$$);
SELECT regress.try($$UPDATE sales.leads SET ssn = NULL WHERE id = 42$$);
UPDATE sales.leads SET budget = budget, company = company || '!' WHERE id = 42;
INSERT INTO sales.leads_secure (id, company, owner_id) VALUES (49, 'via the view', crm.owner_id('alice'));
SELECT regress.try($$INSERT INTO sales.leads_secure (id, company, owner_id, notes) VALUES (48, 'noted', crm.owner_id('alice'), 'n')$$);
SELECT regress.try($$INSERT INTO sales.leads (id, company, owner_id, budget) VALUES (48, 'budgeted', crm.owner_id('alice'), 5)$$);
-- Row rules still apply through the view: bob's lead is not there to update or delete.
WITH u AS (UPDATE sales.leads_secure SET company = 'hijacked' WHERE id = 51 RETURNING id) SELECT count(*) AS updated FROM u;
SELECT regress.try($$INSERT INTO sales.leads_secure (id, company, owner_id) VALUES (47, 'for bob', crm.owner_id('bob'))$$);
DELETE FROM sales.leads_secure WHERE id = 49;
COMMIT;
-- Setting a hidden field through the view is refused even to the stored value, which the
-- table's check alone takes for no change: accepted, it would confirm a guess of the value
-- (red team round 6). Inserting one is refused the same way. Nothing changed.
BEGIN;
SET LOCAL crm.user_name = 'alice';
SELECT regress.try($$UPDATE sales.leads_secure SET notes = 'note 42' WHERE id = 42$$);
SELECT regress.try($$UPDATE sales.leads_secure SET phone = '555-42', company = company WHERE id = 42$$);
SELECT regress.try($$INSERT INTO sales.leads_secure (id, company, owner_id, ssn) VALUES (48, 'guess', crm.owner_id('alice'), 'ssn-48')$$);
COMMIT;
-- The check costs nothing when no restricted field changes: the triggers' WHEN conditions are
-- planned per statement for the writer, so they are not even called.
BEGIN;
SET LOCAL crm.user_name = 'alice';
SELECT regress.field_checks($$UPDATE sales.leads SET company = company || '?'$$);
SET LOCAL crm.user_name = 'root';
SELECT regress.field_checks($$UPDATE sales.leads SET phone = phone || '?', ssn = ssn$$);
COMMIT;
-- A restricted field whose type has no equality (point) cannot be compared in the condition:
-- then the trigger is called for every row and compares the stored bytes itself.
RESET SESSION AUTHORIZATION;
ALTER TABLE sales.leads ADD COLUMN spot point;
SELECT crm.set_field_access('Sales', 'Leads', 'spot', 'read_only');
SET SESSION AUTHORIZATION crm_app;
BEGIN;
SET LOCAL crm.user_name = 'alice';
SELECT regress.field_checks($$UPDATE sales.leads SET company = company || '?'$$);
COMMIT;
RESET SESSION AUTHORIZATION;
SELECT crm.set_field_access('Sales', 'Leads', 'spot', 'read_write');
ALTER TABLE sales.leads DROP COLUMN spot;
-- So is one whose type calls values equal that differ in bytes (numeric 100 and 100.00000,
-- interval '1 day' and '24 hours'): a read-only field cannot be rewritten with an "equal"
-- value (red team round 6); writing the same bytes is no change.
ALTER TABLE sales.leads ADD COLUMN price numeric DEFAULT 100, ADD COLUMN span interval DEFAULT '1 day';
SELECT crm.set_field_access('Sales', 'Leads', 'price', 'read_only');
SELECT crm.set_field_access('Sales', 'Leads', 'span', 'read_only');
SET SESSION AUTHORIZATION crm_app;
BEGIN;
SET LOCAL crm.user_name = 'alice';
SELECT regress.field_checks($$UPDATE sales.leads SET company = company || '?'$$);
SELECT regress.try($$UPDATE sales.leads SET price = 100.00000 WHERE id = 41$$);
SELECT regress.try($$UPDATE sales.leads SET span = '24 hours' WHERE id = 41$$);
UPDATE sales.leads SET price = price, span = span, company = company WHERE id = 41 RETURNING id, price, span;
COMMIT;
RESET SESSION AUTHORIZATION;
SELECT id, price, span FROM sales.leads WHERE id = 41;
SELECT crm.set_field_access('Sales', 'Leads', f, 'read_write') FROM unnest(ARRAY['price', 'span']) f;
ALTER TABLE sales.leads DROP COLUMN price, DROP COLUMN span;
-- bpchar's btree class vouches for equal images, yet its equality ignores trailing spaces,
-- which an unbounded bpchar keeps: compared by the trigger too (red team round 7). A domain
-- default fills a column an INSERT leaves out, as a column default does: that INSERT is no
-- write of the field (it was refused).
CREATE DOMAIN sales.tier AS text DEFAULT 'standard';
ALTER TABLE sales.leads ADD COLUMN code bpchar DEFAULT 'ab', ADD COLUMN tier sales.tier;
SELECT crm.set_field_access('Sales', 'Leads', f, 'read_only') FROM unnest(ARRAY['code', 'tier']) f;
SET SESSION AUTHORIZATION crm_app;
BEGIN;
SET LOCAL crm.user_name = 'alice';
SELECT regress.try($$UPDATE sales.leads SET code = 'ab      ' WHERE id = 41$$);
INSERT INTO sales.leads (id, company, owner_id) VALUES (43, 'new', crm.owner_id('alice')) RETURNING id, code, tier;
SELECT regress.try($$INSERT INTO sales.leads (id, company, owner_id, tier) VALUES (44, 'new', crm.owner_id('alice'), 'gold')$$);
ROLLBACK;
RESET SESSION AUTHORIZATION;
SELECT crm.set_field_access('Sales', 'Leads', f, 'read_write') FROM unnest(ARRAY['code', 'tier']) f;
ALTER TABLE sales.leads DROP COLUMN code, DROP COLUMN tier;
DROP DOMAIN sales.tier;
SET SESSION AUTHORIZATION crm_app;
-- carol may not change phone (read-only for her); edith may change every field but ssn.
BEGIN;
SET LOCAL crm.user_name = 'carol';
SELECT regress.try($$UPDATE sales.leads_secure SET phone = '1' WHERE id = 71$$);
SET LOCAL crm.user_name = 'edith';
UPDATE sales.leads_secure SET phone = '555-0000', notes = 'checked' WHERE id = 71;
SELECT regress.try($$UPDATE sales.leads SET ssn = 'x' WHERE id = 71$$);
COMMIT;
RESET SESSION AUTHORIZATION;
SELECT id, company, phone, budget, ssn, notes FROM sales.leads WHERE id IN (41, 42, 48, 49, 51, 71) ORDER BY id;

-- A BI login sees the view as its user does.
SET SESSION AUTHORIZATION bi_alice;
SELECT id, phone, budget FROM sales.leads_secure ORDER BY id;
RESET SESSION AUTHORIZATION;

-- A new column appears in the view after crm.secure_view is called again.
ALTER TABLE sales.leads ADD COLUMN rating int DEFAULT 3;
SELECT crm.secure_view('sales.leads');
SELECT crm.set_field_access('Sales', 'Leads', 'rating', 'hidden');
SET SESSION AUTHORIZATION crm_app;
SELECT id, rating FROM regress.masked('alice');
SELECT id, rating FROM regress.masked('erin');
-- A column filled by its default on INSERT is not the writer's value.
BEGIN;
SET LOCAL crm.user_name = 'alice';
INSERT INTO sales.leads (id, company, owner_id) VALUES (46, 'defaulted', crm.owner_id('alice'));
ROLLBACK;
RESET SESSION AUTHORIZATION;

-- Errors.
SELECT regress.try($$SELECT crm.set_field_access('Sales', 'Leads', 'no_such_field', 'hidden')$$);
SELECT regress.try($$SELECT crm.set_field_access('Sales', 'Leads', 'phone', 'invisible')$$);
SELECT regress.try($$SELECT crm.set_field_access('Nope', 'Leads', 'phone', 'hidden')$$);
SELECT regress.try($$SELECT crm.set_global_field_access('Quotes', 'phone', false)$$);
SELECT regress.try($$SELECT crm.secure_view('regress.catalog_size')$$);
SET SESSION AUTHORIZATION crm_app;
SET crm.user_name = 'alice';
SELECT regress.try($$SELECT crm.set_field_access('Sales', 'Leads', 'phone', 'read_write')$$);
RESET crm.user_name;
RESET SESSION AUTHORIZATION;
-- read_write is the default: setting it removes the restriction.
SELECT crm.set_field_access('Sales', 'Leads', 'phone', 'read_write');
SELECT crm.set_global_field_access('Leads', 'ssn', true);
SELECT count(*) AS restrictions FROM crm.field_access WHERE field IN ('phone', 'ssn');
SELECT count(*) AS hidden FROM crm.hidden_fields;

-- clean up for the next suite
\set ECHO none
SET client_min_messages = warning;
RESET SESSION AUTHORIZATION;
DROP SCHEMA sales CASCADE;
DROP SCHEMA regress CASCADE;
DROP EXTENSION crm_access CASCADE;
