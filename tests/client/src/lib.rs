//! Shared helpers for the client integration tests: connecting to the throwaway cluster
//! that scripts/test.sh starts (PGHOST/PGPORT), making a fresh database per test, and
//! reading the catalog back into a `crm_model::Catalog` for the engine oracle.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use crm_model::{Action, Catalog, Model, Group, GroupMember, Holds, Module, Party, Profile, Restricted, RestrictionRule, Role, RuleAccess, SharingRule, User};
use postgres::{Client, NoTls};

pub mod random_org;

fn host() -> String {
    std::env::var("PGHOST").expect("PGHOST is set by scripts/test.sh")
}

fn port() -> String {
    std::env::var("PGPORT").unwrap_or_else(|_| "5432".into())
}

pub fn connect(db: &str, user: &str) -> Client {
    Client::connect(&format!("host={} port={} user={user} dbname={db}", host(), port()), NoTls)
        .unwrap_or_else(|e| panic!("connect to {db} as {user}: {e}"))
}

/// Held while a test creates what is cluster-wide (roles, and the extension's own roles at its
/// first install), so that tests run on several threads (the differential suite's workers) do
/// not race each other to create the same role.
static CLUSTER_WIDE: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn cluster_wide() -> std::sync::MutexGuard<'static, ()> {
    // A test that panicked while holding it left nothing half-made that matters here.
    CLUSTER_WIDE.lock().unwrap_or_else(|e| e.into_inner())
}

/// A fresh database with crm_access installed; `name` must be unique per test.
pub fn fresh_database(name: &str) -> Client {
    let _cluster = cluster_wide();
    let mut admin = connect("postgres", "postgres");
    admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).unwrap();
    admin.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
    let mut db = connect(name, "postgres");
    db.batch_execute("CREATE EXTENSION crm_access").unwrap();
    db
}

/// The tables of schema crm, qualified, in name order.
pub fn catalog_tables(c: &mut Client) -> Vec<String> {
    c.query("SELECT format('crm.%I', c.relname) FROM pg_class c WHERE c.relnamespace = 'crm'::regnamespace AND c.relkind = 'r' ORDER BY c.relname", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// Lets `role` hold one acting user for a whole session in `db`, as a client without a
/// pooler may: `crm.require_local_user` off for it, set by a superuser before it connects.
pub fn allow_session_user(admin: &mut Client, role: &str, db: &str) {
    admin.batch_execute(&format!("ALTER ROLE \"{role}\" IN DATABASE \"{db}\" SET crm.require_local_user = off")).unwrap();
}

/// Create a login role if it does not exist yet (roles are cluster-wide).
pub fn login_role(client: &mut Client, name: &str) {
    let _cluster = cluster_wide();
    client
        .batch_execute(&format!(
            "DO $$ BEGIN CREATE ROLE {name} LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$"
        ))
        .unwrap();
}

/// Read the catalog tables the way an auditor would, independently of the extension's
/// own loader, into the engine's snapshot type.
pub fn read_catalog(c: &mut Client) -> Catalog {
    let roles = c
        .query("SELECT id, name, parent_id FROM crm.roles", &[])
        .unwrap()
        .iter()
        .map(|r| Role { id: r.get(0), name: r.get(1), parent: r.get(2) })
        .collect();
    let mut profiles = read_profiles(c, "crm.profiles", "crm.profile_privileges");
    for r in c.query("SELECT profile_id, module, field::text, access FROM crm.field_access", &[]).unwrap() {
        let p = profiles.iter_mut().find(|p| p.id == r.get::<_, i64>(0)).expect("field access of a known profile");
        p.fields.entry(r.get(1)).or_default().insert(r.get(2), r.get::<_, String>(3).parse().unwrap());
    }
    let role_profiles =
        c.query("SELECT role_id, profile_id FROM crm.role_profiles", &[]).unwrap().iter().map(|r| (r.get(0), r.get(1))).collect();
    let users = c
        .query("SELECT u.owner_id, o.name, u.role_id, u.is_admin, u.is_active FROM crm.users u JOIN crm.owners o ON o.id = u.owner_id", &[])
        .unwrap()
        .iter()
        .map(|r| User { owner_id: r.get(0), name: r.get::<_, String>(1).into(), role: r.get(2), is_admin: r.get(3), is_active: r.get(4) })
        .collect();
    let modules = c
        .query(
            "SELECT m.name, coalesce(d.level, 'private'), m.controlled_by, m.holds, m.links_conversations
             FROM crm.modules m LEFT JOIN crm.sharing_defaults d ON d.module = m.name",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| Module {
            name: r.get(0),
            sharing_default: r.get::<_, String>(1).parse().unwrap(),
            controlled_by: r.get(2),
            holds: r.get::<_, Option<String>>(3).map(|h| match h.as_str() {
                "conversations" => Holds::Conversations,
                "events" => Holds::Events,
                other => panic!("crm.modules.holds {other}"),
            }),
            links_conversations: r.get(4),
        })
        .collect();
    let module_relations = c.query("SELECT parent, child FROM crm.module_relations", &[]).unwrap().iter().map(|r| (r.get(0), r.get(1))).collect();
    let groups = c
        .query("SELECT g.owner_id, o.name FROM crm.groups g JOIN crm.owners o ON o.id = g.owner_id", &[])
        .unwrap()
        .iter()
        .map(|r| Group { owner_id: r.get(0), name: r.get(1) })
        .collect();
    let group_members = c
        .query("SELECT group_id, member_kind, member_id FROM crm.group_members", &[])
        .unwrap()
        .iter()
        .map(|r| GroupMember { group: r.get(0), member: party(r.get(1), r.get(2)) })
        .collect();
    let sharing_rules = c
        .query("SELECT id, module, source_kind, source_id, target_kind, target_id, access, related_modules FROM crm.sharing_rules", &[])
        .unwrap()
        .iter()
        .map(|r| SharingRule {
            id: r.get(0),
            module: r.get(1),
            source: party(r.get(2), r.get(3)),
            target: party(r.get(4), r.get(5)),
            access: if r.get::<_, String>(6) == "read" { RuleAccess::Read } else { RuleAccess::ReadWrite },
            related_modules: r.get(7),
        })
        .collect();
    let permission_sets = read_profiles(c, "crm.permission_sets", "crm.permission_set_privileges");
    let permission_set_assignments = c
        .query("SELECT set_id, owner_id, ((extract(epoch FROM until) - 946684800) * 1000000)::int8 FROM crm.permission_set_assignments", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let hidden_fields = c.query("SELECT module, field::text FROM crm.hidden_fields", &[]).unwrap().iter().map(|r| (r.get(0), r.get(1))).collect();
    let calendar_shares = c.query("SELECT owner_id, with_user FROM crm.calendar_shares", &[]).unwrap().iter().map(|r| (r.get(0), r.get(1))).collect();
    let restriction_rules = c
        .query("SELECT id, module, kind, target_id, column_name, allowed FROM crm.restrictions", &[])
        .unwrap()
        .iter()
        .map(|r| RestrictionRule {
            id: r.get(0),
            module: r.get(1),
            applies_to: match (r.get::<_, &str>(2), r.get::<_, i64>(3)) {
                ("role", id) => Restricted::Role(id),
                ("role_and_subordinates", id) => Restricted::RoleAndSubordinates(id),
                ("group", id) => Restricted::Group(id),
                ("permission_set", id) => Restricted::PermissionSet(id),
                (kind, _) => panic!("unknown restriction kind {kind}"),
            },
            column: r.get(4),
            allowed: r.get(5),
        })
        .collect();
    Catalog {
        roles, profiles, role_profiles, users, modules, groups, group_members, sharing_rules, permission_sets,
        permission_set_assignments, hidden_fields, calendar_shares, module_relations, restriction_rules, ..Default::default()
    }
}

/// Profiles or permission sets (same shape): `table` (id, name, view_all, edit_all) and their
/// grants in `privileges` (holder id, module, action).
fn read_profiles(c: &mut Client, table: &str, privileges: &str) -> Vec<Profile> {
    let mut grants: BTreeMap<i64, BTreeMap<String, Vec<Action>>> = BTreeMap::new();
    for r in c.query(&format!("SELECT * FROM {privileges}"), &[]).unwrap() {
        let action: String = r.get(2);
        grants.entry(r.get(0)).or_default().entry(r.get(1)).or_default().push(action.parse().unwrap());
    }
    c.query(&format!("SELECT id, name, view_all, edit_all, message_permissions FROM {table}"), &[])
        .unwrap()
        .iter()
        .map(|r| Profile {
            id: r.get(0),
            name: r.get(1),
            view_all: r.get(2),
            edit_all: r.get(3),
            grants: grants.remove(&r.get::<_, i64>(0)).unwrap_or_default(),
            message_permissions: r.get::<_, Vec<String>>(4).iter().map(|p| p.parse().unwrap()).collect(),
            ..Default::default()
        })
        .collect()
}

fn party(kind: String, id: i64) -> Party {
    match kind.as_str() {
        "user" => Party::User(id),
        "role" => Party::Role(id),
        "role_and_subordinates" => Party::RoleAndSubordinates(id),
        "group" => Party::Group(id),
        other => panic!("unknown party kind {other}"),
    }
}

/// A connection through PgBouncer (scripts/pooler.sh, started by scripts/test.sh).
pub fn connect_pooled(db: &str, user: &str) -> Client {
    let port = std::env::var("CRM_POOLER_PORT").expect("CRM_POOLER_PORT is set by scripts/test.sh (PgBouncer)");
    Client::connect(&format!("host=127.0.0.1 port={port} user={user} dbname={db}"), NoTls)
        .unwrap_or_else(|e| panic!("connect through PgBouncer to {db} as {user}: {e}"))
}

/// The rows of a simple-protocol query (the only protocol a transaction pooler lets clients
/// share safely without server-side prepared statements), as optional strings.
pub fn simple_rows(c: &mut Client, sql: &str) -> Result<Vec<Vec<Option<String>>>, postgres::Error> {
    Ok(c.simple_query(sql)?
        .into_iter()
        .filter_map(|m| match m {
            postgres::SimpleQueryMessage::Row(r) => Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect()),
            _ => None,
        })
        .collect())
}

/// Per user, the leads `(id, owner)` a read returns and a delete removes, as the engine
/// decides: a delete takes what the user may both read and delete, and None for a disabled
/// user, whose delete is refused.
pub type LeadsReach = BTreeMap<String, (BTreeSet<i64>, Option<BTreeSet<i64>>)>;

pub fn leads_reach(model: &Model, records: &[(i64, i64)]) -> LeadsReach {
    model
        .users()
        .map(|u| {
            let reach = |action| -> BTreeSet<i64> {
                records.iter().filter(|(_, o)| model.decide(Some(u.owner_id), "Leads", action, *o).allowed).map(|(id, _)| *id).collect()
            };
            let read = reach(Action::Read);
            let delete = u.is_active.then(|| reach(Action::Delete).intersection(&read).copied().collect());
            (u.name.to_string(), (read, delete))
        })
        .collect()
}

/// Wait (at most 10 s) until some other session of `db` is waiting for a lock.
pub fn until_blocked(observer: &mut Client, db: &str) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        let waiting: i64 = observer
            .query_one("SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock'", &[&db])
            .unwrap()
            .get(0);
        if waiting > 0 {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("the second session never waited for the first: the race was not serialised");
}
