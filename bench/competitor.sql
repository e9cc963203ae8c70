-- Variant (c) of the benchmark: the same permission model (DESIGN §3) in plain SQL and
-- PL/pgSQL, as a competent team would write it following the Supabase RLS performance guide
-- (https://supabase.com/docs/guides/database/postgres/row-level-security#rls-performance-recommendations):
--   * one policy per command, of the shape `owner_id = ANY ((SELECT c.visible_owners(...))::bigint[])`:
--     the function is wrapped in a SELECT so it runs once per statement as an initPlan, and
--     the filter is on an indexed column;
--   * STABLE SECURITY DEFINER functions with a pinned search_path, reading the same catalog
--     tables (crm.*) that crm_access reads;
--   * recursive CTEs for the role tree and nested groups; indexes on every owner column.
-- Viewers who see everything get every owner id (one filter shape for everyone, which keeps
-- the index for narrow viewers; an `OR (SELECT sees_all())` would defeat it).
-- It reads the acting user from the same setting, crm.user_name, set by the same trusted
-- app role. The harness checks that it returns exactly crm_access's rows.

CREATE SCHEMA c;
GRANT USAGE ON SCHEMA c TO PUBLIC;

-- The acting user, if active.
CREATE FUNCTION c.me() RETURNS bigint
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT u.owner_id FROM crm.users u JOIN crm.owners o ON o.id = u.owner_id
    WHERE o.name = nullif(current_setting('crm.user_name', true), '') AND u.is_active
$$;

-- Groups the user belongs to: directly, through their role, through a role-and-subordinates
-- membership of an ancestor role (or their own), and through nested groups.
CREATE FUNCTION c.groups_of(u bigint) RETURNS bigint[]
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    WITH RECURSIVE mine AS (SELECT role_id FROM crm.users WHERE owner_id = u),
    ancestors(id) AS (
        SELECT role_id FROM mine
        UNION ALL SELECT r.parent_id FROM crm.roles r JOIN ancestors a ON r.id = a.id WHERE r.parent_id IS NOT NULL),
    g(id) AS (
        SELECT m.group_id FROM crm.group_members m
        WHERE (m.member_kind = 'user' AND m.member_id = u)
           OR (m.member_kind = 'role' AND m.member_id = (SELECT role_id FROM mine))
           OR (m.member_kind = 'role_and_subordinates' AND m.member_id IN (SELECT id FROM ancestors))
        UNION SELECT m.group_id FROM crm.group_members m JOIN g ON m.member_kind = 'group' AND m.member_id = g.id)
    SELECT coalesce(array_agg(id), '{}') FROM g
$$;

-- The users a sharing-rule party (role, role and subordinates, group) stands for.
CREATE FUNCTION c.party_users(kind text, party bigint) RETURNS SETOF bigint
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    WITH RECURSIVE grp(g) AS (
        SELECT party WHERE kind = 'group'
        UNION SELECT m.member_id FROM crm.group_members m JOIN grp ON m.group_id = grp.g AND m.member_kind = 'group'),
    seeds(r, sub) AS (
        SELECT party, kind = 'role_and_subordinates' WHERE kind IN ('role', 'role_and_subordinates')
        UNION ALL SELECT m.member_id, m.member_kind = 'role_and_subordinates' FROM crm.group_members m
        WHERE m.group_id IN (SELECT g FROM grp) AND m.member_kind IN ('role', 'role_and_subordinates')),
    subtree(r) AS (
        SELECT r FROM seeds WHERE sub
        UNION SELECT x.id FROM crm.roles x JOIN subtree t ON x.parent_id = t.r)
    SELECT u.owner_id FROM crm.users u WHERE u.role_id IN (SELECT r FROM seeds UNION SELECT r FROM subtree)
    UNION SELECT m.member_id FROM crm.group_members m JOIN crm.users u ON u.owner_id = m.member_id
    WHERE m.group_id IN (SELECT g FROM grp) AND m.member_kind = 'user'
$$;

-- How far user `me` reaches `module` records for `action` (read, edit, delete) before any
-- owner list: 'none' (no privilege, or no active user), 'all' (admin, View All/Edit All, a
-- public default), or 'owners' (their own, their groups', their subordinates' and shared ones).
-- The share-table competitor (bench/share_table.sql) asks the same question.
CREATE FUNCTION c.access(me bigint, module text, action text, OUT mode text, OUT my_role bigint, OUT my_groups bigint[])
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    admin boolean;
    governing text := CASE WHEN module = 'Contacts' THEN 'Accounts' ELSE module END;
    view_all boolean;
    edit_all boolean;
    level text;
BEGIN
    mode := 'none';
    IF me IS NULL THEN
        RETURN;
    END IF;
    SELECT u.role_id, u.is_admin INTO my_role, admin FROM crm.users u WHERE u.owner_id = me;
    IF admin THEN
        mode := 'all';
        RETURN;
    END IF;
    my_groups := c.groups_of(me);
    SELECT coalesce(bool_or(x.view_all), false), coalesce(bool_or(x.edit_all), false) INTO view_all, edit_all FROM (
        SELECT p.view_all, p.edit_all FROM crm.role_profiles rp JOIN crm.profiles p ON p.id = rp.profile_id WHERE rp.role_id = my_role
        UNION ALL
        SELECT s.view_all, s.edit_all FROM crm.permission_set_assignments a JOIN crm.permission_sets s ON s.id = a.set_id
        WHERE a.owner_id = me OR a.owner_id = ANY (my_groups)) x;
    IF (action = 'read' AND (view_all OR edit_all)) OR (action = 'edit' AND edit_all) THEN
        mode := 'all';
        RETURN;
    END IF;
    IF NOT (EXISTS (SELECT 1 FROM crm.role_profiles rp JOIN crm.profile_privileges pp ON pp.profile_id = rp.profile_id
                    WHERE rp.role_id = my_role AND pp.module = access.module AND pp.action = access.action)
         OR EXISTS (SELECT 1 FROM crm.permission_set_assignments a JOIN crm.permission_set_privileges sp ON sp.set_id = a.set_id
                    WHERE (a.owner_id = me OR a.owner_id = ANY (my_groups))
                      AND sp.module = access.module AND sp.action = access.action)) THEN
        RETURN;
    END IF;
    level := coalesce((SELECT d.level FROM crm.sharing_defaults d WHERE d.module = governing), 'private');
    IF (action = 'read' AND level <> 'private')
       OR (action = 'edit' AND level IN ('public_read_write', 'public_read_write_delete'))
       OR (action = 'delete' AND level = 'public_read_write_delete') THEN
        mode := 'all';
        RETURN;
    END IF;
    mode := 'owners';
END $$;

-- Every owner id: the list given to viewers who see everything.
CREATE FUNCTION c.everyone() RETURNS bigint[]
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT array_agg(o.id) FROM crm.owners o
$$;

-- The owners whose `module` records the acting user may `action` (read, edit, delete).
CREATE FUNCTION c.visible_owners(module text, action text) RETURNS bigint[]
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    me bigint := c.me();
    a record;
    governing text := CASE WHEN module = 'Contacts' THEN 'Accounts' ELSE module END;
    owners bigint[];
BEGIN
    a := c.access(me, module, action);
    IF a.mode = 'none' THEN
        RETURN '{}';
    ELSIF a.mode = 'all' THEN
        RETURN c.everyone();
    END IF;
    WITH RECURSIVE below(id) AS (
        SELECT r.id FROM crm.roles r WHERE r.parent_id = a.my_role
        UNION ALL SELECT r.id FROM crm.roles r JOIN below b ON r.parent_id = b.id),
    -- Rules whose target includes me, or a user below me ("shared below"); never delete.
    received AS (
        SELECT s.source_kind, s.source_id FROM crm.sharing_rules s
        WHERE s.module = governing AND (action = 'read' OR (action = 'edit' AND s.access = 'read_write'))
          AND EXISTS (SELECT 1 FROM c.party_users(s.target_kind, s.target_id) t(u) JOIN crm.users tu ON tu.owner_id = t.u
                      WHERE t.u = me OR tu.role_id IN (SELECT id FROM below)))
    SELECT array_agg(DISTINCT x.o) INTO owners FROM (
        SELECT me
        UNION ALL SELECT unnest(a.my_groups)
        UNION ALL SELECT u.owner_id FROM crm.users u WHERE u.role_id IN (SELECT id FROM below)
        UNION ALL SELECT p.u FROM received r, c.party_users(r.source_kind, r.source_id) p(u)
        UNION ALL SELECT r.source_id FROM received r WHERE r.source_kind = 'group') x(o);
    RETURN owners;
END $$;

-- Whether the acting user may create `module` records at all.
CREATE FUNCTION c.may_create(module text) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT EXISTS (SELECT 1 FROM crm.users u JOIN crm.role_profiles rp ON rp.role_id = u.role_id
                   JOIN crm.profile_privileges pp ON pp.profile_id = rp.profile_id
                   WHERE u.owner_id = c.me() AND pp.module = may_create.module AND pp.action = 'create')
        OR EXISTS (SELECT 1 FROM crm.users u JOIN crm.profiles p ON p.id IN (SELECT profile_id FROM crm.role_profiles WHERE role_id = u.role_id)
                   WHERE u.owner_id = c.me() AND (p.edit_all OR u.is_admin))
$$;

-- A competitor's copies of the data (`prefix` || table), with the same indexes, and policies
-- that filter on the owners `owners_fn(module, action)` returns; (e) uses it too.
CREATE FUNCTION c.copy_tables(prefix text, owners_fn text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE t text; m text; own text; copy text;
BEGIN
    FOR t, m IN VALUES ('leads', 'Leads'), ('accounts', 'Accounts'), ('opportunities', 'Opportunities') LOOP
        own := format('owner_id = ANY ((SELECT %s(%L, %%L))::bigint[])', owners_fn, m);
        copy := prefix || t;
        EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING ALL)', copy, t);
        EXECUTE format('INSERT INTO %I SELECT * FROM %I', copy, t);
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', copy);
        EXECUTE format('CREATE POLICY %I ON %I FOR SELECT USING (%s)', prefix || 'read', copy, format(own, 'read'));
        EXECUTE format('CREATE POLICY %I ON %I FOR INSERT WITH CHECK ((SELECT c.may_create(%L)) AND %s)',
                       prefix || 'create', copy, m, format(own, 'edit'));
        EXECUTE format('CREATE POLICY %I ON %I FOR UPDATE USING (%s) WITH CHECK (%s)',
                       prefix || 'edit', copy, format(own, 'edit'), format(own, 'edit'));
        EXECUTE format('CREATE POLICY %I ON %I FOR DELETE USING (%s)', prefix || 'delete', copy, format(own, 'delete'));
        EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %I TO bench_app', copy);
    END LOOP;
END $$;

SELECT c.copy_tables('c_', 'c.visible_owners');
