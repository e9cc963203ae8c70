-- crm.catalog_tables, the one declaration of every table of the extension (sql/catalog.sql,
-- docs/architecture.md): everything it says follows, and nothing else is there. Adding a
-- table without declaring it, or declaring it without what its flags promise, fails here.
\set ECHO none
\o /dev/null
CREATE EXTENSION crm_access;
\o
\set ECHO all

-- The declarations.
SELECT tbl, compiled, audited, dumped FROM crm.catalog_tables ORDER BY tbl::text;

-- Every table of schema crm is declared.
SELECT c.oid::regclass AS undeclared FROM pg_class c
WHERE c.relnamespace = 'crm'::regnamespace AND c.relkind IN ('r', 'p')
  AND c.oid NOT IN (SELECT tbl FROM crm.catalog_tables);

-- The tables the model is compiled from are exactly those whose changes invalidate it.
(SELECT tbl AS compiled_without_trigger FROM crm.catalog_tables WHERE compiled
 EXCEPT SELECT tgrelid FROM pg_trigger WHERE tgname = 'catalog_changed' AND tgfoid = 'crm.catalog_changed()'::regprocedure);
(SELECT tgrelid::regclass AS trigger_without_compiled FROM pg_trigger WHERE tgfoid = 'crm.catalog_changed()'::regprocedure
 EXCEPT SELECT tbl FROM crm.catalog_tables WHERE compiled);

-- The audited tables are exactly those with the four audit triggers.
SELECT tbl, count(t.tgname) AS audit_triggers FROM crm.catalog_tables
LEFT JOIN pg_trigger t ON t.tgrelid = tbl AND t.tgfoid = 'crm.audit_statement()'::regprocedure
GROUP BY tbl, audited HAVING count(t.tgname) <> CASE WHEN audited THEN 4 ELSE 0 END;
SELECT DISTINCT tgrelid::regclass AS audit_trigger_elsewhere FROM pg_trigger
WHERE tgfoid = 'crm.audit_statement()'::regprocedure AND tgrelid NOT IN (SELECT tbl FROM crm.catalog_tables WHERE audited);

-- pg_dump keeps the rows of exactly the dumped tables and the sequences they draw from.
SELECT c.oid::regclass AS kept_by_pg_dump, c.relkind FROM pg_extension e, unnest(e.extconfig) AS x(oid)
JOIN pg_class c ON c.oid = x.oid WHERE e.extname = 'crm_access' ORDER BY c.oid::regclass::text;
SELECT tbl AS dumped_but_not_kept FROM crm.catalog_tables WHERE dumped
  AND tbl NOT IN (SELECT unnest(extconfig) FROM pg_extension WHERE extname = 'crm_access');

-- clean up for the next suite
\set ECHO none
SET client_min_messages = warning;
DROP EXTENSION crm_access CASCADE;
