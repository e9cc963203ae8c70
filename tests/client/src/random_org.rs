//! Random organisations built through the SQL API (the differential and pooler tests): up to
//! hundreds of users, deep role trees, random profiles, admins, disabled users, nested
//! groups, sharing rules of every kind, permission sets and all four defaults, and two
//! modules of the organisation's own (DESIGN §9): Projects under Accounts, and Milestones
//! controlled by Projects.

use crm_model::Action;
use postgres::Client;
use rand::rngs::SmallRng;
use rand::Rng;

pub const MODULES: [&str; 6] = ["Leads", "Accounts", "Contacts", "Opportunities", "Projects", "Milestones"];
pub const TABLES: [&str; 6] = ["leads", "accounts", "contacts", "opportunities", "projects", "milestones"];
/// Opportunities and projects are linked to their account (crm.link_parent).
pub const LINKED_TO_ACCOUNTS: [usize; 2] = [3, 4];
/// The modules that govern themselves (Contacts follow Accounts, Milestones Projects), whose
/// defaults are set; Accounts first, since a private Accounts default makes its related
/// modules private.
const GOVERNING: [&str; 4] = ["Accounts", "Leads", "Opportunities", "Projects"];

/// The id of the one record of each table whose owner is no CRM owner at all.
pub const ORPHAN_RECORD: i64 = 999_999;
/// The owner id of that record: neither a user nor a group.
pub const NO_CRM_OWNER: i64 = 424_242;
const LEVELS: [&str; 4] = ["private", "public_read", "public_read_write", "public_read_write_delete"];
const KINDS: [&str; 3] = ["role", "role_and_subordinates", "group"];

pub fn build_org(c: &mut Client, rng: &mut SmallRng) {
    let n_roles = rng.gen_range(15..50);
    let mut sql = String::from(
        "SELECT crm.create_module('Projects', 'Accounts');
         SELECT crm.create_module('Milestones', 'Projects', controlled_by_parent => true);
         SELECT crm.create_role('R0', NULL);\n",
    );
    for i in 1..n_roles {
        // Parents among the last few roles make deep chains; the rest make bushy levels.
        let parent = if rng.gen_bool(0.6) { i - 1 - rng.gen_range(0..i.min(3)) } else { rng.gen_range(0..i) };
        sql += &format!("SELECT crm.create_role('R{i}', 'R{parent}');\n");
    }
    let n_profiles = rng.gen_range(2..7);
    for p in 0..n_profiles {
        sql += &format!("SELECT crm.create_profile('P{p}', {}, {});\n", rng.gen_bool(0.1), rng.gen_bool(0.07));
        for m in MODULES {
            let actions: Vec<String> = Action::ALL.iter().filter(|_| rng.gen_bool(0.7)).map(|a| format!("'{}'", a.as_str())).collect();
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
    let n_users = rng.gen_range(60..220);
    for u in 0..n_users {
        sql += &format!("SELECT crm.create_user('u{u}', 'R{}', {});\n", rng.gen_range(0..n_roles), rng.gen_bool(0.02));
        if rng.gen_bool(0.08) {
            sql += &format!("SELECT crm.set_user_active('u{u}', false);\n");
        }
    }
    let n_groups = rng.gen_range(0..8);
    for g in 0..n_groups {
        sql += &format!("SELECT crm.create_group('G{g}');\n");
        for _ in 0..rng.gen_range(0..5) {
            sql += &match rng.gen_range(0..4) {
                0 => format!("SELECT crm.add_group_member('G{g}', 'user', 'u{}');\n", rng.gen_range(0..n_users)),
                1 => format!("SELECT crm.add_group_member('G{g}', 'role', 'R{}');\n", rng.gen_range(0..n_roles)),
                2 => format!("SELECT crm.add_group_member('G{g}', 'role_and_subordinates', 'R{}');\n", rng.gen_range(0..n_roles)),
                // Only earlier groups, so no cycle: the API would refuse one.
                _ if g > 0 => format!("SELECT crm.add_group_member('G{g}', 'group', 'G{}');\n", rng.gen_range(0..g)),
                _ => String::new(),
            };
        }
    }
    let party = |rng: &mut SmallRng| -> String {
        let kind = KINDS[rng.gen_range(0..if n_groups > 0 { 3 } else { 2 })];
        let name = if kind == "group" { format!("G{}", rng.gen_range(0..n_groups)) } else { format!("R{}", rng.gen_range(0..n_roles)) };
        format!("'{kind}', '{name}'")
    };
    for _ in 0..rng.gen_range(0..8) {
        let (source, target) = (party(rng), party(rng));
        let module = ["Leads", "Accounts", "Projects"][rng.gen_range(0..3)];
        let access = if rng.gen_bool(0.5) { "read" } else { "read_write" };
        let related = match (module, rng.gen_range(0..4)) {
            ("Accounts", 0) => "ARRAY['Opportunities']",
            ("Accounts", 1) => "ARRAY['Projects']",
            ("Accounts", 2) => "ARRAY['Opportunities', 'Projects']",
            _ => "'{}'",
        };
        sql += &format!("SELECT crm.add_sharing_rule('{module}', {source}, {target}, '{access}', {related});\n");
    }
    for s in 0..rng.gen_range(0..3) {
        sql += &format!("SELECT crm.create_permission_set('S{s}', {}, {});\n", rng.gen_bool(0.2), rng.gen_bool(0.1));
        sql += &format!("SELECT crm.grant_permission_set_privileges('S{s}', '{}', ARRAY['{}']);\n", MODULES[rng.gen_range(0..MODULES.len())], Action::ALL[rng.gen_range(0..6)].as_str());
        for _ in 0..rng.gen_range(1..4) {
            sql += &if n_groups > 0 && rng.gen_bool(0.4) {
                format!("SELECT crm.assign_permission_set('S{s}', 'group', 'G{}');\n", rng.gen_range(0..n_groups))
            } else {
                format!("SELECT crm.assign_permission_set('S{s}', 'user', 'u{}');\n", rng.gen_range(0..n_users))
            };
        }
    }
    for m in GOVERNING {
        sql += &format!("SELECT crm.set_sharing_default('{m}', '{}');\n", LEVELS[rng.gen_range(0..4)]);
    }
    c.batch_execute(&sql).unwrap();
}

/// Restriction rules (DESIGN §9) on random modules over the `region` column every table of
/// the differential test has, for random roles, roles with subordinates, groups and
/// permission sets, allowing random non-empty sets of the regions records get
/// (`REGIONS`, or NULL).
pub fn add_restriction_rules(c: &mut Client, rng: &mut SmallRng) {
    let roles: Vec<String> = c.query("SELECT name FROM crm.roles", &[]).unwrap().iter().map(|r| r.get(0)).collect();
    let groups: Vec<String> = c.query("SELECT o.name FROM crm.groups g JOIN crm.owners o ON o.id = g.owner_id", &[]).unwrap().iter().map(|r| r.get(0)).collect();
    let sets: Vec<String> = c.query("SELECT name FROM crm.permission_sets", &[]).unwrap().iter().map(|r| r.get(0)).collect();
    let mut sql = String::new();
    for _ in 0..rng.gen_range(0..5) {
        let (kind, name) = match rng.gen_range(0..4) {
            2 if !groups.is_empty() => ("group", &groups[rng.gen_range(0..groups.len())]),
            3 if !sets.is_empty() => ("permission_set", &sets[rng.gen_range(0..sets.len())]),
            0 | 2 | 3 => ("role", &roles[rng.gen_range(0..roles.len())]),
            _ => ("role_and_subordinates", &roles[rng.gen_range(0..roles.len())]),
        };
        let mut allowed: Vec<String> = REGIONS.iter().filter(|_| rng.gen_bool(0.5)).map(|r| format!("'{r}'")).collect();
        if allowed.is_empty() {
            allowed.push(format!("'{}'", REGIONS[0]));
        }
        let module = MODULES[rng.gen_range(0..MODULES.len())];
        sql += &format!("SELECT crm.add_restriction_rule('{module}', '{kind}', '{name}', 'region', ARRAY[{}]);\n", allowed.join(","));
    }
    c.batch_execute(&sql).unwrap();
}

/// Random record shares (DESIGN §9) of random records of every table, by the superuser: every
/// kind of receiver, read or read_write, with no end, an end to come, or (written directly) an
/// end already past.
pub fn add_shares(c: &mut Client, rng: &mut SmallRng) {
    let users: Vec<String> = c.query("SELECT name FROM crm.user_directory WHERE is_active", &[]).unwrap().iter().map(|r| r.get(0)).collect();
    let roles: Vec<String> = c.query("SELECT name FROM crm.roles", &[]).unwrap().iter().map(|r| r.get(0)).collect();
    let groups: Vec<String> = c.query("SELECT o.name FROM crm.groups g JOIN crm.owners o ON o.id = g.owner_id", &[]).unwrap().iter().map(|r| r.get(0)).collect();
    let mut sql = String::new();
    for table in TABLES {
        // More accounts: their shares reach their opportunities and projects too.
        let n = if table == "accounts" { 40 } else { 12 };
        let ids: Vec<i64> = c.query(&format!("SELECT id FROM {table} ORDER BY random() LIMIT {n}"), &[]).unwrap().iter().map(|r| r.get(0)).collect();
        for id in ids {
            let (kind, name) = match rng.gen_range(0..4) {
                1 if !groups.is_empty() => ("group", &groups[rng.gen_range(0..groups.len())]),
                2 => ("role", &roles[rng.gen_range(0..roles.len())]),
                3 => ("role_and_subordinates", &roles[rng.gen_range(0..roles.len())]),
                _ => ("user", &users[rng.gen_range(0..users.len())]),
            };
            let access = if rng.gen_bool(0.5) { "read" } else { "read_write" };
            let until = match rng.gen_range(0..4) {
                0 => "now() + interval '1 hour'",
                _ => "NULL",
            };
            sql += &format!("SELECT crm.share_record('{table}', {id}::bigint, '{kind}', '{name}', '{access}', {until});\n");
        }
    }
    // Some shares whose end has passed (share_record refuses such an end).
    sql += "UPDATE crm.shares SET until = now() - interval '1 minute' WHERE id % 5 = 0;\n";
    c.batch_execute(&sql).unwrap();
}

/// The regions records of the differential test are in (or none: NULL).
pub const REGIONS: [&str; 3] = ["A", "B", "C"];

/// Records owned by random users (some disabled) and groups, plus one with no CRM owner;
/// opportunities under random accounts (or none).
pub fn insert_records(c: &mut Client) {
    for (table, n) in [("leads", 600), ("accounts", 300), ("contacts", 300), ("milestones", 200)] {
        c.batch_execute(&format!(
            "INSERT INTO {table} SELECT g, (SELECT id FROM crm.owners WHERE g > 0 ORDER BY random() LIMIT 1) FROM generate_series(1, {n}) g;
             INSERT INTO {table} VALUES ({ORPHAN_RECORD}, {NO_CRM_OWNER});"
        ))
        .unwrap();
    }
    for (table, n) in [("opportunities", 500), ("projects", 200)] {
        c.batch_execute(&format!(
            "INSERT INTO {table} (id, owner_id, account_id)
             SELECT g, (SELECT id FROM crm.owners WHERE g > 0 ORDER BY random() LIMIT 1),
                    CASE WHEN random() < 0.9 THEN (SELECT id FROM accounts WHERE g > 0 ORDER BY random() LIMIT 1) END
             FROM generate_series(1, {n}) g;
             INSERT INTO {table} (id, owner_id) VALUES ({ORPHAN_RECORD}, {NO_CRM_OWNER});"
        ))
        .unwrap();
    }
}

