-- Projects, a module of your own whose records hang under Accounts: a sharing rule on
-- Accounts can carry access to the projects under the source's accounts, and a private
-- Accounts default makes Projects private too.
SELECT crm.create_module('Projects', 'Accounts');
CREATE TABLE sales.projects (
    id         bigint PRIMARY KEY,
    name       text   NOT NULL,
    owner_id   bigint NOT NULL,
    account_id bigint REFERENCES sales.accounts (id)
);
CREATE INDEX ON sales.projects (owner_id);
SELECT crm.protect('sales.projects', 'Projects');
SELECT crm.link_parent('sales.projects', 'account_id', 'sales.accounts');
SELECT crm.grant_privileges('Sales', 'Projects', ARRAY['read', 'create', 'edit']);
GRANT SELECT, INSERT, UPDATE ON sales.projects TO crm_app;
