-- Variant (e) of the benchmark: the share-table design of vtiger's sharing privileges and
-- Salesforce's share tables. Who may see whose records is precomputed into tables maintained
-- by triggers on the catalog, and the policies only look the acting user's owners up:
--   e.reach(user_id, owner_id)                     themselves, their groups, their subordinates
--                                                  (every module alike);
--   e.rule_share(module, user_id, owner_id, can_edit)   what sharing rules give them.
-- What depends on no owner (admin, View All/Edit All, module privileges, the org-wide
-- defaults) is decided at statement time by c.access, as Salesforce decides its org-wide
-- defaults and "View All" without share rows: so a change of default recalculates nothing.
-- Recalculation is targeted, as Salesforce's: statement-level triggers on users, group
-- memberships and rules work out which users a change can reach and recompute their rows,
-- set-based; a change of the role tree recomputes everyone (vtiger's "recalculate sharing"),
-- writing only the difference. Needs bench/competitor.sql (c.me,
-- c.access, c.everyone) and copies the tables the way it does (e_leads, ...).

CREATE SCHEMA e;
GRANT USAGE ON SCHEMA e TO PUBLIC;

CREATE TABLE e.reach (user_id bigint NOT NULL, owner_id bigint NOT NULL, PRIMARY KEY (user_id, owner_id));
CREATE TABLE e.rule_share (module text NOT NULL, user_id bigint NOT NULL, owner_id bigint NOT NULL, can_edit boolean NOT NULL,
                           PRIMARY KEY (module, user_id, owner_id));
-- Who reaches a user's records: what a move of that user changes above them.
CREATE INDEX ON e.reach (owner_id);

-- The closure of the role tree, each role with itself.
CREATE VIEW e.role_closure (ancestor, descendant) AS
    WITH RECURSIVE closure(ancestor, descendant) AS (
        SELECT id, id FROM crm.roles
        UNION ALL SELECT c.ancestor, r.id FROM crm.roles r JOIN closure c ON r.parent_id = c.descendant)
    SELECT * FROM closure;

-- What each user reaches without rules: their own records, their groups' (directly, through
-- their role, through a role-and-subordinates membership above them, nested) and those of
-- every user below them in the hierarchy.
CREATE VIEW e.reach_wanted (user_id, owner_id) AS
    WITH RECURSIVE closure AS MATERIALIZED (SELECT * FROM e.role_closure),
    user_groups(user_id, group_id) AS (
        SELECT u.owner_id, m.group_id FROM crm.group_members m JOIN crm.users u ON m.member_kind = 'user' AND u.owner_id = m.member_id
        UNION SELECT u.owner_id, m.group_id FROM crm.group_members m JOIN crm.users u ON m.member_kind = 'role' AND u.role_id = m.member_id
        UNION SELECT u.owner_id, m.group_id FROM crm.group_members m JOIN closure c ON m.member_kind = 'role_and_subordinates' AND c.ancestor = m.member_id
                                                                     JOIN crm.users u ON u.role_id = c.descendant
        UNION SELECT g.user_id, m.group_id FROM user_groups g JOIN crm.group_members m ON m.member_kind = 'group' AND m.member_id = g.group_id)
    SELECT owner_id, owner_id FROM crm.users
    UNION SELECT user_id, group_id FROM user_groups
    UNION SELECT u.owner_id, b.owner_id FROM crm.users u JOIN closure c ON c.ancestor = u.role_id AND c.descendant <> c.ancestor
                                                         JOIN crm.users b ON b.role_id = c.descendant;

-- What sharing rules give: a rule's receivers are the users of its target party and every
-- user above one of them ("shared below"); they get the records of the source party's users
-- and, for a group, of the group itself. Parties expand as in c.party_users.
CREATE VIEW e.rule_share_wanted (module, user_id, owner_id, can_edit) AS
    WITH RECURSIVE closure AS MATERIALIZED (SELECT * FROM e.role_closure),
    parties(kind, id) AS (SELECT source_kind, source_id FROM crm.sharing_rules UNION SELECT target_kind, target_id FROM crm.sharing_rules),
    party_groups(kind, id, group_id) AS (
        SELECT kind, id, id FROM parties WHERE kind = 'group'
        UNION SELECT p.kind, p.id, m.member_id FROM party_groups p JOIN crm.group_members m ON m.group_id = p.group_id AND m.member_kind = 'group'),
    party_roles(kind, id, role_id) AS (
        SELECT kind, id, id FROM parties WHERE kind = 'role'
        UNION SELECT p.kind, p.id, c.descendant FROM parties p JOIN closure c ON c.ancestor = p.id WHERE p.kind = 'role_and_subordinates'
        UNION SELECT p.kind, p.id, m.member_id FROM party_groups p JOIN crm.group_members m ON m.group_id = p.group_id AND m.member_kind = 'role'
        UNION SELECT p.kind, p.id, c.descendant FROM party_groups p JOIN crm.group_members m ON m.group_id = p.group_id AND m.member_kind = 'role_and_subordinates'
                                                                    JOIN closure c ON c.ancestor = m.member_id),
    party_users(kind, id, user_id) AS (
        SELECT p.kind, p.id, u.owner_id FROM party_roles p JOIN crm.users u ON u.role_id = p.role_id
        UNION SELECT p.kind, p.id, u.owner_id FROM party_groups p JOIN crm.group_members m ON m.group_id = p.group_id AND m.member_kind = 'user'
                                                                  JOIN crm.users u ON u.owner_id = m.member_id),
    receivers(rule_id, user_id) AS (
        SELECT r.id, t.user_id FROM crm.sharing_rules r JOIN party_users t ON (t.kind, t.id) = (r.target_kind, r.target_id)
        UNION SELECT r.id, a.owner_id FROM crm.sharing_rules r JOIN party_users t ON (t.kind, t.id) = (r.target_kind, r.target_id)
                                                               JOIN crm.users tu ON tu.owner_id = t.user_id
                                                               JOIN closure c ON c.descendant = tu.role_id AND c.ancestor <> c.descendant
                                                               JOIN crm.users a ON a.role_id = c.ancestor),
    given(rule_id, owner_id) AS (
        SELECT r.id, s.user_id FROM crm.sharing_rules r JOIN party_users s ON (s.kind, s.id) = (r.source_kind, r.source_id)
        UNION SELECT r.id, r.source_id FROM crm.sharing_rules r WHERE r.source_kind = 'group')
    SELECT r.module, v.user_id, g.owner_id, bool_or(r.access = 'read_write')
    FROM crm.sharing_rules r JOIN receivers v ON v.rule_id = r.id JOIN given g ON g.rule_id = r.id
    GROUP BY 1, 2, 3;

-- Recompute one table's rows for the given users (everyone: NULL), set-based, and write only
-- the difference: most users a change can reach keep most of their rows.
-- JIT off: the recursive queries' estimates are far too high for what they read, and JIT
-- compiling them cost 250 ms of every recalculation of a small organisation.
CREATE FUNCTION e.recalculate_reach(users bigint[]) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET jit = off SET work_mem = '64MB' AS $$
BEGIN
    CREATE TEMP TABLE e_wanted ON COMMIT DROP AS
        SELECT * FROM e.reach_wanted WHERE users IS NULL OR user_id = ANY (users);
    DELETE FROM e.reach r WHERE (users IS NULL OR r.user_id = ANY (users))
        AND NOT EXISTS (SELECT 1 FROM e_wanted w WHERE (w.user_id, w.owner_id) = (r.user_id, r.owner_id));
    INSERT INTO e.reach SELECT * FROM e_wanted EXCEPT SELECT * FROM e.reach r WHERE users IS NULL OR r.user_id = ANY (users);
    DROP TABLE e_wanted;
END $$;

CREATE FUNCTION e.recalculate_rules(users bigint[]) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET jit = off SET work_mem = '64MB' AS $$
BEGIN
    CREATE TEMP TABLE e_wanted ON COMMIT DROP AS
        SELECT * FROM e.rule_share_wanted WHERE users IS NULL OR user_id = ANY (users);
    DELETE FROM e.rule_share r WHERE (users IS NULL OR r.user_id = ANY (users))
        AND NOT EXISTS (SELECT 1 FROM e_wanted w WHERE (w.module, w.user_id, w.owner_id, w.can_edit)
                                                       = (r.module, r.user_id, r.owner_id, r.can_edit));
    INSERT INTO e.rule_share SELECT * FROM e_wanted
        EXCEPT SELECT * FROM e.rule_share r WHERE users IS NULL OR r.user_id = ANY (users);
    DROP TABLE e_wanted;
END $$;

CREATE FUNCTION e.recalculate(users bigint[]) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT e.recalculate_reach(users);
    SELECT e.recalculate_rules(users);
$$;

-- How many rows of the share tables differ from a full recalculation (the harness checks 0
-- after every targeted one).
CREATE FUNCTION e.stale_rows() RETURNS bigint
LANGUAGE sql STABLE SET jit = off AS $$
    SELECT (SELECT count(*) FROM (SELECT * FROM e.reach EXCEPT SELECT * FROM e.reach_wanted) x)
         + (SELECT count(*) FROM (SELECT * FROM e.reach_wanted EXCEPT SELECT * FROM e.reach) x)
         + (SELECT count(*) FROM (SELECT * FROM e.rule_share EXCEPT SELECT * FROM e.rule_share_wanted) x)
         + (SELECT count(*) FROM (SELECT * FROM e.rule_share_wanted EXCEPT SELECT * FROM e.rule_share) x)
$$;

-- The roles a party's users hold (role: itself; role and subordinates: its subtree; group: the
-- roles and subtrees among its members and its nested groups' members), and a group party's
-- groups, nested ones included.
CREATE FUNCTION e.party_groups(kind text, party bigint) RETURNS SETOF bigint
LANGUAGE sql STABLE AS $$
    WITH RECURSIVE grp(g) AS (
        SELECT party WHERE kind = 'group'
        UNION SELECT m.member_id FROM crm.group_members m JOIN grp ON m.group_id = grp.g AND m.member_kind = 'group')
    SELECT g FROM grp
$$;
CREATE FUNCTION e.party_roles(kind text, party bigint) RETURNS SETOF bigint
LANGUAGE sql STABLE AS $$
    WITH seeds(r, sub) AS (
        SELECT party, kind = 'role_and_subordinates' WHERE kind IN ('role', 'role_and_subordinates')
        UNION ALL SELECT m.member_id, m.member_kind = 'role_and_subordinates' FROM crm.group_members m
        WHERE m.group_id IN (SELECT e.party_groups(kind, party)) AND m.member_kind IN ('role', 'role_and_subordinates'))
    SELECT r FROM seeds WHERE NOT sub
    UNION SELECT c.descendant FROM seeds s JOIN e.role_closure c ON c.ancestor = s.r WHERE s.sub
$$;

-- A rule's receivers: the users of its target party and every user above one of them.
CREATE FUNCTION e.receivers(kind text, party bigint) RETURNS SETOF bigint
LANGUAGE sql STABLE AS $$
    WITH t(u) AS (SELECT c.party_users(kind, party))
    SELECT u FROM t
    UNION SELECT a.owner_id FROM t JOIN crm.users tu ON tu.owner_id = t.u
                               JOIN e.role_closure c ON c.descendant = tu.role_id AND c.ancestor <> c.descendant
                               JOIN crm.users a ON a.role_id = c.ancestor
$$;

-- The catalog triggers: each recalculates the users a change can reach (Salesforce's targeted
-- recalculation); a change of the role tree recalculates everyone (vtiger's "recalculate").
-- bench.share_recalc = off skips the work (the harness times the same catalog change without
-- it, as crm_access alone).
CREATE FUNCTION e.recalculation_on() RETURNS boolean
LANGUAGE sql STABLE AS $$ SELECT coalesce(current_setting('bench.share_recalc', true), '') <> 'off' $$;

-- A user added, removed, moved. Hierarchy rows change by pairs: whoever was above the user
-- loses them, whoever is above them now gains them (nothing else puts a user's records in
-- another user's reach); the user's own rows are recomputed. Rule rows are recomputed for the
-- user, the receivers of every rule whose source stands for them (by role, before or after,
-- or as a group's member), and, when a rule's target stands for them, everyone above their
-- old and new role ("shared below").
CREATE FUNCTION e.users_changed(changed jsonb) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET jit = off AS $$
DECLARE ids bigint[];
BEGIN
    ids := ARRAY(SELECT DISTINCT owner_id FROM jsonb_populate_recordset(NULL::crm.users, changed));
    DELETE FROM e.reach WHERE owner_id = ANY (ids) AND user_id <> owner_id;
    INSERT INTO e.reach
        SELECT u.owner_id, x.owner_id FROM crm.users x
        JOIN e.role_closure c ON c.descendant = x.role_id AND c.ancestor <> c.descendant
        JOIN crm.users u ON u.role_id = c.ancestor
        WHERE x.owner_id = ANY (ids)
        ON CONFLICT DO NOTHING;
    PERFORM e.recalculate_reach(ids);
    PERFORM e.recalculate_rules(ARRAY(
        WITH ch AS (SELECT DISTINCT owner_id, role_id FROM jsonb_populate_recordset(NULL::crm.users, changed)),
        stands_for AS (
            SELECT r.* FROM crm.sharing_rules r, ch
            WHERE ch.role_id IN (SELECT e.party_roles(r.source_kind, r.source_id))
               OR EXISTS (SELECT 1 FROM crm.group_members m WHERE m.group_id IN (SELECT e.party_groups(r.source_kind, r.source_id))
                                                               AND m.member_kind = 'user' AND m.member_id = ch.owner_id)),
        targets AS (
            SELECT 1 FROM crm.sharing_rules r, ch
            WHERE ch.role_id IN (SELECT e.party_roles(r.target_kind, r.target_id))
               OR EXISTS (SELECT 1 FROM crm.group_members m WHERE m.group_id IN (SELECT e.party_groups(r.target_kind, r.target_id))
                                                               AND m.member_kind = 'user' AND m.member_id = ch.owner_id))
        SELECT owner_id FROM ch
        UNION SELECT u.owner_id FROM ch JOIN e.role_closure c ON c.descendant = ch.role_id AND c.ancestor <> c.descendant
                                        JOIN crm.users u ON u.role_id = c.ancestor
              WHERE EXISTS (SELECT 1 FROM targets)
        UNION SELECT v FROM (SELECT DISTINCT target_kind, target_id FROM stands_for) r, e.receivers(r.target_kind, r.target_id) v));
END $$;

-- A membership added or removed. Group rows are recomputed for the users the member stands
-- for; rule rows for them, for everyone above them when a rule targets the group or a group
-- that contains it ("shared below"), and for the receivers of every rule naming the group or
-- a group that contains it.
CREATE FUNCTION e.group_members_changed(changed jsonb) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET jit = off AS $$
BEGIN
    PERFORM e.recalculate_reach(ARRAY(
        WITH ch AS (SELECT DISTINCT * FROM jsonb_populate_recordset(NULL::crm.group_members, changed))
        SELECT c.party_users(CASE ch.member_kind WHEN 'user' THEN 'group' ELSE ch.member_kind END,
                             CASE ch.member_kind WHEN 'user' THEN NULL ELSE ch.member_id END)
        FROM ch WHERE ch.member_kind <> 'user'
        UNION SELECT member_id FROM ch WHERE member_kind = 'user'));
    PERFORM e.recalculate_rules(ARRAY(
        WITH RECURSIVE ch AS (SELECT DISTINCT * FROM jsonb_populate_recordset(NULL::crm.group_members, changed)),
        up(g) AS (SELECT group_id FROM ch
                  UNION SELECT m.group_id FROM crm.group_members m JOIN up ON m.member_kind = 'group' AND m.member_id = up.g),
        members(u) AS (SELECT c.party_users(CASE ch.member_kind WHEN 'user' THEN 'group' ELSE ch.member_kind END,
                                            CASE ch.member_kind WHEN 'user' THEN NULL ELSE ch.member_id END)
                       FROM ch WHERE ch.member_kind <> 'user'
                       UNION SELECT member_id FROM ch WHERE member_kind = 'user')
        SELECT u FROM members
        UNION SELECT a.owner_id FROM members JOIN crm.users mu ON mu.owner_id = members.u
                                 JOIN e.role_closure c ON c.descendant = mu.role_id AND c.ancestor <> c.descendant
                                 JOIN crm.users a ON a.role_id = c.ancestor
              WHERE EXISTS (SELECT 1 FROM crm.sharing_rules r WHERE r.target_kind = 'group' AND r.target_id IN (SELECT g FROM up))
        UNION SELECT v FROM crm.sharing_rules r, e.receivers(r.target_kind, r.target_id) v
              WHERE (r.source_kind = 'group' AND r.source_id IN (SELECT g FROM up))
                 OR (r.target_kind = 'group' AND r.target_id IN (SELECT g FROM up))));
END $$;

-- A rule added, changed or dropped: the rule rows of its receivers, before and after.
CREATE FUNCTION e.sharing_rules_changed(changed jsonb) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET jit = off AS $$
BEGIN
    PERFORM e.recalculate_rules(ARRAY(
        SELECT v FROM (SELECT DISTINCT target_kind, target_id FROM jsonb_populate_recordset(NULL::crm.sharing_rules, changed)) r,
                      e.receivers(r.target_kind, r.target_id) v));
END $$;

-- The one trigger of users, group memberships and rules: collects the changed rows, before
-- and after, as JSON (a trigger names only its own event's transition tables, and no other
-- function sees them), and hands them to the table's recalculation.
CREATE FUNCTION e.rows_changed() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE changed jsonb := '[]';
BEGIN
    IF NOT e.recalculation_on() THEN
        RETURN NULL;
    END IF;
    IF TG_OP <> 'INSERT' THEN
        changed := changed || coalesce((SELECT jsonb_agg(o) FROM old_rows o), '[]');
    END IF;
    IF TG_OP <> 'DELETE' THEN
        changed := changed || coalesce((SELECT jsonb_agg(n) FROM new_rows n), '[]');
    END IF;
    CASE TG_TABLE_NAME
        WHEN 'users' THEN PERFORM e.users_changed(changed);
        WHEN 'group_members' THEN PERFORM e.group_members_changed(changed);
        WHEN 'sharing_rules' THEN PERFORM e.sharing_rules_changed(changed);
    END CASE;
    RETURN NULL;
END $$;

CREATE FUNCTION e.roles_changed() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET jit = off AS $$
BEGIN
    IF e.recalculation_on() THEN
        PERFORM e.recalculate(NULL);
    END IF;
    RETURN NULL;
END $$;

-- Statistics on the catalog, as autovacuum would soon have them.
ANALYZE crm.users, crm.roles, crm.group_members, crm.sharing_rules;
SELECT e.recalculate(NULL);
ANALYZE e.reach;
ANALYZE e.rule_share;

-- A trigger with transition tables takes one event, so three per table; TRUNCATE (no
-- transition table) recalculates everyone.
DO $$
DECLARE t text; ev text;
BEGIN
    FOREACH t IN ARRAY ARRAY['users', 'group_members', 'sharing_rules'] LOOP
        FOREACH ev IN ARRAY ARRAY['INSERT', 'UPDATE', 'DELETE'] LOOP
            EXECUTE format('CREATE TRIGGER e_%s AFTER %s ON crm.%I REFERENCING %s FOR EACH STATEMENT EXECUTE FUNCTION e.rows_changed()',
                           lower(ev), ev, t,
                           CASE ev WHEN 'INSERT' THEN 'NEW TABLE AS new_rows' WHEN 'DELETE' THEN 'OLD TABLE AS old_rows'
                                   ELSE 'OLD TABLE AS old_rows NEW TABLE AS new_rows' END);
        END LOOP;
        EXECUTE format('CREATE TRIGGER e_truncate AFTER TRUNCATE ON crm.%I FOR EACH STATEMENT EXECUTE FUNCTION e.roles_changed()', t);
    END LOOP;
    CREATE TRIGGER e_recalculate AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON crm.roles FOR EACH STATEMENT EXECUTE FUNCTION e.roles_changed();
END $$;

-- The owners whose `module` records the acting user may `action`: every owner, none, or
-- those of the share tables (rules never give delete).
CREATE FUNCTION e.owners(module text, action text) RETURNS bigint[]
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    me bigint := c.me();
    a record := c.access(me, module, action);
    governing text := CASE WHEN module = 'Contacts' THEN 'Accounts' ELSE module END;
BEGIN
    IF a.mode = 'none' THEN
        RETURN '{}';
    ELSIF a.mode = 'all' THEN
        RETURN c.everyone();
    END IF;
    RETURN ARRAY(SELECT r.owner_id FROM e.reach r WHERE r.user_id = me
                 UNION SELECT s.owner_id FROM e.rule_share s
                 WHERE s.module = governing AND s.user_id = me AND (action = 'read' OR (action = 'edit' AND s.can_edit)));
END $$;

-- The copies of the data, with the same indexes, and their policies.
SELECT c.copy_tables('e_', 'e.owners');
