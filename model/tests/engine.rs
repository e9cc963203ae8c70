//! The decision procedure of DESIGN §3, one named case a line, on a small organisation:
//!
//! CEO ─ VP ─┬─ MgrWest ─ RepWest (rep_w1, rep_w2)
//!           └─ MgrEast ─ RepEast (rep_e)
//! plus H2/H22 siblings under CEO to pin down whole-element role comparison.

use std::collections::BTreeMap;

use crm_model::{Action, Catalog, Model, Module, Profile, Reason, Role, Scope, SharingLevel, User};
use Action::*;

const LEADS: &str = "Leads";
const ACCOUNTS: &str = "Accounts";

fn org(leads_default: SharingLevel) -> Model {
    let roles = [("CEO", None), ("VP", Some(1)), ("MgrWest", Some(2)), ("RepWest", Some(3)), ("MgrEast", Some(2)), ("RepEast", Some(5)), ("H2", Some(1)), ("H22", Some(1))];
    let roles = roles.iter().enumerate().map(|(i, (n, p))| Role { id: i as i64 + 1, name: n.to_string(), parent: *p }).collect();
    let grants = |actions: &[Action]| BTreeMap::from([(LEADS.to_string(), actions.to_vec()), (ACCOUNTS.to_string(), actions.to_vec())]);
    let profiles = vec![
        Profile { id: 1, name: "Sales".into(), grants: grants(&[Read, Create, Edit, Delete, Export]), ..Default::default() },
        Profile { id: 2, name: "ReadOnly".into(), grants: grants(&[Read]), ..Default::default() },
        Profile { id: 3, name: "Auditor".into(), view_all: true, ..Default::default() },
        Profile { id: 4, name: "Editor".into(), edit_all: true, ..Default::default() },
        Profile { id: 5, name: "LeadDelete".into(), grants: BTreeMap::from([(LEADS.to_string(), vec![Delete])]), ..Default::default() },
    ];
    // RepEast carries ReadOnly and LeadDelete: privileges combine by union.
    let role_profiles = vec![(1, 1), (2, 1), (3, 1), (4, 1), (5, 1), (6, 2), (6, 5), (7, 3), (8, 4)];
    let users = [
        (10, "ceo", 1, false, true),
        (11, "vp", 2, false, true),
        (12, "mgr_w", 3, false, true),
        (13, "rep_w1", 4, false, true),
        (14, "rep_w2", 4, false, true),
        (15, "mgr_e", 5, false, true),
        (16, "rep_e", 6, false, true),
        (17, "auditor", 7, false, true),
        (18, "editor", 8, false, true),
        (19, "admin", 6, true, true),
        (20, "gone", 4, false, false),
        (21, "gone_admin", 6, true, false),
    ];
    let users = users.iter().map(|&(id, n, r, a, act)| User { owner_id: id, name: n.into(), role: r, is_admin: a, is_active: act }).collect();
    let modules = vec![
        Module::new(LEADS, leads_default),
        Module::new(ACCOUNTS, SharingLevel::Private),
    ];
    Model::compile(Catalog { roles, profiles, role_profiles, users, modules, ..Default::default() }).unwrap()
}

fn id(m: &Model, name: &str) -> i64 {
    m.user_by_name(name).unwrap().owner_id
}

macro_rules! decisions {
    ($($case:ident: $default:ident, $user:expr, $action:ident, $owner:expr => $allowed:expr, $reason:expr;)*) => {$(
        #[test]
        fn $case() {
            let m = org(SharingLevel::$default);
            let user = $user.map(|n: &str| id(&m, n));
            let d = m.decide(user, LEADS, $action, id(&m, $owner));
            assert_eq!((d.allowed, d.reason.to_string()), ($allowed, $reason.to_string()));
            // The scope computed top-down agrees with the record decision.
            if let Some(u) = user {
                assert_eq!(m.scope(u, LEADS, $action).contains(id(&m, $owner)), $allowed);
            }
        }
    )*};
}

decisions! {
    no_identity_is_denied: Private, None, Read, "rep_w1" => false, "no acting CRM user";
    disabled_user_is_denied: Private, Some("gone"), Read, "gone" => false, "CRM user gone is disabled";
    disabled_admin_is_denied: Private, Some("gone_admin"), Read, "rep_w1" => false, "CRM user gone_admin is disabled";
    admin_deletes_anything: Private, Some("admin"), Delete, "ceo" => true, "admin is an administrator";
    owner_reads_own: Private, Some("rep_w1"), Read, "rep_w1" => true, "you own the record";
    owner_deletes_own: Private, Some("rep_w1"), Delete, "rep_w1" => true, "you own the record";
    same_role_peer_is_hidden: Private, Some("rep_w1"), Read, "rep_w2" => false, "the record is owned by rep_w2, whose Leads records are not shared with you";
    manager_reads_subordinate: Private, Some("mgr_w"), Read, "rep_w1" => true, "owner is rep_w1, in role RepWest below your role MgrWest";
    grand_manager_deletes_subordinate: Private, Some("ceo"), Delete, "rep_e" => true, "owner is rep_e, in role RepEast below your role CEO";
    subordinate_cannot_read_manager: Private, Some("rep_w1"), Read, "mgr_w" => false, "the record is owned by mgr_w, whose Leads records are not shared with you";
    other_branch_is_hidden: Private, Some("mgr_e"), Read, "rep_w1" => false, "the record is owned by rep_w1, whose Leads records are not shared with you";
    view_all_does_not_grant_edit: Private, Some("auditor"), Edit, "editor" => false, "revoked: no profile or permission set grants edit on Leads";
    view_all_reads_everything: Private, Some("auditor"), Read, "ceo" => true, "profile Auditor grants View All";
    view_all_never_deletes: Private, Some("auditor"), Delete, "auditor" => false, "revoked: no profile or permission set grants delete on Leads";
    edit_all_edits_everything: Private, Some("editor"), Edit, "ceo" => true, "profile Editor grants Edit All";
    edit_all_never_deletes: Private, Some("editor"), Delete, "editor" => false, "revoked: no profile or permission set grants delete on Leads";
    revoked_beats_public_default: PublicReadWriteDelete, Some("rep_e"), Edit, "rep_e" => false, "revoked: no profile or permission set grants edit on Leads";
    revoked_beats_ownership: Private, Some("rep_e"), Edit, "rep_e" => false, "revoked: no profile or permission set grants edit on Leads";
    union_of_profiles_grants_delete: Private, Some("rep_e"), Delete, "rep_e" => true, "you own the record";
    public_read_opens_read: PublicRead, Some("rep_w1"), Read, "mgr_e" => true, "the org-wide default of Leads is public_read";
    public_read_keeps_edit_closed: PublicRead, Some("rep_w1"), Edit, "mgr_e" => false, "the record is owned by mgr_e, whose Leads records are not shared with you";
    public_read_write_opens_edit: PublicReadWrite, Some("rep_w1"), Edit, "mgr_e" => true, "the org-wide default of Leads is public_read_write";
    public_read_write_keeps_delete_closed: PublicReadWrite, Some("rep_w1"), Delete, "mgr_e" => false, "the record is owned by mgr_e, whose Leads records are not shared with you";
    public_all_opens_delete: PublicReadWriteDelete, Some("rep_w1"), Delete, "mgr_e" => true, "the org-wide default of Leads is public_read_write_delete";
    create_is_module_level: Private, Some("rep_w1"), Create, "ceo" => true, "a profile or permission set grants create on Leads";
    import_not_granted: Private, Some("rep_w1"), Import, "rep_w1" => false, "revoked: no profile or permission set grants import on Leads";
    export_granted: Private, Some("rep_w1"), Export, "rep_w1" => true, "a profile or permission set grants export on Leads";
}

#[test]
fn h2_is_not_above_h22() {
    let m = org(SharingLevel::Private);
    let (h2, h22) = (m.roles().strictly_below(7), m.roles().strictly_below(8));
    assert!(h2.is_empty() && h22.is_empty());
    assert!(!m.roles().is_strictly_above(7, 8));
}

#[test]
fn scopes_by_viewer_class() {
    let m = org(SharingLevel::Private);
    let ids = |names: &[&str]| {
        let mut v: Vec<i64> = names.iter().map(|n| id(&m, n)).collect();
        v.sort();
        Scope::Owners(v)
    };
    let cases = [
        ("rep_w1", Read, ids(&["rep_w1"])),
        ("mgr_w", Read, ids(&["mgr_w", "rep_w1", "rep_w2", "gone"])),
        ("vp", Delete, ids(&["vp", "mgr_w", "rep_w1", "rep_w2", "mgr_e", "rep_e", "gone", "admin", "gone_admin"])),
        ("auditor", Read, Scope::All),
        ("auditor", Edit, Scope::none()),
        ("admin", Delete, Scope::All),
        ("gone", Read, Scope::none()),
        ("rep_e", Edit, Scope::none()),
    ];
    for (user, action, expected) in cases {
        assert_eq!(m.scope(id(&m, user), LEADS, action), expected, "{user} {action}");
    }
    assert_eq!(m.scope(id(&m, "rep_w1"), "Nope", Read), Scope::none());
    assert_eq!(org(SharingLevel::PublicRead).scope(id(&m, "rep_w1"), LEADS, Read), Scope::All);
}

#[test]
fn assignment_follows_what_the_creator_may_then_edit() {
    let m = org(SharingLevel::Private);
    let names = |user: &str, action| -> Vec<String> {
        m.assignable(id(&m, user), LEADS, action).iter().map(|o| m.user(*o).unwrap().name.to_string()).collect()
    };
    assert_eq!(names("rep_w1", Create), ["rep_w1"]);
    assert_eq!(names("mgr_w", Create), ["mgr_w", "rep_w1", "rep_w2"]); // never the disabled "gone"
    assert_eq!(names("auditor", Create), Vec::<String>::new());
    assert_eq!(names("editor", Create).len(), 10);
    let d = m.decide_assignment(Some(id(&m, "rep_w1")), LEADS, Create, id(&m, "rep_w2"));
    assert_eq!(d.reason.to_string(), "the record is owned by rep_w2, whose Leads records are not shared with you");
    let d = m.decide_assignment(Some(id(&m, "mgr_w")), LEADS, Create, id(&m, "gone"));
    assert_eq!((d.allowed, d.reason), (false, Reason::InactiveOwner { owner: "gone".into() }));
    // A disabled user's existing records stay editable by those above them.
    assert!(m.decide_assignment(Some(id(&m, "mgr_w")), LEADS, Edit, id(&m, "gone")).allowed);
    assert_eq!(names("mgr_w", Edit), ["mgr_w", "rep_w1", "rep_w2", "gone"]);
    let d = m.decide_assignment(Some(id(&m, "admin")), LEADS, Create, 9999);
    assert_eq!((d.allowed, d.reason), (false, Reason::UnknownOwner { owner: 9999 }));
    let public = org(SharingLevel::PublicReadWrite);
    assert_eq!(public.assignable(id(&m, "rep_w1"), LEADS, Create).len(), 10);
}
