-- A supervisor's look at the inbox from psql, through the web app's trusted login
-- (psql "host=... dbname=crm user=webapp" -f examples/psql/inbox.sql): the user is set
-- inside the transaction, as through any pooler.
BEGIN;
SELECT crm.set_user('mgr_west');
SELECT id, subject, is_new FROM crm.inbox_all ORDER BY id;
SELECT id, subject FROM crm.inbox_archive ORDER BY id;
SELECT event_id, owner, subject, busy_only FROM crm.calendar ORDER BY event_id;
COMMIT;
-- After the transaction: nobody, and nothing.
SELECT crm.acting_user(), count(*) FROM crm.inbox_all;
