-- An outside auditor reads every lead and account for the quarter's close, and not a
-- statement longer: the assignment ends by itself at the moment given.
SELECT crm.create_permission_set('Quarter Close', view_all => true);
SELECT crm.assign_permission_set('Quarter Close', 'user', 'dave', until => now() + interval '30 days');
