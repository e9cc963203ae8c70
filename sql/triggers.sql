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

-- A crm table altered (ALTER TABLE ... DISABLE TRIGGER, pg_restore's --disable-triggers,
-- a column rewritten): changes made while its triggers were off reached none of them, so the
-- commit compiles the catalog whole rather than patch what the triggers saw (red team of
-- issue 28, item 2). In replica mode too. Only crm's tables: their owner or a superuser.
CREATE FUNCTION crm.catalog_altered() RETURNS event_trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF EXISTS (SELECT FROM pg_event_trigger_ddl_commands() d WHERE d.schema_name = 'crm') THEN
        PERFORM crm.compile_at_commit();
    END IF;
END $$;
CREATE EVENT TRIGGER crm_catalog_altered ON ddl_command_end WHEN TAG IN ('ALTER TABLE')
    EXECUTE FUNCTION crm.catalog_altered();
ALTER EVENT TRIGGER crm_catalog_altered ENABLE ALWAYS;
REVOKE ALL ON FUNCTION crm.catalog_altered() FROM PUBLIC;
REVOKE ALL ON FUNCTION crm.compile_at_commit() FROM PUBLIC;
