-- alice brings carol (another team's rep) into one of her leads for the week, and lets the
-- whole East team read another; shares reach their receivers and everyone above them.
SET LOCAL crm.user_name = 'alice';
SELECT crm.share_record('sales.leads', 42, 'user', 'carol', 'read_write', until => now() + interval '7 days');
SELECT crm.share_record('sales.leads', 41, 'role_and_subordinates', 'Mgr_East', 'read');
