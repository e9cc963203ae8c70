-- crm_access 0.3.0 -> 0.4.0: the model opens (DESIGN §9; issues 25 and 26). What every
-- section makes is what a fresh install of 0.4.0 makes (sql/*.sql); the upgrade test compares
-- the two, and every user's decisions before and after.

-- 1. Modules are data (issue 25): the columns of crm.modules and the relations between
-- modules, whose shipped rows (`standard`) are what 0.3.0 had in its code: Contacts controlled
-- by Accounts, conversations linked to Leads and Contacts, Messages and Activities governing
-- conversations and events, and Accounts' related modules (now also PurchaseOrders, which a
-- private Accounts default already made private). Seeding them is no change of the model, so
-- it is not logged: a past catalog rebuilt from the log keeps them.
-- Added without defaults, filled, then given them: a default given by ADD COLUMN stays with
-- the table as the value of rows older than the column, which a fresh install has not.
ALTER TABLE crm.modules
    ADD COLUMN standard boolean,
    ADD COLUMN controlled_by text REFERENCES crm.modules (name),
    ADD COLUMN holds text UNIQUE CHECK (holds IN ('conversations', 'events')),
    ADD COLUMN links_conversations boolean,
    ADD CHECK (controlled_by IS DISTINCT FROM name);
ALTER TABLE crm.modules REPLICA IDENTITY FULL;
UPDATE crm.catalog_tables SET dumped = true WHERE tbl = 'crm.modules'::regclass;
CREATE TABLE crm.module_relations (
    parent   text    NOT NULL REFERENCES crm.modules (name),
    child    text    NOT NULL REFERENCES crm.modules (name),
    standard boolean NOT NULL DEFAULT false,
    PRIMARY KEY (parent, child),
    CHECK (parent <> child)
);
INSERT INTO crm.catalog_tables VALUES ('crm.module_relations', true, true, true);
ALTER TABLE crm.module_relations REPLICA IDENTITY FULL;
GRANT SELECT ON crm.module_relations TO PUBLIC;

ALTER TABLE crm.modules DISABLE TRIGGER audit_update;
UPDATE crm.modules SET standard = true, links_conversations = false;
ALTER TABLE crm.modules ALTER COLUMN standard SET DEFAULT false, ALTER COLUMN standard SET NOT NULL,
    ALTER COLUMN links_conversations SET DEFAULT false, ALTER COLUMN links_conversations SET NOT NULL;
UPDATE crm.modules SET controlled_by = 'Accounts' WHERE name = 'Contacts';
UPDATE crm.modules SET holds = 'conversations' WHERE name = 'Messages';
UPDATE crm.modules SET holds = 'events' WHERE name = 'Activities';
UPDATE crm.modules SET links_conversations = true WHERE name IN ('Leads', 'Contacts');
ALTER TABLE crm.modules ENABLE ALWAYS TRIGGER audit_update;
INSERT INTO crm.module_relations (parent, child, standard) VALUES
    ('Accounts', 'Opportunities', true), ('Accounts', 'Tickets', true), ('Accounts', 'Quotes', true),
    ('Accounts', 'SalesOrders', true), ('Accounts', 'PurchaseOrders', true), ('Accounts', 'Invoices', true),
    ('Opportunities', 'Quotes', true), ('Opportunities', 'SalesOrders', true),
    ('Quotes', 'SalesOrders', true), ('SalesOrders', 'Invoices', true);

-- What every compiled, audited and dumped table gets (sql/triggers.sql, sql/audit.sql,
-- sql/operations.sql, sql/ownership.sql), for the new table; crm.modules is dumped now too.
CREATE TRIGGER catalog_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON crm.module_relations
    FOR EACH STATEMENT EXECUTE FUNCTION crm.catalog_changed();
ALTER TABLE crm.module_relations ENABLE ALWAYS TRIGGER catalog_changed;
CREATE TRIGGER catalog_changed_applied AFTER INSERT OR UPDATE OR DELETE ON crm.module_relations
    FOR EACH ROW EXECUTE FUNCTION crm.catalog_changed();
ALTER TABLE crm.module_relations ENABLE REPLICA TRIGGER catalog_changed_applied;
CREATE TRIGGER audit_insert AFTER INSERT ON crm.module_relations REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION crm.audit_statement();
CREATE TRIGGER audit_update AFTER UPDATE ON crm.module_relations REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION crm.audit_statement();
CREATE TRIGGER audit_delete AFTER DELETE ON crm.module_relations REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION crm.audit_statement();
CREATE TRIGGER audit_truncate BEFORE TRUNCATE ON crm.module_relations
    FOR EACH STATEMENT EXECUTE FUNCTION crm.audit_statement();
ALTER TABLE crm.module_relations ENABLE ALWAYS TRIGGER audit_insert, ENABLE ALWAYS TRIGGER audit_update,
    ENABLE ALWAYS TRIGGER audit_delete, ENABLE ALWAYS TRIGGER audit_truncate;
CREATE TRIGGER refuse_on_subscriber BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON crm.modules
    FOR EACH STATEMENT EXECUTE FUNCTION crm.refuse_on_subscriber();
CREATE TRIGGER refuse_on_subscriber BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON crm.module_relations
    FOR EACH STATEMENT EXECUTE FUNCTION crm.refuse_on_subscriber();
ALTER TABLE crm.module_relations OWNER TO crm_access_catalog;
SELECT pg_catalog.pg_extension_config_dump('crm.modules', 'WHERE NOT standard');
SELECT pg_catalog.pg_extension_config_dump('crm.module_relations', 'WHERE NOT standard');

-- The same, as the table list of CREATE PUBLICATION ... FOR TABLE: a table with shipped rows
-- (crm.modules, crm.module_relations) is published without them, which CREATE EXTENSION made
-- on the subscriber too (the initial copy would collide with them).
--   DO $$ BEGIN EXECUTE 'CREATE PUBLICATION crm FOR TABLE ' || crm.publication_tables(); END $$;
CREATE FUNCTION crm.publication_tables() RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT string_agg(t::text || CASE WHEN EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = t AND a.attname = 'standard' AND NOT a.attisdropped
                                                    AND t IN (SELECT tbl FROM crm.catalog_tables))
                                      THEN ' WHERE (NOT standard)' ELSE '' END, ', ' ORDER BY t::text)
    FROM crm.replicated_tables() t
$$;

-- The API of modules (src/api/modules.rs, as pgrx declares it).
-- crm_access::api::modules::create_module
CREATE  FUNCTION "create_module"(
	"name" TEXT, /* Option < & str > */
	"parent" TEXT DEFAULT NULL, /* Option < & str > */
	"controlled_by_parent" bool DEFAULT false /* Option < bool > */
) RETURNS void
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'create_module_wrapper';
-- crm_access::api::modules::drop_module
CREATE  FUNCTION "drop_module"(
	"name" TEXT /* Option < & str > */
) RETURNS void
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'drop_module_wrapper';
-- crm_access::api::modules::relate_modules
CREATE  FUNCTION "relate_modules"(
	"parent" TEXT, /* Option < & str > */
	"child" TEXT /* Option < & str > */
) RETURNS void
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'relate_modules_wrapper';
-- crm_access::api::modules::unrelate_modules
CREATE  FUNCTION "unrelate_modules"(
	"parent" TEXT, /* Option < & str > */
	"child" TEXT /* Option < & str > */
) RETURNS void
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'unrelate_modules_wrapper';

-- The linked-owner triggers a protected table needs follow crm.modules (sql/guard.sql).
CREATE OR REPLACE FUNCTION crm.protection_problems(tbl regclass) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    WITH p AS (
        SELECT p.tbl, p.module, p.owner_column, p.key_column, c.relrowsecurity, c.relforcerowsecurity, c.relkind
        FROM crm.protected_tables p JOIN pg_class c ON c.oid = p.tbl
        WHERE p.tbl = $1
    ),
    expected_policies(name) AS (VALUES ('crm_base'), ('crm_read'), ('crm_create'), ('crm_edit'), ('crm_delete')),
    expected_triggers(name, fn) AS (
        VALUES ('crm_field_check', 'crm.check_field_writes()'::regprocedure),
               ('crm_field_check_insert', 'crm.check_field_writes()'::regprocedure),
               ('crm_truncate_check', 'crm.check_truncate()'::regprocedure)
        UNION ALL SELECT t.name, 'crm.push_linked_owner()'::regprocedure
            FROM p, unnest(ARRAY['crm_linked_owner_update', 'crm_linked_owner_delete']) AS t(name)
            WHERE EXISTS (SELECT 1 FROM crm.modules m WHERE m.name = p.module AND m.links_conversations)
        UNION ALL SELECT 'crm_keep_parent_owner', 'crm.keep_parent_owner()'::regprocedure
            WHERE EXISTS (SELECT 1 FROM crm.parent_links l WHERE l.child = $1)
        UNION ALL SELECT t.name, 'crm.push_parent_owner()'::regprocedure
            FROM unnest(ARRAY['crm_push_parent_owner', 'crm_push_parent_owner_delete']) AS t(name)
            WHERE EXISTS (SELECT 1 FROM crm.parent_links l WHERE l.parent = $1)
    ),
    problems(problem) AS (
        SELECT 'row level security is disabled' FROM p WHERE NOT p.relrowsecurity
        UNION ALL SELECT 'FORCE ROW LEVEL SECURITY is off' FROM p WHERE NOT p.relforcerowsecurity
        UNION ALL SELECT format('policy %s is missing', e.name) FROM p, expected_policies e
            WHERE NOT EXISTS (SELECT 1 FROM pg_policy x WHERE x.polrelid = p.tbl AND x.polname = e.name)
        UNION ALL SELECT format('trigger %s is missing, disabled or not crm_access''s', e.name) FROM p, expected_triggers e
            WHERE NOT EXISTS (SELECT 1 FROM pg_trigger t WHERE t.tgrelid = p.tbl AND t.tgname = e.name
                                                           AND t.tgfoid = e.fn AND t.tgenabled IN ('O', 'A'))
        UNION ALL SELECT 'it is part of an inheritance tree or partitioned' FROM p
            WHERE p.relkind <> 'r' OR EXISTS (SELECT 1 FROM pg_inherits h WHERE h.inhrelid = p.tbl OR h.inhparent = p.tbl)
        -- Conversations and children find their records by the key the table had when protected.
        UNION ALL SELECT format('its primary key on %I is gone', p.key_column) FROM p
            WHERE p.key_column IS NOT NULL AND NOT EXISTS (
                SELECT 1 FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
                WHERE i.indrelid = p.tbl AND i.indisprimary AND i.indnkeyatts = 1 AND a.attname = p.key_column)
        UNION ALL SELECT format('its link column %I is gone', l.parent_column) FROM p JOIN crm.parent_links l ON l.child = p.tbl
            WHERE NOT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = p.tbl AND a.attname = l.parent_column AND NOT a.attisdropped)
        -- The policies follow the owner column itself, the copies and pushes its name: renamed,
        -- another column could stand under that name (red team round 8).
        UNION ALL SELECT format('its owner column %I is gone', p.owner_column) FROM p
            WHERE NOT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = p.tbl AND a.attname = p.owner_column AND NOT a.attisdropped)
        -- A rule's actions would run beside crm_access's own statements on the table, with
        -- their exemptions (src/enforce/opened.rs; issue 24).
        UNION ALL SELECT 'it has rules' FROM p WHERE EXISTS (SELECT 1 FROM pg_rewrite r WHERE r.ev_class = p.tbl)
        -- Restored on its own (pg_dump -t) into a database with crm_access, or its catalog
        -- row lost: it admits nobody, but nothing would keep it whole (issue 27).
        UNION ALL SELECT 'crm_access has no record of it, though it carries crm_access''s policies (restored without its catalog row?): crm.protect() it again'
            WHERE NOT EXISTS (SELECT 1 FROM crm.protected_tables r WHERE r.tbl = $1)
              AND crm.unregistered_problems($1) IS DISTINCT FROM 'not crm_access''s'
    )
    SELECT string_agg(problem, '; ' ORDER BY problem) FROM problems
$$;
