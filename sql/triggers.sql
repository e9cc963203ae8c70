-- Any change to a table the model is compiled from (crm.catalog_tables), through the API or
-- by hand (pg_restore included), invalidates
-- the cached model and cached plans; see src/session/cache.rs for why this is transactional.
DO $$
DECLARE t regclass;
BEGIN
    FOR t IN SELECT tbl FROM crm.catalog_tables WHERE compiled ORDER BY tbl::text LOOP
        EXECUTE format('CREATE TRIGGER catalog_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON %s '
                       'FOR EACH STATEMENT EXECUTE FUNCTION crm.catalog_changed()', t);
        -- Also in replica mode: a logical replication apply worker (or a superuser's
        -- session_replication_role = replica) changes the catalog too (issue 27).
        EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER catalog_changed', t);
        -- A subscription's apply worker fires row triggers only (statement triggers only
        -- for TRUNCATE), and runs as a replica: this one fires in replica mode alone.
        EXECUTE format('CREATE TRIGGER catalog_changed_applied AFTER INSERT OR UPDATE OR DELETE ON %s '
                       'FOR EACH ROW EXECUTE FUNCTION crm.catalog_changed()', t);
        EXECUTE format('ALTER TABLE %s ENABLE REPLICA TRIGGER catalog_changed_applied', t);
    END LOOP;
END $$;

-- Only the catalog's own tables fire it: attached to any other table, it would make every
-- write there reset every session's plans and model.
REVOKE ALL ON FUNCTION crm.catalog_changed() FROM PUBLIC;

-- A crm table altered or its triggers replaced (ALTER TABLE ... DISABLE TRIGGER, pg_restore's
-- --disable-triggers, DROP and CREATE TRIGGER, a column rewritten): changes made while its
-- triggers were off reached none of them, so the commit compiles the catalog whole rather
-- than patch what the triggers saw (red team of issue 28, item 2). In replica mode too.
-- Only crm's tables: their owner or a superuser. And none of them may inherit or be
-- inherited from, or be a partition or have one: rows written through another table reach
-- none of the catalog's statement triggers, and the load reads them (red team, round 6).
CREATE FUNCTION crm.catalog_altered() RETURNS event_trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    t regclass;
BEGIN
    SELECT c.oid INTO t FROM pg_event_trigger_ddl_commands() d
    JOIN pg_inherits i ON d.classid = 'pg_class'::regclass AND d.objid IN (i.inhrelid, i.inhparent)
    JOIN pg_class c ON c.oid IN (i.inhrelid, i.inhparent)
    WHERE c.relnamespace = 'crm'::regnamespace LIMIT 1;
    IF t IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'insufficient_privilege',
            MESSAGE = format('%s cannot inherit, be inherited from or be partitioned', t),
            DETAIL = 'Rows written through another table reach none of the crm_access catalog''s triggers.',
            HINT = 'crm_access''s tables stand alone.';
    END IF;
    -- A trigger has no schema of its own: its table's.
    IF EXISTS (SELECT FROM pg_event_trigger_ddl_commands() d
               LEFT JOIN pg_trigger g ON d.classid = 'pg_trigger'::regclass AND g.oid = d.objid
               LEFT JOIN pg_class c ON c.oid = g.tgrelid
               WHERE d.schema_name = 'crm' OR c.relnamespace = 'crm'::regnamespace) THEN
        PERFORM crm.compile_at_commit();
    END IF;
END $$;
CREATE EVENT TRIGGER crm_catalog_altered ON ddl_command_end
    WHEN TAG IN ('ALTER TABLE', 'CREATE TABLE', 'CREATE TRIGGER', 'ALTER TRIGGER')
    EXECUTE FUNCTION crm.catalog_altered();
ALTER EVENT TRIGGER crm_catalog_altered ENABLE ALWAYS;
REVOKE ALL ON FUNCTION crm.catalog_altered() FROM PUBLIC;
-- Its owner may alter a crm table owned by the catalog role (forcing a compile costs only
-- the committing transaction and a reload in each backend, as any catalog commit does).
REVOKE ALL ON FUNCTION crm.compile_at_commit() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION crm.compile_at_commit() TO crm_access_catalog;
