//! Hostile calls to the API, generated (docs/security.md, attack tier): random functions of
//! the extension with arguments drawn from a pool of bad values (NULLs, blanks, SQL, control
//! characters, very long and odd names, wrong kinds) next to good ones. Every call succeeds
//! or fails with a clear error (a SQLSTATE of a user-error class and a message), never an
//! internal error or a lost connection, and a call that fails leaves the catalog exactly as
//! it was. Callers who may not administer change nothing, whatever administration they call.

use crm_client_tests::{allow_session_user, catalog_tables, connect, fresh_database};
use postgres::types::ToSql;
use postgres::Client;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

#[derive(Clone, Copy)]
enum Kind {
    Text,
    Bool,
    Int,
    Texts,
    Table,
}

use Kind::*;

/// The API functions and the kinds of their arguments.
const FUNCTIONS: &[(&str, &[Kind])] = &[
    ("create_role", &[Text, Text]),
    ("move_role", &[Text, Text]),
    ("delete_role", &[Text, Text]),
    ("create_profile", &[Text, Bool, Bool]),
    ("grant_privileges", &[Text, Text, Texts]),
    ("revoke_privileges", &[Text, Text, Texts]),
    ("attach_profile", &[Text, Text]),
    ("detach_profile", &[Text, Text]),
    ("create_user", &[Text, Text, Bool]),
    ("set_user_active", &[Text, Bool]),
    ("set_user_role", &[Text, Text]),
    ("delete_user", &[Text, Text]),
    ("map_db_role", &[Text, Text]),
    ("unmap_db_role", &[Text]),
    ("trust_role", &[Text]),
    ("distrust_role", &[Text]),
    ("set_sharing_default", &[Text, Text]),
    ("create_group", &[Text]),
    ("add_group_member", &[Text, Text, Text]),
    ("remove_group_member", &[Text, Text, Text]),
    ("drop_group", &[Text, Text]),
    ("add_sharing_rule", &[Text, Text, Text, Text, Text, Text, Texts]),
    ("drop_sharing_rule", &[Int]),
    ("create_permission_set", &[Text, Bool, Bool]),
    ("grant_permission_set_privileges", &[Text, Text, Texts]),
    ("assign_permission_set", &[Text, Text, Text]),
    ("unassign_permission_set", &[Text, Text, Text]),
    ("drop_permission_set", &[Text]),
    ("set_message_permissions", &[Text, Texts]),
    ("set_field_access", &[Text, Text, Text, Text]),
    ("set_global_field_access", &[Text, Text, Bool]),
    ("owner_id", &[Text]),
    ("explain_access", &[Table, Text, Text, Text]),
    ("who_can", &[Table, Text, Text]),
    ("protect", &[Table, Text, Text]),
    ("unprotect", &[Table]),
    ("secure_view", &[Table]),
    ("link_parent", &[Table, Text, Table]),
    ("unlink_parent", &[Table]),
    ("set_user", &[Text, Bool]),
    ("assign_conversation", &[Int, Text]),
    ("invite", &[Int, Text]),
    ("share_calendar", &[Text]),
];

/// Good values among the bad, so that calls also get past their first check.
const TEXTS: &[&str] = &[
    "", " ", "CEO", "Rep_West", "Sales", "alice", "bob", "root", "Leads", "Accounts", "Messages", "read", "edit", "read_write",
    "private", "public_read", "hidden", "read_only", "user", "role", "group", "company", "owner_id", "id", "crm_app",
    "Key Accounts", "x'); DROP TABLE crm.roles; --", "\"; SELECT pg_sleep(10); --", "a\nb", "tab\there", "\u{7}bell",
    "ünïcödé", "%", "_", "\\", "$$", "$f$", "'", "\"quoted\"", "sales.leads", "pg_catalog.pg_class", "NULL",
];
const TABLES: &[&str] = &["sales.leads", "sales.accounts", "crm.roles", "crm.conversations", "pg_catalog.pg_class"];
const ARRAYS: &[&[&str]] = &[&[], &["read"], &["read", "fly"], &["mine", "archive"], &["Opportunities"], &["read; DROP"]];

fn text(rng: &mut SmallRng) -> Option<String> {
    match rng.gen_range(0..12) {
        0 => None,
        1 => Some("x".repeat(rng.gen_range(199..400))),
        _ => Some(TEXTS[rng.gen_range(0..TEXTS.len())].to_string()),
    }
}

/// Functions a CRM user calls for themselves (sharing their calendar, assigning a
/// conversation they may edit): not administration, so they may change what is theirs.
const FOR_ONESELF: [&str; 3] = ["share_calendar", "assign_conversation", "invite"];

/// One call: the SQL and its parameters; administration only, when `admin_only`.
fn call(rng: &mut SmallRng, admin_only: bool) -> (String, Vec<Box<dyn ToSql + Sync>>) {
    let (name, kinds) = loop {
        let f = FUNCTIONS[rng.gen_range(0..FUNCTIONS.len())];
        if !(admin_only && FOR_ONESELF.contains(&f.0)) {
            break f;
        }
    };
    let mut params: Vec<Box<dyn ToSql + Sync>> = Vec::new();
    let mut args = Vec::new();
    for (i, kind) in kinds.iter().enumerate() {
        let n = i + 1;
        match kind {
            Text => {
                args.push(format!("${n}::text"));
                params.push(Box::new(text(rng)));
            }
            Bool => {
                args.push(format!("${n}::boolean"));
                params.push(Box::new([None, Some(true), Some(false)][rng.gen_range(0..3)]));
            }
            Int => {
                args.push(format!("${n}::bigint"));
                params.push(Box::new([None, Some(0_i64), Some(-1), Some(1), Some(41), Some(i64::MAX)][rng.gen_range(0..6)]));
            }
            Texts => {
                args.push(format!("${n}::text[]"));
                let v: Option<Vec<Option<String>>> = match rng.gen_range(0..8) {
                    0 => None,
                    1 => Some(vec![None]),
                    _ => Some(ARRAYS[rng.gen_range(0..ARRAYS.len())].iter().map(|s| Some(s.to_string())).collect()),
                };
                params.push(Box::new(v));
            }
            Table => {
                // A table name the caller could give: cast to regclass by PostgreSQL first.
                args.push(format!("${n}::text::regclass"));
                params.push(Box::new(if rng.gen_bool(0.1) { None } else { Some(TABLES[rng.gen_range(0..TABLES.len())].to_string()) }));
            }
        }
    }
    // explain_access and who_can take the key as anyelement: pass it as text.
    (format!("SELECT crm.{name}({})", args.join(", ")), params)
}

fn digest(c: &mut Client) -> String {
    // Table by table (query_to_xml would do it in one statement, but needs libxml).
    catalog_tables(c)
        .iter()
        .map(|t| {
            let d: String = c
                .query_one(&format!("SELECT md5(coalesce(string_agg(x::text, ',' ORDER BY x::text), '')) FROM {t} x"), &[])
                .unwrap()
                .get(0);
            format!("{t}:{d}")
        })
        .collect::<Vec<_>>()
        .join("|")
}

/// SQLSTATE classes of errors a caller can cause with bad input or missing rights.
const USER_ERRORS: [&str; 7] = ["22", "23", "2B", "42", "55", "0A", "25"];

/// Run `n` generated calls as `session`; check every failure and, for `may_change` false,
/// that nothing ever changes.
fn run(db: &str, session: &mut Client, observer: &mut Client, seed: u64, n: usize, may_change: bool) -> (usize, usize) {
    let mut rng = SmallRng::seed_from_u64(seed);
    let (mut ok, mut refused) = (0, 0);
    for i in 0..n {
        let (sql, params) = call(&mut rng, !may_change);
        let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p.as_ref()).collect();
        let before = digest(observer);
        match session.query(&sql, &refs) {
            Ok(_) => {
                ok += 1;
                if !may_change {
                    assert_eq!(digest(observer), before, "call {i} of {db} changed the catalog: {sql} {params:?}", params = params.len());
                }
            }
            Err(e) => {
                refused += 1;
                let db_error = e.as_db_error().unwrap_or_else(|| panic!("call {i}: {sql}: not a database error: {e}"));
                let code = db_error.code().code();
                assert!(USER_ERRORS.iter().any(|class| code.starts_with(class)), "call {i}: {sql}: SQLSTATE {code}: {}", db_error.message());
                assert!(!db_error.message().is_empty());
                assert_eq!(digest(observer), before, "call {i}: {sql} failed ({code}) but changed the catalog");
            }
        }
    }
    // The session is alive and usable.
    assert_eq!(session.query_one("SELECT 1", &[]).unwrap().get::<_, i32>(0), 1);
    (ok, refused)
}

fn org(db: &str) -> Client {
    let mut admin = fresh_database(db);
    admin.batch_execute(include_str!("../../fixtures/org.sql")).unwrap();
    admin
        .batch_execute("SELECT crm.create_group('Key Accounts'); SELECT crm.create_permission_set('Extra');
                        ALTER TABLE sales.leads ADD COLUMN phone text;")
        .unwrap();
    admin
}

#[test]
fn hostile_calls_by_an_administrator_fail_cleanly_and_change_nothing_when_they_fail() {
    const DB: &str = "hostile_admin";
    let calls: usize = std::env::var("CRM_HOSTILE_CALLS").ok().and_then(|v| v.parse().ok()).unwrap_or(1500);
    let mut admin = org(DB);
    let mut observer = connect(DB, "postgres");
    let (ok, refused) = run(DB, &mut admin, &mut observer, 7, calls, true);
    // Both outcomes happened: the generator reaches past the first checks.
    assert!(ok > calls / 20 && refused > calls / 4, "{ok} succeeded, {refused} refused");
}

#[test]
fn hostile_calls_by_callers_who_may_not_administer_change_nothing() {
    const DB: &str = "hostile_others";
    let calls: usize = std::env::var("CRM_HOSTILE_CALLS").ok().and_then(|v| v.parse().ok()).unwrap_or(1500) / 3;
    let _admin = org(DB);
    let mut observer = connect(DB, "postgres");
    allow_session_user(&mut observer, "crm_app", DB);
    for (login, user, seed) in [("crm_app", Some("alice"), 11), ("bi_alice", None, 12), ("crm_stranger", None, 13)] {
        let mut session = connect(DB, login);
        if let Some(user) = user {
            session.execute("SELECT crm.set_user($1, false)", &[&user]).unwrap();
        }
        run(DB, &mut session, &mut observer, seed, calls, false);
    }
}
