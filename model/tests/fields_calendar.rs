//! Field access (DESIGN §3.2) and calendar sharing (§3.4), one named case per rule.
//!
//! Root ─ Boss ─ Rep (rep, rep2); Audit (auditor: View All); Edit (editor: Edit All); IT (admin).
//! Rep carries two profiles: Narrow (hides phone, budget read-only, notes hidden) and Wide
//! (phone read-only): the most open wins. Global field access hides `ssn` from non-admins.

use std::collections::BTreeMap;

use crm_model::{Action, Catalog, Event, FieldAccess, Holds, Model, Module, Profile, Reason, Role, SharingLevel, User};
use Action::*;
use FieldAccess::*;

const BOSS: i64 = 10;
const REP: i64 = 11;
const REP2: i64 = 12;
const AUDITOR: i64 = 13;
const EDITOR: i64 = 14;
const ADMIN: i64 = 15;
const NOACT: i64 = 16;
const GONE: i64 = 17;

fn org(shares: Vec<(i64, i64)>) -> Model {
    let roles = [("Root", None), ("Boss", Some(1)), ("Rep", Some(2)), ("Audit", Some(1)), ("Edit", Some(1)), ("IT", Some(1)), ("Other", Some(1))]
        .iter()
        .enumerate()
        .map(|(i, (n, p))| Role { id: i as i64 + 1, name: n.to_string(), parent: *p })
        .collect();
    let grants = |modules: &[&str]| {
        modules.iter().map(|m| (m.to_string(), vec![Read, Create, Edit, Delete])).collect::<BTreeMap<_, _>>()
    };
    let fields = |list: &[(&str, FieldAccess)]| {
        BTreeMap::from([("Leads".to_string(), list.iter().map(|(f, a)| (f.to_string(), *a)).collect::<BTreeMap<_, _>>())])
    };
    let profiles = vec![
        Profile { id: 1, name: "Narrow".into(), grants: grants(&["Leads", "Activities"]), fields: fields(&[("phone", Hidden), ("budget", ReadOnly), ("notes", Hidden)]), ..Default::default() },
        Profile { id: 2, name: "Wide".into(), grants: grants(&["Leads"]), fields: fields(&[("phone", ReadOnly), ("notes", Hidden)]), ..Default::default() },
        Profile { id: 3, name: "Auditor".into(), view_all: true, fields: fields(&[("notes", Hidden)]), ..Default::default() },
        Profile { id: 4, name: "Editor".into(), edit_all: true, fields: fields(&[("notes", Hidden)]), ..Default::default() },
        Profile { id: 5, name: "LeadsOnly".into(), grants: grants(&["Leads"]), ..Default::default() },
    ];
    let users = [(BOSS, "boss", 2), (REP, "rep", 3), (REP2, "rep2", 3), (AUDITOR, "auditor", 4), (EDITOR, "editor", 5), (ADMIN, "admin", 6), (NOACT, "noact", 7), (GONE, "gone", 3)]
        .iter()
        .map(|&(owner_id, name, role)| User { owner_id, name: name.into(), role, is_admin: owner_id == ADMIN, is_active: owner_id != GONE })
        .collect();
    Model::compile(Catalog {
        roles,
        profiles,
        role_profiles: vec![(2, 1), (3, 1), (3, 2), (4, 3), (5, 4), (6, 1), (7, 5)],
        users,
        modules: vec![Module::new("Leads", SharingLevel::Private), Module { holds: Some(Holds::Events), ..Module::new("Activities", SharingLevel::Private) }],
        hidden_fields: vec![("Leads".into(), "ssn".into())],
        calendar_shares: shares,
        ..Default::default()
    })
    .unwrap()
}

#[test]
fn profiles_combine_by_union_and_unmentioned_fields_are_read_write() {
    let m = org(vec![]);
    assert_eq!(m.field_access(REP, "Leads", "phone"), ReadOnly, "hidden in Narrow, read-only in Wide");
    assert_eq!(m.field_access(REP, "Leads", "budget"), ReadWrite, "read-only in Narrow, unmentioned in Wide");
    assert_eq!(m.field_access(REP, "Leads", "notes"), Hidden, "hidden in both");
    assert_eq!(m.field_access(REP, "Leads", "company"), ReadWrite);
    assert_eq!(m.field_access(BOSS, "Leads", "phone"), Hidden, "Narrow alone");
    assert_eq!(m.field_access(BOSS, "Leads", "budget"), ReadOnly);
}

#[test]
fn global_field_access_overrides_profiles_for_everyone_but_admins() {
    let m = org(vec![]);
    for u in [REP, BOSS, AUDITOR, EDITOR, NOACT] {
        assert_eq!(m.field_access(u, "Leads", "ssn"), Hidden, "user {u}");
    }
    assert_eq!(m.field_access(ADMIN, "Leads", "ssn"), ReadWrite);
    assert_eq!(m.field_access(ADMIN, "Leads", "notes"), ReadWrite);
}

#[test]
fn view_all_sees_and_edit_all_changes_every_field_not_globally_hidden() {
    let m = org(vec![]);
    assert_eq!(m.field_access(AUDITOR, "Leads", "notes"), ReadOnly);
    assert_eq!(m.field_access(AUDITOR, "Leads", "company"), ReadWrite, "unmentioned: read_write (rows stay read-only)");
    assert_eq!(m.field_access(EDITOR, "Leads", "notes"), ReadWrite);
}

#[test]
fn nobody_who_cannot_act_sees_a_field() {
    let m = org(vec![]);
    assert_eq!(m.field_access(GONE, "Leads", "company"), Hidden);
    assert_eq!(m.field_access(999, "Leads", "company"), Hidden);
    assert_eq!("secret".parse::<FieldAccess>().unwrap_err().to_string(), "unknown field access \"secret\"; expected one of: hidden, read_only, read_write");
}

fn event(owner: i64, invitees: &[i64], public: bool) -> Event {
    Event { owner, invitees: invitees.to_vec(), public }
}

fn details(m: &Model, user: i64, e: &Event) -> bool {
    let d = m.decide_event(Some(user), Read, e);
    assert_eq!(m.event_scope(user, Read).filter().admits(e), d.allowed, "scope and decision disagree for {user}: {}", d.reason);
    d.allowed
}

#[test]
fn private_events_show_details_to_owner_invitees_admins_and_view_all_only() {
    let m = org(vec![]);
    let e = event(REP, &[REP2], false);
    assert!(details(&m, REP, &e) && details(&m, REP2, &e) && details(&m, ADMIN, &e) && details(&m, AUDITOR, &e));
    assert!(!details(&m, BOSS, &e), "a superior sees a private event as busy");
    assert!(m.knows_events(BOSS), "but knows the slot");
    assert_eq!(m.decide_event(Some(REP2), Read, &e).reason, Reason::Invited);
}

#[test]
fn public_events_show_details_to_superiors_and_shared_with_users() {
    let m = org(vec![(REP, EDITOR), (REP, BOSS)]);
    let e = event(REP, &[], true);
    assert!(details(&m, BOSS, &e));
    assert_eq!(m.decide_event(Some(BOSS), Read, &e).reason, Reason::PublicEventBelow { owner: "rep".into() });
    assert!(!details(&m, REP2, &e), "a peer is not above");
    let shared = org(vec![(REP, REP2)]);
    assert!(details(&shared, REP2, &e));
    assert_eq!(shared.decide_event(Some(REP2), Read, &e).reason, Reason::SharedCalendar { owner: "rep".into() });
    assert!(!details(&shared, REP2, &event(REP, &[], false)), "sharing shows public events only");
}

#[test]
fn edit_and_delete_follow_the_owner_and_superiors_for_public_events() {
    let m = org(vec![(REP, REP2)]);
    let public = event(REP, &[REP2], true);
    let private = event(REP, &[REP2], false);
    for a in [Edit, Delete] {
        assert!(m.decide_event(Some(REP), a, &private).allowed);
        assert!(m.decide_event(Some(BOSS), a, &public).allowed && !m.decide_event(Some(BOSS), a, &private).allowed);
        assert!(!m.decide_event(Some(REP2), a, &public).allowed, "invitees and shared-with users only read");
        assert!(m.decide_event(Some(ADMIN), a, &private).allowed);
    }
    assert!(m.decide_event(Some(EDITOR), Edit, &private).allowed && !m.decide_event(Some(EDITOR), Delete, &private).allowed);
    assert!(!m.decide_event(Some(AUDITOR), Edit, &public).allowed);
    assert!(m.decide_event(Some(REP), Create, &event(REP, &[], false)).allowed);
    assert!(!m.decide_event(Some(BOSS), Create, &event(REP, &[], true)).allowed, "events belong to their creator");
}

#[test]
fn no_activities_privilege_means_an_empty_calendar() {
    let m = org(vec![]);
    assert!(!m.knows_events(NOACT) && !m.knows_events(GONE));
    assert!(!details(&m, NOACT, &event(NOACT, &[], true)));
    assert_eq!(m.decide_event(Some(NOACT), Read, &event(NOACT, &[], true)).reason, Reason::NotGranted { module: "Activities".into(), action: Read });
}

#[test]
fn unwritable_fields_are_those_below_read_write_or_every_field_for_whoever_cannot_act() {
    use crm_model::Unwritable::{Every, These};
    let m = org(vec![]);
    let these = |list: &[(&str, FieldAccess)]| These(list.iter().map(|(f, a)| (f.to_string(), *a)).collect());
    // Narrow and Wide combine: budget is read_write through Wide; phone read-only at best.
    assert_eq!(m.unwritable_fields(REP, "Leads"), these(&[("notes", Hidden), ("phone", ReadOnly), ("ssn", Hidden)]));
    // View All lifts hidden fields to read-only, never above; Edit All writes all but ssn.
    assert_eq!(m.unwritable_fields(AUDITOR, "Leads"), these(&[("notes", ReadOnly), ("ssn", Hidden)]));
    assert_eq!(m.unwritable_fields(EDITOR, "Leads"), these(&[("ssn", Hidden)]));
    assert_eq!(m.unwritable_fields(ADMIN, "Leads"), these(&[]));
    // A disabled user, or no user at all: every field.
    assert_eq!(m.unwritable_fields(GONE, "Leads"), Every);
    assert_eq!(m.unwritable_fields(999, "Leads"), Every);
    assert!(Every.includes("anything") && !these(&[("ssn", Hidden)]).includes("phone"));
}
