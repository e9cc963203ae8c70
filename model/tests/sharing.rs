//! Groups, sharing rules ("shared below" included), permission sets and Contacts following
//! Accounts (DESIGN §3 steps 3, 7a, 7d, 7e; §3.1), one named case each.
//!
//! CEO ─ VP ─┬─ MgrWest ─ RepWest (w1, w2)
//!           └─ MgrEast ─ RepEast (e1)
//! Groups: Team (w1, role RepEast), Club (group Team: nested), Empty. All roles: Sales profile.

use std::collections::BTreeMap;

use crm_model::{Action, Catalog, GroupMember, Model, Module, Party, Profile, Role, RuleAccess, Scope, SharingLevel, SharingRule, User};
use Action::*;

const TEAM: i64 = 50;
const CLUB: i64 = 51;
const EMPTY: i64 = 52;

fn org_catalog(rules: &[(i64, &str, Party, Party, RuleAccess)], sets: &[(&str, bool, &[(&str, Action)], i64)]) -> Catalog {
    let roles = [("CEO", None), ("VP", Some(1)), ("MgrWest", Some(2)), ("RepWest", Some(3)), ("MgrEast", Some(2)), ("RepEast", Some(5))];
    let roles = roles.iter().enumerate().map(|(i, (n, p))| Role { id: i as i64 + 1, name: n.to_string(), parent: *p }).collect();
    let all = |actions: &[Action]| ["Leads", "Accounts", "Contacts"].iter().map(|m| (m.to_string(), actions.to_vec())).collect::<BTreeMap<_, _>>();
    let profiles = vec![Profile { id: 1, name: "Sales".into(), grants: all(&[Read, Create, Edit, Delete]), ..Default::default() }];
    let role_profiles = (1..=6).map(|r| (r, 1)).collect();
    let users = [(10, "ceo", 1), (11, "vp", 2), (12, "mgr_w", 3), (13, "w1", 4), (14, "w2", 4), (15, "mgr_e", 5), (16, "e1", 6)];
    let users = users.iter().map(|&(id, n, r)| User { owner_id: id, name: n.into(), role: r, is_admin: false, is_active: true }).collect();
    // Contacts are controlled by Accounts, as crm_access ships them.
    let modules = vec![
        Module::new("Leads", SharingLevel::Private),
        Module::new("Accounts", SharingLevel::Private),
        Module { controlled_by: Some("Accounts".into()), ..Module::new("Contacts", SharingLevel::Private) },
    ];
    let groups = [(TEAM, "Team"), (CLUB, "Club"), (EMPTY, "Empty")].iter().map(|&(id, n)| crm_model::Group { owner_id: id, name: n.into() }).collect();
    let group_members = vec![
        GroupMember { group: TEAM, member: Party::User(13) },
        GroupMember { group: TEAM, member: Party::Role(6) },
        GroupMember { group: CLUB, member: Party::Group(TEAM) },
    ];
    let sharing_rules = rules
        .iter()
        .map(|&(id, module, source, target, access)| SharingRule { id, module: module.into(), source, target, access, related_modules: vec![] })
        .collect();
    let permission_sets = sets
        .iter()
        .enumerate()
        .map(|(i, (name, view_all, grants, _))| Profile {
            id: 100 + i as i64,
            name: name.to_string(),
            view_all: *view_all,
            grants: grants.iter().map(|(m, a)| (m.to_string(), vec![*a])).collect(),
            ..Default::default()
        })
        .collect();
    let permission_set_assignments = sets.iter().enumerate().map(|(i, s)| (100 + i as i64, s.3, None)).collect();
    Catalog {
        roles, profiles, role_profiles, users, modules, groups, group_members, sharing_rules, permission_sets, permission_set_assignments,
        ..Default::default()
    }
}

fn org(rules: &[(i64, &str, Party, Party, RuleAccess)], sets: &[(&str, bool, &[(&str, Action)], i64)]) -> Model {
    Model::compile(org_catalog(rules, sets)).unwrap()
}

fn check(m: &Model, user: i64, module: &str, action: Action, owner: i64, allowed: bool, reason: &str) {
    let d = m.decide(Some(user), module, action, owner);
    assert_eq!((d.allowed, d.reason.to_string().as_str()), (allowed, reason), "user {user} {action} {module} owner {owner}");
    assert_eq!(m.scope(user, module, action).contains(owner), allowed, "scope of user {user} {action} {module} owner {owner}");
}

#[test]
fn group_members_share_ownership_and_managers_do_not() {
    let m = org(&[], &[]);
    check(&m, 13, "Leads", Delete, TEAM, true, "the record is owned by group Team, of which you are a member");
    check(&m, 16, "Leads", Edit, TEAM, true, "the record is owned by group Team, of which you are a member");
    // Nested: Club's members are Team's members.
    check(&m, 16, "Leads", Read, CLUB, true, "the record is owned by group Club, of which you are a member");
    // Groups never get hierarchy: w1's manager is not a member.
    check(&m, 12, "Leads", Read, TEAM, false, "the record is owned by Team, whose Leads records are not shared with you");
    check(&m, 14, "Leads", Read, TEAM, false, "the record is owned by Team, whose Leads records are not shared with you");
    check(&m, 13, "Leads", Read, EMPTY, false, "the record is owned by Empty, whose Leads records are not shared with you");
}

#[test]
fn rules_share_source_records_with_the_target_and_above() {
    let m = org(&[(7, "Leads", Party::Role(4), Party::Role(6), RuleAccess::ReadWrite)], &[]);
    let why = "shared by rule 7 (read_write) from role RepWest to role RepEast";
    check(&m, 16, "Leads", Read, 13, true, why);
    check(&m, 16, "Leads", Edit, 14, true, why);
    check(&m, 16, "Leads", Delete, 13, false, "the record is owned by w1, whose Leads records are not shared with you");
    // Shared below: mgr_e is above e1, so gets the same share.
    check(&m, 15, "Leads", Edit, 13, true, why);
    // Not the source's manager's records, not other modules, never the other way round.
    check(&m, 16, "Leads", Read, 12, false, "the record is owned by mgr_w, whose Leads records are not shared with you");
    check(&m, 16, "Accounts", Read, 13, false, "the record is owned by w1, whose Accounts records are not shared with you");
    check(&m, 13, "Leads", Read, 16, false, "the record is owned by e1, whose Leads records are not shared with you");
}

#[test]
fn read_rules_give_read_only_and_group_sources_share_their_own_records() {
    let m = org(&[(8, "Leads", Party::Group(TEAM), Party::RoleAndSubordinates(3), RuleAccess::Read)], &[]);
    let why = "shared by rule 8 (read) from group Team to role MgrWest and subordinates";
    check(&m, 14, "Leads", Read, 16, true, why);
    check(&m, 14, "Leads", Read, TEAM, true, why);
    check(&m, 14, "Leads", Edit, 16, false, "the record is owned by e1, whose Leads records are not shared with you");
}

#[test]
fn contacts_follow_accounts_rules() {
    let m = org(&[(9, "Accounts", Party::Role(4), Party::Role(6), RuleAccess::Read)], &[]);
    check(&m, 16, "Contacts", Read, 13, true, "shared by rule 9 (read) from role RepWest to role RepEast");
    check(&m, 16, "Leads", Read, 13, false, "the record is owned by w1, whose Leads records are not shared with you");
}

#[test]
fn permission_sets_add_to_profiles_for_users_and_group_members() {
    let m = org(&[], &[("Audit", true, &[], 14), ("Importer", false, &[("Leads", Import)], TEAM)]);
    check(&m, 14, "Leads", Read, 10, true, "permission set Audit grants View All");
    check(&m, 14, "Leads", Edit, 10, false, "the record is owned by ceo, whose Leads records are not shared with you");
    // Through nested membership of Team: e1 (role member) and w1 (user member).
    check(&m, 16, "Leads", Import, 16, true, "a profile or permission set grants import on Leads");
    check(&m, 13, "Leads", Import, 13, true, "a profile or permission set grants import on Leads");
    check(&m, 14, "Leads", Import, 14, false, "revoked: no profile or permission set grants import on Leads");
}

#[test]
fn groups_can_be_given_records() {
    let m = org(&[], &[]);
    assert!(m.decide_assignment(Some(13), "Leads", Create, TEAM).allowed);
    assert!(!m.decide_assignment(Some(14), "Leads", Create, TEAM).allowed);
    assert!(m.assignable(13, "Leads", Create).contains(&TEAM));
}

#[test]
fn an_owner_both_a_user_and_a_group_is_assignable_once() {
    // A user row written by hand for a group's owner (red team of issue 28, item 2): the
    // list a write policy's filter is built from holds each owner once.
    let mut catalog = org_catalog(&[], &[]);
    catalog.users = org(&[], &[]).users().map(|u| u.to_user()).collect();
    catalog.users.push(User { owner_id: TEAM, name: "team as a user".into(), role: 4, is_admin: false, is_active: true });
    let m = Model::compile(catalog).unwrap();
    let assignable = m.assignable(13, "Leads", Create);
    assert_eq!(assignable.iter().filter(|&&o| o == TEAM).count(), 1, "{assignable:?}");
    let mut distinct = assignable.clone();
    distinct.dedup();
    assert_eq!(assignable, distinct);
}

#[test]
fn rules_on_a_parent_module_carry_access_to_related_records() {
    let mut m = org(&[(11, "Accounts", Party::Role(4), Party::Role(6), RuleAccess::ReadWrite)], &[]);
    // Without related modules the rule shares accounts only.
    let d = m.decide_child(Some(16), "Opportunities", "Accounts", Read, 14, Some(13));
    assert!(!d.allowed, "{}", d.reason);
    let mut catalog = org_catalog(&[(11, "Accounts", Party::Role(4), Party::Role(6), RuleAccess::ReadWrite)], &[]);
    catalog.users = m.users().map(|u| u.to_user()).collect();
    catalog.sharing_rules[0].related_modules = vec!["Opportunities".into()];
    catalog.modules.push(Module::new("Opportunities", SharingLevel::Private));
    catalog.module_relations.push(("Accounts".into(), "Opportunities".into()));
    for p in &mut catalog.profiles {
        p.grants.insert("Opportunities".into(), vec![Read, Edit, Delete]);
    }
    m = Model::compile(catalog).unwrap();
    // An opportunity owned by w2 under an account owned by w1: shared with e1 and above.
    let d = m.decide_child(Some(16), "Opportunities", "Accounts", Edit, 14, Some(13));
    assert_eq!(
        (d.allowed, d.reason.to_string()),
        (true, "shared by rule 11 (read_write) from role RepWest (through the parent Accounts record) to role RepEast".to_string())
    );
    assert!(m.decide_child(Some(15), "Opportunities", "Accounts", Read, 14, Some(13)).allowed);
    assert!(!m.decide_child(Some(16), "Opportunities", "Accounts", Delete, 14, Some(13)).allowed);
    // Owning the parent account alone does not open a child someone else owns.
    assert!(!m.decide_child(Some(16), "Opportunities", "Accounts", Read, 14, Some(16)).allowed);
    assert!(!m.decide_child(Some(16), "Opportunities", "Accounts", Read, 14, None).allowed);
    assert_eq!(m.scope_via_parent(16, "Opportunities", "Accounts", Read), Scope::Owners(vec![13, 14]));
    assert_eq!(m.scope_via_parent(16, "Opportunities", "Accounts", Delete), Scope::Owners(vec![]));
    assert_eq!(m.scope_via_parent(16, "Quotes", "Accounts", Read), Scope::none());
}

/// A chain of control ends at the module that governs itself (DESIGN §9): a module controlled
/// by a controlled module follows the end of the chain; a chain that loops or leads nowhere
/// (only a direct write to the catalog can make one) is refused when compiling, so nothing
/// is decided from it.
#[test]
fn chains_of_control_end_or_are_refused() {
    let base = || {
        let m = org(&[], &[]);
        let mut catalog = org_catalog(&[], &[]);
        catalog.users = m.users().map(|u| u.to_user()).collect();
        catalog
    };
    let mut catalog = base();
    catalog.modules.push(Module::new("Projects", SharingLevel::PublicRead));
    catalog.modules.push(Module { controlled_by: Some("Projects".into()), ..Module::new("Milestones", SharingLevel::Private) });
    catalog.modules.push(Module { controlled_by: Some("Milestones".into()), ..Module::new("Tasks", SharingLevel::Private) });
    assert_eq!(catalog.sharing_module("Tasks"), "Projects");
    assert_eq!(catalog.sharing_module("Contacts"), "Accounts");
    assert_eq!(catalog.sharing_module("Nowhere"), "Nowhere");
    for p in &mut catalog.profiles {
        p.grants.insert("Tasks".into(), vec![Read]);
    }
    let m = Model::compile(catalog.clone()).unwrap();
    assert!(m.decide(Some(16), "Tasks", Read, 13).allowed, "Projects' public default governs Tasks");
    // A loop, and a chain to a module that does not exist.
    let mut looped = catalog.clone();
    looped.modules.iter_mut().find(|m| m.name == "Projects").unwrap().controlled_by = Some("Tasks".into());
    assert!(matches!(Model::compile(looped).unwrap_err(), crm_model::ModelError::BrokenControl { .. }));
    let mut dangling = catalog;
    dangling.modules.iter_mut().find(|m| m.name == "Projects").unwrap().controlled_by = Some("Gone".into());
    assert!(matches!(Model::compile(dangling).unwrap_err(), crm_model::ModelError::BrokenControl { .. }));
}

/// A rule carries access to a related module only while the relation exists: a rule row that
/// still names a module no longer related (a relation removed or a module dropped under a
/// concurrent rule, or a name reused) carries nothing (red team of issue 25).
#[test]
fn a_rule_carries_only_what_is_still_related() {
    let m = org(&[(11, "Accounts", Party::Role(4), Party::Role(6), RuleAccess::ReadWrite)], &[]);
    let mut catalog = org_catalog(&[(11, "Accounts", Party::Role(4), Party::Role(6), RuleAccess::ReadWrite)], &[]);
    catalog.users = m.users().map(|u| u.to_user()).collect();
    catalog.sharing_rules[0].related_modules = vec!["Tasks".into()];
    catalog.modules.push(Module::new("Tasks", SharingLevel::Private));
    for p in &mut catalog.profiles {
        p.grants.insert("Tasks".into(), vec![Read]);
    }
    let unrelated = Model::compile(catalog.clone()).unwrap();
    assert!(!unrelated.decide_child(Some(16), "Tasks", "Accounts", Read, 14, Some(13)).allowed);
    assert_eq!(unrelated.scope_via_parent(16, "Tasks", "Accounts", Read), crm_model::Scope::none());
    catalog.module_relations.push(("Accounts".into(), "Tasks".into()));
    let related = Model::compile(catalog).unwrap();
    assert!(related.decide_child(Some(16), "Tasks", "Accounts", Read, 14, Some(13)).allowed);
}
