//! The denial log (DESIGN §8): every refused write and every refused identity assertion
//! writes one LOG line, `crm_access denial: ` and a JSON object, to the server log, which
//! these tests read (scripts/cluster.sh starts the server with its log at $PGHOST/server.log).

use crm_client_tests::{connect, fresh_database, login_role};
use postgres::Client;
use serde_json::{json, Value};

const PREFIX: &str = "crm_access denial: ";

fn log_path() -> String {
    format!("{}/server.log", std::env::var("PGHOST").expect("PGHOST is set by scripts/test.sh"))
}

fn log_size() -> usize {
    std::fs::read(log_path()).expect("the server log").len()
}

/// The denial lines written since `from` (a byte offset), for the logins of these tests. A
/// log line starts at column 0; PostgreSQL indents the continuation lines of a message (an
/// error message quoting a name with a newline), so those never count.
fn denials_since(from: usize) -> Vec<Value> {
    let log = std::fs::read(log_path()).expect("the server log");
    String::from_utf8_lossy(&log[from..])
        .lines()
        .filter(|l| !l.starts_with(char::is_whitespace))
        .filter_map(|l| l.split_once(&format!("LOG:  {PREFIX}")))
        .map(|(_, json)| serde_json::from_str::<Value>(json).expect("one JSON object per line"))
        .filter(|v| v["db_user"].as_str().is_some_and(|u| u.starts_with("den_")))
        .collect()
}

/// CEO > Rep (rep1); one lead each; den_app trusted, den_stranger not.
fn org(db: &str) -> Client {
    let mut c = fresh_database(db);
    login_role(&mut c, "den_app");
    login_role(&mut c, "den_stranger");
    c.batch_execute(
        "SELECT crm.create_role('CEO', NULL); SELECT crm.create_role('Rep', 'CEO');
         SELECT crm.create_profile('Sales');
         SELECT crm.grant_privileges('Sales', 'Leads', ARRAY['read', 'create', 'edit', 'delete']);
         SELECT crm.attach_profile(r, 'Sales') FROM unnest(ARRAY['CEO', 'Rep']) r;
         SELECT crm.create_user('ceo', 'CEO'), crm.create_user('rep1', 'Rep');
         SELECT crm.trust_role('den_app');
         CREATE TABLE leads (id bigint PRIMARY KEY, owner_id bigint NOT NULL);
         SELECT crm.protect('leads', 'Leads');
         INSERT INTO leads VALUES (1, crm.owner_id('ceo')), (2, crm.owner_id('rep1'));
         GRANT SELECT, INSERT, UPDATE, DELETE ON leads TO den_app, den_stranger;",
    )
    .unwrap();
    c
}

fn leads(admin: &mut Client) -> Vec<(i64, i64)> {
    admin.query("SELECT id, owner_id FROM leads ORDER BY id", &[]).unwrap().iter().map(|r| (r.get(0), r.get(1))).collect()
}

/// Run `sql` in its own transaction as `user` (none: no acting user) and return its error's
/// SQLSTATE; the transaction is rolled back either way.
fn refused(c: &mut Client, user: Option<&str>, sql: &str) -> String {
    let mut tx = c.transaction().unwrap();
    if let Some(u) = user {
        tx.execute("SELECT set_config('crm.user_name', $1, true)", &[&u]).unwrap();
    }
    let e = tx.batch_execute(sql).expect_err("refused");
    e.code().expect("a database error").code().to_string()
}

#[test]
fn refused_writes_and_assertions_log_one_line_each() {
    let mut admin = org("den_lines");
    let before = leads(&mut admin);
    let mut app = connect("den_lines", "den_app");
    let start = log_size();

    // No acting user: the write is refused, and so logged.
    assert_eq!(refused(&mut app, None, "INSERT INTO leads VALUES (10, 1)"), "42501");
    // An asserted name that is no CRM user, with a quote and a newline that must not break
    // the line or forge another.
    let hostile = "x\" }\n2026-01-01 LOG:  crm_access denial: {\"forged\": true}";
    assert_eq!(refused(&mut app, Some(hostile), "INSERT INTO leads VALUES (11, 1)"), "42501");
    // A user giving a record to someone whose records they may not edit.
    let ceo: i64 = admin.query_one("SELECT crm.owner_id('ceo')", &[]).unwrap().get(0);
    assert_eq!(refused(&mut app, Some("rep1"), &format!("INSERT INTO leads VALUES (12, {ceo})")), "42501");
    // A login outside every trusted role asserting a user.
    let mut stranger = connect("den_lines", "den_stranger");
    assert_eq!(refused(&mut stranger, Some("rep1"), "SELECT count(*) FROM leads"), "42501");

    assert_eq!(
        denials_since(start),
        [
            json!({"user": null, "asserted": null, "db_user": "den_app", "table": "public.leads", "action": "create",
                   "reason": "no acting CRM user"}),
            json!({"user": hostile, "asserted": hostile, "db_user": "den_app", "table": "public.leads", "action": "create",
                   "reason": format!("no CRM user is named {hostile}")}),
            json!({"user": "rep1", "asserted": "rep1", "db_user": "den_app", "table": "public.leads", "action": "create",
                   "reason": "the record is owned by ceo, whose Leads records are not shared with you"}),
            json!({"user": null, "asserted": "rep1", "db_user": "den_stranger", "table": null, "action": "assert identity",
                   "reason": "the login is not a member of a trusted role"}),
        ]
    );
    // Each line is one line: the forged text stays inside the JSON string.
    let log = std::fs::read(log_path()).unwrap();
    assert!(!String::from_utf8_lossy(&log[start..]).lines().any(|l| l.starts_with("2026-01-01 LOG:")));
    // Refusals change nothing.
    assert_eq!(leads(&mut admin), before);
}

#[test]
fn only_a_superuser_turns_the_denial_log_off() {
    let mut admin = org("den_switch");
    // Before the library loads (a session that does not load it as it starts; the test
    // cluster's do), the setting is a placeholder anyone may set; loading drops a
    // non-superuser's value (with a warning), so it stays on.
    admin.batch_execute("ALTER ROLE den_app IN DATABASE den_switch SET session_preload_libraries = 'plpgsql'").unwrap();
    let mut early = connect("den_switch", "den_app");
    admin.batch_execute("ALTER ROLE den_app IN DATABASE den_switch RESET session_preload_libraries").unwrap();
    early.batch_execute("SET crm.log_denials = off").unwrap();
    early.batch_execute("SELECT crm.acting_user()").unwrap();
    assert_eq!(early.query_one("SHOW crm.log_denials", &[]).unwrap().get::<_, String>(0), "on");
    let start = log_size();
    assert_eq!(refused(&mut early, None, "INSERT INTO leads VALUES (10, 1)"), "42501");
    assert_eq!(denials_since(start).len(), 1);

    let mut app = connect("den_switch", "den_app");
    app.batch_execute("SELECT crm.acting_user()").unwrap();
    // Once loaded, the refused login cannot switch it off for itself, for the session or the
    // transaction.
    for sql in ["SET crm.log_denials = off", "SET LOCAL crm.log_denials = off", "SELECT set_config('crm.log_denials', 'off', false)"] {
        let e = app.batch_execute(&format!("BEGIN; {sql}")).expect_err("superuser only");
        assert_eq!(e.code().unwrap().code(), "42501", "{sql}");
        app.batch_execute("ROLLBACK").unwrap();
    }
    assert_eq!(app.query_one("SHOW crm.log_denials", &[]).unwrap().get::<_, String>(0), "on");

    // A superuser can, for a role: its refusals then leave no line; back on, they do again.
    admin.batch_execute("ALTER ROLE den_app IN DATABASE den_switch SET crm.log_denials = off").unwrap();
    let mut quiet = connect("den_switch", "den_app");
    let start = log_size();
    assert_eq!(refused(&mut quiet, None, "INSERT INTO leads VALUES (10, 1)"), "42501");
    assert_eq!(denials_since(start), Vec::<Value>::new());
    admin.batch_execute("ALTER ROLE den_app IN DATABASE den_switch RESET crm.log_denials").unwrap();
    let mut loud = connect("den_switch", "den_app");
    let start = log_size();
    assert_eq!(refused(&mut loud, None, "INSERT INTO leads VALUES (10, 1)"), "42501");
    assert_eq!(denials_since(start).len(), 1);
}
