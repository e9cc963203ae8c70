//! The access review (DESIGN §8): reach and reasons per module and action, one named case per
//! kind of grant, and agreement with `scope` and `decide` for every user.
//!
//! Root ─ Mgr ─ Rep (rep, rep2); Other (other: a permission set through group Team); IT (admin);
//! Audit (auditor: View All). Leads private with rule 7 sharing Rep's leads with Other (read);
//! Accounts public_read.

use std::collections::BTreeMap;

use crm_model::{Action, Catalog, Group, GroupMember, Model, Module, Party, Profile, Reach, Role, RuleAccess, SharingLevel, SharingRule, User};
use Action::*;

const MGR: i64 = 10;
const REP: i64 = 11;
const REP2: i64 = 12;
const OTHER: i64 = 13;
const ADMIN: i64 = 14;
const AUDITOR: i64 = 15;
const GONE: i64 = 16;
const TEAM: i64 = 20;

fn org_catalog() -> Catalog {
    let roles = [("Root", None), ("Mgr", Some(1)), ("Rep", Some(2)), ("Other", Some(1)), ("IT", Some(1)), ("Audit", Some(1))]
        .iter()
        .enumerate()
        .map(|(i, (n, p))| Role { id: i as i64 + 1, name: n.to_string(), parent: *p })
        .collect();
    let grants = |list: &[(&str, &[Action])]| list.iter().map(|(m, a)| (m.to_string(), a.to_vec())).collect::<BTreeMap<_, _>>();
    let users = [(MGR, "mgr", 2), (REP, "rep", 3), (REP2, "rep2", 3), (OTHER, "other", 4), (ADMIN, "admin", 5), (AUDITOR, "auditor", 6), (GONE, "gone", 3)]
        .iter()
        .map(|&(owner_id, name, role)| User { owner_id, name: name.into(), role, is_admin: owner_id == ADMIN, is_active: owner_id != GONE })
        .collect();
    Catalog {
        roles,
        profiles: vec![
            Profile { id: 1, name: "Sales".into(), grants: grants(&[("Leads", &[Read, Edit]), ("Accounts", &[Read])]), ..Default::default() },
            Profile { id: 2, name: "Auditor".into(), view_all: true, ..Default::default() },
        ],
        role_profiles: vec![(2, 1), (3, 1), (6, 2)],
        permission_sets: vec![Profile { id: 5, name: "Lead readers".into(), grants: grants(&[("Leads", &[Read])]), ..Default::default() }],
        permission_set_assignments: vec![(5, TEAM, None)],
        groups: vec![Group { owner_id: TEAM, name: "Team".into() }],
        group_members: vec![GroupMember { group: TEAM, member: Party::User(OTHER) }],
        users,
        modules: vec![
            Module::new("Leads", SharingLevel::Private),
            Module::new("Accounts", SharingLevel::PublicRead),
        ],
        sharing_rules: vec![SharingRule { id: 7, module: "Leads".into(), source: Party::Role(3), target: Party::Role(4), access: RuleAccess::Read, related_modules: vec![] }],
        ..Default::default()
    }
}

fn org() -> Model {
    Model::compile(org_catalog()).unwrap()
}

fn line(m: &Model, user: i64, module: &str, action: Action) -> (Reach, usize, Vec<String>) {
    let r = m.access_review(user).into_iter().find(|r| r.module == module && r.action == action).unwrap();
    (r.reach, r.owners, r.reasons)
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn a_manager_reaches_own_and_subordinates_records_through_a_profile() {
    let m = org();
    assert_eq!(line(&m, MGR, "Leads", Read), (Reach::Owners, 4, strings(&["own records", "profile Sales", "role hierarchy"])));
    assert_eq!(line(&m, MGR, "Leads", Delete), (Reach::None, 0, strings(&["revoked: no profile or permission set grants delete on Leads"])));
    // An org-wide default opens every record; nothing else is named for records it covers first.
    assert_eq!(line(&m, REP, "Accounts", Read).0, Reach::All);
    assert_eq!(line(&m, REP, "Accounts", Read).2, strings(&["org-wide default public_read of Accounts", "own records", "profile Sales"]));
}

#[test]
fn a_permission_set_through_a_group_and_a_sharing_rule_are_named() {
    let m = org();
    // Team's records (as a member), other's own, and Rep's (rep, rep2, gone) by rule 7.
    assert_eq!(
        line(&m, OTHER, "Leads", Read),
        (Reach::Owners, 5, strings(&["group Team", "own records", "permission set Lead readers", "rule 7"]))
    );
    assert_eq!(line(&m, OTHER, "Leads", Edit).0, Reach::None);
}

#[test]
fn administrators_view_all_and_disabled_users() {
    let m = org();
    let everyone = 8;
    assert_eq!(line(&m, ADMIN, "Leads", Delete), (Reach::All, everyone, strings(&["administrator"])));
    assert_eq!(line(&m, AUDITOR, "Leads", Read), (Reach::All, everyone, strings(&["View All (profile Auditor)"])));
    assert_eq!(line(&m, AUDITOR, "Leads", Edit).0, Reach::None);
    assert_eq!(line(&m, GONE, "Leads", Read), (Reach::None, 0, strings(&["CRM user gone is disabled"])));
}

#[test]
fn every_line_agrees_with_scope_and_decide() {
    let m = org();
    for u in m.users() {
        let review = m.access_review(u.owner_id);
        assert_eq!(review.len(), 2 * Action::ALL.len());
        for r in review {
            let reachable = [MGR, REP, REP2, OTHER, ADMIN, AUDITOR, GONE, TEAM]
                .iter()
                .filter(|&&o| m.decide(Some(u.owner_id), &r.module, r.action, o).allowed)
                .count();
            let expected = match r.reach {
                Reach::All => 8,
                Reach::Owners => r.owners,
                Reach::None => 0,
            };
            assert_eq!(reachable, expected, "{} {} {:?}", u.name, r.module, r.action);
            assert_eq!(r.reach == Reach::None, r.owners == 0);
        }
    }
}

#[test]
fn reach_changes_list_what_a_change_gave_and_took() {
    let before = org();
    // mgr moves to role Other, which carries no profile: rule 7 shares Rep's leads with Other,
    // but without a Leads privilege mgr reaches nothing there any more.
    let mut catalog = org_catalog();
    catalog.users = before.users().map(|u| u.to_user()).map(|mut u| {
        if u.owner_id == MGR {
            u.role = 4;
        }
        u
    }).collect();
    let after = Model::compile(catalog).unwrap();
    let changes = after.reach_changes(&before, MGR);
    assert!(changes.iter().all(|c| c.module == "Leads" || c.module == "Accounts"));
    let read = changes.iter().find(|c| c.module == "Leads" && c.action == Read).unwrap();
    assert_eq!((read.gained.clone(), read.lost.clone()), (vec![], vec![MGR, REP, REP2, GONE]));
    assert!(after.reach_changes(&after, MGR).is_empty());
}

#[test]
fn restriction_rules_are_named_where_they_narrow_a_reach() {
    let mut catalog = org_catalog();
    catalog.users = org().users().map(|u| u.to_user()).collect();
    catalog.restriction_rules = vec![
        crm_model::RestrictionRule { id: 3, module: "Leads".into(), applies_to: crm_model::Restricted::RoleAndSubordinates(2), column: "region".into(), allowed: vec!["West".into()] },
        crm_model::RestrictionRule { id: 4, module: "Leads".into(), applies_to: crm_model::Restricted::Role(5), column: "region".into(), allowed: vec!["East".into()] },
        crm_model::RestrictionRule { id: 5, module: "Leads".into(), applies_to: crm_model::Restricted::PermissionSet(5), column: "tier".into(), allowed: vec!["1".into(), "2".into()] },
    ];
    let m = Model::compile(catalog).unwrap();
    assert_eq!(line(&m, MGR, "Leads", Read).2, strings(&["own records", "profile Sales", "restricted by rule 3 (region in West)", "role hierarchy"]));
    assert_eq!(line(&m, REP, "Leads", Edit).2, strings(&["own records", "profile Sales", "restricted by rule 3 (region in West)"]));
    // Not where nothing is reached, not for an administrator; the holders of a set through a group.
    assert_eq!(line(&m, MGR, "Leads", Delete).2, strings(&["revoked: no profile or permission set grants delete on Leads"]));
    assert_eq!(line(&m, ADMIN, "Leads", Read).2, strings(&["administrator"]));
    assert!(line(&m, OTHER, "Leads", Read).2.contains(&"restricted by rule 5 (tier in 1, 2)".to_string()));
    assert!(!line(&m, OTHER, "Accounts", Read).2.iter().any(|r| r.starts_with("restricted")));
}
