-- Who owns what (DESIGN §5). Run last, once every object of the extension exists.
--
-- crm_access_catalog (created in sql/catalog.sql) owns every table and view of the
-- extension, and no function: nothing of the extension is SECURITY DEFINER, and what runs as
-- that role runs through src/catalog/privileged.rs, with crm_access's own statements.
-- crm_access_views owns the secure views (crm.secure_view creates them as that role) and is
-- the one role that may run crm.secure_view_write(), their trigger, so nobody else may attach
-- it. It owns no function (issue 24): none of its code can be altered by anything that ever
-- got to run as it, and no DDL runs as it but crm_access's own (sql/guard.sql).
-- It is neither SUPERUSER nor BYPASSRLS: it sees every row of crm.conversations,
-- crm.messages and crm.events only as their owner (they are not FORCE'd), and reaches no
-- user table at all. Functions stay owned by whoever installed the extension, and run as
-- their caller.
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN
        SELECT c.oid::regclass AS rel, c.relkind
        FROM pg_catalog.pg_class c
        JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.objid = c.oid AND d.deptype = 'e'
        JOIN pg_catalog.pg_extension e ON e.oid = d.refobjid AND e.extname = 'crm_access'
        WHERE c.relkind IN ('r', 'v')
    LOOP
        EXECUTE pg_catalog.format('ALTER %s %s OWNER TO crm_access_catalog', CASE r.relkind WHEN 'v' THEN 'VIEW' ELSE 'TABLE' END, r.rel);
    END LOOP;
END $$;

REVOKE ALL ON FUNCTION crm.forget_dropped_tables() FROM PUBLIC;

REVOKE ALL ON FUNCTION crm.secure_view_write() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION crm.secure_view_write() TO crm_access_views;

-- pg_dump keeps the rows of every table declared dumped in crm.catalog_tables (but the
-- shipped ones, `standard`), and the positions of the sequences its identity columns draw from.
DO $$
DECLARE t regclass;
BEGIN
    FOR t IN
        SELECT tbl FROM crm.catalog_tables WHERE dumped
        UNION ALL
        SELECT d.objid::regclass FROM crm.catalog_tables c
        JOIN pg_catalog.pg_depend d ON d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.refobjid = c.tbl
             AND d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.deptype IN ('a', 'i')
        JOIN pg_catalog.pg_class s ON s.oid = d.objid AND s.relkind = 'S'
        WHERE c.dumped
    LOOP
        -- A table with shipped rows keeps only the others: CREATE EXTENSION makes the shipped ones.
        PERFORM pg_catalog.pg_extension_config_dump(t, CASE WHEN EXISTS (
            SELECT 1 FROM pg_catalog.pg_attribute a WHERE a.attrelid = t AND a.attname = 'standard' AND NOT a.attisdropped)
            THEN 'WHERE NOT standard' ELSE '' END);
    END LOOP;
END $$;
