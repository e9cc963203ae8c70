-- A BI tool's personal login: it acts as the CRM user it is mapped to (carol), needs no
-- setting, and is granted only the secure views, which mask the fields carol may not see.
-- Run by a superuser, or by the owner of the sales tables who is a CRM administrator.
CREATE ROLE bi_carol LOGIN;
SELECT crm.map_db_role('carol', 'bi_carol');
GRANT USAGE ON SCHEMA sales TO bi_carol;
GRANT SELECT ON sales.leads_secure, sales.opportunities_secure TO bi_carol;
