-- The schema the GraphQL server serves (examples/graphql/server.js) and the login it
-- connects as. Run by a superuser, or by the owner of the sales tables who is a CRM
-- administrator, in the CRM's database. The server sets the acting CRM user per request, in
-- the request's transaction, so the login is a trusted role that reads nothing by itself.
-- Every view runs as the caller (security_invoker), so crm_access decides each row and field
-- for that user: the masked columns come from the secure view, never from the table.
CREATE ROLE crm_graphql LOGIN;
SELECT crm.trust_role('crm_graphql');
CREATE SCHEMA api;
GRANT USAGE ON SCHEMA api, sales TO crm_graphql;
GRANT SELECT, UPDATE ON sales.leads_secure TO crm_graphql;

CREATE VIEW api.leads WITH (security_invoker = true) AS
    SELECT id, company, phone, budget, ssn, owner_id FROM sales.leads_secure;
-- The five inbox tabs in one view: filter on tab ('all', 'assigned_to_me', 'my_unassigned',
-- 'archive', 'new').
CREATE VIEW api.inbox WITH (security_invoker = true) AS
    SELECT 'all' AS tab, id, subject, linked_table::text AS linked_table, linked_id, is_new, last_message_at FROM crm.inbox_all
    UNION ALL
    SELECT 'assigned_to_me', id, subject, linked_table::text, linked_id, is_new, last_message_at FROM crm.inbox_assigned_to_me
    UNION ALL
    SELECT 'my_unassigned', id, subject, linked_table::text, linked_id, is_new, last_message_at FROM crm.inbox_my_unassigned
    UNION ALL
    SELECT 'archive', id, subject, linked_table::text, linked_id, is_new, last_message_at FROM crm.inbox_archive
    UNION ALL
    SELECT 'new', id, subject, linked_table::text, linked_id, is_new, last_message_at FROM crm.inbox_new;
CREATE VIEW api.messages WITH (security_invoker = true) AS
    SELECT id, conversation_id, direction, body, sent_at FROM crm.messages;
CREATE VIEW api.calendar WITH (security_invoker = true) AS
    SELECT event_id, owner, starts_at, ends_at, subject, description, location, busy_only FROM crm.calendar;
GRANT SELECT ON api.leads, api.inbox, api.messages, api.calendar TO crm_graphql;

-- Mutations: plain functions run as the caller; crm_access refuses what the user may not do,
-- and its error reaches the GraphQL client.
CREATE FUNCTION api.set_lead_budget(lead_id bigint, budget integer) RETURNS bigint
LANGUAGE sql VOLATILE AS $$
    WITH changed AS (UPDATE sales.leads_secure l SET budget = set_lead_budget.budget WHERE l.id = lead_id RETURNING 1)
    SELECT count(*) FROM changed
$$;
CREATE FUNCTION api.archive_conversation(conversation_id bigint) RETURNS boolean
LANGUAGE sql VOLATILE AS $$
    SELECT crm.archive_conversation(conversation_id);
    SELECT true;
$$;
REVOKE EXECUTE ON FUNCTION api.set_lead_budget(bigint, integer), api.archive_conversation(bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.set_lead_budget(bigint, integer), api.archive_conversation(bigint) TO crm_graphql;
