-- What every user may do, as data: the upgrade test records it before ALTER EXTENSION
-- UPDATE and compares it after (tests/upgrade/run.sh). Part of the organisation, so that
-- the databases compared hold the same objects.
CREATE SCHEMA upgrade_check;
GRANT USAGE ON SCHEMA upgrade_check TO PUBLIC;

-- The statements whose outcome is a decision: reads of every protected table, secure view,
-- inbox tab and the calendar; edits, deletes and creations, directly and through the secure
-- views (rolled back). A statement's outcome is its rows, or its SQLSTATE.
CREATE TABLE upgrade_check.statements (what text PRIMARY KEY, sql text NOT NULL);
INSERT INTO upgrade_check.statements VALUES
    ('read leads', 'SELECT id FROM sales.leads'),
    ('read accounts', 'SELECT id FROM sales.accounts'),
    ('read opportunities', 'SELECT id, crm_parent_owner FROM sales.opportunities'),
    ('read contacts', 'SELECT id FROM sales.contacts'),
    ('read leads_secure', 'SELECT v FROM sales.leads_secure v'),
    ('read opportunities_secure', 'SELECT v FROM sales.opportunities_secure v'),
    ('read inbox_all', 'SELECT id FROM crm.inbox_all'),
    ('read inbox_assigned_to_me', 'SELECT id FROM crm.inbox_assigned_to_me'),
    ('read inbox_my_unassigned', 'SELECT id FROM crm.inbox_my_unassigned'),
    ('read inbox_archive', 'SELECT id FROM crm.inbox_archive'),
    ('read inbox_new', 'SELECT id FROM crm.inbox_new'),
    ('read conversations', 'SELECT id, linked_owner FROM crm.conversations'),
    ('read messages', 'SELECT id FROM crm.messages'),
    ('read events', 'SELECT id FROM crm.events'),
    ('read calendar', 'SELECT event_id, owner, subject, description, busy_only FROM crm.calendar'),
    ('edit leads', 'UPDATE sales.leads SET company = company || ''*'' RETURNING id'),
    ('edit accounts', 'UPDATE sales.accounts SET name = name || ''*'' RETURNING id'),
    ('edit opportunities', 'UPDATE sales.opportunities SET name = name || ''*'' RETURNING id'),
    ('edit contacts', 'UPDATE sales.contacts SET name = name || ''*'' RETURNING id'),
    ('edit leads budget', 'UPDATE sales.leads SET budget = budget + 1 RETURNING id'),
    ('edit leads_secure', 'UPDATE sales.leads_secure SET company = company || ''*'' RETURNING id'),
    ('edit leads_secure budget', 'UPDATE sales.leads_secure SET budget = 1 WHERE id = 42 RETURNING id'),
    ('edit opportunities_secure', 'UPDATE sales.opportunities_secure SET name = name || ''*'' RETURNING id'),
    ('edit conversations', 'UPDATE crm.conversations SET subject = subject || ''*'' RETURNING id'),
    ('edit events', 'UPDATE crm.events SET subject = subject || ''*'' RETURNING id'),
    ('delete leads', 'DELETE FROM sales.leads RETURNING id'),
    ('delete accounts', 'DELETE FROM sales.accounts WHERE id = 8 RETURNING id'),
    ('delete opportunities', 'DELETE FROM sales.opportunities RETURNING id'),
    ('delete contacts', 'DELETE FROM sales.contacts RETURNING id'),
    ('delete leads_secure', 'DELETE FROM sales.leads_secure RETURNING id'),
    ('delete conversations', 'DELETE FROM crm.conversations RETURNING id'),
    ('delete events', 'DELETE FROM crm.events RETURNING id'),
    ('create lead', 'INSERT INTO sales.leads (id, company, owner_id) VALUES (900, ''new'', coalesce((SELECT d.owner_id FROM crm.user_directory d WHERE d.name = crm.acting_user()), -1)) RETURNING id'),
    ('create lead for bob', 'INSERT INTO sales.leads (id, company, owner_id) VALUES (901, ''new'', crm.owner_id(''bob'')) RETURNING id'),
    ('create lead_secure', 'INSERT INTO sales.leads_secure (id, company, owner_id) VALUES (902, ''new'', coalesce((SELECT d.owner_id FROM crm.user_directory d WHERE d.name = crm.acting_user()), -1)) RETURNING id'),
    ('create opportunity on account 4', 'INSERT INTO sales.opportunities (id, name, amount, account_id, owner_id) VALUES (903, ''new'', 1, 4, coalesce((SELECT d.owner_id FROM crm.user_directory d WHERE d.name = crm.acting_user()), -1)) RETURNING id, crm_parent_owner'),
    ('create message in 1', 'INSERT INTO crm.messages (conversation_id, direction, body, sent_at) VALUES (1, ''outbound'', ''hi'', ''2026-11-02 00:00+00'') RETURNING conversation_id'),
    ('create message in 4', 'INSERT INTO crm.messages (conversation_id, direction, body, sent_at) VALUES (4, ''outbound'', ''hi'', ''2026-11-02 00:00+00'') RETURNING conversation_id'),
    ('create event', 'INSERT INTO crm.events (subject, starts_at, ends_at) VALUES (''new'', ''2026-12-03 09:00+00'', ''2026-12-03 10:00+00'') RETURNING subject'),
    ('give lead 41 to bob', 'UPDATE sales.leads SET owner_id = crm.owner_id(''bob'') WHERE id = 41 RETURNING id'),
    ('give lead 41 to carol', 'UPDATE sales.leads SET owner_id = crm.owner_id(''carol'') WHERE id = 41 RETURNING id'),
    ('archive conversation 1', 'SELECT crm.archive_conversation(1)'),
    ('assign conversation 2 to alice', 'UPDATE crm.conversations SET assigned_to = crm.owner_id(''alice'') WHERE id = 2 RETURNING id');
GRANT SELECT ON upgrade_check.statements TO PUBLIC;

-- The outcome of one statement, rolled back: its rows as text, sorted, or its SQLSTATE.
CREATE FUNCTION upgrade_check.outcome(sql text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    result text;
BEGIN
    BEGIN
        EXECUTE format('WITH x AS (%s) SELECT coalesce(string_agg(x::text, '' '' ORDER BY x::text), ''-'') FROM x', sql) INTO result;
        RAISE EXCEPTION USING ERRCODE = 'P0004';
    EXCEPTION WHEN assert_failure THEN
        RETURN result;
    END;
EXCEPTION WHEN OTHERS THEN
    RETURN 'ERROR ' || SQLSTATE;
END $$;

-- Every outcome for `who` (NULL: the session's own identity, as for a mapped login; '':
-- nobody), for the statements whose name starts with `kind`.
CREATE FUNCTION upgrade_check.decisions(who text, kind text DEFAULT '')
RETURNS TABLE (what text, outcome text) LANGUAGE plpgsql AS $$
DECLARE was text := current_user;
BEGIN
    IF who IS NOT NULL THEN
        -- From 0.3.0 only a statement of the client's own, or a superuser's session running as
        -- a superuser, may set the acting user: the report runs as postgres under SET ROLE, so
        -- the setting is made as postgres and the statements run as the role again.
        PERFORM set_config('role', 'none', true);
        PERFORM set_config('crm.user_name', who, true);
        PERFORM set_config('role', was, true);
    END IF;
    FOR what, outcome IN
        SELECT s.what, upgrade_check.outcome(s.sql) FROM upgrade_check.statements s
        WHERE s.what LIKE kind || '%' ORDER BY s.what
    LOOP
        RETURN NEXT;
    END LOOP;
END $$;
