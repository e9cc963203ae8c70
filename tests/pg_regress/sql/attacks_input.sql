-- Attack tier (docs/security.md): hostile input to every function of the extension and
-- direct tampering with its catalog. Every bad call gets an error with its SQLSTATE (never
-- an internal error, never a crash), and the catalog is byte for byte what it was.
\set ECHO none
\o /dev/null
CREATE EXTENSION crm_access;
\i tests/fixtures/helpers.sql
\i tests/fixtures/org.sql
\o
\set ECHO all
CREATE TABLE regress.before AS SELECT regress.catalog_digest() AS digest;

-- Every function of the extension a client can call, with every argument NULL, as a
-- superuser (who may administer): an error naming the argument, or a defined answer.
SELECT p.oid::regprocedure AS function,
       regress.try(format('SELECT %s(%s)', p.oid::regproc,
                          (SELECT string_agg(format('NULL::%s', format_type(t, NULL)), ', ' ORDER BY i)
                           FROM unnest(p.proargtypes) WITH ORDINALITY AS a(t, i)))) AS answer
FROM pg_proc p
WHERE p.pronamespace = 'crm'::regnamespace AND p.pronargs > 0
  AND p.prorettype NOT IN ('trigger'::regtype, 'event_trigger'::regtype, 'internal'::regtype)
  AND NOT 'internal'::regtype = ANY(p.proargtypes)
ORDER BY p.proname, 1::text;
SELECT digest = regress.catalog_digest() AS catalog_unchanged FROM regress.before;

-- Names that are not names: too long, control characters, blank; names that are SQL.
SELECT regress.try(format('SELECT crm.create_role(%L, %L)', repeat('r', 201), 'CEO'));
SELECT regress.try($$SELECT crm.create_user(E'mallory\nroot', 'CEO')$$);
SELECT regress.try($$SELECT crm.create_group(E'\t')$$);
SELECT regress.try(format('SELECT crm.create_profile(%L)', repeat('p', 100000)));
SELECT regress.try(format('SELECT crm.attach_profile(%L, %L)', repeat('r', 100000), 'Sales'));
SELECT regress.try($$SELECT crm.set_user_active(E'ghost\r\n[ERROR] forged log line', false)$$);
SELECT digest = regress.catalog_digest() AS catalog_unchanged FROM regress.before;
SELECT crm.create_role($$Robert'); DROP TABLE crm.roles; --$$, 'CEO');
SELECT crm.create_user($$eve"; SELECT 1; --$$, $$Robert'); DROP TABLE crm.roles; --$$);
SELECT o.name, r.name AS role FROM crm.users u JOIN crm.owners o ON o.id = u.owner_id JOIN crm.roles r ON r.id = u.role_id
WHERE o.name LIKE 'eve%';

-- Wrong types and values where the SQL types cannot catch them.
SELECT regress.try($$SELECT crm.protect('sales.leads', 'Leads', 'company')$$);
SELECT regress.try($$SELECT crm.explain_access('sales.leads', timestamptz '2026-01-01 00:00:00+00')$$);
SELECT regress.try($$SELECT crm.explain_access('sales.leads', 'forty-one'::text)$$);
SELECT regress.try($$SELECT crm.set_field_access('Sales', 'Leads', 'company', 'invisible')$$);
SELECT regress.try($$SELECT crm.add_sharing_rule('Leads', 'role', 'CEO', 'user', 'alice', 'read')$$);
SELECT regress.try($$SELECT crm.set_message_permissions('Sales', ARRAY['mine', NULL])$$);
SELECT regress.try($$SELECT crm.grant_privileges('Sales', 'Leads', ARRAY['read; DROP TABLE crm.roles'])$$);

-- Odd identifiers, from the catalog to dynamic SQL: quotes, spaces, semicolons, dollars.
CREATE SCHEMA "odd; schema";
CREATE TABLE "odd; schema"."lead ""list"" $$x$$" (
    "the id" bigint PRIMARY KEY,
    "own""er" bigint NOT NULL,
    "ph'one; --" text,
    "$f$" text
);
CREATE TABLE "odd; schema"."acc$$ount" ("acc id" bigint PRIMARY KEY, "own er" bigint NOT NULL);
CREATE TABLE "odd; schema"."deal's" ("deal id" bigint PRIMARY KEY, "own er" bigint NOT NULL, "acc""ount" bigint);
SELECT crm.protect('"odd; schema"."lead ""list"" $$x$$"', 'Leads', 'own"er');
SELECT crm.protect('"odd; schema"."acc$$ount"', 'Accounts', 'own er');
SELECT crm.protect('"odd; schema"."deal''s"', 'Opportunities', 'own er');
SELECT crm.grant_privileges('Sales', 'Opportunities', ARRAY['read', 'create', 'edit']);
SELECT crm.link_parent('"odd; schema"."deal''s"', 'acc"ount', '"odd; schema"."acc$$ount"');
SELECT crm.set_field_access('Sales', 'Leads', 'ph''one; --', 'hidden');
SELECT crm.secure_view('"odd; schema"."lead ""list"" $$x$$"');
GRANT USAGE ON SCHEMA "odd; schema" TO crm_app;
GRANT SELECT, INSERT, UPDATE ON "odd; schema"."lead ""list"" $$x$$_secure", "odd; schema"."deal's" TO crm_app;
GRANT SELECT ON "odd; schema"."acc$$ount" TO crm_app;
INSERT INTO "odd; schema"."lead ""list"" $$x$$" VALUES (1, crm.owner_id('alice'), 'secret phone', 'dollar');
INSERT INTO "odd; schema"."acc$$ount" VALUES (1, crm.owner_id('alice'));
SET SESSION AUTHORIZATION crm_app;
BEGIN;
SET LOCAL crm.user_name = 'alice';
SELECT * FROM "odd; schema"."lead ""list"" $$x$$_secure";
UPDATE "odd; schema"."lead ""list"" $$x$$_secure" SET "$f$" = 'changed' WHERE "the id" = 1;
SELECT regress.try($q$UPDATE "odd; schema"."lead ""list"" $$x$$_secure" SET "ph'one; --" = 'x' WHERE "the id" = 1$q$);
INSERT INTO "odd; schema"."deal's" VALUES (1, crm.owner_id('alice'), 1);
SELECT "deal id", crm_parent_owner = crm.owner_id('alice') AS kept FROM "odd; schema"."deal's";
-- explain_access reads the record as the caller, who holds only the view here.
SELECT regress.try($q$SELECT crm.explain_access('"odd; schema"."lead ""list"" $$x$$"', 1)$q$);
COMMIT;
RESET SESSION AUTHORIZATION;
UPDATE "odd; schema"."acc$$ount" SET "own er" = crm.owner_id('bob');
SELECT "deal id", crm_parent_owner = crm.owner_id('bob') AS follows FROM "odd; schema"."deal's";
SELECT crm.unlink_parent('"odd; schema"."deal''s"');
SELECT crm.protection_problems('"odd; schema"."deal''s"'), crm.protection_problems('"odd; schema"."acc$$ount"');
SELECT tgname FROM pg_trigger WHERE tgrelid IN ('"odd; schema"."deal''s"'::regclass, '"odd; schema"."acc$$ount"'::regclass) AND tgname LIKE '%parent%';
SELECT crm.link_parent('"odd; schema"."deal''s"', 'acc"ount', '"odd; schema"."acc$$ount"');
SELECT crm.unprotect('"odd; schema"."deal''s"');
SELECT crm.protection_problems(tbl) FROM crm.protected_tables ORDER BY tbl::text;

-- Direct writes to the catalog, by the trusted app acting as an administrator, a mapped login
-- and a login nobody trusts: every table and sequence of the catalog refuses all of them.
-- (crm.conversations, crm.messages and crm.events take writes under row security: their
-- suites test those.)
DELETE FROM regress.before;
INSERT INTO regress.before SELECT regress.catalog_digest();
CREATE FUNCTION regress.tamper() RETURNS TABLE (target text, attempt text, answer text) LANGUAGE plpgsql AS $$
DECLARE r record; a text;
BEGIN
    FOR r IN SELECT c.oid::regclass::text AS name, c.relkind FROM pg_class c
             WHERE c.relnamespace = 'crm'::regnamespace AND c.relkind IN ('r', 'S')
               AND c.relname NOT IN ('conversations', 'messages', 'events') ORDER BY 1 LOOP
        FOREACH a IN ARRAY CASE WHEN r.relkind = 'S'
                                THEN ARRAY[format('SELECT nextval(%L)', r.name), format('SELECT setval(%L, 1)', r.name)]
                                ELSE ARRAY[format('INSERT INTO %s DEFAULT VALUES', r.name), format('UPDATE %s SET %I = %2$I', r.name, (SELECT a.attname FROM pg_attribute a WHERE a.attrelid = r.name::regclass AND a.attnum = 1)),
                                           format('DELETE FROM %s', r.name), format('TRUNCATE %s', r.name)] END LOOP
            target := r.name; attempt := split_part(a, ' ', 1); answer := regress.try(a);
            RETURN NEXT;
        END LOOP;
    END LOOP;
END $$;
SET SESSION AUTHORIZATION crm_app;
BEGIN;
SET LOCAL crm.user_name = 'root';
SELECT answer, count(*), string_agg(DISTINCT attempt, ', ' ORDER BY attempt) AS attempts FROM regress.tamper() GROUP BY answer ORDER BY answer;
SELECT target, attempt, answer FROM regress.tamper() WHERE answer NOT LIKE '42501: permission denied%' ORDER BY 1, 2;
ROLLBACK;
SET SESSION AUTHORIZATION bi_alice;
SELECT answer, count(*) FROM regress.tamper() GROUP BY answer ORDER BY answer;
SET SESSION AUTHORIZATION crm_stranger;
SELECT answer, count(*) FROM regress.tamper() GROUP BY answer ORDER BY answer;
RESET SESSION AUTHORIZATION;
SELECT digest = regress.catalog_digest() AS catalog_unchanged FROM regress.before;

-- Internal functions called directly with forged arguments: they answer for the acting user
-- only, refuse, or only ever restore truths; the catalog and data are unchanged.
SET SESSION AUTHORIZATION crm_app;
BEGIN;
SET LOCAL crm.user_name = 'alice';
SELECT crm.can('sales.leads', 'read', crm.owner_id('alice')) AS own, crm.can('sales.leads', 'read', crm.owner_id('carol')) AS carols,
       crm.can('crm.roles', 'read', 1) AS unprotected, crm.can('sales.leads', 'read', NULL) AS no_owner;
SELECT regress.try($$SELECT crm.can('sales.leads', 'fly', 1)$$);
SELECT regress.try($$SELECT crm.assert_can_assign('sales.leads', 'create', crm.owner_id('carol'))$$);
SELECT crm.can_converse('read', crm.owner_id('carol'), NULL, false, '{}') AS carols_conversation,
       crm.can_see_event('read', crm.owner_id('carol'), '{}', true) AS carols_event,
       crm.field_visible('sales.leads', 'phone') AS phone_visible;
SELECT regress.try($$SELECT crm.linked_record_owner('sales.leads'::regclass, 71)$$);
SELECT regress.try($$SELECT crm.linked_record_owner('sales.accounts'::regclass, 1)$$);
SELECT crm.copy_conversation_visibility(ARRAY[1, 2, 3]), crm.date_conversations(ARRAY[1]), crm.forget_missing_relations();
SELECT crm.protection_changing('sales.leads'::regclass) AS changing;
COMMIT;
RESET SESSION AUTHORIZATION;
SELECT digest = regress.catalog_digest() AS catalog_unchanged FROM regress.before;

-- crm_access's functions run with a pinned search_path: objects named like its own in the
-- temporary schema, or operators on bigint, change nothing.
SET SESSION AUTHORIZATION crm_app;
CREATE TEMP TABLE protected_tables (tbl regclass, module text, owner_column name, key_column name);
CREATE TEMP TABLE roles (id bigint, name text, parent_id bigint);
CREATE FUNCTION pg_temp.int8eq(bigint, bigint) RETURNS boolean LANGUAGE sql AS 'SELECT true';
CREATE OPERATOR pg_temp.= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = pg_temp.int8eq);
SET search_path = pg_temp, crm, public;
BEGIN;
SET LOCAL crm.user_name = 'alice';
SELECT array_agg(id ORDER BY id) FROM sales.leads;
SELECT regress.try($$SELECT crm.create_role('Temp', 'CEO')$$);
ROLLBACK;
BEGIN;
SET LOCAL crm.user_name = 'root';
SELECT crm.create_role('Pinned', 'CEO');
SELECT crm.explain_access('sales.leads', 41, 'read', 'carol');
ROLLBACK;
RESET search_path;
RESET SESSION AUTHORIZATION;
-- crm.catalog_changed() fires for the catalog's tables only: nobody attaches it elsewhere.
SET SESSION AUTHORIZATION crm_stranger;
CREATE TEMP TABLE mine (x int);
SELECT regress.try($$CREATE TRIGGER noisy AFTER INSERT ON mine FOR EACH STATEMENT EXECUTE FUNCTION crm.catalog_changed()$$);
RESET SESSION AUTHORIZATION;

-- clean up for the next suite
\set ECHO none
SET client_min_messages = warning;
RESET SESSION AUTHORIZATION;
DROP SCHEMA "odd; schema" CASCADE;
DROP SCHEMA sales CASCADE;
DROP SCHEMA regress CASCADE;
DROP EXTENSION crm_access CASCADE;
