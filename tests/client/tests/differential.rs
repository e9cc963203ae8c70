//! The differential test: on random organisations (hundreds of users, deep trees, random
//! profiles, admins, disabled users and defaults) built through the SQL API, the rows each
//! user reads, edits and deletes through RLS equal the engine's per-record decisions.
//! The engine reads the catalog back from the crm.* tables, so both judge the same model.

use std::collections::BTreeSet;

use crm_client_tests::{connect, fresh_database, login_role, read_catalog};
use crm_model::{Action, Model};
use postgres::Client;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

const MODULES: [&str; 2] = ["Leads", "Accounts"];
const TABLES: [&str; 2] = ["leads", "accounts"];
const LEVELS: [&str; 4] = ["private", "public_read", "public_read_write", "public_read_write_delete"];

fn build_org(c: &mut Client, rng: &mut SmallRng) {
    let n_roles = rng.gen_range(20..60);
    let mut sql = String::from("SELECT crm.create_role('R0', NULL);\n");
    for i in 1..n_roles {
        // Parents among the last few roles make deep chains; the rest make bushy levels.
        let parent = if rng.gen_bool(0.6) { i - 1 - rng.gen_range(0..i.min(3)) } else { rng.gen_range(0..i) };
        sql += &format!("SELECT crm.create_role('R{i}', 'R{parent}');\n");
    }
    let n_profiles = rng.gen_range(2..7);
    for p in 0..n_profiles {
        let view_all = rng.gen_bool(0.1);
        let edit_all = rng.gen_bool(0.07);
        sql += &format!("SELECT crm.create_profile('P{p}', {view_all}, {edit_all});\n");
        for m in MODULES {
            let actions: Vec<String> =
                Action::ALL.iter().filter(|_| rng.gen_bool(0.7)).map(|a| format!("'{}'", a.as_str())).collect();
            if !actions.is_empty() {
                sql += &format!("SELECT crm.grant_privileges('P{p}', '{m}', ARRAY[{}]);\n", actions.join(","));
            }
        }
    }
    for r in 0..n_roles {
        for _ in 0..rng.gen_range(1..3) {
            sql += &format!("SELECT crm.attach_profile('R{r}', 'P{}');\n", rng.gen_range(0..n_profiles));
        }
    }
    let n_users = rng.gen_range(150..300);
    for u in 0..n_users {
        sql += &format!("SELECT crm.create_user('u{u}', 'R{}', {});\n", rng.gen_range(0..n_roles), rng.gen_bool(0.02));
        if rng.gen_bool(0.08) {
            sql += &format!("SELECT crm.set_user_active('u{u}', false);\n");
        }
    }
    for m in MODULES {
        sql += &format!("SELECT crm.set_sharing_default('{m}', '{}');\n", LEVELS[rng.gen_range(0..4)]);
    }
    for t in TABLES {
        sql += &format!("DELETE FROM {t};\n");
    }
    c.batch_execute(&sql).unwrap();
    // Records owned by random users (some disabled, some with no CRM owner at all).
    c.batch_execute(
        "INSERT INTO leads SELECT g, (SELECT owner_id FROM crm.users ORDER BY random() LIMIT 1) + 0 * g FROM generate_series(1, 1500) g;
         INSERT INTO accounts SELECT g, (SELECT owner_id FROM crm.users ORDER BY random() LIMIT 1) + 0 * g FROM generate_series(1, 600) g;
         INSERT INTO leads VALUES (999999, 424242);",
    )
    .unwrap();
}

fn ids(c: &mut postgres::Transaction<'_>, sql: &str) -> BTreeSet<i64> {
    c.query(sql, &[]).unwrap().iter().map(|r| r.get(0)).collect()
}

#[test]
fn rls_matches_the_engine_on_random_organisations() {
    let organisations: u64 = std::env::var("CRM_DIFF_ORGS").ok().and_then(|v| v.parse().ok()).unwrap_or(6);
    let mut admin = fresh_database("crm_diff");
    login_role(&mut admin, "diff_app");
    admin
        .batch_execute(
            "CREATE TABLE leads (id bigint PRIMARY KEY, owner_id bigint NOT NULL);
             CREATE TABLE accounts (id bigint PRIMARY KEY, owner_id bigint NOT NULL);
             GRANT SELECT, UPDATE, DELETE ON leads, accounts TO diff_app;",
        )
        .unwrap();
    for seed in 0..organisations {
        let mut rng = SmallRng::seed_from_u64(seed);
        admin.batch_execute("DROP EXTENSION crm_access CASCADE; CREATE EXTENSION crm_access;").unwrap();
        build_org(&mut admin, &mut rng);
        admin
            .batch_execute("SELECT crm.trust_role('diff_app'); SELECT crm.protect('leads', 'Leads'); SELECT crm.protect('accounts', 'Accounts');")
            .unwrap();
        let model = Model::compile(read_catalog(&mut admin)).unwrap();
        let records: Vec<Vec<(i64, i64)>> = TABLES
            .iter()
            .map(|t| admin.query(&format!("SELECT id, owner_id FROM {t}"), &[]).unwrap().iter().map(|r| (r.get(0), r.get(1))).collect())
            .collect();
        let mut app = connect("crm_diff", "diff_app");
        let mut checked = 0;
        for user in model.users() {
            for (i, table) in TABLES.iter().enumerate() {
                let expect = |action| -> BTreeSet<i64> {
                    records[i].iter().filter(|(_, o)| model.decide(Some(user.owner_id), MODULES[i], action, *o).allowed).map(|(id, _)| *id).collect()
                };
                let (read, edit, delete) = (expect(Action::Read), expect(Action::Edit), expect(Action::Delete));
                let mut tx = app.transaction().unwrap();
                tx.execute("SELECT set_config('crm.user_name', $1, true)", &[&user.name]).unwrap();
                let ctx = format!("seed {seed}, user {} ({}), {table}", user.name, user.owner_id);
                assert_eq!(ids(&mut tx, &format!("SELECT id FROM {table}")), read, "read: {ctx}");
                // RETURNING reads the rows, so PostgreSQL applies the read policy as well.
                if model.user(user.owner_id).unwrap().is_active {
                    let updated = ids(&mut tx, &format!("UPDATE {table} SET id = id WHERE owner_id <> 424242 RETURNING id"));
                    let expected: BTreeSet<i64> = edit.intersection(&read).copied().filter(|id| *id != 999999).collect();
                    assert_eq!(updated, expected, "edit: {ctx}");
                    let deleted = ids(&mut tx, &format!("DELETE FROM {table} RETURNING id"));
                    assert_eq!(deleted, delete.intersection(&read).copied().collect(), "delete: {ctx}");
                }
                tx.rollback().unwrap();
                if !model.user(user.owner_id).unwrap().is_active {
                    let mut tx = app.transaction().unwrap();
                    tx.execute("SELECT set_config('crm.user_name', $1, true)", &[&user.name]).unwrap();
                    let err = tx.execute(&format!("DELETE FROM {table}"), &[]).unwrap_err();
                    assert_eq!(err.as_db_error().map(|e| e.code().code()), Some("42501"), "disabled write: {ctx}");
                }
                // Without reading, the row counts are the edit and delete sets themselves.
                if model.user(user.owner_id).unwrap().is_active {
                    let mut tx = app.transaction().unwrap();
                    tx.execute("SELECT set_config('crm.user_name', $1, true)", &[&user.name]).unwrap();
                    let n = tx.execute(&format!("DELETE FROM {table}"), &[]).unwrap();
                    assert_eq!(n as usize, delete.len(), "delete count: {ctx}");
                    tx.rollback().unwrap();
                }
                checked += 1;
            }
        }
        assert!(checked > 300, "seed {seed} checked only {checked} user-tables");
    }
}
