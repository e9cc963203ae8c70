-- Leads by region: the West team (Mgr_West and every role below it) reads, changes and
-- deletes only leads of region West, whoever owns them; a lead without a region is
-- outside the rule. Administrators are exempt; View All is not.
ALTER TABLE sales.leads ADD COLUMN region text;
CREATE INDEX ON sales.leads (region);
SELECT crm.add_restriction_rule('Leads', 'role_and_subordinates', 'Mgr_West', 'region', ARRAY['West']);
