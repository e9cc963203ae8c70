-- Undo the README quickstart (kept verbatim in quickstart.sql).
\set ECHO none
SET client_min_messages = warning;
DROP TABLE leads;
DROP EXTENSION crm_access CASCADE;
DROP OWNED BY webapp;
DROP ROLE webapp;
