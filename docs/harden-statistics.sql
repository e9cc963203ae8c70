-- Takes PostgreSQL's read counters from logins that do not monitor the server (see
-- docs/security.md, "Statistics count rows before the policy"). They count every row and
-- block a scan read, rows of protected tables their readers may not see included, and any
-- login may read them for any table and database. Run as a superuser in every database with
-- protected tables; members of pg_read_all_stats (pg_monitor) keep them. Whatever of these a
-- PostgreSQL version lacks is skipped.
DO $$
DECLARE f regprocedure;
BEGIN
    FOR f IN
        SELECT p.oid::regprocedure FROM pg_catalog.pg_proc p
        WHERE p.pronamespace = 'pg_catalog'::regnamespace AND p.proname IN (
            'pg_stat_get_tuples_returned', 'pg_stat_get_tuples_fetched',
            'pg_stat_get_blocks_fetched', 'pg_stat_get_blocks_hit',
            'pg_stat_get_xact_tuples_returned', 'pg_stat_get_xact_tuples_fetched',
            'pg_stat_get_xact_blocks_fetched', 'pg_stat_get_xact_blocks_hit',
            'pg_stat_get_db_tuples_returned', 'pg_stat_get_db_tuples_fetched',
            'pg_stat_get_db_blocks_fetched', 'pg_stat_get_db_blocks_hit',
            'pg_stat_get_io', 'pg_stat_get_backend_io', 'pg_stat_force_next_flush')
    LOOP
        EXECUTE pg_catalog.format('REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC', f);
        EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION %s TO pg_read_all_stats', f);
    END LOOP;
END $$;
