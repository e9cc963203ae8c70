//! Through a real PgBouncer in transaction mode (scripts/pooler.sh): many clients take turns
//! on a few server connections, each transaction acting as another user; every client sees
//! exactly its user's rows as the engine decides them, and nothing carries over to the next
//! client of a server connection. A session-level assertion does carry over: shown with
//! `crm.require_local_user` switched off, refused with it on (the default).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::thread;

use crm_client_tests::random_org::build_org;
use crm_client_tests::{allow_session_user, connect_pooled, fresh_database, leads_reach, login_role, read_catalog, simple_rows};
use crm_model::Model;
use postgres::Client;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

const CLIENTS: usize = 16;
const TRANSACTIONS: usize = 30;
/// default_pool_size in scripts/pooler.sh.
const SERVER_CONNECTIONS: usize = 3;

fn ids(s: &Option<String>) -> BTreeSet<i64> {
    s.as_deref().map(|s| s.split(',').map(|x| x.parse().unwrap()).collect()).unwrap_or_default()
}

fn sqlstate(e: &postgres::Error) -> Option<&str> {
    e.as_db_error().map(|d| d.code().code())
}

#[test]
fn pooled_clients_see_exactly_their_users_rows_and_leave_nothing_behind() {
    const DB: &str = "pool_org";
    let mut admin = fresh_database(DB);
    login_role(&mut admin, "pool_app");
    admin
        .batch_execute(
            "CREATE TABLE leads (id bigint PRIMARY KEY, owner_id bigint NOT NULL); CREATE INDEX ON leads (owner_id);
             GRANT SELECT, UPDATE, DELETE ON leads TO pool_app;",
        )
        .unwrap();
    build_org(&mut admin, &mut SmallRng::seed_from_u64(7));
    admin
        .batch_execute(
            "SELECT crm.trust_role('pool_app'); SELECT crm.protect('leads', 'Leads');
             INSERT INTO leads SELECT g, (SELECT id FROM crm.owners WHERE g > 0 ORDER BY random() LIMIT 1) FROM generate_series(1, 600) g;",
        )
        .unwrap();
    let model = Model::compile(read_catalog(&mut admin)).unwrap();
    let records: Vec<(i64, i64)> = admin.query("SELECT id, owner_id FROM leads", &[]).unwrap().iter().map(|r| (r.get(0), r.get(1))).collect();
    // Per user: the rows read, and the rows deleted (rolled back), as the engine decides.
    let expected = Arc::new(leads_reach(&model, &records));
    let users: Arc<Vec<String>> = Arc::new(expected.keys().cloned().collect());
    assert!(users.len() >= 60 && expected.values().filter(|(r, _)| !r.is_empty()).count() > 20);

    let servers = Arc::new(Mutex::new(BTreeMap::<i32, BTreeSet<String>>::new()));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let (expected, users, servers) = (expected.clone(), users.clone(), servers.clone());
            thread::spawn(move || {
                let mut rng = SmallRng::seed_from_u64(100 + client as u64);
                let mut c = connect_pooled(DB, "pool_app");
                for t in 0..TRANSACTIONS {
                    let user = &users[rng.gen_range(0..users.len())];
                    let (read, delete) = &expected[user];
                    let ctx = format!("client {client}, transaction {t}, user {user}");
                    let set = match t % 3 {
                        0 => format!("SET LOCAL crm.user_name = '{user}'"),
                        _ => format!("SELECT crm.set_user('{user}')"),
                    };
                    let query = "SELECT crm.acting_user(), pg_backend_pid(), (SELECT string_agg(id::text, ',' ORDER BY id) FROM leads)";
                    let row = if t % 2 == 0 {
                        // One round trip.
                        simple_rows(&mut c, &format!("BEGIN; {set}; {query}; COMMIT")).unwrap().pop().unwrap()
                    } else {
                        // Statement by statement: the pooler keeps the server connection for the transaction.
                        c.simple_query("BEGIN").unwrap();
                        c.simple_query(&set).unwrap();
                        let row = simple_rows(&mut c, query).unwrap().pop().unwrap();
                        if let Some(delete) = delete {
                            let deleted = simple_rows(&mut c, "WITH d AS (DELETE FROM leads RETURNING id) SELECT string_agg(id::text, ',' ORDER BY id) FROM d").unwrap();
                            assert_eq!(&ids(&deleted[0][0]), delete, "delete: {ctx}");
                        }
                        c.simple_query(if t % 4 == 1 { "ROLLBACK" } else { "SELECT 1/0" }).ok();
                        c.simple_query("ROLLBACK").unwrap();
                        row
                    };
                    assert_eq!(row[0].as_deref(), Some(user.as_str()), "acting user: {ctx}");
                    assert_eq!(&ids(&row[2]), read, "read: {ctx}");
                    servers.lock().unwrap().entry(row[1].as_ref().unwrap().parse().unwrap()).or_default().insert(user.clone());
                    // The next transaction on this client, which may run on another client's
                    // server connection, and vice versa: no acting user, no rows, writes refused.
                    let after = simple_rows(&mut c, "SELECT current_setting('crm.user_name'), crm.acting_user(), (SELECT count(*) FROM leads)").unwrap();
                    assert_eq!(after[0], [Some(String::new()), None, Some("0".into())], "after: {ctx}");
                    let refused = c.simple_query("DELETE FROM leads").unwrap_err();
                    assert_eq!(sqlstate(&refused), Some("42501"), "write without a user: {ctx}");
                }
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    // The clients really shared server connections, serving many users in turn.
    let servers = servers.lock().unwrap();
    assert!(servers.len() <= SERVER_CONNECTIONS, "{} server connections", servers.len());
    assert!(servers.values().map(BTreeSet::len).max().unwrap_or(0) > 10, "{servers:?}");
    assert_eq!(admin.query_one("SELECT count(*) FROM leads", &[]).unwrap().get::<_, i64>(0), 600, "every delete was rolled back");
}

fn leak_org() -> Client {
    let mut admin = fresh_database("pool_leak");
    login_role(&mut admin, "pool_app");
    login_role(&mut admin, "pool_legacy");
    admin
        .batch_execute(
            "SELECT crm.create_role('Rep', NULL); SELECT crm.create_profile('Sales');
             SELECT crm.grant_privileges('Sales', 'Leads', ARRAY['read']); SELECT crm.attach_profile('Rep', 'Sales');
             SELECT crm.create_user('rep1', 'Rep'), crm.create_user('rep2', 'Rep');
             SELECT crm.trust_role('pool_app'); SELECT crm.trust_role('pool_legacy');
             CREATE TABLE leads (id bigint PRIMARY KEY, owner_id bigint NOT NULL);
             SELECT crm.protect('leads', 'Leads');
             INSERT INTO leads VALUES (1, crm.owner_id('rep1')), (2, crm.owner_id('rep2'));
             GRANT SELECT ON leads TO pool_app, pool_legacy;",
        )
        .unwrap();
    admin
}

/// `pool_leak_one` has one server connection: each client here gets the previous one's.
#[test]
fn a_session_level_user_reaches_the_next_client_unless_refused() {
    let mut admin = leak_org();
    let read = "SELECT crm.acting_user(), (SELECT string_agg(id::text, ',' ORDER BY id) FROM leads)";

    // With the check off (as an administrator may for a client without a pooler), a client
    // that asserts its user for the session hands it to the next client: the leak.
    allow_session_user(&mut admin, "pool_legacy", "pool_leak");
    let mut first = connect_pooled("pool_leak_one", "pool_legacy");
    first.simple_query("SET crm.user_name = 'rep1'").unwrap();
    assert_eq!(simple_rows(&mut first, read).unwrap()[0], [Some("rep1".into()), Some("1".into())]);
    drop(first);
    let mut next = connect_pooled("pool_leak_one", "pool_legacy");
    assert_eq!(simple_rows(&mut next, read).unwrap()[0], [Some("rep1".into()), Some("1".into())], "the next client acts as rep1");
    next.simple_query("RESET crm.user_name").unwrap();
    drop(next);

    // With the check on (the default), the session-level value is refused at once, to the
    // client that set it and to the next client, who still acts normally per transaction.
    let mut first = connect_pooled("pool_leak_one", "pool_app");
    first.simple_query("SET crm.user_name = 'rep1'").unwrap();
    let e = first.simple_query(read).unwrap_err();
    assert_eq!(sqlstate(&e), Some("42501"));
    assert_eq!(e.as_db_error().unwrap().message(), "crm.user_name was set for the session, not for this transaction");
    drop(first);
    let mut next = connect_pooled("pool_leak_one", "pool_app");
    assert_eq!(simple_rows(&mut next, "SHOW crm.user_name").unwrap()[0], [Some("rep1".into())], "the value is left on the connection");
    assert_eq!(sqlstate(&next.simple_query(read).unwrap_err()), Some("42501"), "and refused for the next client");
    let own = simple_rows(&mut next, &format!("BEGIN; SET LOCAL crm.user_name = 'rep2'; {read}; COMMIT")).unwrap();
    assert_eq!(own[0], [Some("rep2".into()), Some("2".into())], "a transaction-local user still works");
    assert_eq!(sqlstate(&next.simple_query(read).unwrap_err()), Some("42501"), "and the left-over is refused again after it");
    // crm.set_user(name, false) is the same session-level assertion.
    next.simple_query("RESET crm.user_name; SELECT crm.set_user('rep2', false)").unwrap();
    assert_eq!(sqlstate(&next.simple_query(read).unwrap_err()), Some("42501"));
    next.simple_query("RESET crm.user_name").unwrap();
    assert_eq!(simple_rows(&mut next, read).unwrap()[0], [None, None]);
}

/// A login whose default user comes from ALTER ROLE ... SET (or a connection option): that
/// user is never honoured, not even brought back with SET LOCAL ... TO DEFAULT, and nothing
/// planned by a client (here inside a PL/pgSQL function, whose plans are cached) serves the
/// next client of the server connection.
#[test]
fn a_login_default_user_is_refused_and_leaves_no_plan_behind() {
    let mut admin = leak_org();
    login_role(&mut admin, "pool_default");
    admin
        .batch_execute(
            "SELECT crm.trust_role('pool_default'); GRANT SELECT ON leads TO pool_default;
             CREATE FUNCTION leads_seen() RETURNS text LANGUAGE plpgsql
                 AS $$ BEGIN RETURN (SELECT string_agg(id::text, ',' ORDER BY id) FROM leads); END $$;
             ALTER ROLE pool_default IN DATABASE pool_leak SET crm.user_name = 'rep1';",
        )
        .unwrap();
    let mut first = connect_pooled("pool_leak_one", "pool_default");
    let e = first.simple_query("BEGIN; SET LOCAL crm.user_name TO DEFAULT; SELECT leads_seen()").unwrap_err();
    assert_eq!(sqlstate(&e), Some("42501"));
    first.simple_query("ROLLBACK").unwrap();
    let own = simple_rows(&mut first, "BEGIN; SET LOCAL crm.user_name = 'rep1'; SELECT leads_seen(); COMMIT").unwrap();
    assert_eq!(own[0], [Some("1".into())], "named in the transaction, rep1 acts");
    drop(first);
    let mut next = connect_pooled("pool_leak_one", "pool_default");
    assert_eq!(sqlstate(&next.simple_query("SELECT leads_seen()").unwrap_err()), Some("42501"), "no plan of rep1's is left");
    let own = simple_rows(&mut next, "BEGIN; SET LOCAL crm.user_name = 'rep2'; SELECT leads_seen(); COMMIT").unwrap();
    assert_eq!(own[0], [Some("2".into())]);
    admin.batch_execute("ALTER ROLE pool_default IN DATABASE pool_leak RESET crm.user_name").unwrap();
}
