-- crm_access 0.2.0 -> 0.3.0 (docs/releasing.md). Run by ALTER EXTENSION crm_access UPDATE,
-- as a superuser, in one transaction: it either completes or changes nothing.
--
-- 0.3.0 adds the audit log (crm.audit_log, crm.prune_audit_log): every catalog change from
-- here on is logged; nothing before the update is. And the access review
-- (crm.access_review), and who could reach a record at a past moment (crm.who_could,
-- crm.explain_access(..., at => ...)) and what a user gained and lost since
-- (crm.access_changes). And crm.catalog_tables, the one declaration of every table of the
-- extension, from which the dump list, the invalidation and audit triggers follow; and
-- crm.unlink_parent, which takes a parent link apart; and a guard that also keeps a protected
-- table's owner column from being renamed. And the security round of issue 24: crm.set_user
-- becomes a C function (only the client's own statements may set the acting user), a
-- protected table may have no rules, no DDL runs as crm_access's roles but its own, and
-- crm_access_views owns no function. The end state is exactly that of a fresh 0.3.0
-- install (tests/upgrade/run.sh compares the two).
\echo Use "ALTER EXTENSION crm_access UPDATE TO '0.3.0'" to load this file. \quit

-- 0. The registry of the extension's tables (sql/catalog.sql), with the tables 0.2.0 has.
CREATE TABLE crm.catalog_tables (
    tbl      regclass PRIMARY KEY,
    compiled boolean  NOT NULL,
    audited  boolean  NOT NULL,
    dumped   boolean  NOT NULL
);
INSERT INTO crm.catalog_tables VALUES
    ('crm.catalog_tables', false, false, false),
    ('crm.roles', true, true, true),
    ('crm.profiles', true, true, true),
    ('crm.modules', true, true, false),
    ('crm.sharing_defaults', true, true, true),
    ('crm.profile_privileges', true, true, true),
    ('crm.role_profiles', true, true, true),
    ('crm.owners', true, true, true),
    ('crm.users', true, true, true),
    ('crm.db_role_map', true, true, true),
    ('crm.trusted_roles', true, true, true),
    ('crm.groups', true, true, true),
    ('crm.group_members', true, true, true),
    ('crm.sharing_rules', true, true, true),
    ('crm.permission_sets', true, true, true),
    ('crm.permission_set_privileges', true, true, true),
    ('crm.permission_set_assignments', true, true, true),
    ('crm.protected_tables', true, true, true),
    ('crm.parent_links', true, true, true),
    ('crm.field_access', true, true, true),
    ('crm.hidden_fields', true, true, true),
    ('crm.secure_views', false, true, true),
    ('crm.calendar_shares', true, true, true),
    ('crm.events', false, false, true),
    ('crm.conversations', false, false, true),
    ('crm.messages', false, false, true);
GRANT SELECT ON crm.catalog_tables TO PUBLIC;
ALTER TABLE crm.catalog_tables OWNER TO crm_access_catalog;

-- 1. The functions behind it (as pgrx declares them).
CREATE FUNCTION "audit_note"(
	"tbl" TEXT,
	"op" TEXT,
	"old" jsonb,
	"new" jsonb
) RETURNS void
LANGUAGE c
AS 'MODULE_PATHNAME', 'audit_note_wrapper';
CREATE FUNCTION "prune_audit_log"(
	"before" timestamp with time zone
) RETURNS bigint
LANGUAGE c
AS 'MODULE_PATHNAME', 'prune_audit_log_wrapper';
CREATE FUNCTION "reads_audit_log"() RETURNS bool
STRICT STABLE PARALLEL RESTRICTED
LANGUAGE c
AS 'MODULE_PATHNAME', 'reads_audit_log_wrapper';
CREATE FUNCTION "access_changes"(
	"user_name" TEXT,
	"since" timestamp with time zone
) RETURNS TABLE (
	"at" timestamp with time zone,
	"module" TEXT,
	"action" TEXT,
	"gained" bigint[],
	"lost" bigint[],
	"audit_id" bigint
)
LANGUAGE c
AS 'MODULE_PATHNAME', 'access_changes_wrapper';
CREATE FUNCTION "access_review"(
	"user_name" TEXT
) RETURNS TABLE (
	"module" TEXT,
	"action" TEXT,
	"reach" TEXT,
	"owners" bigint,
	"reasons" TEXT[]
)
STABLE
LANGUAGE c
AS 'MODULE_PATHNAME', 'access_review_wrapper';
DROP FUNCTION crm.explain_access(regclass, anyelement, text, text);
CREATE FUNCTION crm.explain_access(tbl regclass, id anyelement, action text DEFAULT 'read', user_name text DEFAULT NULL, at timestamptz DEFAULT NULL)
           RETURNS text VOLATILE LANGUAGE c AS 'MODULE_PATHNAME', 'explain_access_wrapper';
CREATE FUNCTION crm.who_could(tbl regclass, id anyelement, action text, at timestamptz)
           RETURNS SETOF text VOLATILE LANGUAGE c AS 'MODULE_PATHNAME', 'who_could_wrapper';
CREATE FUNCTION "unlink_parent"(
	"child" regclass
) RETURNS void
LANGUAGE c
AS 'MODULE_PATHNAME', 'unlink_parent_wrapper';
CREATE FUNCTION "audit_log_append_only"()
	RETURNS TRIGGER
	LANGUAGE c
	AS 'MODULE_PATHNAME', 'audit_log_append_only_wrapper';

-- 2. The log, its triggers and grants: sql/audit.sql, as a fresh install runs it.
-- The audit log (DESIGN §8, src/catalog/audit.rs): one row per API call that changed the
-- catalog, and one per statement that changed it directly, written in the same transaction.
-- Append-only: a trigger refuses every UPDATE, DELETE and TRUNCATE, the owner's and
-- superusers' included, except what crm.prune_audit_log() deletes. Read by catalog
-- administrators only; kept by pg_dump.
CREATE TABLE crm.audit_log (
    id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT pg_catalog.transaction_timestamp(),
    actor text,
    db_user name NOT NULL DEFAULT pg_catalog."session_user"(),
    operation text NOT NULL,
    target text,
    details jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_at ON crm.audit_log (at);
-- When the log began: past catalogs are rebuilt from then on (src/catalog/history.rs). Not
-- a row of the log: installing the extension again to restore a dump adds a row here (the
-- earliest counts), where a row of the log would clash with the restored ones.
CREATE TABLE crm.audit_log_start (at timestamptz NOT NULL DEFAULT pg_catalog.transaction_timestamp());
INSERT INTO crm.audit_log_start DEFAULT VALUES;
INSERT INTO crm.catalog_tables VALUES ('crm.audit_log', false, false, true), ('crm.audit_log_start', false, false, true);
SELECT pg_catalog.pg_extension_config_dump('crm.audit_log_start', '');
COMMENT ON TABLE crm.audit_log IS 'crm_access: every catalog change, append-only (see README, "Audit log")';
SELECT pg_catalog.pg_extension_config_dump('crm.audit_log', '');
SELECT pg_catalog.pg_extension_config_dump('crm.audit_log_id_seq', '');

ALTER TABLE crm.audit_log ENABLE ROW LEVEL SECURITY;
CREATE POLICY administrators_read ON crm.audit_log FOR SELECT USING ((SELECT crm.reads_audit_log()));
GRANT SELECT ON crm.audit_log TO PUBLIC;

CREATE TRIGGER append_only BEFORE UPDATE OR DELETE ON crm.audit_log
    FOR EACH ROW EXECUTE FUNCTION crm.audit_log_append_only();
CREATE TRIGGER append_only_truncate BEFORE TRUNCATE ON crm.audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION crm.audit_log_append_only();

-- The rows each statement on a catalog table removed and added, handed to crm.audit_note().
-- Runs as whoever wrote the table: the catalog role (every API change) or a superuser.
CREATE FUNCTION crm.audit_statement() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    gone jsonb;
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM crm.audit_note(TG_TABLE_NAME, TG_OP, NULL, (SELECT jsonb_agg(to_jsonb(n)) FROM new_rows n));
    ELSIF TG_OP = 'UPDATE' THEN
        PERFORM crm.audit_note(TG_TABLE_NAME, TG_OP, (SELECT jsonb_agg(to_jsonb(o)) FROM old_rows o),
                               (SELECT jsonb_agg(to_jsonb(n)) FROM new_rows n));
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM crm.audit_note(TG_TABLE_NAME, TG_OP, (SELECT jsonb_agg(to_jsonb(o)) FROM old_rows o), NULL);
    ELSE
        -- TRUNCATE, fired before: every row is about to go. The table is the trigger's own.
        EXECUTE format('SELECT jsonb_agg(to_jsonb(t)) FROM %s t', TG_RELID::regclass) INTO gone;
        PERFORM crm.audit_note(TG_TABLE_NAME, TG_OP, gone, NULL);
    END IF;
    RETURN NULL;
END $$;

-- Every table declared audited in crm.catalog_tables.
DO $$
DECLARE t regclass;
BEGIN
    FOR t IN SELECT tbl FROM crm.catalog_tables WHERE audited ORDER BY tbl::text LOOP
        EXECUTE format('CREATE TRIGGER audit_insert AFTER INSERT ON %s REFERENCING NEW TABLE AS new_rows '
                       'FOR EACH STATEMENT EXECUTE FUNCTION crm.audit_statement()', t);
        EXECUTE format('CREATE TRIGGER audit_update AFTER UPDATE ON %s REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows '
                       'FOR EACH STATEMENT EXECUTE FUNCTION crm.audit_statement()', t);
        EXECUTE format('CREATE TRIGGER audit_delete AFTER DELETE ON %s REFERENCING OLD TABLE AS old_rows '
                       'FOR EACH STATEMENT EXECUTE FUNCTION crm.audit_statement()', t);
        EXECUTE format('CREATE TRIGGER audit_truncate BEFORE TRUNCATE ON %s '
                       'FOR EACH STATEMENT EXECUTE FUNCTION crm.audit_statement()', t);
    END LOOP;
END $$;

-- Nobody else may attach the trigger functions or hand over notes: a forged note would put
-- changes that never happened into the next API call's entry.
REVOKE ALL ON FUNCTION crm.audit_statement() FROM PUBLIC;
REVOKE ALL ON FUNCTION crm.audit_log_append_only() FROM PUBLIC;
REVOKE ALL ON FUNCTION crm.audit_note(text, text, jsonb, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION crm.audit_note(text, text, jsonb, jsonb) TO crm_access_catalog;
REVOKE ALL ON FUNCTION crm.prune_audit_log(timestamptz) FROM PUBLIC;

-- 3. Owned by the catalog role, as sql/ownership.sql makes every table of the extension.
ALTER TABLE crm.audit_log OWNER TO crm_access_catalog;
ALTER TABLE crm.audit_log_start OWNER TO crm_access_catalog;

-- 4. The guard also looks for the owner column by the name the catalog keeps (sql/guard.sql).
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
            WHERE p.module IN ('Leads', 'Contacts')
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
    )
    SELECT string_agg(problem, '; ' ORDER BY problem) FROM problems
$$;

-- 5. crm.set_user as a C function (src/api/identity.rs): the check hook of crm.user_name lets
-- only the client's own statements set it, and lets this one function of ours stand in them.
CREATE OR REPLACE FUNCTION crm.set_user(name text, is_local boolean DEFAULT true) RETURNS text
VOLATILE CALLED ON NULL INPUT LANGUAGE c AS 'MODULE_PATHNAME', 'set_user_wrapper';

-- 6. Issue 24, finding 3: no DDL runs as crm_access's roles but crm_access's own (the guard
-- asks crm.current_role_may_run_ddl()), and crm_access_views owns no function: the trigger
-- of the secure views belongs to the extension's owner, and crm_access_views is the one role
-- granted it (so the one that can attach it).
CREATE FUNCTION "current_role_may_run_ddl"() RETURNS bool
STRICT VOLATILE PARALLEL RESTRICTED
LANGUAGE c
AS 'MODULE_PATHNAME', 'current_role_may_run_ddl_wrapper';
CREATE OR REPLACE FUNCTION crm.guard_protection() RETURNS event_trigger
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
        JOIN crm.protected_tables p ON p.tbl = x.polrelid
        WHERE d.command_tag = 'ALTER POLICY' AND x.polname IN ('crm_base', 'crm_read', 'crm_create', 'crm_edit', 'crm_delete')
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
END $$;
DO $$
BEGIN
    EXECUTE pg_catalog.format('ALTER FUNCTION crm.secure_view_write() OWNER TO %I',
        (SELECT r.rolname FROM pg_catalog.pg_extension e JOIN pg_catalog.pg_roles r ON r.oid = e.extowner WHERE e.extname = 'crm_access'));
END $$;
REVOKE ALL ON FUNCTION crm.secure_view_write() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION crm.secure_view_write() TO crm_access_views;

-- 7. Issue 24, finding 8: checkpoints of the catalog, as sql/audit.sql makes them (owned by the
-- catalog role and kept by pg_dump, as sql/ownership.sql makes every table declared dumped).
-- Checkpoints of the catalog (src/catalog/checkpoints.rs): the audited tables as a catalog
-- commit left them, taken every crm.audit_checkpoint_every entries, so that a past catalog is
-- rebuilt from the first checkpoint after the moment rather than from now. A checkpoint
-- copies the tables changed since the one before (and each table at least every tenth
-- time); a table's rows at a checkpoint are its latest copy up to it. Derived from the log
-- and pruned with it; append-only like it; read by the catalog role alone.
CREATE TABLE crm.audit_checkpoints (
    id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    at timestamptz NOT NULL,
    last_id bigint NOT NULL
);
CREATE INDEX audit_checkpoints_at ON crm.audit_checkpoints (at);
CREATE TABLE crm.audit_checkpoint_tables (
    checkpoint_id bigint NOT NULL,
    tbl text NOT NULL,
    rows jsonb NOT NULL,
    PRIMARY KEY (tbl, checkpoint_id)
);
INSERT INTO crm.catalog_tables VALUES ('crm.audit_checkpoints', false, false, true), ('crm.audit_checkpoint_tables', false, false, true);
CREATE TRIGGER append_only BEFORE UPDATE OR DELETE ON crm.audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION crm.audit_log_append_only();
CREATE TRIGGER append_only_truncate BEFORE TRUNCATE ON crm.audit_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION crm.audit_log_append_only();
CREATE TRIGGER append_only BEFORE UPDATE OR DELETE ON crm.audit_checkpoint_tables
    FOR EACH ROW EXECUTE FUNCTION crm.audit_log_append_only();
CREATE TRIGGER append_only_truncate BEFORE TRUNCATE ON crm.audit_checkpoint_tables
    FOR EACH STATEMENT EXECUTE FUNCTION crm.audit_log_append_only();
ALTER TABLE crm.audit_checkpoints OWNER TO crm_access_catalog;
ALTER TABLE crm.audit_checkpoint_tables OWNER TO crm_access_catalog;
SELECT pg_catalog.pg_extension_config_dump('crm.audit_checkpoints', '');
SELECT pg_catalog.pg_extension_config_dump('crm.audit_checkpoints_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('crm.audit_checkpoint_tables', '');

-- 8. Issue 27: crm_access's permissive base policy depends on the extension
-- (crm.installed(), src/policy/protect.rs), so that a protected table restored where crm_access is
-- not admits nobody; a table carrying crm_access's policies but missing from its catalog is
-- reported and kept closed (sql/guard.sql).
CREATE FUNCTION crm.installed() RETURNS boolean IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'installed_wrapper';
DO $$
DECLARE t regclass;
BEGIN
    FOR t IN
        SELECT tbl FROM crm.protected_tables
        UNION ALL VALUES ('crm.events'::regclass), ('crm.conversations'), ('crm.messages')
    LOOP
        EXECUTE pg_catalog.format('ALTER POLICY crm_base ON %s USING (crm.installed()) WITH CHECK (crm.installed())', t);
    END LOOP;
END $$;
CREATE FUNCTION crm.unregistered_problems(tbl regclass) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    WITH c AS (
        SELECT c.oid, c.relrowsecurity, c.relforcerowsecurity FROM pg_class c
        WHERE c.oid = $1 AND c.relnamespace <> 'crm'::regnamespace
          AND NOT EXISTS (SELECT 1 FROM crm.protected_tables p WHERE p.tbl = c.oid)
          AND EXISTS (SELECT 1 FROM pg_policy x WHERE x.polrelid = c.oid AND x.polname IN ('crm_base', 'crm_read', 'crm_create', 'crm_edit', 'crm_delete'))
    ),
    problems(problem) AS (
        SELECT 'not crm_access''s' WHERE NOT EXISTS (SELECT 1 FROM c)
        UNION ALL SELECT 'row level security is disabled' FROM c WHERE NOT c.relrowsecurity
        UNION ALL SELECT 'FORCE ROW LEVEL SECURITY is off' FROM c WHERE NOT c.relforcerowsecurity
        UNION ALL SELECT format('policy %s is missing', e.name) FROM c, (VALUES ('crm_read'), ('crm_create'), ('crm_edit'), ('crm_delete')) e(name)
            WHERE NOT EXISTS (SELECT 1 FROM pg_policy x WHERE x.polrelid = c.oid AND x.polname = e.name)
    )
    SELECT string_agg(problem, '; ' ORDER BY problem) FROM problems
$$;

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
            WHERE p.module IN ('Leads', 'Contacts')
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

CREATE OR REPLACE FUNCTION crm.guard_protection() RETURNS event_trigger
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
        JOIN crm.protected_tables p ON p.tbl = x.polrelid
        WHERE d.command_tag = 'ALTER POLICY' AND x.polname IN ('crm_base', 'crm_read', 'crm_create', 'crm_edit', 'crm_delete')
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
    -- Tables that carry crm_access's policies without being in its catalog stay closed too.
    FOR t IN
        SELECT DISTINCT x.polrelid FROM pg_policy x JOIN pg_class c ON c.oid = x.polrelid
        WHERE x.polname IN ('crm_base', 'crm_read', 'crm_create', 'crm_edit', 'crm_delete') AND c.relnamespace <> 'crm'::regnamespace
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
-- Secure views refuse to be read when they are not owned by crm_access_views (a restore with
-- --no-owner gives them to the restoring superuser, whom row security does not hold):
-- crm.secure_view_intact() in every view's condition (src/policy/secure_view.rs).
CREATE FUNCTION crm.secure_view_intact(tbl regclass) RETURNS boolean IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'secure_view_intact_wrapper';
-- A script may replace only the extension's own objects: each view joins it for the moment.
DO $$
DECLARE r record;
BEGIN
    FOR r IN SELECT s.tbl, s.view FROM crm.secure_views s ORDER BY s.tbl::pg_catalog.oid LOOP
        EXECUTE pg_catalog.format('ALTER EXTENSION crm_access ADD VIEW %s', r.view);
        PERFORM crm.secure_view(r.tbl);
        EXECUTE pg_catalog.format('ALTER EXTENSION crm_access DROP VIEW %s', (SELECT s.view FROM crm.secure_views s WHERE s.tbl = r.tbl));
    END LOOP;
END $$;
-- The grants crm.secure_view() made while this script ran would be recorded as initial
-- privileges, which pg_dump leaves out (as in the update to 0.2.0): forget the record.
DELETE FROM pg_catalog.pg_init_privs i
WHERE i.privtype = 'e'
  AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d WHERE d.classid = i.classoid AND d.objid = i.objoid AND d.deptype = 'e')
  AND ((i.classoid = 'pg_catalog.pg_class'::pg_catalog.regclass AND i.objoid IN (SELECT p.tbl FROM crm.protected_tables p UNION ALL SELECT l.parent FROM crm.parent_links l))
    OR (i.classoid = 'pg_catalog.pg_namespace'::pg_catalog.regclass AND i.objoid <> 'crm'::pg_catalog.regnamespace
        AND i.objoid IN (SELECT c.relnamespace FROM pg_catalog.pg_class c JOIN crm.protected_tables p ON p.tbl = c.oid)));

-- 9. Issue 27, item 4: the catalog's invalidation and audit triggers fire in replica mode too
-- (a logical replication apply worker, a superuser's session_replication_role = replica), and
-- the audit trigger gathers no rows while a past catalog is rebuilt.
CREATE FUNCTION "audit_wanted"() RETURNS bool
STRICT VOLATILE PARALLEL RESTRICTED
LANGUAGE c
AS 'MODULE_PATHNAME', 'audit_wanted_wrapper';
CREATE OR REPLACE FUNCTION crm.audit_statement() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    gone jsonb;
BEGIN
    -- Not while a past catalog is rebuilt (src/catalog/history.rs): its rows are not gathered.
    IF NOT crm.audit_wanted() THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'INSERT' THEN
        PERFORM crm.audit_note(TG_TABLE_NAME, TG_OP, NULL, (SELECT jsonb_agg(to_jsonb(n)) FROM new_rows n));
    ELSIF TG_OP = 'UPDATE' THEN
        PERFORM crm.audit_note(TG_TABLE_NAME, TG_OP, (SELECT jsonb_agg(to_jsonb(o)) FROM old_rows o),
                               (SELECT jsonb_agg(to_jsonb(n)) FROM new_rows n));
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM crm.audit_note(TG_TABLE_NAME, TG_OP, (SELECT jsonb_agg(to_jsonb(o)) FROM old_rows o), NULL);
    ELSE
        -- TRUNCATE, fired before: every row is about to go. The table is the trigger's own.
        EXECUTE format('SELECT jsonb_agg(to_jsonb(t)) FROM %s t', TG_RELID::regclass) INTO gone;
        PERFORM crm.audit_note(TG_TABLE_NAME, TG_OP, gone, NULL);
    END IF;
    RETURN NULL;
END $$;
DO $$
DECLARE t regclass;
BEGIN
    FOR t IN SELECT tbl FROM crm.catalog_tables WHERE compiled ORDER BY tbl::text LOOP
        EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER catalog_changed', t);
    END LOOP;
    FOR t IN SELECT tbl FROM crm.catalog_tables WHERE audited ORDER BY tbl::text LOOP
        EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER audit_insert, ENABLE ALWAYS TRIGGER audit_update, '
                       'ENABLE ALWAYS TRIGGER audit_delete, ENABLE ALWAYS TRIGGER audit_truncate', t);
    END LOOP;
END $$;

-- 10. Issue 27, items 2 and 5: a restore's loads wait for their keys until the catalog is
-- whole (sql/operations.sql, src/catalog/restore.rs), the tables a logical replication
-- publication holds, and database roles bound by name also for rows applied as a replica.
CREATE TABLE crm.unverified_loads (
    tbl       regclass    PRIMARY KEY,
    loaded_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO crm.catalog_tables VALUES ('crm.unverified_loads', false, false, false);

-- Every reference of crm_access's tables (their foreign keys) that a row breaks: the
-- table, the key, how many rows. `compiled_only`: only the tables the model is compiled from
-- (what a compile checks; the others hold records, not permissions). The names come from
-- pg_constraint, for the extension's own tables only; the caller chooses none of them.
CREATE FUNCTION crm.catalog_problems(compiled_only boolean DEFAULT false)
RETURNS TABLE (tbl regclass, key name, rows bigint)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    k record;
BEGIN
    FOR k IN
        SELECT c.conrelid::regclass AS child, c.confrelid::regclass AS parent, c.conname,
               (SELECT string_agg(format('t.%I IS NOT NULL', a.attname), ' AND ')
                FROM unnest(c.conkey) WITH ORDINALITY AS ck(attnum, i)
                JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ck.attnum) AS present,
               (SELECT string_agg(format('p.%I = t.%I', pa.attname, ca.attname), ' AND ')
                FROM unnest(c.conkey, c.confkey) AS k2(ck, fk)
                JOIN pg_attribute ca ON ca.attrelid = c.conrelid AND ca.attnum = k2.ck
                JOIN pg_attribute pa ON pa.attrelid = c.confrelid AND pa.attnum = k2.fk) AS matches
        FROM pg_constraint c
        JOIN crm.catalog_tables t ON t.tbl = c.conrelid
        WHERE c.contype = 'f' AND (t.compiled OR NOT compiled_only)
        ORDER BY c.conrelid::regclass::text, c.conname
    LOOP
        tbl := k.child;
        key := k.conname;
        EXECUTE format('SELECT count(*) FROM %s t WHERE %s AND NOT EXISTS (SELECT FROM %s p WHERE %s)',
                       k.child, k.present, k.parent, k.matches) INTO rows;
        IF rows > 0 THEN
            RETURN NEXT;
        END IF;
    END LOOP;
END $$;
-- It counts every row it can read: for superusers, and for the compile, which runs it as the
-- catalog's owner.
REVOKE ALL ON FUNCTION crm.catalog_problems(boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION crm.catalog_problems(boolean) TO crm_access_catalog;
-- What a logical replication publication of crm_access's data holds, all together (README,
-- "Logical replication"): every table pg_dump keeps of crm_access (the catalog, the records
-- of the message and calendar modules, the audit log and its checkpoints) and every
-- protected table. Values crm_access keeps by triggers (a conversation's linked owner, a
-- message's copy of its conversation's, a child's parent owner) are applied as the publisher
-- computed them, since a subscriber applies rows as a replica and those triggers wait; so a
-- table whose copy is kept in another must be published with it. The subscriber's own audit
-- triggers write nothing for what a subscription applies (the publisher's log arrives).
CREATE FUNCTION crm.replicated_tables() RETURNS SETOF regclass
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT t FROM (SELECT tbl FROM crm.catalog_tables WHERE dumped
                   UNION
                   SELECT tbl FROM crm.protected_tables) u(t)
    ORDER BY t::text
$$;
ALTER TABLE crm.unverified_loads OWNER TO crm_access_catalog;
-- A subscription's apply worker fires row triggers only (sql/triggers.sql).
DO $$
DECLARE t regclass;
BEGIN
    FOR t IN SELECT tbl FROM crm.catalog_tables WHERE compiled ORDER BY tbl::text LOOP
        EXECUTE format('CREATE TRIGGER catalog_changed_applied AFTER INSERT OR UPDATE OR DELETE ON %s '
                       'FOR EACH ROW EXECUTE FUNCTION crm.catalog_changed()', t);
        EXECUTE format('ALTER TABLE %s ENABLE REPLICA TRIGGER catalog_changed_applied', t);
    END LOOP;
END $$;
ALTER TABLE crm.db_role_map ENABLE ALWAYS TRIGGER bind_db_role;
ALTER TABLE crm.trusted_roles ENABLE ALWAYS TRIGGER bind_db_role;

-- 11. Red team of issue 27: writes on a logical replication subscriber's copy of crm_access's
-- tables are refused (sql/operations.sql), and the guard keeps a table that carries
-- crm_access's policies outside its catalog as it was restored (sql/guard.sql).
-- A subscriber's copy of crm_access's tables is its publisher's: a write there would
-- diverge, and its keys (the audit log's ids, the records') would collide with rows the
-- publisher sends later and stop the subscription, leaving every later revocation out of
-- the subscriber (red team of issue 27: a BI user sharing a calendar did it). While a table
-- is subscribed, only the subscription writes it: its apply worker runs as a replica, for
-- which this trigger (enabled on origin, the default) does not fire.
CREATE FUNCTION crm.refuse_on_subscriber() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_subscription_rel s WHERE s.srrelid = TG_RELID) THEN
        RAISE EXCEPTION USING ERRCODE = 'read_only_sql_transaction',
            MESSAGE = format('%s is replicated from a publisher: change it there', TG_RELID::regclass),
            HINT = 'This database subscribes to crm_access''s tables (crm.replicated_tables()): the subscription writes them.';
    END IF;
    RETURN NULL;
END $$;
DO $$
DECLARE t regclass;
BEGIN
    FOR t IN SELECT tbl FROM crm.catalog_tables WHERE dumped ORDER BY tbl::text LOOP
        EXECUTE format('CREATE TRIGGER refuse_on_subscriber BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON %s '
                       'FOR EACH STATEMENT EXECUTE FUNCTION crm.refuse_on_subscriber()', t);
    END LOOP;
END $$;
CREATE OR REPLACE FUNCTION crm.unregistered_problems(tbl regclass) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    WITH c AS (
        SELECT c.oid, c.relrowsecurity, c.relforcerowsecurity FROM pg_class c
        WHERE c.oid = $1 AND c.relnamespace <> 'crm'::regnamespace
          AND NOT EXISTS (SELECT 1 FROM crm.protected_tables p WHERE p.tbl = c.oid)
          AND EXISTS (SELECT 1 FROM pg_policy x WHERE x.polrelid = c.oid AND x.polname IN ('crm_base', 'crm_read', 'crm_create', 'crm_edit', 'crm_delete'))
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
CREATE OR REPLACE FUNCTION crm.guard_protection() RETURNS event_trigger
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
        WHERE d.command_tag = 'ALTER POLICY' AND x.polname IN ('crm_base', 'crm_read', 'crm_create', 'crm_edit', 'crm_delete')
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
          AND EXISTS (SELECT 1 FROM pg_policy x WHERE x.polrelid = c.oid AND x.polname IN ('crm_base', 'crm_read', 'crm_create', 'crm_edit', 'crm_delete'))
    LOOP
        CONTINUE WHEN crm.protection_changing(t);
        RAISE EXCEPTION USING ERRCODE = 'insufficient_privilege',
            MESSAGE = format('%s carries crm_access''s policies but is not in its catalog: it cannot be altered until it is protected again', t),
            DETAIL = 'Restored without its catalog row, it admits nobody, and stays as it was restored.',
            HINT = format('A CRM administrator who owns the table runs crm.protect(%L, module) to protect it again.', t::text);
    END LOOP;
    FOR t IN
        SELECT DISTINCT x.polrelid FROM pg_policy x JOIN pg_class c ON c.oid = x.polrelid
        WHERE x.polname IN ('crm_base', 'crm_read', 'crm_create', 'crm_edit', 'crm_delete') AND c.relnamespace <> 'crm'::regnamespace
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
