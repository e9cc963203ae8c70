-- Takes PostgreSQL's read counters from logins that do not monitor the server (see
-- docs/security.md, "Statistics count rows before the policy"). They count every row and
-- block a scan read, rows of protected tables their readers may not see included, and any
-- login may read them for any table and database. Run as a superuser in every database with
-- protected tables; members of pg_read_all_stats (pg_monitor) keep them. Whatever of these a
-- PostgreSQL version lacks, or pg_stat_statements where it is not installed, is skipped.
DO $$
DECLARE f regprocedure;
BEGIN
    FOR f IN
        -- pg_stat_statements, where installed (in whatever schema): its view's function.
        SELECT p.oid::regprocedure FROM pg_catalog.pg_proc p
        JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
        JOIN pg_catalog.pg_extension e ON e.oid = d.refobjid AND e.extname = 'pg_stat_statements'
        WHERE p.proname IN ('pg_stat_statements', 'pg_stat_statements_info')
        UNION ALL
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
