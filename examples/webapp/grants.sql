-- The web app's login: a trusted role (it names the acting CRM user per transaction) with
-- nothing but the secure views, through which it reads and writes; crm_access decides the
-- rows and fields of each request's user. Run by a superuser, or by the owner of the sales
-- tables who is a CRM administrator.
CREATE ROLE webapp LOGIN;
SELECT crm.trust_role('webapp');
GRANT USAGE ON SCHEMA sales TO webapp;
GRANT SELECT, INSERT, UPDATE, DELETE ON sales.leads_secure, sales.opportunities_secure TO webapp;
