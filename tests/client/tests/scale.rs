//! At scale (1,000,000 leads, 2,000 users, 200 roles, 100 groups, 50 sharing rules), what a
//! user sees still plans as constants: no per-row function call, no SubPlan; and the
//! visible counts equal the engine's.

use crm_client_tests::{connect, fresh_database, login_role, read_catalog};
use crm_model::{Action, Model};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

#[test]
fn large_organisation_plans_stay_constant_and_counts_match_the_engine() {
    let mut admin = fresh_database("crm_scale");
    login_role(&mut admin, "scale_app");
    let mut rng = SmallRng::seed_from_u64(7);
    let mut sql = String::from("SELECT crm.create_role('R0', NULL);\n");
    for i in 1..200usize {
        sql += &format!("SELECT crm.create_role('R{i}', 'R{}');\n", rng.gen_range(i.saturating_sub(4)..i));
    }
    sql += "SELECT crm.create_profile('Sales'); SELECT crm.grant_privileges('Sales', 'Leads', ARRAY['read', 'create', 'edit']);
            SELECT crm.attach_profile('R' || i, 'Sales') FROM generate_series(0, 199) i;\n";
    sql += "SELECT crm.create_user('u' || i, 'R' || (i % 200)) FROM generate_series(0, 1999) i;\n";
    for g in 0..100 {
        sql += &format!("SELECT crm.create_group('G{g}');\n");
        for _ in 0..3 {
            sql += &format!("SELECT crm.add_group_member('G{g}', 'user', 'u{}');\n", rng.gen_range(0..2000));
        }
        sql += &format!("SELECT crm.add_group_member('G{g}', 'role', 'R{}');\n", rng.gen_range(0..200));
    }
    for _ in 0..50 {
        sql += &format!(
            "SELECT crm.add_sharing_rule('Leads', 'role', 'R{}', 'group', 'G{}', 'read');\n",
            rng.gen_range(0..200),
            rng.gen_range(0..100)
        );
    }
    admin.batch_execute(&sql).unwrap();
    admin
        .batch_execute(
            "CREATE TABLE leads (id bigint PRIMARY KEY, created_at timestamptz NOT NULL, owner_id bigint NOT NULL);
             INSERT INTO leads SELECT g, timestamptz '2026-01-01' + g * interval '1 minute', 1 + (g::bigint * 7919) % 2100 FROM generate_series(1, 1000000) g;
             CREATE INDEX ON leads (owner_id); CREATE INDEX ON leads (created_at);
             SELECT crm.protect('leads', 'Leads'); SELECT crm.trust_role('scale_app');
             GRANT SELECT ON leads TO scale_app;",
        )
        .unwrap();
    admin.batch_execute("VACUUM ANALYZE leads").unwrap();
    let model = Model::compile(read_catalog(&mut admin)).unwrap();
    let per_owner: Vec<(i64, i64)> =
        admin.query("SELECT owner_id, count(*) FROM leads GROUP BY owner_id", &[]).unwrap().iter().map(|r| (r.get(0), r.get(1))).collect();

    let mut app = connect("crm_scale", "scale_app");
    app.batch_execute("SET max_parallel_workers_per_gather = 0").unwrap();
    // A rep at the bottom, a manager in the middle, the root: narrow to wide scopes.
    for user in ["u1999", "u1050", "u0"] {
        let id = model.user_by_name(user).unwrap().owner_id;
        let expected: i64 = per_owner.iter().filter(|(o, _)| model.decide(Some(id), "Leads", Action::Read, *o).allowed).map(|(_, n)| n).sum();
        let mut tx = app.transaction().unwrap();
        tx.execute("SELECT crm.set_user($1)", &[&user]).unwrap();
        for query in ["SELECT count(*) FROM leads", "SELECT id FROM leads ORDER BY created_at DESC LIMIT 50"] {
            let plan: Vec<String> = tx.query(&format!("EXPLAIN (COSTS OFF) {query}"), &[]).unwrap().iter().map(|r| r.get(0)).collect();
            let plan = plan.join("\n");
            assert!(!plan.contains("SubPlan") && !plan.contains("crm.") && !plan.contains("InitPlan"), "{user}: {query}\n{plan}");
            assert!(plan.contains("owner_id = ANY ('{"), "{user}: {query}\n{plan}");
        }
        let count: i64 = tx.query_one("SELECT count(*) FROM leads", &[]).unwrap().get(0);
        assert_eq!(count, expected, "{user}");
        let page = tx.query("SELECT id FROM leads ORDER BY created_at DESC LIMIT 50", &[]).unwrap().len() as i64;
        assert_eq!(page, expected.min(50), "{user}");
        tx.commit().unwrap();
    }
}
