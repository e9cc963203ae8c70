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
