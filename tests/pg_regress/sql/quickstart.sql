CREATE EXTENSION crm_access;

-- An organisation: a role tree, a profile, users.
SELECT crm.create_role('CEO', NULL);
SELECT crm.create_role('Sales Manager', 'CEO');
SELECT crm.create_role('Sales Rep', 'Sales Manager');
SELECT crm.create_profile('Sales');
SELECT crm.grant_privileges('Sales', 'Leads', ARRAY['read', 'create', 'edit', 'delete']);
SELECT crm.attach_profile('Sales Manager', 'Sales');
SELECT crm.attach_profile('Sales Rep', 'Sales');
SELECT crm.create_user('maria', 'Sales Manager');
SELECT crm.create_user('raj', 'Sales Rep');
SELECT crm.create_user('lena', 'Sales Rep');

-- A CRM table, protected: from now on every query is filtered.
CREATE TABLE leads (id bigint PRIMARY KEY, company text, owner_id bigint NOT NULL);
CREATE INDEX ON leads (owner_id);
SELECT crm.protect('leads', 'Leads');
INSERT INTO leads VALUES (1, 'Acme', crm.owner_id('raj')), (2, 'Globex', crm.owner_id('lena')),
                         (3, 'Initech', crm.owner_id('maria'));

-- The web application connects as a trusted login and sets the acting user per transaction.
CREATE ROLE webapp LOGIN;
GRANT SELECT, INSERT, UPDATE, DELETE ON leads TO webapp;
SELECT crm.trust_role('webapp');

SET SESSION AUTHORIZATION webapp;
BEGIN;
SET LOCAL crm.user_name = 'raj';
SELECT * FROM leads;               -- raj: his own lead only
COMMIT;
BEGIN;
SET LOCAL crm.user_name = 'maria';
SELECT * FROM leads ORDER BY id;   -- maria: her own and her reps' leads
COMMIT;
SELECT count(*) FROM leads;        -- no acting user: nothing
RESET SESSION AUTHORIZATION;
