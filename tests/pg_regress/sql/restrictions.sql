-- Restriction rules (DESIGN §9, issue 25): for the users a rule applies to, records of the
-- module are reachable only when a column's text is one of the rule's values, on top of
-- everything else; rules for one user OR together; administrators are exempt, View All is not.
-- Leads 11-72: ten times the user's number plus 1 or 2 (ceo, vp, mgr_west, alice, bob,
-- mgr_east, carol); odd ids are West, even ids East, but 52 has no region and 62 is 'east'.
\set ECHO none
\o /dev/null
CREATE EXTENSION crm_access;
\i tests/fixtures/helpers.sql
\i tests/fixtures/org.sql
\o
\set ECHO all
\i examples/restrictions/regions.sql
UPDATE sales.leads SET region = CASE WHEN id % 2 = 1 THEN 'West' ELSE 'East' END;
UPDATE sales.leads SET region = NULL WHERE id = 52;
UPDATE sales.leads SET region = 'east' WHERE id = 62;
ALTER TABLE sales.leads ADD COLUMN tier integer, ADD COLUMN score numeric, ADD COLUMN key uuid;
UPDATE sales.leads SET tier = id / 10;
GRANT SELECT, INSERT, UPDATE, DELETE ON sales.leads TO crm_app;
SELECT rule_id > 0 AS has_id, module, kind, name, column_name, allowed FROM crm.restriction_rules;
-- The rules are readable for audits by any login, with no grant of its own (the BI login, a
-- stranger), as the other directories are; writes go through the functions only.
SET SESSION AUTHORIZATION bi_alice;
SELECT count(*) AS rules_bi_alice_reads FROM crm.restriction_rules;
SELECT regress.try($$DELETE FROM crm.restrictions$$);
RESET SESSION AUTHORIZATION;
SET SESSION AUTHORIZATION crm_stranger;
SELECT count(*) AS rules_a_stranger_reads FROM crm.restriction_rules;
SELECT regress.try($$INSERT INTO crm.restrictions (module, kind, target_id, column_name, allowed) VALUES ('Leads', 'role', 1, 'region', '{x}')$$);
RESET SESSION AUTHORIZATION;

CREATE FUNCTION regress.leads_of(who text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE ids text;
BEGIN
    PERFORM regress.act_as(who);
    SELECT string_agg(id::text, ',' ORDER BY id) INTO ids FROM sales.leads;
    PERFORM regress.act_done();
    RETURN who || ': ' || coalesce(ids, '-');
END $$;
GRANT EXECUTE ON FUNCTION regress.leads_of(text) TO crm_app;

-- The rule narrows what the West team reaches by owner (its members' own and those below
-- them) to region West; carol (Rep_East) and vp (above Mgr_West) are not restricted.
SET SESSION AUTHORIZATION crm_app;
SELECT regress.leads_of(u) FROM unnest(ARRAY['mgr_west', 'alice', 'bob', 'carol', 'vp']) AS u;
RESET SESSION AUTHORIZATION;

-- View All is restricted, administrators are not (rules on erin's and root's roles).
SELECT crm.add_restriction_rule('Leads', 'role', 'Audit', 'region', ARRAY['East']) AS audit_rule \gset
SELECT crm.add_restriction_rule('Leads', 'role', 'IT', 'region', ARRAY['East']) > 0 AS it_rule;
SET SESSION AUTHORIZATION crm_app;
SELECT regress.leads_of(u) FROM unnest(ARRAY['erin', 'root']) AS u;
RESET SESSION AUTHORIZATION;

-- A group's members: carol, in group East_Team, reads her East lead only.
SELECT crm.create_group('East_Team') > 0 AS group_created;
SELECT crm.add_group_member('East_Team', 'user', 'carol');
SELECT crm.add_restriction_rule('Leads', 'group', 'East_Team', 'region', ARRAY['East']) > 0 AS group_rule;
-- The holders of a permission set: bob holds Tiered, whose rule allows tier 5 (his own two
-- leads); with the West rule, the two OR together: bob reads 51 (West) and 52 (tier 5, no
-- region), mgr_west still 31, 41, 51.
SELECT crm.create_permission_set('Tiered');
SELECT crm.assign_permission_set('Tiered', 'user', 'bob');
SELECT crm.add_restriction_rule('Leads', 'permission_set', 'Tiered', 'tier', ARRAY['5', '007']) AS tier_rule \gset
SET SESSION AUTHORIZATION crm_app;
SELECT regress.leads_of(u) FROM unnest(ARRAY['carol', 'bob', 'mgr_west']) AS u;
RESET SESSION AUTHORIZATION;
-- Text is compared as the column's type writes it: '05' is no integer's text (5 is '5'), so
-- bob's tier-5 lead without a region is outside.
SELECT crm.drop_restriction_rule(:tier_rule);
SELECT crm.add_restriction_rule('Leads', 'permission_set', 'Tiered', 'tier', ARRAY['05']) AS tier_rule \gset
SET SESSION AUTHORIZATION crm_app;
SELECT regress.leads_of('bob');
RESET SESSION AUTHORIZATION;

-- explain_access names the rules that removed access; who_can leaves the restricted out.
SELECT crm.explain_access('sales.leads', 42, 'read', 'alice');
SELECT crm.explain_access('sales.leads', 41, 'read', 'alice');
SELECT crm.explain_access('sales.leads', 52, 'edit', 'mgr_west');
SELECT crm.explain_access('sales.leads', 41, 'read', 'erin');
SELECT crm.explain_access('sales.leads', 41, 'read', 'root');
SELECT crm.who_can('sales.leads', 42, 'read');

-- Writes: a new or changed row outside the rules is refused like a policy's WITH CHECK;
-- rows outside them are not there to change or delete.
SET SESSION AUTHORIZATION crm_app;
BEGIN;
SET LOCAL crm.user_name = 'alice';
SELECT regress.try($$INSERT INTO sales.leads (id, company, owner_id, region) VALUES (43, 'new east', crm.owner_id('alice'), 'East')$$);
SELECT regress.try($$INSERT INTO sales.leads (id, company, owner_id, region) VALUES (44, 'no region', crm.owner_id('alice'), NULL)$$);
INSERT INTO sales.leads (id, company, owner_id, region) VALUES (45, 'new west', crm.owner_id('alice'), 'West');
SELECT regress.try($$UPDATE sales.leads SET region = 'East' WHERE id = 41$$);
UPDATE sales.leads SET company = 'renamed' WHERE id = 42;
DELETE FROM sales.leads WHERE id = 42;
SELECT id, company, region FROM sales.leads ORDER BY id;
ROLLBACK;
RESET SESSION AUTHORIZATION;
SELECT id, company, region FROM sales.leads WHERE id IN (41, 42) ORDER BY id;
-- TRUNCATE removes every record, so it needs delete access to every record: a restricted user
-- is refused even where the owner scope is everything (red team of issue 25).
SELECT crm.set_sharing_default('Leads', 'public_read_write_delete');
GRANT TRUNCATE ON sales.leads TO crm_app;
SET SESSION AUTHORIZATION crm_app;
BEGIN;
SET LOCAL crm.user_name = 'alice';
SELECT regress.try($$TRUNCATE sales.leads$$);
ROLLBACK;
RESET SESSION AUTHORIZATION;
SELECT count(*) AS leads_kept FROM sales.leads;
SELECT crm.set_sharing_default('Leads', 'private');
REVOKE TRUNCATE ON sales.leads FROM crm_app;

-- Folded at plan time into the column's own type, so that an index on it serves the read.
SET SESSION AUTHORIZATION crm_app;
BEGIN;
SET LOCAL crm.user_name = 'erin';
SET LOCAL enable_seqscan = off;
EXPLAIN (COSTS OFF) SELECT id FROM sales.leads;
SET LOCAL crm.user_name = 'alice';
EXPLAIN (COSTS OFF) SELECT id FROM sales.leads WHERE company <> '';
SET LOCAL crm.user_name = 'root';
EXPLAIN (COSTS OFF) SELECT id FROM sales.leads;
ROLLBACK;
RESET SESSION AUTHORIZATION;
SELECT crm.drop_restriction_rule(:audit_rule);

-- The column: missing or of a type rules cannot compare, refused; nothing changed (a
-- nondeterministic collation: the suite restrictions_icu).
SELECT regress.catalog_digest() AS before \gset
SELECT regress.try($$SELECT crm.add_restriction_rule('Leads', 'role', 'Audit', 'nowhere', ARRAY['x'])$$);
SELECT regress.try($$SELECT crm.add_restriction_rule('Leads', 'role', 'Audit', 'score', ARRAY['1'])$$);
-- Every other bad input: NULLs, empty and NULL values, unknown kinds and names, a module of
-- crm_access's own, a module named like SQL.
SELECT regress.try($$SELECT crm.add_restriction_rule(NULL, 'role', 'Audit', 'region', ARRAY['x'])$$);
SELECT regress.try($$SELECT crm.add_restriction_rule('Leads', NULL, 'Audit', 'region', ARRAY['x'])$$);
SELECT regress.try($$SELECT crm.add_restriction_rule('Leads', 'role', NULL, 'region', ARRAY['x'])$$);
SELECT regress.try($$SELECT crm.add_restriction_rule('Leads', 'role', 'Audit', NULL, ARRAY['x'])$$);
SELECT regress.try($$SELECT crm.add_restriction_rule('Leads', 'role', 'Audit', 'region', NULL)$$);
SELECT regress.try($$SELECT crm.add_restriction_rule('Leads', 'role', 'Audit', 'region', '{}')$$);
SELECT regress.try($$SELECT crm.add_restriction_rule('Leads', 'role', 'Audit', 'region', ARRAY['x', NULL])$$);
SELECT regress.try($$SELECT crm.add_restriction_rule('Leads', 'user', 'alice', 'region', ARRAY['x'])$$);
SELECT regress.try($$SELECT crm.add_restriction_rule('Leads', 'role', 'Nobody', 'region', ARRAY['x'])$$);
SELECT regress.try($$SELECT crm.add_restriction_rule('Leads''; DROP TABLE sales.leads; --', 'role', 'Audit', 'region', ARRAY['x'])$$);
SELECT regress.try($$SELECT crm.add_restriction_rule('Messages', 'role', 'Audit', 'region', ARRAY['x'])$$);
SELECT regress.try($$SELECT crm.add_restriction_rule('Leads', 'role', 'Audit', '', ARRAY['x'])$$);
SELECT regress.try($$SELECT crm.add_restriction_rule('Leads', 'role', 'Audit', 'region"; DROP TABLE sales.leads; --', ARRAY['x'])$$);
SELECT regress.try($$SELECT crm.add_restriction_rule('Leads', 'role', 'Audit', 'region', ARRAY(SELECT g::text FROM generate_series(1, 1001) g))$$);
SELECT regress.try($$SELECT crm.add_restriction_rule('Leads', 'role', 'Audit', 'region', ARRAY[repeat('x', 1001)])$$);
SELECT regress.try($$SELECT crm.drop_restriction_rule(NULL)$$);
SELECT regress.try($$SELECT crm.drop_restriction_rule(-1)$$);
-- Removing what a rule names is refused while it does.
SELECT regress.try($$SELECT crm.drop_group('East_Team')$$);
SELECT regress.try($$SELECT crm.drop_permission_set('Tiered')$$);
SELECT regress.try($$SELECT crm.delete_role('IT')$$);
SELECT regress.try($$SELECT crm.drop_module('Leads')$$);
-- Only administrators add or drop rules.
SET SESSION AUTHORIZATION crm_app;
BEGIN;
SET LOCAL crm.user_name = 'mgr_west';
SELECT regress.try($$SELECT crm.add_restriction_rule('Leads', 'role', 'Rep_East', 'region', ARRAY['x'])$$);
SELECT regress.try($$SELECT crm.drop_restriction_rule(1)$$);
ROLLBACK;
RESET SESSION AUTHORIZATION;
SET SESSION AUTHORIZATION crm_stranger;
SELECT regress.try($$SELECT crm.add_restriction_rule('Leads', 'role', 'Rep_East', 'region', ARRAY['x'])$$);
RESET SESSION AUTHORIZATION;
SELECT regress.catalog_digest() = :'before' AS nothing_changed;
SELECT crm.drop_restriction_rule(:tier_rule);
-- A module a rule names cannot be dropped.
SELECT crm.create_module('Scratch');
SELECT crm.add_restriction_rule('Scratch', 'role', 'Audit', 'anything', ARRAY['x']) AS scratch_rule \gset
SELECT regress.try($$SELECT crm.drop_module('Scratch')$$);
SELECT crm.drop_restriction_rule(:scratch_rule);
SELECT crm.drop_module('Scratch');

-- A table of the module must have the column: protect refuses one without it, and the
-- guard refuses its owner dropping, renaming or retyping it.
CREATE ROLE regress_lead_owner;
GRANT USAGE, CREATE ON SCHEMA sales TO regress_lead_owner;
SET SESSION AUTHORIZATION regress_lead_owner;
CREATE TABLE sales.more_leads (id bigint PRIMARY KEY, company text, owner_id bigint NOT NULL);
RESET SESSION AUTHORIZATION;
SELECT regress.try($$SELECT crm.protect('sales.more_leads', 'Leads')$$);
SET SESSION AUTHORIZATION regress_lead_owner;
ALTER TABLE sales.more_leads ADD COLUMN region varchar(10);
RESET SESSION AUTHORIZATION;
SELECT crm.protect('sales.more_leads', 'Leads');
SET SESSION AUTHORIZATION regress_lead_owner;
SELECT regress.try($$ALTER TABLE sales.more_leads DROP COLUMN region$$);
SELECT regress.try($$ALTER TABLE sales.more_leads RENAME COLUMN region TO area$$);
SELECT regress.try($$ALTER TABLE sales.more_leads ALTER COLUMN region TYPE numeric USING NULL$$);
SELECT regress.try($$ALTER POLICY crm_restrict ON sales.more_leads USING (true)$$);
SELECT regress.try($$DROP POLICY crm_restrict ON sales.more_leads$$);
ALTER TABLE sales.more_leads ALTER COLUMN region TYPE text;
RESET SESSION AUTHORIZATION;
-- A varchar column folds as text, and the rule holds there too.
INSERT INTO sales.more_leads VALUES (1, 'w', crm.owner_id('alice'), 'West'), (2, 'e', crm.owner_id('alice'), 'East');
GRANT SELECT ON sales.more_leads TO crm_app;
SET SESSION AUTHORIZATION crm_app;
BEGIN;
SET LOCAL crm.user_name = 'alice';
SELECT id, region FROM sales.more_leads ORDER BY id;
ROLLBACK;
RESET SESSION AUTHORIZATION;

-- The policy function as written, without the planner's folding (a row that is no column
-- reference): it reads the row's column; a row of another type, NULLs refuse.
SET SESSION AUTHORIZATION crm_app;
BEGIN;
SET LOCAL crm.user_name = 'alice';
SELECT crm.within_restrictions('sales.leads', l) AS own_row FROM sales.leads l WHERE id = 41;
SELECT crm.within_restrictions('sales.leads', ROW(42, 'x', 4, 'West', 4, NULL, NULL)::sales.leads) AS west_row,
       crm.within_restrictions('sales.leads', ROW(42, 'x', 4, 'East', 4, NULL, NULL)::sales.leads) AS east_row,
       crm.within_restrictions('sales.leads', ROW(42, 'x', 4, NULL, 4, NULL, NULL)::sales.leads) AS no_region_row;
SELECT crm.within_restrictions('sales.leads', ROW(41, 'x', 1, 'West', 4, NULL, NULL)) AS record_row;
SELECT crm.within_restrictions('sales.leads', a) AS account_row FROM sales.accounts a LIMIT 1;
SELECT crm.within_restrictions(NULL, l) AS null_table, crm.within_restrictions('sales.leads', NULL::sales.leads) AS null_row
FROM sales.leads l WHERE id = 41;
ROLLBACK;
RESET SESSION AUTHORIZATION;

-- Audited like every catalog change; dropping the last rule gives the team everything back.
SELECT operation, details->'args' AS args FROM crm.audit_log WHERE operation LIKE '%restriction_rule' ORDER BY id;
SELECT crm.drop_restriction_rule(rule_id) FROM crm.restriction_rules;
SET SESSION AUTHORIZATION crm_app;
SELECT regress.leads_of('mgr_west');
RESET SESSION AUTHORIZATION;

SET client_min_messages = warning;
DROP SCHEMA sales CASCADE;
DROP SCHEMA regress CASCADE;
DROP EXTENSION crm_access CASCADE;
DROP ROLE regress_lead_owner;
