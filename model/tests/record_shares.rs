//! Record shares (DESIGN §9, issue 26): one named case per rule of a share's reach, what it
//! grants, and when it stops.
//!
//! Root ─ Mgr (mgr) ─ Rep (rep, rep2); Other (other, in group Team); Support (dave: no Leads
//! privilege). Leads private; Sales grants read, edit and delete on Leads.

use std::collections::BTreeMap;

use crm_model::{Action, Catalog, Group, GroupMember, Model, Module, Party, Profile, RecordShare, Role, RuleAccess, SharingLevel, User};

const MGR: i64 = 10;
const REP: i64 = 11;
const REP2: i64 = 12;
const OTHER: i64 = 13;
const DAVE: i64 = 14;
const TEAM: i64 = 20;
const NOW: i64 = 852_076_799_000_000; // 2026-12-31 23:59:59+00

fn org_catalog() -> Catalog {
    let roles = [("Root", None), ("Mgr", Some(1)), ("Rep", Some(2)), ("Other", Some(1)), ("Support", Some(1))]
        .iter()
        .enumerate()
        .map(|(i, (n, p))| Role { id: i as i64 + 1, name: n.to_string(), parent: *p })
        .collect();
    let users = [(MGR, "mgr", 2), (REP, "rep", 3), (REP2, "rep2", 3), (OTHER, "other", 4), (DAVE, "dave", 5)]
        .iter()
        .map(|&(owner_id, name, role)| User { owner_id, name: name.into(), role, is_admin: false, is_active: true })
        .collect();
    let sales = Profile {
        id: 1,
        name: "Sales".into(),
        grants: BTreeMap::from([("Leads".to_string(), vec![Action::Read, Action::Edit, Action::Delete])]),
        ..Default::default()
    };
    Catalog {
        roles,
        users,
        profiles: vec![sales],
        role_profiles: vec![(2, 1), (3, 1), (4, 1)],
        groups: vec![Group { owner_id: TEAM, name: "Team".into() }],
        group_members: vec![GroupMember { group: TEAM, member: Party::User(OTHER) }],
        modules: vec![Module::new("Leads", SharingLevel::Private)],
        ..Default::default()
    }
}

fn org() -> Model {
    Model::compile(org_catalog()).unwrap()
}

fn share(receiver: Party, access: RuleAccess, until: Option<i64>) -> RecordShare {
    RecordShare { id: 1, receiver, access, until, shared_by: REP }
}

fn decide(m: &Model, user: i64, action: Action, shares: &[RecordShare], at: i64) -> String {
    let d = m.decide_with_shares(Some(user), "Leads", action, REP, shares, at);
    format!("{}: {}", if d.allowed { "allowed" } else { "denied" }, d.reason)
}

#[test]
fn a_share_reaches_its_receiver_and_those_above_but_never_grants_delete() {
    let m = org();
    let to_other = [share(Party::User(OTHER), RuleAccess::Read, None)];
    assert_eq!(decide(&m, OTHER, Action::Read, &to_other, NOW), "allowed: shared by rep with user other (read)");
    assert!(decide(&m, OTHER, Action::Edit, &to_other, NOW).starts_with("denied"));
    let rw = [share(Party::Group(TEAM), RuleAccess::ReadWrite, None)];
    assert_eq!(decide(&m, OTHER, Action::Edit, &rw, NOW), "allowed: shared by rep with group Team (read_write)");
    assert!(decide(&m, OTHER, Action::Delete, &rw, NOW).starts_with("denied"));
    // rep2 (a peer of the owner) receives a share to their role; the owner's own rights stay theirs.
    let to_role = [share(Party::Role(3), RuleAccess::Read, None)];
    assert!(decide(&m, REP2, Action::Read, &to_role, NOW).starts_with("allowed: shared by rep with role Rep"));
    // Shared below: a share to rep2 reaches mgr, above them (who reads rep's lead anyway).
    assert!(m.receives_share(MGR, Party::User(REP2)));
    assert!(!m.receives_share(OTHER, Party::User(REP2)));
    assert!(m.receives_share(MGR, Party::RoleAndSubordinates(3)) && m.receives_share(REP2, Party::RoleAndSubordinates(2)));
}

#[test]
fn a_share_grants_nothing_beyond_the_module_privileges() {
    let m = org();
    let to_dave = [share(Party::User(DAVE), RuleAccess::ReadWrite, None)];
    assert_eq!(decide(&m, DAVE, Action::Read, &to_dave, NOW), "denied: revoked: no profile or permission set grants read on Leads");
}

#[test]
fn a_share_counts_for_a_moment_strictly_before_its_until() {
    let m = org();
    let until = [share(Party::User(OTHER), RuleAccess::Read, Some(NOW))];
    assert_eq!(decide(&m, OTHER, Action::Read, &until, NOW - 1), "allowed: shared by rep with user other (read) until 2026-12-31 23:59:59+00");
    assert!(decide(&m, OTHER, Action::Read, &until, NOW).starts_with("denied: the record is owned by rep"));
    assert!(decide(&m, OTHER, Action::Read, &until, NOW + 1).starts_with("denied"));
}

#[test]
fn a_parent_records_share_reaches_its_children_in_related_modules_only() {
    let mut catalog = org_catalog();
    catalog.users = org().users().map(|u| u.to_user()).collect();
    catalog.modules.push(Module::new("Accounts", SharingLevel::Private));
    catalog.modules.push(Module::new("Projects", SharingLevel::Private));
    catalog.modules.push(Module::new("Notes", SharingLevel::Private));
    catalog.module_relations = vec![("Accounts".into(), "Projects".into())];
    for p in &mut catalog.profiles {
        for m in ["Accounts", "Projects", "Notes"] {
            p.grants.insert(m.into(), vec![Action::Read, Action::Edit]);
        }
    }
    let m = Model::compile(catalog).unwrap();
    let parent = [share(Party::User(OTHER), RuleAccess::Read, None)];
    let d = m.decide_child_with_shares(Some(OTHER), ("Projects", "Accounts"), Action::Read, (REP, Some(REP)), (&[], &parent), NOW);
    assert_eq!(d.reason.to_string(), "shared by rep with user other (read) through its parent Accounts record");
    assert!(d.allowed);
    assert!(!m.decide_child_with_shares(Some(OTHER), ("Projects", "Accounts"), Action::Edit, (REP, Some(REP)), (&[], &parent), NOW).allowed);
    // Notes are not related to Accounts: the parent's share carries nothing there.
    assert!(!m.decide_child_with_shares(Some(OTHER), ("Notes", "Accounts"), Action::Read, (REP, Some(REP)), (&[], &parent), NOW).allowed);
    // The child's own share counts as for any record.
    assert!(m.decide_child_with_shares(Some(OTHER), ("Notes", "Accounts"), Action::Read, (REP, Some(REP)), (&parent, &[]), NOW).allowed);
}
