-- Access that expires (DESIGN §9, issue 26): a permission-set assignment with `until` counts
-- for a statement that starts before it, also inside a long transaction, and for none that
-- starts after it, with no job and no cached plan reused past the instant. dave (Support)
-- reads no lead of his own; the permission set Peek (View All) lets him read all fourteen.
-- Users are switched with session-level SET for brevity (crm.require_local_user, as plans.sql).
SET crm.require_local_user = off;
\set ECHO none
\o /dev/null
CREATE EXTENSION crm_access;
\i tests/fixtures/helpers.sql
\i tests/fixtures/org.sql
\o
\set ECHO all
\i examples/expiry/auditor.sql
SELECT until > now() + interval '29 days' AS example_ends_in_a_month FROM crm.permission_set_assignments;
SELECT crm.unassign_permission_set('Quarter Close', 'user', 'dave');
SELECT crm.create_permission_set('Peek', view_all => true);
SELECT regress.catalog_digest() AS digest \gset

-- An end must be a moment after the statement's start; NULL is no end.
SELECT regress.try($$SELECT crm.assign_permission_set('Peek', 'user', 'dave', now() - interval '1 second')$$);
SELECT regress.try($$SELECT crm.assign_permission_set('Peek', 'user', 'dave', statement_timestamp())$$);
SELECT regress.try($$SELECT crm.assign_permission_set('Peek', 'user', 'dave', 'infinity')$$);
SELECT regress.try($$SELECT crm.assign_permission_set('Peek', 'user', 'dave', '-infinity')$$);
SELECT regress.try($$SELECT crm.assign_permission_set(NULL, 'user', 'dave', now() + interval '1 day')$$);
SELECT regress.try($$SELECT crm.assign_permission_set('Peek', 'user', 'nobody', now() + interval '1 day')$$);
SELECT regress.try($$SELECT crm.assign_permission_set('Peek', 'role', 'Support', now() + interval '1 day')$$);
-- Only administrators assign.
SET SESSION AUTHORIZATION crm_app;
SET crm.user_name = 'dave';
SELECT regress.try($$SELECT crm.assign_permission_set('Peek', 'user', 'dave', now() + interval '1 day')$$);
RESET crm.user_name;
RESET SESSION AUTHORIZATION;
-- A direct write of an endless moment is refused by the table too.
SELECT regress.try($$INSERT INTO crm.permission_set_assignments VALUES ((SELECT id FROM crm.permission_sets WHERE name = 'Peek'), crm.owner_id('dave'), 'infinity')$$);
SELECT regress.catalog_digest() = :'digest' AS refusals_changed_nothing;

-- Peek for dave until a moment a few seconds ahead.
SELECT clock_timestamp() AS before_grant \gset
SELECT date_trunc('second', clock_timestamp()) + interval '4 seconds' AS peek_until \gset
SELECT crm.assign_permission_set('Peek', 'user', 'dave', :'peek_until');
SELECT until = :'peek_until' AS stored_end FROM crm.permission_set_assignments;
-- access_review names the end.
SELECT module, action, reach, regexp_replace(array_to_string(reasons, '; '), 'until [0-9-]+ [0-9:.+]+', 'until <end>') AS reasons
FROM crm.access_review('dave') WHERE module = 'Leads';
SELECT reasons[1] = 'View All (permission set Peek until ' || to_char(:'peek_until'::timestamptz AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') || '+00)'
       AS review_shows_the_end_in_utc
FROM crm.access_review('dave') WHERE module = 'Leads' AND action = 'read';

-- dave, for the session, with a prepared statement and a transaction that spans the end.
SET SESSION AUTHORIZATION crm_app;
SET crm.user_name = 'dave';
PREPARE dave_leads AS SELECT count(*) FROM sales.leads;
EXECUTE dave_leads;
CREATE FUNCTION pg_temp.leads_seen() RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN
    RETURN (SELECT count(*) FROM sales.leads);
END $$;
SELECT pg_temp.leads_seen() AS plpgsql_sees;
BEGIN;
SELECT count(*) AS in_transaction_before FROM sales.leads;
EXECUTE dave_leads;
-- The end passes while the transaction is open: its next statements start after it.
SELECT true AS waited FROM pg_sleep(extract(epoch FROM :'peek_until'::timestamptz - clock_timestamp())::float8 + 0.2);
EXECUTE dave_leads;
SELECT count(*) AS in_transaction_after FROM sales.leads;
SELECT pg_temp.leads_seen() AS plpgsql_sees;
COMMIT;
EXECUTE dave_leads;
SELECT pg_temp.leads_seen() AS plpgsql_sees;
RESET crm.user_name;
RESET SESSION AUTHORIZATION;

-- The ended row stays (nothing runs at the instant) and counts for nothing.
SELECT count(*) AS ended_rows_kept FROM crm.permission_set_assignments WHERE until <= now();
SELECT module, action, reach FROM crm.access_review('dave') WHERE module = 'Leads' ORDER BY action;

-- A past moment judges the end against that moment: before it dave could read lead 11, at it not.
SELECT crm.who_could('sales.leads', 11, 'read', :'peek_until'::timestamptz - interval '1 second') AS could_before_the_end;
SELECT crm.who_could('sales.leads', 11, 'read', :'peek_until') AS could_at_the_end;
SELECT regexp_replace(crm.explain_access('sales.leads', 11, 'read', 'dave', :'peek_until'::timestamptz - interval '1 second'),
                      'until [0-9-]+ [0-9:.+]+', 'until <end>') AS explained_before;
SELECT crm.explain_access('sales.leads', 11, 'read', 'dave', :'peek_until') AS explained_at;
-- access_changes: the assignment (with its audit entry), then the end (with none), at its instant.
SELECT at = :'peek_until' AS at_the_end, module, action, cardinality(gained) AS gained, cardinality(lost) AS lost, audit_id IS NOT NULL AS logged
FROM crm.access_changes('dave', :'before_grant') WHERE module = 'Leads' AND action = 'read' ORDER BY at;
SELECT count(*) AS expiry_is_no_audit_entry FROM crm.audit_log WHERE at > :'before_grant' AND operation <> 'assign_permission_set';

-- Assigning again sets a new end, or none; unassigning removes it.
SELECT crm.assign_permission_set('Peek', 'user', 'dave', now() + interval '1 hour');
SELECT until > now() AS new_end FROM crm.permission_set_assignments;
SELECT crm.assign_permission_set('Peek', 'user', 'dave');
SELECT until IS NULL AS no_end FROM crm.permission_set_assignments;
SET SESSION AUTHORIZATION crm_app;
SET crm.user_name = 'dave';
EXECUTE dave_leads;
RESET crm.user_name;
RESET SESSION AUTHORIZATION;
SELECT crm.unassign_permission_set('Peek', 'user', 'dave');

-- A group's assignment ends for every member; the earliest end of several is what matters.
SELECT crm.create_group('Helpdesk') > 0 AS group_created;
SELECT crm.add_group_member('Helpdesk', 'user', 'dave');
SELECT date_trunc('second', clock_timestamp()) + interval '3 seconds' AS group_until \gset
SELECT crm.assign_permission_set('Peek', 'group', 'Helpdesk', :'group_until');
SELECT crm.create_permission_set('Later', view_all => true);
SELECT crm.assign_permission_set('Later', 'user', 'carol', now() + interval '1 day');
SET SESSION AUTHORIZATION crm_app;
SET crm.user_name = 'dave';
EXECUTE dave_leads;
RESET crm.user_name;
SELECT true AS waited FROM pg_sleep(extract(epoch FROM :'group_until'::timestamptz - clock_timestamp())::float8 + 0.2);
SET crm.user_name = 'dave';
EXECUTE dave_leads;
SET crm.user_name = 'carol';
EXECUTE dave_leads;
RESET crm.user_name;
RESET SESSION AUTHORIZATION;

-- A procedure or DO block that commits judges each of its transactions at that transaction's
-- start: a grant that ended before the next one began counts no more there (red team of
-- issue 26: the loop kept the DO statement's start, and the grant, for good).
SELECT crm.create_permission_set('Brief', view_all => true);
SELECT crm.assign_permission_set('Brief', 'user', 'dave', date_trunc('second', clock_timestamp()) + interval '2 seconds');
SET SESSION AUTHORIZATION crm_app;
SET crm.user_name = 'dave';
DO $$
DECLARE n bigint;
BEGIN
    FOR i IN 1..2 LOOP
        SELECT count(*) INTO n FROM sales.leads;
        RAISE NOTICE 'transaction %: % leads', i, n;
        PERFORM pg_sleep(2.5);
        COMMIT;
    END LOOP;
END $$;
RESET crm.user_name;
RESET SESSION AUTHORIZATION;

SET client_min_messages = warning;
DROP SCHEMA sales CASCADE;
DROP SCHEMA regress CASCADE;
DROP EXTENSION crm_access CASCADE;
