-- Enforcement that cannot be switched off quietly (DESIGN §5).
--
-- A protected table's owner can run DDL on it: turn row security off, disable or drop a
-- trigger, drop or alter a policy, drop the owner column with CASCADE, or put the table
-- into an inheritance tree whose children are read without its policies. After every DDL
-- command, crm.guard_protection() checks that each protected table still carries its whole
-- protection, and refuses the command otherwise (the whole command is rolled back).
-- Exempt: crm_access's own protect/unprotect/link_parent, for the table they work on (the
-- caller checks the finished result with crm.protection_problems), and superusers, who
-- bypass row security anyway and restore dumps (which create policies one at a time).

-- A table outside schema crm that carries crm_access's policies but is not in its catalog
-- (restored on its own with pg_dump -t, or its catalog row lost) admits nobody: crm.can()
-- answers no for a table it does not know, and a restore without crm_access loses the
-- permissive crm.installed() policy. What would open it, or NULL; 'not crm_access''s' for a
-- table without such policies or in the catalog.
CREATE FUNCTION crm.unregistered_problems(tbl regclass) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    WITH c AS (
        SELECT c.oid, c.relrowsecurity, c.relforcerowsecurity FROM pg_class c
        WHERE c.oid = $1 AND c.relnamespace <> 'crm'::regnamespace
          AND NOT EXISTS (SELECT 1 FROM crm.protected_tables p WHERE p.tbl = c.oid)
          AND EXISTS (SELECT 1 FROM pg_policy x WHERE x.polrelid = c.oid AND x.polname IN ('crm_base', 'crm_read', 'crm_create', 'crm_edit', 'crm_delete', 'crm_restrict'))
    ),
    problems(problem) AS (
        SELECT 'not crm_access''s' WHERE NOT EXISTS (SELECT 1 FROM c)
        UNION ALL SELECT 'row level security is disabled' FROM c WHERE NOT c.relrowsecurity
        UNION ALL SELECT 'FORCE ROW LEVEL SECURITY is off' FROM c WHERE NOT c.relforcerowsecurity
        UNION ALL SELECT format('policy %s is missing', e.name) FROM c, (VALUES ('crm_read'), ('crm_create'), ('crm_edit'), ('crm_delete')) e(name)
            WHERE NOT EXISTS (SELECT 1 FROM pg_policy x WHERE x.polrelid = c.oid AND x.polname = e.name)
        -- Read or written through a parent, or by a rule's actions, the policies would not
        -- hold it (red team of issue 27: its owner attached it to a table of their own).
        UNION ALL SELECT 'it is part of an inheritance tree or partitioned' FROM c
            WHERE EXISTS (SELECT 1 FROM pg_inherits h WHERE h.inhrelid = c.oid OR h.inhparent = c.oid)
        UNION ALL SELECT 'it has rules' FROM c WHERE EXISTS (SELECT 1 FROM pg_rewrite r WHERE r.ev_class = c.oid)
    )
    SELECT string_agg(problem, '; ' ORDER BY problem) FROM problems
$$;

-- Why column `column_name` of `tbl` cannot carry a restriction rule (DESIGN §9), or NULL. The
-- planner compares it as `column = ANY('{...}')` and the rule means `column::text`: the two
-- agree for types whose equality is the equality of their text, so only those are taken:
-- text and varchar under a deterministic collation, smallint, integer, bigint, boolean, uuid.
CREATE FUNCTION crm.restriction_column_problem(tbl regclass, column_name text) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE
        WHEN a.attname IS NULL THEN format('%s has no column %s', $1, coalesce(quote_ident($2), 'NULL'))
        WHEN a.atttypid NOT IN ('text'::regtype, 'varchar'::regtype, 'int2'::regtype, 'int4'::regtype, 'int8'::regtype, 'bool'::regtype, 'uuid'::regtype)
            THEN format('column %I of %s is of type %s', $2, $1, format_type(a.atttypid, a.atttypmod))
        WHEN a.attcollation <> 0 AND NOT (SELECT l.collisdeterministic FROM pg_collation l WHERE l.oid = a.attcollation)
            THEN format('column %I of %s has a nondeterministic collation', $2, $1)
        END
    FROM (SELECT) one LEFT JOIN pg_attribute a ON a.attrelid = $1 AND a.attname = $2 AND a.attnum > 0 AND NOT a.attisdropped
$$;

-- What is missing from the protection of `tbl`, or NULL when nothing is. The one
-- definition that both the event trigger and crm.protect use; the trigger names are those
-- of src/policy/trigger_names.rs.
CREATE FUNCTION crm.protection_problems(tbl regclass) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    WITH p AS (
        SELECT p.tbl, p.module, p.owner_column, p.key_column, c.relrowsecurity, c.relforcerowsecurity, c.relkind
        FROM crm.protected_tables p JOIN pg_class c ON c.oid = p.tbl
        WHERE p.tbl = $1
    ),
    expected_policies(name) AS (VALUES ('crm_base'), ('crm_read'), ('crm_create'), ('crm_edit'), ('crm_delete'), ('crm_restrict')),
    expected_triggers(name, fn) AS (
        VALUES ('crm_field_check', 'crm.check_field_writes()'::regprocedure),
               ('crm_field_check_insert', 'crm.check_field_writes()'::regprocedure),
               ('crm_truncate_check', 'crm.check_truncate()'::regprocedure)
        -- A record's shares follow it where records can be shared (src/policy/protect.rs).
        UNION ALL SELECT t.name, 'crm.shares_follow_record()'::regprocedure
            FROM p, unnest(ARRAY['crm_shares_follow_update', 'crm_shares_follow_delete']) AS t(name)
            WHERE p.key_column IS NOT NULL AND crm.restriction_column_problem(p.tbl, p.key_column) IS NULL
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
        -- A restriction rule reads its column by name, as its type's text (DESIGN §9).
        UNION ALL SELECT format('restriction rule %s cannot read it: %s', r.id, crm.restriction_column_problem(p.tbl, r.column_name))
            FROM p JOIN crm.restrictions r ON r.module = p.module
            WHERE crm.restriction_column_problem(p.tbl, r.column_name) IS NOT NULL
        -- Restored on its own (pg_dump -t) into a database with crm_access, or its catalog
        -- row lost: it admits nobody, but nothing would keep it whole (issue 27).
        UNION ALL SELECT 'crm_access has no record of it, though it carries crm_access''s policies (restored without its catalog row?): crm.protect() it again'
            WHERE NOT EXISTS (SELECT 1 FROM crm.protected_tables r WHERE r.tbl = $1)
              AND crm.unregistered_problems($1) IS DISTINCT FROM 'not crm_access''s'
    )
    SELECT string_agg(problem, '; ' ORDER BY problem) FROM problems
$$;

CREATE FUNCTION crm.guard_protection() RETURNS event_trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    t regclass;
    problems text;
BEGIN
    -- The role running the command, not the session's: a table owner's code may run inside a
    -- superuser's session (an index expression evaluated by ANALYZE, say).
    IF (SELECT r.rolsuper FROM pg_roles r WHERE r.rolname = current_user) THEN
        RETURN;
    END IF;
    -- No code but crm_access's own fixed statements runs as its roles; a command run as one
    -- of them is someone else's code that got to run as it (issue 24, finding 3).
    IF NOT crm.current_role_may_run_ddl() THEN
        RAISE EXCEPTION USING ERRCODE = 'insufficient_privilege',
            MESSAGE = format('%s cannot run %s: only crm_access''s own statements run as its roles', current_user,
                             coalesce((SELECT string_agg(DISTINCT d.command_tag, ', ') FROM pg_event_trigger_ddl_commands() d), 'this command')),
            HINT = 'crm.secure_view() makes and refreshes the secure views.';
    END IF;
    -- A policy or trigger of ours keeps its name when it is altered or replaced; catch that
    -- by command.
    FOR t IN
        SELECT x.polrelid FROM pg_event_trigger_ddl_commands() d
        JOIN pg_policy x ON d.classid = 'pg_policy'::regclass AND x.oid = d.objid
        JOIN pg_class c ON c.oid = x.polrelid AND c.relnamespace <> 'crm'::regnamespace
        -- Protected, or carrying crm_access's policies without being in its catalog (red
        -- team of issue 27: the owner of such a restored table altered them to true).
        WHERE d.command_tag = 'ALTER POLICY' AND x.polname IN ('crm_base', 'crm_read', 'crm_create', 'crm_edit', 'crm_delete', 'crm_restrict')
    LOOP
        IF NOT crm.protection_changing(t) THEN
            RAISE EXCEPTION USING ERRCODE = 'insufficient_privilege',
                MESSAGE = format('the crm_access policies of %s cannot be altered', t),
                HINT = 'crm.protect() (re)creates them; crm.unprotect() removes them.';
        END IF;
    END LOOP;
    FOR t IN
        SELECT x.tgrelid FROM pg_event_trigger_ddl_commands() d
        JOIN pg_trigger x ON d.classid = 'pg_trigger'::regclass AND x.oid = d.objid
        JOIN crm.protected_tables p ON p.tbl = x.tgrelid
        WHERE d.command_tag IN ('CREATE TRIGGER', 'ALTER TRIGGER') AND x.tgname LIKE 'crm\_%'
    LOOP
        IF NOT crm.protection_changing(t) THEN
            RAISE EXCEPTION USING ERRCODE = 'insufficient_privilege',
                MESSAGE = format('the crm_access triggers of %s cannot be replaced or altered', t),
                HINT = 'crm.protect() and crm.link_parent() (re)create them; crm.unprotect() removes them.';
        END IF;
    END LOOP;
    FOR t IN SELECT p.tbl FROM crm.protected_tables p JOIN pg_class c ON c.oid = p.tbl LOOP
        CONTINUE WHEN crm.protection_changing(t);
        problems := crm.protection_problems(t);
        IF problems IS NOT NULL THEN
            RAISE EXCEPTION USING ERRCODE = 'insufficient_privilege',
                MESSAGE = format('this would weaken the crm_access protection of %s: %s', t, problems),
                DETAIL = 'Row security, the crm_access policies and triggers of a protected table stay as crm.protect() made them.',
                HINT = format('To remove the protection deliberately, a CRM administrator who owns the table runs crm.unprotect(%L).', t::text);
        END IF;
    END LOOP;
    -- Tables that carry crm_access's policies without being in its catalog stay closed too,
    -- and as they are until crm.protect() takes them back: its owner could otherwise rename
    -- the owner column and add another under its name, with the owner of their choice as its
    -- default, for crm.protect() to take (red team of issue 27).
    FOR t IN
        SELECT DISTINCT d.objid FROM pg_event_trigger_ddl_commands() d
        JOIN pg_class c ON d.classid = 'pg_class'::regclass AND c.oid = d.objid AND c.relnamespace <> 'crm'::regnamespace
        WHERE NOT EXISTS (SELECT 1 FROM crm.protected_tables p WHERE p.tbl = c.oid)
          AND EXISTS (SELECT 1 FROM pg_policy x WHERE x.polrelid = c.oid AND x.polname IN ('crm_base', 'crm_read', 'crm_create', 'crm_edit', 'crm_delete', 'crm_restrict'))
    LOOP
        CONTINUE WHEN crm.protection_changing(t);
        RAISE EXCEPTION USING ERRCODE = 'insufficient_privilege',
            MESSAGE = format('%s carries crm_access''s policies but is not in its catalog: it cannot be altered until it is protected again', t),
            DETAIL = 'Restored without its catalog row, it admits nobody, and stays as it was restored.',
            HINT = format('A CRM administrator who owns the table runs crm.protect(%L, module) to protect it again.', t::text);
    END LOOP;
    FOR t IN
        SELECT DISTINCT x.polrelid FROM pg_policy x JOIN pg_class c ON c.oid = x.polrelid
        WHERE x.polname IN ('crm_base', 'crm_read', 'crm_create', 'crm_edit', 'crm_delete', 'crm_restrict') AND c.relnamespace <> 'crm'::regnamespace
          AND NOT EXISTS (SELECT 1 FROM crm.protected_tables p WHERE p.tbl = x.polrelid)
    LOOP
        CONTINUE WHEN crm.protection_changing(t);
        problems := crm.unregistered_problems(t);
        IF problems IS NOT NULL THEN
            RAISE EXCEPTION USING ERRCODE = 'insufficient_privilege',
                MESSAGE = format('this would open %s, which carries crm_access''s policies but is not in its catalog: %s', t, problems),
                DETAIL = 'Restored without its catalog row, it admits nobody until it is protected again.',
                HINT = format('A CRM administrator who owns the table runs crm.protect(%L, module) to protect it again.', t::text);
        END IF;
    END LOOP;
END $$;

CREATE EVENT TRIGGER crm_guard_protection ON ddl_command_end EXECUTE FUNCTION crm.guard_protection();

-- A dropped protected table leaves the catalog with it; conversations linked to its records
-- are unlinked, as a deletion of those records would; a dropped secure view leaves its
-- registry. As the caller (not SECURITY DEFINER: nothing here runs with more rights than the
-- command's own); crm.forget_missing_relations() does the catalog writes as the catalog role,
-- and forgets only relations that no longer exist, so anyone may call it.
CREATE FUNCTION crm.forget_dropped_tables() RETURNS event_trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    dropped oid[];
    orphans text;
BEGIN
    SELECT array_agg(d.objid) INTO dropped FROM pg_event_trigger_dropped_objects() d
    WHERE d.classid = 'pg_class'::regclass AND d.objsubid = 0;
    IF NOT EXISTS (SELECT 1 FROM crm.protected_tables p WHERE p.tbl::oid = ANY(dropped))
       AND NOT EXISTS (SELECT 1 FROM crm.secure_views v WHERE v.view::oid = ANY(dropped)) THEN
        RETURN;
    END IF;
    SELECT string_agg(format('%s (parent of %s)', l.parent, l.child), ', ') INTO orphans
    FROM crm.parent_links l
    WHERE l.parent::oid = ANY(dropped) AND NOT l.child::oid = ANY(dropped);
    IF orphans IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'dependent_objects_still_exist',
            MESSAGE = format('cannot drop %s: protected tables are linked to it', orphans),
            HINT = 'Unprotect or drop the child tables first, or drop them in the same command.';
    END IF;
    PERFORM crm.forget_missing_relations();
END $$;

CREATE EVENT TRIGGER crm_forget_dropped_tables ON sql_drop EXECUTE FUNCTION crm.forget_dropped_tables();
