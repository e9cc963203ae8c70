-- Operations (issue 27): restores and logical replication.
--
-- Restores (src/catalog/restore.rs). pg_restore loads crm_access's tables with
-- `COPY crm.t (every column) FROM stdin`, with -j in any order and each table in a
-- transaction of its own, into tables whose keys CREATE EXTENSION made before: checked row by
-- row, a table loaded before the one it references lost its rows. Such a load (whole rows,
-- a superuser's own statement) runs as a replica applies rows: the keys and the checking
-- triggers wait. What they would have checked is checked when the model is next compiled,
-- for as long as a loaded table is noted here: a catalog with a missing reference is refused
-- (every protected statement fails) until it is whole. The first catalog commit that finds
-- it whole forgets the notes.
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

-- The same, as the table list of CREATE PUBLICATION ... FOR TABLE: a table with shipped rows
-- (crm.modules, crm.module_relations) is published without them, which CREATE EXTENSION made
-- on the subscriber too (the initial copy would collide with them).
--   DO $$ BEGIN EXECUTE 'CREATE PUBLICATION crm FOR TABLE ' || crm.publication_tables(); END $$;
CREATE FUNCTION crm.publication_tables() RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT string_agg(t::text || CASE WHEN EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = t AND a.attname = 'standard' AND NOT a.attisdropped
                                                    AND t IN (SELECT tbl FROM crm.catalog_tables))
                                      THEN ' WHERE (NOT standard)' ELSE '' END, ', ' ORDER BY t::text)
    FROM crm.replicated_tables() t
$$;

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
