-- Calendar sharing (DESIGN §3.4, §4): every audience of an event with exact rows: owner,
-- invitee, superior (public and private events), a user the owner shared the calendar with,
-- after unsharing, a peer, View All, admin, no Activities privilege; edits and deletes.
\set ECHO none
\o /dev/null
CREATE EXTENSION crm_access;
\i tests/fixtures/helpers.sql
\i tests/fixtures/org.sql
\o
\set ECHO all

SELECT crm.grant_privileges('Sales', 'Activities', ARRAY['read', 'create', 'edit', 'delete']);
SELECT crm.grant_privileges('ReadOnly', 'Activities', ARRAY['read']);
-- dave's Support role loses Activities: an empty calendar for him.
SELECT crm.create_profile('NoCalendar');
SELECT crm.grant_privileges('NoCalendar', 'Leads', ARRAY['read']);
SELECT crm.detach_profile('Support', 'ReadOnly');
SELECT crm.attach_profile('Support', 'NoCalendar');

CREATE FUNCTION regress.calendar(who text) RETURNS TABLE (event_id bigint, owner text, subject text, description text, location text, busy_only boolean, raw_rows bigint[])
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM regress.act_as(who);
    RETURN QUERY SELECT c.event_id, c.owner, c.subject, c.description, c.location, c.busy_only,
                        (SELECT array_agg(id ORDER BY id) FROM crm.events)
                 FROM crm.calendar c ORDER BY c.event_id;
    PERFORM regress.act_done();
END $$;

SET SESSION AUTHORIZATION crm_app;
-- Events belong to their creator: alice's private (1) and public (2) events, bob's private
-- (4: the refused insert used up 3).
BEGIN;
SET LOCAL crm.user_name = 'alice';
INSERT INTO crm.events (subject, description, location, starts_at, ends_at) VALUES
    ('dentist', 'root canal', 'downtown', '2026-12-01 09:00', '2026-12-01 10:00') RETURNING id, owner_id = crm.owner_id('alice') AS hers;
INSERT INTO crm.events (subject, description, location, starts_at, ends_at, visibility) VALUES
    ('pipeline review', 'Q4 numbers', 'room 1', '2026-12-02 09:00', '2026-12-02 10:00', 'public') RETURNING id;
SELECT regress.try($$INSERT INTO crm.events (owner_id, subject, starts_at, ends_at) VALUES (crm.owner_id('bob'), 'for bob', now(), now())$$);
SELECT crm.invite(1, 'carol');
SET LOCAL crm.user_name = 'bob';
INSERT INTO crm.events (subject, description, starts_at, ends_at) VALUES ('gym', 'legs', '2026-12-03 18:00', '2026-12-03 19:00') RETURNING id;
COMMIT;


-- The owner: every detail of her own events, bob's as busy.
SELECT * FROM regress.calendar('alice');
-- An invitee (carol, on alice's private event 1): its details; alice's public event busy.
SELECT * FROM regress.calendar('carol');
-- A superior (mgr_west, above alice and bob): public event 2 in detail, private ones busy.
SELECT * FROM regress.calendar('mgr_west');
-- A peer (bob): busy slots only, apart from his own.
SELECT * FROM regress.calendar('bob');
-- Shared with mgr_east (not above alice): her public events in detail, private ones busy;
-- after unsharing, busy again.
RESET SESSION AUTHORIZATION;
SET SESSION AUTHORIZATION crm_app;
BEGIN;
SET LOCAL crm.user_name = 'alice';
SELECT crm.share_calendar('mgr_east');
COMMIT;
SELECT * FROM regress.calendar('mgr_east');
BEGIN;
SET LOCAL crm.user_name = 'alice';
SELECT crm.unshare_calendar('mgr_east');
COMMIT;
SELECT * FROM regress.calendar('mgr_east');
-- View All (erin) and admin (root): every detail.
SELECT * FROM regress.calendar('erin');
SELECT event_id, subject, busy_only FROM regress.calendar('root');
-- No Activities privilege (dave), no identity: an empty calendar.
SELECT * FROM regress.calendar('dave');
SELECT count(*) FROM crm.calendar;
SELECT count(*) FROM crm.events;

-- Edit and delete: the owner; a superior for public events only; invitees read only.
BEGIN;
SET LOCAL crm.user_name = 'mgr_west';
WITH u AS (UPDATE crm.events SET location = 'room 2' RETURNING id) SELECT array_agg(id ORDER BY id) AS mgr_west_edits FROM u;
SET LOCAL crm.user_name = 'carol';
WITH u AS (UPDATE crm.events SET location = 'carol was here' RETURNING id) SELECT array_agg(id ORDER BY id) AS carol_edits FROM u;
SELECT regress.try($$SELECT crm.invite(1, 'bob')$$);
SET LOCAL crm.user_name = 'alice';
SELECT regress.try($$UPDATE crm.events SET owner_id = crm.owner_id('bob') WHERE id = 1$$);
SELECT regress.try($$SELECT crm.invite(4, 'alice')$$);
SELECT regress.try($$SELECT crm.invite(1, 'nobody')$$);
SELECT regress.try($$SELECT crm.share_calendar('alice')$$);
SET LOCAL crm.user_name = 'mgr_west';
WITH d AS (DELETE FROM crm.events RETURNING id) SELECT array_agg(id ORDER BY id) AS mgr_west_deletes FROM d;
ROLLBACK;
BEGIN;
SET LOCAL crm.user_name = 'erin';
WITH u AS (UPDATE crm.events SET location = 'audited' RETURNING id) SELECT array_agg(id ORDER BY id) AS erin_edits FROM u;
ROLLBACK;
-- Uninviting takes the details away again.
BEGIN;
SET LOCAL crm.user_name = 'alice';
SELECT crm.uninvite(1, 'carol');
COMMIT;
SELECT event_id, subject, busy_only FROM regress.calendar('carol');
-- Without identity, writes are refused.
SELECT regress.try($$INSERT INTO crm.events (subject, starts_at, ends_at) VALUES ('anonymous', now(), now())$$);
SELECT regress.try($$SELECT crm.share_calendar('bob')$$);
RESET SESSION AUTHORIZATION;

-- clean up for the next suite
\set ECHO none
SET client_min_messages = warning;
RESET SESSION AUTHORIZATION;
DROP SCHEMA sales CASCADE;
DROP SCHEMA regress CASCADE;
DROP EXTENSION crm_access CASCADE;
