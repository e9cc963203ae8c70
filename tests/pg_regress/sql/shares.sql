-- Record shares (DESIGN §9, issue 26): one record shared with a user, a group, a role or a
-- role and its subordinates, for reading or reading and editing (never deleting), perhaps
-- until a moment. Receivers and every user above them get the access; the record's owner,
-- users above the owner and administrators share and unshare; a change of owner or the
-- record's deletion removes its shares. Leads are private here: alice owns 41 and 42, bob 51
-- and 52, carol (Rep_East, under mgr_east) 71 and 72.
\set ECHO none
\o /dev/null
CREATE EXTENSION crm_access;
\i tests/fixtures/helpers.sql
\i tests/fixtures/org.sql
\o
\set ECHO all
GRANT SELECT, INSERT, UPDATE, DELETE ON sales.leads TO crm_app;
CREATE FUNCTION regress.leads_of(who text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE ids text;
BEGIN
    PERFORM regress.act_as(who);
    SELECT string_agg(id::text, ',' ORDER BY id) INTO ids FROM sales.leads;
    PERFORM regress.act_done();
    RETURN who || ': ' || coalesce(ids, '-');
END $$;
GRANT EXECUTE ON FUNCTION regress.leads_of(text) TO crm_app;
SELECT regress.catalog_digest() AS digest \gset

-- The README's example, rolled back: carol reads 42 (and 41, as Mgr_East's subordinate).
SET SESSION AUTHORIZATION crm_app;
BEGIN;
\i examples/shares/deal_room.sql
SET LOCAL crm.user_name = 'carol';
SELECT string_agg(id::text, ',' ORDER BY id) AS carol_reads FROM sales.leads;
SET LOCAL crm.user_name = 'mgr_east';
SELECT string_agg(id::text, ',' ORDER BY id) AS mgr_east_reads FROM sales.leads;
ROLLBACK;
RESET SESSION AUTHORIZATION;

-- alice shares lead 41 with carol for reading, 42 for reading and editing (acting in this
-- session, which crm.require_local_user = off allows a superuser).
SET crm.require_local_user = off;
SET crm.user_name = 'alice';
SELECT crm.share_record('sales.leads', 41, 'user', 'carol', 'read') AS share_41 \gset
SELECT crm.share_record('sales.leads', 42, 'user', 'carol', 'read_write') AS share_42 \gset
RESET crm.user_name;
SELECT share_id = :share_41 AS first, tbl, record_id, kind, receiver, access, until, shared_by, shared_at = now() AS shared_now
FROM crm.record_shares ORDER BY share_id;

-- carol reads both, and mgr_east above her; bob and mgr_west do not gain them (mgr_west reads
-- alice's leads anyway, as her manager).
SET SESSION AUTHORIZATION crm_app;
SELECT regress.leads_of(u) FROM unnest(ARRAY['carol', 'mgr_east', 'bob']) AS u;
-- carol edits 42, not 41; she may not give 42 away, nor delete either. The plan: her key
-- list, an index condition on the key.
BEGIN;
SET LOCAL crm.user_name = 'carol';
WITH u AS (UPDATE sales.leads SET company = 'edited' WHERE id IN (41, 42) RETURNING id) SELECT string_agg(id::text, ',') AS edited FROM u;
SELECT regress.try($$UPDATE sales.leads SET owner_id = crm.owner_id('carol') WHERE id = 42$$);
WITH d AS (DELETE FROM sales.leads WHERE id IN (41, 42) RETURNING id) SELECT count(*) AS deleted FROM d;
EXPLAIN (COSTS OFF) SELECT id FROM sales.leads WHERE company <> '';
ROLLBACK;
RESET SESSION AUTHORIZATION;

-- explain_access names the share; who_can lists its receivers.
SELECT crm.explain_access('sales.leads', 41, 'read', 'carol');
SELECT crm.explain_access('sales.leads', 41, 'edit', 'carol');
SELECT crm.explain_access('sales.leads', 42, 'edit', 'mgr_east');
SELECT array_agg(u ORDER BY u) AS can_read_41 FROM crm.who_can('sales.leads', 41, 'read') AS u;
SELECT array_agg(u ORDER BY u) AS can_edit_42 FROM crm.who_can('sales.leads', 42, 'edit') AS u;

-- Every kind of receiver: a group, a role, a role and its subordinates.
SELECT crm.create_group('Helpers') > 0 AS group_created;
SELECT crm.add_group_member('Helpers', 'user', 'dave');
SET crm.user_name = 'bob';
SELECT crm.share_record('sales.leads', 51, 'group', 'Helpers', 'read') > 0 AS to_group;
SELECT crm.share_record('sales.leads', 52, 'role', 'Rep_East', 'read') > 0 AS to_role;
RESET crm.user_name;
SET crm.user_name = 'mgr_west';
SELECT crm.share_record('sales.leads', 31, 'role_and_subordinates', 'Mgr_East', 'read') > 0 AS to_subtree;
RESET crm.user_name;
SET SESSION AUTHORIZATION crm_app;
SELECT regress.leads_of(u) FROM unnest(ARRAY['dave', 'carol', 'mgr_east', 'vp']) AS u;
RESET SESSION AUTHORIZATION;

-- Who may share: not a receiver (carol reads 41), not someone who cannot read the record
-- (answered like a missing record), not a peer; the owner's manager and administrators may.
-- A user without read on the module gains nothing from a share (no error): ivan's profile
-- grants nothing on Leads.
SET SESSION AUTHORIZATION crm_app;
BEGIN;
SET LOCAL crm.user_name = 'carol';
SELECT regress.try($$SELECT crm.share_record('sales.leads', 41, 'user', 'bob', 'read')$$);
SET LOCAL crm.user_name = 'bob';
SELECT regress.try($$SELECT crm.share_record('sales.leads', 41, 'user', 'bob', 'read')$$);
SELECT regress.try($$SELECT crm.share_record('sales.leads', 999, 'user', 'bob', 'read')$$);
SET LOCAL crm.user_name = 'mgr_west';
SELECT crm.share_record('sales.leads', 42, 'user', 'dave', 'read') > 0 AS manager_shares;
SET LOCAL crm.user_name = 'root';
SELECT crm.share_record('sales.leads', 72, 'user', 'dave', 'read') > 0 AS admin_shares;
ROLLBACK;
RESET SESSION AUTHORIZATION;
SELECT crm.create_profile('Nothing');
SELECT crm.create_role('Temps', 'CEO');
SELECT crm.attach_profile('Temps', 'Nothing');
SELECT crm.create_user('ivan', 'Temps');
SET crm.user_name = 'carol';
SELECT crm.share_record('sales.leads', 71, 'user', 'ivan', 'read_write') > 0 AS to_ivan;
RESET crm.user_name;
SET SESSION AUTHORIZATION crm_app;
SELECT regress.leads_of('ivan');
RESET SESSION AUTHORIZATION;
SELECT crm.explain_access('sales.leads', 71, 'read', 'ivan');

-- Hostile and wrong input: every refusal changes nothing.
SELECT crm.set_user_active('erin', false);
SET crm.user_name = 'alice';
SELECT regress.try($$SELECT crm.share_record('sales.leads', 41, 'user', 'erin', 'read')$$);
RESET crm.user_name;
SELECT crm.set_user_active('erin', true);
SELECT regress.catalog_digest() AS digest \gset
SET crm.user_name = 'alice';
SELECT regress.try($$SELECT crm.share_record(NULL, 41, 'user', 'carol', 'read')$$);
SELECT regress.try($$SELECT crm.share_record('sales.leads', NULL::bigint, 'user', 'carol', 'read')$$);
SELECT regress.try($$SELECT crm.share_record('sales.leads', 41, NULL, 'carol', 'read')$$);
SELECT regress.try($$SELECT crm.share_record('sales.leads', 41, 'user', NULL, 'read')$$);
SELECT regress.try($$SELECT crm.share_record('sales.leads', 41, 'user', 'carol', NULL)$$);
SELECT regress.try($$SELECT crm.share_record('sales.leads', 41, 'user', 'carol', 'delete')$$);
SELECT regress.try($$SELECT crm.share_record('sales.leads', 41, 'owner', 'carol', 'read')$$);
SELECT regress.try($$SELECT crm.share_record('sales.leads', 41, 'user', 'nobody', 'read')$$);
SELECT regress.try($$SELECT crm.share_record('sales.leads', 41, 'user', 'carol''; DROP TABLE sales.leads; --', 'read')$$);
SELECT regress.try($$SELECT crm.share_record('sales.leads', 41, 'group', 'Nope', 'read')$$);
SELECT regress.try($$SELECT crm.share_record('sales.leads', 41, 'role', 'Nope', 'read')$$);
SELECT regress.try($$SELECT crm.share_record('sales.leads', 41, 'user', 'carol', 'read', now() - interval '1 minute')$$);
SELECT regress.try($$SELECT crm.share_record('sales.leads', 41, 'user', 'carol', 'read', 'infinity')$$);
SELECT regress.try($$SELECT crm.share_record('sales.leads', -41, 'user', 'carol', 'read')$$);
SELECT regress.try($$SELECT crm.share_record('sales.leads', 'x'::text, 'user', 'carol', 'read')$$);
SELECT regress.try($$SELECT crm.share_record('sales.leads', ROW(41)::regress.catalog_size, 'user', 'carol', 'read')$$);
SELECT regress.try($$SELECT crm.share_record('crm.roles', 1, 'user', 'carol', 'read')$$);
SELECT regress.try($$SELECT crm.share_record(0, 1, 'user', 'carol', 'read')$$);
SELECT regress.try($$SELECT crm.unshare_record(NULL)$$);
SELECT regress.try($$SELECT crm.unshare_record(-1)$$);
RESET crm.user_name;
-- A receiver may not unshare; nobody unshares what they cannot see.
SET crm.user_name = 'carol';
SELECT regress.try(format('SELECT crm.unshare_record(%s)', :share_41));
RESET crm.user_name;
SET crm.user_name = 'bob';
SELECT regress.try(format('SELECT crm.unshare_record(%s)', :share_42));
RESET crm.user_name;
-- Writes to the table itself go through the functions only.
SET SESSION AUTHORIZATION crm_app;
SELECT regress.try($$INSERT INTO crm.shares (tbl, record_id, owner_id, kind, target_id, access) VALUES ('sales.leads', '11', 1, 'user', 1, 'read')$$);
SELECT regress.try($$DELETE FROM crm.shares$$);
RESET SESSION AUTHORIZATION;
SELECT regress.catalog_digest() = :'digest' AS refusals_changed_nothing;

-- The same share again changes nothing: no audit entry (and no invalidation anywhere).
SELECT count(*) AS entries FROM crm.audit_log \gset
SET crm.user_name = 'alice';
SELECT crm.share_record('sales.leads', 41, 'user', 'carol', 'read') = :share_41 AS same_id;
RESET crm.user_name;
SELECT count(*) - :entries AS new_entries FROM crm.audit_log;

-- A table owner's BEFORE trigger that sets the owner cannot make a receiver the owner: the
-- check reads the row as written (red team of issue 26).
CREATE FUNCTION sales.claim() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.company LIKE 'claim%' THEN NEW.owner_id := crm.acting_owner_id(); END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER zz_claim BEFORE UPDATE ON sales.leads FOR EACH ROW EXECUTE FUNCTION sales.claim();
SET SESSION AUTHORIZATION crm_app;
BEGIN;
SET LOCAL crm.user_name = 'carol';
SELECT regress.try($$UPDATE sales.leads SET company = 'claimed' WHERE id = 42$$);
ROLLBACK;
RESET SESSION AUTHORIZATION;
DROP TRIGGER zz_claim ON sales.leads;
SELECT owner_id = crm.owner_id('alice') AS still_alices FROM sales.leads WHERE id = 42;

-- A user's shares of one table are bounded (10,000; administrators are not).
INSERT INTO crm.shares (tbl, record_id, owner_id, kind, target_id, access, shared_by)
SELECT 'sales.leads', 'x' || g, crm.owner_id('bob'), 'user', crm.owner_id('dave'), 'read', crm.owner_id('bob')
FROM generate_series(1, 10000) g;
SET crm.user_name = 'bob';
SELECT regress.try($$SELECT crm.share_record('sales.leads', 51, 'user', 'carol', 'read')$$);
RESET crm.user_name;
DELETE FROM crm.shares WHERE record_id LIKE 'x%';

-- Who sees which share: an administrator all; a user what they made, what reaches them, and
-- shares of records they may read; the BI login as alice; a login nobody trusts nothing.
SELECT count(*) AS shares_in_all FROM crm.shares;
SET SESSION AUTHORIZATION crm_app;
CREATE FUNCTION pg_temp.shares_seen_by(who text) RETURNS text LANGUAGE plpgsql AS $f$
DECLARE ids text;
BEGIN
    PERFORM regress.act_as(who);
    SELECT string_agg(record_id, ',' ORDER BY record_id::int) INTO ids FROM crm.record_shares;
    PERFORM regress.act_done();
    RETURN who || ': ' || coalesce(ids, '-');
END $f$;
SELECT pg_temp.shares_seen_by(u) FROM unnest(ARRAY['carol', 'bob', 'dave', 'ivan', 'mgr_west']) AS u;
RESET SESSION AUTHORIZATION;
SET SESSION AUTHORIZATION bi_alice;
SELECT string_agg(record_id, ',' ORDER BY record_id::int) AS bi_alice_sees FROM crm.record_shares;
RESET SESSION AUTHORIZATION;
SET SESSION AUTHORIZATION crm_stranger;
SELECT count(*) AS a_stranger_sees FROM crm.record_shares;
RESET SESSION AUTHORIZATION;

-- Unsharing: the owner may; carol loses 41.
SET crm.user_name = 'alice';
SELECT crm.unshare_record(:share_41);
RESET crm.user_name;
SET SESSION AUTHORIZATION crm_app;
SELECT regress.leads_of('carol');
RESET SESSION AUTHORIZATION;

-- A change of owner removes the record's shares; so does its deletion, and a new record
-- under the same key is not shared.
SELECT record_id, receiver FROM crm.record_shares WHERE record_id IN ('42', '51') ORDER BY 1, 2;
UPDATE sales.leads SET owner_id = crm.owner_id('bob') WHERE id = 42;
DELETE FROM sales.leads WHERE id = 51;
INSERT INTO sales.leads VALUES (51, 'bob''s new lead', crm.owner_id('bob'));
SELECT record_id, receiver FROM crm.record_shares WHERE record_id IN ('42', '51') ORDER BY 1, 2;
SET SESSION AUTHORIZATION crm_app;
SELECT regress.leads_of(u) FROM unnest(ARRAY['carol', 'dave']) AS u;
RESET SESSION AUTHORIZATION;
-- An UPDATE that keeps the owner keeps the shares.
UPDATE sales.leads SET company = company || '.' WHERE id = 52;
SELECT count(*) AS kept FROM crm.record_shares WHERE record_id = '52';

-- A share that ends: gone for the next statement after its end, prepared statements included.
SELECT date_trunc('second', clock_timestamp()) + interval '3 seconds' AS share_until \gset
SET crm.user_name = 'bob';
SELECT crm.share_record('sales.leads', 52, 'user', 'alice', 'read', :'share_until') > 0 AS until_shared;
RESET crm.user_name;
SET SESSION AUTHORIZATION crm_app;
SET crm.user_name = 'alice';
PREPARE alice_leads AS SELECT string_agg(id::text, ',' ORDER BY id) FROM sales.leads;
EXECUTE alice_leads;
SELECT regexp_replace(crm.explain_access('sales.leads', 52, 'read'), 'until [0-9-]+ [0-9:.+]+', 'until <end>') AS explained;
SELECT true AS waited FROM pg_sleep(extract(epoch FROM :'share_until'::timestamptz - clock_timestamp())::float8 + 0.2);
EXECUTE alice_leads;
RESET crm.user_name;
RESET SESSION AUTHORIZATION;
SELECT array_agg(u) @> ARRAY['alice'] AS alice_could_before FROM crm.who_could('sales.leads', 52, 'read', :'share_until'::timestamptz - interval '1 second') AS u;
SELECT array_agg(u) @> ARRAY['alice'] AS alice_could_at_the_end FROM crm.who_could('sales.leads', 52, 'read', :'share_until') AS u;

-- Shares alone take a checkpoint when one is due, as catalog commits do (red team of issue
-- 26, round 3: they never did, and a point-in-time review then read every entry since).
SET crm.audit_checkpoint_every = 4;
SELECT count(*) AS checkpoints_before FROM crm.audit_checkpoints \gset
SET crm.user_name = 'alice';
SELECT crm.unshare_record(crm.share_record('sales.leads', 41, 'user', 'dave', 'read')) AS unshared \gset
SELECT crm.unshare_record(crm.share_record('sales.leads', 41, 'user', 'dave', 'read')) AS unshared \gset
SELECT crm.unshare_record(crm.share_record('sales.leads', 41, 'user', 'dave', 'read')) AS unshared \gset
SELECT crm.unshare_record(crm.share_record('sales.leads', 41, 'user', 'dave', 'read')) AS unshared \gset
SELECT crm.unshare_record(crm.share_record('sales.leads', 41, 'user', 'dave', 'read')) AS unshared \gset
SELECT crm.unshare_record(crm.share_record('sales.leads', 41, 'user', 'dave', 'read')) AS unshared \gset
SELECT crm.unshare_record(crm.share_record('sales.leads', 41, 'user', 'dave', 'read')) AS unshared \gset
SELECT crm.unshare_record(crm.share_record('sales.leads', 41, 'user', 'dave', 'read')) AS unshared \gset
RESET crm.user_name;
RESET crm.audit_checkpoint_every;
SELECT count(*) - :checkpoints_before >= 3 AS checkpoints_taken FROM crm.audit_checkpoints;

-- Deleting a user, group or role removes the shares made with it (red team of issue 26, round
-- 3: they stayed, naming nobody); a share made meanwhile holds the receiver until it commits
-- (races.rs).
SELECT crm.create_user('sharee', 'Rep_East');
SELECT crm.create_group('Temp Team');
SELECT crm.create_role('Temp Role', 'Mgr_East');
SET crm.user_name = 'alice';
SELECT crm.share_record('sales.leads', 41, 'user', 'sharee', 'read') > 0 AS shared,
       crm.share_record('sales.leads', 41, 'group', 'Temp Team', 'read') > 0 AS shared,
       crm.share_record('sales.leads', 41, 'role_and_subordinates', 'Temp Role', 'read') > 0 AS shared;
RESET crm.user_name;
SELECT crm.owner_id('sharee') AS sharee, crm.owner_id('Temp Team') AS team, (SELECT id FROM crm.roles WHERE name = 'Temp Role') AS temp_role \gset
SELECT kind, count(*) FROM crm.shares
WHERE (kind = 'user' AND target_id = :sharee) OR (kind = 'group' AND target_id = :team) OR (kind LIKE 'role%' AND target_id = :temp_role)
GROUP BY 1 ORDER BY 1;
SELECT crm.delete_user('sharee');
SELECT crm.drop_group('Temp Team');
SELECT crm.delete_role('Temp Role');
SELECT count(*) AS left_behind FROM crm.shares
WHERE (kind = 'user' AND target_id = :sharee) OR (kind = 'group' AND target_id = :team) OR (kind LIKE 'role%' AND target_id = :temp_role);

-- TRUNCATE (by an administrator) removes every share of the table.
SELECT count(*) > 0 AS shares_before FROM crm.shares;
TRUNCATE sales.leads;
SELECT count(*) AS shares_after FROM crm.shares;

-- The audit log has every share and unshare (an end is not an entry).
SELECT operation, count(*) FROM crm.audit_log WHERE operation IN ('share_record', 'unshare_record') GROUP BY 1 ORDER BY 1;

SET client_min_messages = warning;
DROP SCHEMA sales CASCADE;
DROP SCHEMA regress CASCADE;
DROP EXTENSION crm_access CASCADE;
