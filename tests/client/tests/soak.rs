//! Soak with catalog churn (issue 14): clients read and delete (rolled back) as a different
//! user in every transaction, through prepared statements whose plans the server caches,
//! while an administrator keeps changing the catalog (moving users, adding and dropping
//! sharing rules, group memberships, the default, disabling and enabling users). Each
//! committed change bumps a version in the same transaction, and every statement reads that
//! version in its own snapshot: its rows must be what the engine decides at that version or
//! a later one committed before the transaction's next statement (the model is loaded under
//! the latest snapshot when the statement is planned). A result that only an older version
//! explains is a stale decision; one that no version explains, a wrong one. Both must be 0,
//! and so must errors other than the intended refusal (a disabled user's delete).
//!
//! CI runs it for CRM_SOAK_SECONDS (default 20) with CRM_SOAK_CLIENTS (default 16) clients;
//! scripts/soak.sh runs the long version and prints the figures docs/benchmarks.md quotes.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, RwLock};
use std::thread;
use std::time::{Duration, Instant};

use crm_client_tests::random_org::build_org;
use crm_client_tests::{connect, fresh_database, leads_reach, login_role, read_catalog, LeadsReach};
use crm_model::Model;
use postgres::Client;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

const DB: &str = "soak_org";
const RECORDS: i64 = 400;
const LEVELS: [&str; 4] = ["private", "public_read", "public_read_write", "public_read_write_delete"];

/// Per user at one catalog version: the leads read and deleted (`leads_reach`).
type Expected = LeadsReach;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn expected(admin: &mut Client, records: &[(i64, i64)]) -> Expected {
    leads_reach(&Model::compile(read_catalog(admin)).unwrap(), records)
}

fn ids(s: Option<&str>) -> BTreeSet<i64> {
    s.map(|s| s.split(',').map(|x| x.parse().unwrap()).collect()).unwrap_or_default()
}

fn rss_anon_kb(pid: i32) -> i64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status.lines().find_map(|l| l.strip_prefix("RssAnon:")).and_then(|v| v.split_whitespace().next()?.parse().ok()).unwrap_or(0)
}

/// The versions a result may come from: the statement's own, up to the latest committed
/// before the transaction's next statement. `Ok(())`, or whether an older version explains it.
fn judge(versions: &RwLock<Vec<Arc<Expected>>>, from: i64, to: i64, pick: impl Fn(&Expected) -> bool) -> Result<(), bool> {
    let wait_for = |v: i64| loop {
        if let Some(e) = versions.read().unwrap().get(v as usize).cloned() {
            return e;
        }
        thread::sleep(Duration::from_millis(1));
    };
    if (from..=to).any(|v| pick(&wait_for(v))) {
        return Ok(());
    }
    Err((0..from).any(|v| pick(&wait_for(v))))
}

#[derive(Default)]
struct Tally {
    statements: AtomicU64,
    refusals: AtomicU64,
    stale: AtomicU64,
    wrong: AtomicU64,
    errors: AtomicU64,
    /// Largest growth of a backend's private memory over the first and the second half.
    growth_first_kb: AtomicU64,
    growth_second_kb: AtomicU64,
}

#[test]
fn clients_under_catalog_churn_never_get_a_stale_decision() {
    let seconds = env_or("CRM_SOAK_SECONDS", 20);
    let n_clients = env_or("CRM_SOAK_CLIENTS", 16) as usize;
    let mut admin = fresh_database(DB);
    login_role(&mut admin, "soak_app");
    admin
        .batch_execute(
            "CREATE TABLE leads (id bigint PRIMARY KEY, owner_id bigint NOT NULL); CREATE INDEX ON leads (owner_id);
             CREATE TABLE soak_version (v bigint NOT NULL); INSERT INTO soak_version VALUES (0);
             CREATE TABLE lookup (code int PRIMARY KEY, label text NOT NULL);
             INSERT INTO lookup SELECT g, 'label ' || g FROM generate_series(1, 100) g;
             GRANT SELECT, DELETE ON leads TO soak_app; GRANT SELECT ON soak_version, lookup TO soak_app;",
        )
        .unwrap();
    build_org(&mut admin, &mut SmallRng::seed_from_u64(11));
    admin
        .batch_execute(&format!(
            "SELECT crm.trust_role('soak_app'); SELECT crm.protect('leads', 'Leads');
             SELECT crm.create_group('soak_group');
             INSERT INTO leads SELECT g, (SELECT id FROM crm.owners WHERE g > 0 ORDER BY random() LIMIT 1) FROM generate_series(1, {RECORDS}) g;"
        ))
        .unwrap();
    let records: Arc<Vec<(i64, i64)>> =
        Arc::new(admin.query("SELECT id, owner_id FROM leads", &[]).unwrap().iter().map(|r| (r.get(0), r.get(1))).collect());
    let versions = Arc::new(RwLock::new(vec![Arc::new(expected(&mut admin, &records))]));
    let users: Arc<Vec<String>> = Arc::new(versions.read().unwrap()[0].keys().cloned().collect());
    let roles: Vec<String> = admin.query("SELECT name FROM crm.roles", &[]).unwrap().iter().map(|r| r.get(0)).collect();
    let groups: Vec<String> = admin.query("SELECT o.name FROM crm.groups g JOIN crm.owners o ON o.id = g.owner_id", &[]).unwrap().iter().map(|r| r.get(0)).collect();

    let deadline = Instant::now() + Duration::from_secs(seconds);
    let done = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let clients: Vec<_> = (0..n_clients)
        .map(|client| {
            let (versions, users, tally, done) = (versions.clone(), users.clone(), tally.clone(), done.clone());
            thread::spawn(move || {
                let mut rng = SmallRng::seed_from_u64(500 + client as u64);
                let mut c = connect(DB, "soak_app");
                // Prepared once: the server caches their plans across transactions, which is
                // what a change of user or catalog must invalidate (or keep, for the lookup).
                let read = c.prepare("SELECT (SELECT v FROM soak_version), crm.acting_user(), (SELECT string_agg(id::text, ',' ORDER BY id) FROM leads)").unwrap();
                // Each client deletes (and rolls back) only its own share of the rows: clients
                // deleting the same rows through plans of different users lock them in
                // different orders and deadlock, which says nothing about access control.
                let delete = c
                    .prepare("WITH d AS (DELETE FROM leads WHERE id % $1 = $2 RETURNING id) SELECT (SELECT v FROM soak_version), string_agg(id::text, ',' ORDER BY id) FROM d")
                    .unwrap();
                let (share_of, share) = (n_clients as i64, client as i64);
                let version = c.prepare("SELECT v FROM soak_version").unwrap();
                let lookup = c.prepare("SELECT label, (SELECT v FROM soak_version) FROM lookup WHERE code = $1").unwrap();
                let pid: i32 = c.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0);
                // Private memory at the third transaction (caches warm), at half time, at the end.
                let (mut start_kb, mut mid_kb) = (None, None);
                let half = Instant::now() + Duration::from_secs(seconds / 2);
                let mut t = 0u64;
                while !done.load(Relaxed) {
                    t += 1;
                    let user = users[rng.gen_range(0..users.len())].clone();
                    let ctx = format!("client {client} pid {pid}, transaction {t}, user {user}");
                    let mut tx = c.transaction().unwrap();
                    let set = if t % 2 == 0 { "SELECT set_config('crm.user_name', $1, true)" } else { "SELECT crm.set_user($1)" };
                    tx.query(set, &[&user]).unwrap();
                    let code = rng.gen_range(1..=100i32);
                    let row = tx.query_one(&lookup, &[&code]).unwrap();
                    let (label, v_before): (String, i64) = (row.get(0), row.get(1));
                    assert_eq!(label, format!("label {code}"), "{ctx}");
                    let row = tx.query_one(&read, &[]).unwrap();
                    let (v_read, acting, seen): (i64, Option<String>, Option<String>) = (row.get(0), row.get(1), row.get(2));
                    assert_eq!(acting.as_deref(), Some(user.as_str()), "acting user: {ctx}");
                    let seen = ids(seen.as_deref());
                    let deleted = if t % 3 == 0 {
                        tx.batch_execute("SAVEPOINT d").unwrap();
                        match tx.query_one(&delete, &[&share_of, &share]) {
                            Ok(row) => Some(Ok((row.get::<_, i64>(0), ids(row.get::<_, Option<&str>>(1))))),
                            Err(e) => {
                                tx.batch_execute("ROLLBACK TO SAVEPOINT d").unwrap();
                                Some(Err(e))
                            }
                        }
                    } else {
                        None
                    };
                    let v_after: i64 = tx.query_one(&version, &[]).unwrap().get(0);
                    tx.rollback().unwrap();
                    tally.statements.fetch_add(if deleted.is_some() { 5 } else { 4 }, Relaxed);

                    let verdict = judge(&versions, v_before, v_after, |e| e.get(&user).is_some_and(|(r, _)| *r == seen));
                    match verdict {
                        Ok(()) => {}
                        Err(true) => {
                            tally.stale.fetch_add(1, Relaxed);
                            eprintln!("stale read: {ctx}, versions {v_before}..{v_read}..{v_after}");
                        }
                        Err(false) => {
                            tally.wrong.fetch_add(1, Relaxed);
                            eprintln!("wrong read: {ctx}, versions {v_before}..{v_read}..{v_after}: {seen:?}");
                        }
                    }
                    match deleted {
                        None => {}
                        Some(Ok((v_delete, gone))) => {
                            let mine = |d: &BTreeSet<i64>| -> BTreeSet<i64> { d.iter().filter(|id| *id % share_of == share).copied().collect() };
                            let verdict = judge(&versions, v_read, v_after, |e| e.get(&user).is_some_and(|(_, d)| d.as_ref().map(mine) == Some(gone.clone())));
                            if verdict.is_err() {
                                let counter = if verdict == Err(true) { &tally.stale } else { &tally.wrong };
                                counter.fetch_add(1, Relaxed);
                                eprintln!("{} delete: {ctx}, versions {v_before}:{v_read}..{v_delete}..{v_after}", if verdict == Err(true) { "stale" } else { "wrong" });
                            }
                        }
                        Some(Err(e)) => {
                            // Intended only for a user disabled at a version the delete may have seen.
                            let refused = e.code().map(|c| c.code()) == Some("42501")
                                && judge(&versions, v_read, v_after, |e| e.get(&user).is_some_and(|(_, d)| d.is_none())).is_ok();
                            if refused {
                                tally.refusals.fetch_add(1, Relaxed);
                            } else {
                                tally.errors.fetch_add(1, Relaxed);
                                eprintln!("error: {ctx}: {e:?}");
                            }
                        }
                    }
                    if t == 3 {
                        start_kb = Some(rss_anon_kb(pid));
                    }
                    if mid_kb.is_none() && start_kb.is_some() && Instant::now() >= half {
                        mid_kb = Some(rss_anon_kb(pid));
                    }
                }
                let end_kb = rss_anon_kb(pid);
                if let (Some(start), Some(mid)) = (start_kb, mid_kb) {
                    tally.growth_first_kb.fetch_max((mid - start).max(0) as u64, Relaxed);
                    tally.growth_second_kb.fetch_max((end_kb - mid).max(0) as u64, Relaxed);
                }
            })
        })
        .collect();

    // The administrator: one change per transaction, with the version, until the deadline.
    let mut rng = SmallRng::seed_from_u64(99);
    let mut rules: Vec<i64> = admin.query("SELECT id FROM crm.sharing_rules", &[]).unwrap().iter().map(|r| r.get(0)).collect();
    let (mut changes, mut refused_changes) = (0u64, 0u64);
    while Instant::now() < deadline {
        let user = &users[rng.gen_range(0..users.len())];
        let role = &roles[rng.gen_range(0..roles.len())];
        let group = &groups[rng.gen_range(0..groups.len())];
        let party = |rng: &mut SmallRng| match rng.gen_range(0..3) {
            0 => format!("'role', '{}'", roles[rng.gen_range(0..roles.len())]),
            1 => format!("'role_and_subordinates', '{}'", roles[rng.gen_range(0..roles.len())]),
            _ => format!("'group', '{}'", groups[rng.gen_range(0..groups.len())]),
        };
        let change = match rng.gen_range(0..7) {
            0 => format!("SELECT crm.set_user_role('{user}', '{role}')"),
            1 => format!("SELECT crm.add_sharing_rule('Leads', {}, {}, 'read_write')", party(&mut rng), party(&mut rng)),
            2 if !rules.is_empty() => format!("SELECT crm.drop_sharing_rule({})", rules.swap_remove(rng.gen_range(0..rules.len()))),
            3 => format!("SELECT crm.add_group_member('{group}', 'user', '{user}')"),
            4 => format!("SELECT crm.remove_group_member('{group}', 'user', '{user}')"),
            5 => format!("SELECT crm.set_sharing_default('Leads', '{}')", LEVELS[rng.gen_range(0..4)]),
            _ => format!("SELECT crm.set_user_active('{user}', {})", rng.gen_bool(0.5)),
        };
        let mut tx = admin.transaction().unwrap();
        match tx.query(change.as_str(), &[]) {
            Ok(rows) => {
                if change.contains("add_sharing_rule") {
                    rules.push(rows[0].get(0));
                }
                tx.batch_execute("UPDATE soak_version SET v = v + 1").unwrap();
                tx.commit().unwrap();
                changes += 1;
                let next = expected(&mut admin, &records);
                versions.write().unwrap().push(Arc::new(next));
            }
            Err(_) => {
                // Refused by the API (a member already there or missing): nothing changed.
                tx.rollback().unwrap();
                refused_changes += 1;
            }
        }
    }
    done.store(true, Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    let current: i64 = admin.query_one("SELECT v FROM soak_version", &[]).unwrap().get(0);
    assert_eq!(current as u64, changes, "every committed change bumped the version once");
    let t = &tally;
    println!(
        "soak: {n_clients} clients, {seconds} s: {} statements, {changes} catalog changes ({refused_changes} refused by the API), \
         stale decisions {}, wrong decisions {}, intended refusals {}, other errors {}, largest private memory growth of a backend \
         {} kB in the first half, {} kB in the second",
        t.statements.load(Relaxed),
        t.stale.load(Relaxed),
        t.wrong.load(Relaxed),
        t.refusals.load(Relaxed),
        t.errors.load(Relaxed),
        t.growth_first_kb.load(Relaxed),
        t.growth_second_kb.load(Relaxed)
    );
    assert!(changes > 10 && t.statements.load(Relaxed) > 100, "the soak did too little to mean anything");
    assert_eq!((t.stale.load(Relaxed), t.wrong.load(Relaxed), t.errors.load(Relaxed)), (0, 0, 0));
}
