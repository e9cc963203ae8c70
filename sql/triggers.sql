-- Any change to the catalog, through the API or by hand (pg_restore included), invalidates
-- the cached model and cached plans; see src/session/cache.rs for why this is transactional.
DO $$
DECLARE t regclass;
BEGIN
    FOREACH t IN ARRAY ARRAY['crm.roles', 'crm.profiles', 'crm.modules', 'crm.sharing_defaults',
                             'crm.profile_privileges', 'crm.role_profiles', 'crm.owners', 'crm.users',
                             'crm.db_role_map', 'crm.trusted_roles', 'crm.protected_tables', 'crm.groups',
                             'crm.group_members', 'crm.sharing_rules', 'crm.permission_sets',
                             'crm.permission_set_privileges', 'crm.permission_set_assignments',
                             'crm.parent_links', 'crm.field_access', 'crm.hidden_fields',
                             'crm.calendar_shares']::regclass[]
    LOOP
        EXECUTE format('CREATE TRIGGER catalog_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON %s '
                       'FOR EACH STATEMENT EXECUTE FUNCTION crm.catalog_changed()', t);
    END LOOP;
END $$;

-- Only the catalog's own tables fire it: attached to any other table, it would make every
-- write there reset every session's plans and model.
REVOKE ALL ON FUNCTION crm.catalog_changed() FROM PUBLIC;
