-- Every viewer gets the plan its hand-written query would get (DESIGN §6): an index on the
-- owner column for narrow viewers, no owner filter at all for View All, admins and public
-- defaults; also through generic cached plans and PL/pgSQL, switching users in between.
-- Users are switched with session-level SET for brevity, which a superuser allows here
-- (crm.require_local_user; identity.sql tests the default).
SET crm.require_local_user = off;
\set ECHO none
\o /dev/null
CREATE EXTENSION crm_access;
\i tests/fixtures/helpers.sql
\i tests/fixtures/org.sql
\o
\set ECHO all
SET max_parallel_workers_per_gather = 0;
CREATE TABLE sales.big_leads (id bigint PRIMARY KEY, company text NOT NULL, owner_id bigint NOT NULL);
-- alice owns 1% of 1,000,000 leads; the rest belong to users outside her reach.
INSERT INTO sales.big_leads
SELECT g, 'company ' || g, CASE WHEN g % 100 = 0 THEN crm.owner_id('alice') ELSE crm.owner_id((ARRAY['ceo', 'vp', 'mgr_east', 'carol'])[1 + g % 4]) END
FROM generate_series(1, 1000000) AS g;
CREATE INDEX big_leads_owner_id ON sales.big_leads (owner_id);
VACUUM ANALYZE sales.big_leads;
SELECT crm.protect('sales.big_leads', 'Leads');
GRANT SELECT ON sales.big_leads TO crm_app;
SET SESSION AUTHORIZATION crm_app;
SET max_parallel_workers_per_gather = 0;

-- A rep: an index scan on the owner column, her own id as a constant; no SubPlan.
BEGIN;
SET LOCAL crm.user_name = 'alice';
EXPLAIN (COSTS OFF) SELECT count(*) FROM sales.big_leads;
SELECT count(*) FROM sales.big_leads;
COMMIT;
-- A manager: his subtree's ids.
BEGIN;
SET LOCAL crm.user_name = 'mgr_east';
EXPLAIN (COSTS OFF) SELECT count(*) FROM sales.big_leads;
SELECT count(*) FROM sales.big_leads;
COMMIT;
-- View All and admin: no owner filter at all.
BEGIN;
SET LOCAL crm.user_name = 'erin';
EXPLAIN (COSTS OFF) SELECT count(*) FROM sales.big_leads;
SELECT count(*) FROM sales.big_leads;
SET LOCAL crm.user_name = 'root';
EXPLAIN (COSTS OFF) SELECT count(*) FROM sales.big_leads;
COMMIT;
-- No identity: a constant false, nothing scanned.
EXPLAIN (COSTS OFF) SELECT count(*) FROM sales.big_leads;
-- A public default: no owner filter for anyone holding the privilege.
RESET SESSION AUTHORIZATION;
SELECT crm.set_sharing_default('Leads', 'public_read');
SET SESSION AUTHORIZATION crm_app;
BEGIN;
SET LOCAL crm.user_name = 'alice';
EXPLAIN (COSTS OFF) SELECT count(*) FROM sales.big_leads;
SELECT count(*) FROM sales.big_leads;
COMMIT;
RESET SESSION AUTHORIZATION;
SELECT crm.set_sharing_default('Leads', 'private');
SET SESSION AUTHORIZATION crm_app;
-- A top-50 page by primary key for the rep: still her owner filter, still exact.
BEGIN;
SET LOCAL crm.user_name = 'alice';
SELECT min(id), max(id), count(*) FROM (SELECT id FROM sales.big_leads ORDER BY id LIMIT 50) AS page;
COMMIT;

-- A prepared statement with a generic plan, executed as one user and then another: the
-- cached plan is re-planned for each, and the rows are each user's.
SET plan_cache_mode = force_generic_plan;
PREPARE leads_count AS SELECT count(*) FROM sales.big_leads WHERE id > $1;
BEGIN;
SET LOCAL crm.user_name = 'alice';
EXPLAIN (COSTS OFF) EXECUTE leads_count(0);
EXECUTE leads_count(0);
COMMIT;
BEGIN;
SET LOCAL crm.user_name = 'erin';
EXPLAIN (COSTS OFF) EXECUTE leads_count(0);
EXECUTE leads_count(0);
COMMIT;
BEGIN;
SET LOCAL crm.user_name = 'alice';
EXECUTE leads_count(0);
COMMIT;
EXECUTE leads_count(0);
DEALLOCATE leads_count;

-- A PL/pgSQL function caches its statement's plan; called by two users in turn, each gets
-- their own rows (its plans are checked in the client tests with auto_explain).
RESET SESSION AUTHORIZATION;
CREATE FUNCTION sales.count_big_leads() RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN
    RETURN (SELECT count(*) FROM sales.big_leads);
END $$;
SET SESSION AUTHORIZATION crm_app;
SELECT u AS "user", (SELECT set_config('crm.user_name', u, false)) IS NOT NULL AS acting, sales.count_big_leads()
FROM unnest(ARRAY['alice', 'erin', 'alice', 'mgr_east', 'alice']) WITH ORDINALITY AS t(u, n) ORDER BY n;
RESET crm.user_name;
SELECT sales.count_big_leads();
RESET plan_cache_mode;

-- Field access through a secure view costs no per-row call: the masking folds at plan time,
-- and a filter on a visible column still uses that column's index.
RESET SESSION AUTHORIZATION;
CREATE INDEX big_leads_company ON sales.big_leads (company);
SELECT crm.set_field_access('Sales', 'Leads', 'company', 'read_only');
SELECT crm.secure_view('sales.big_leads');
GRANT SELECT ON sales.big_leads_secure TO crm_app;
SET SESSION AUTHORIZATION crm_app;
BEGIN;
SET LOCAL crm.user_name = 'alice';
EXPLAIN (COSTS OFF) SELECT * FROM sales.big_leads_secure WHERE company = 'company 500';
SELECT * FROM sales.big_leads_secure WHERE company = 'company 500';
EXPLAIN (COSTS OFF) SELECT count(*) FROM sales.big_leads_secure;
SELECT count(*) FROM sales.big_leads_secure;
COMMIT;

-- A change of acting user or catalog re-plans only the plans that hold a decision of ours
-- (session::plans). regress.planned() is folded while planning (it claims to be immutable),
-- so its value tells when a statement was last planned.
RESET SESSION AUTHORIZATION;
CREATE SEQUENCE regress.plannings;
GRANT USAGE ON SCHEMA regress TO crm_app;
GRANT USAGE ON SEQUENCE regress.plannings TO crm_app;
CREATE FUNCTION regress.planned() RETURNS bigint IMMUTABLE LANGUAGE plpgsql AS $$
BEGIN
    RETURN nextval('regress.plannings');
END $$;
SET SESSION AUTHORIZATION crm_app;
SET plan_cache_mode = force_generic_plan;
PREPARE unprotected AS SELECT regress.planned() AS planned;
PREPARE protected AS SELECT regress.planned() AS planned, count(*) FROM sales.big_leads;
BEGIN;
SET LOCAL crm.user_name = 'alice';
EXECUTE unprotected;
EXECUTE protected;
EXECUTE unprotected;
EXECUTE protected;
COMMIT;
-- Another user: the protected statement is planned again, the other one is not.
BEGIN;
SET LOCAL crm.user_name = 'erin';
EXECUTE unprotected;
EXECUTE protected;
COMMIT;
-- A committed catalog change, the acting user unchanged (set for the session): the same.
SET crm.user_name = 'erin';
EXECUTE protected;
EXECUTE protected;
-- (Switching roles and back alone keeps the plan.)
RESET SESSION AUTHORIZATION;
SET SESSION AUTHORIZATION crm_app;
EXECUTE protected;
RESET SESSION AUTHORIZATION;
SELECT crm.set_sharing_default('Leads', 'public_read');
SELECT crm.set_sharing_default('Leads', 'private');
SET SESSION AUTHORIZATION crm_app;
EXECUTE unprotected;
EXECUTE protected;
-- No acting user: planned again, and it sees nothing.
RESET crm.user_name;
EXECUTE unprotected;
EXECUTE protected;
DEALLOCATE unprotected;
DEALLOCATE protected;
RESET plan_cache_mode;

-- clean up for the next suite
\set ECHO none
SET client_min_messages = warning;
RESET SESSION AUTHORIZATION;
DROP SCHEMA sales CASCADE;
DROP SCHEMA regress CASCADE;
DROP EXTENSION crm_access CASCADE;
