//! The message module of DESIGN §3.5 (seed 000), one named case per behaviour: who sees a
//! conversation, what each tab shows, and why.
//!
//! Root ─ Sales: rep (mine), rep2 (mine), newbie (new only), lurker (read, no permission),
//! archivist (mine + archive), boss (all + archive, no mine), auditor (View All),
//! admin, gone (disabled, mine). Group "team" has rep2 as a member.

use std::collections::BTreeMap;

use crm_model::{
    Action, Catalog, Conversation, ConversationScope, Group, GroupMember, Holds, Inbox, MessagePermission, Model, Module, Party, Profile, Reason,
    Role, User,
};
use Action::*;
use MessagePermission::*;

const REP: i64 = 10;
const REP2: i64 = 11;
const NEWBIE: i64 = 12;
const LURKER: i64 = 13;
const ARCHIVIST: i64 = 14;
const BOSS: i64 = 15;
const AUDITOR: i64 = 16;
const ADMIN: i64 = 17;
const GONE: i64 = 18;
const NOREAD: i64 = 19;
const TEAM: i64 = 50;

fn org() -> Model {
    let roles = vec![
        Role { id: 1, name: "Root".into(), parent: None },
        Role { id: 2, name: "Sales".into(), parent: Some(1) },
    ];
    let messages = |actions: &[Action]| BTreeMap::from([("Messages".to_string(), actions.to_vec())]);
    let rw = [Read, Create, Edit];
    let profile = |id: i64, name: &str, grants: &[Action], perms: &[MessagePermission]| Profile {
        id,
        name: name.into(),
        grants: messages(grants),
        message_permissions: perms.to_vec(),
        ..Default::default()
    };
    let profiles = vec![
        profile(1, "Mine", &rw, &[Mine]),
        profile(2, "NewOnly", &rw, &[New]),
        profile(3, "NoPermission", &rw, &[]),
        profile(4, "Archivist", &rw, &[Mine, Archive]),
        profile(5, "Supervisor", &rw, &[All, Archive]),
        Profile { id: 6, name: "Auditor".into(), view_all: true, ..Default::default() },
        profile(7, "NoRead", &[Create, Edit], &[All]),
    ];
    let users: Vec<User> = [
        (REP, "rep", 2, false, true),
        (REP2, "rep2", 2, false, true),
        (NEWBIE, "newbie", 3, false, true),
        (LURKER, "lurker", 4, false, true),
        (ARCHIVIST, "archivist", 5, false, true),
        (BOSS, "boss", 6, false, true),
        (AUDITOR, "auditor", 7, false, true),
        (ADMIN, "admin", 4, true, true),
        (GONE, "gone", 2, false, false),
        (NOREAD, "noread", 8, false, true),
    ]
    .iter()
    .map(|&(owner_id, name, role, is_admin, is_active)| User { owner_id, name: name.into(), role, is_admin, is_active })
    .collect();
    // One role per profile so that each user holds exactly one profile.
    let mut roles = roles;
    for (id, name) in [(3, "R3"), (4, "R4"), (5, "R5"), (6, "R6"), (7, "R7"), (8, "R8")] {
        roles.push(Role { id, name: name.into(), parent: Some(1) });
    }
    Model::compile(Catalog {
        roles,
        profiles,
        role_profiles: vec![(2, 1), (3, 2), (4, 3), (5, 4), (6, 5), (7, 6), (8, 7)],
        users,
        modules: vec![Module { holds: Some(Holds::Conversations), ..Module::new("Messages", crm_model::SharingLevel::Private) }],
        groups: vec![Group { owner_id: TEAM, name: "team".into() }],
        group_members: vec![GroupMember { group: TEAM, member: Party::User(REP2) }],
        ..Default::default()
    })
    .unwrap()
}

fn conv(assigned_to: Option<i64>, linked_owner: Option<i64>, is_new: bool, archived_by: &[i64]) -> Conversation {
    Conversation { assigned_to, linked_owner, is_new, archived_by: archived_by.to_vec() }
}

fn sees(m: &Model, user: i64, c: &Conversation) -> bool {
    let d = m.decide_conversation(Some(user), Read, c);
    assert_eq!(m.conversation_scope(user, Read).filter().admits(c), d.allowed, "scope and decision disagree for {user}: {}", d.reason);
    d.allowed
}

#[test]
fn lead_owner_and_assignee_both_see_the_conversation() {
    let m = org();
    let c = conv(Some(REP2), Some(REP), false, &[]);
    assert!(sees(&m, REP, &c));
    assert!(sees(&m, REP2, &c));
    assert_eq!(m.decide_conversation(Some(REP), Read, &c).reason, Reason::LinkedRecordOwner { owner: None });
    assert_eq!(m.decide_conversation(Some(REP2), Read, &c).reason, Reason::AssignedToYou);
    // Tabs: the lead owner finds it under All, the assignee under Assigned to Me.
    assert!(m.in_tab(REP, Inbox::All, &c) && !m.in_tab(REP, Inbox::AssignedToMe, &c) && !m.in_tab(REP, Inbox::MyUnassigned, &c));
    assert!(m.in_tab(REP2, Inbox::AssignedToMe, &c));
}

#[test]
fn a_new_record_owner_sees_it_and_the_assignee_keeps_it() {
    let m = org();
    let before = conv(Some(REP2), Some(REP), false, &[]);
    let after = conv(Some(REP2), Some(ARCHIVIST), false, &[]);
    assert!(sees(&m, REP, &before) && !sees(&m, REP, &after));
    assert!(sees(&m, ARCHIVIST, &after));
    assert!(sees(&m, REP2, &before) && sees(&m, REP2, &after));
}

#[test]
fn records_owned_through_a_group_count_as_mine() {
    let m = org();
    let c = conv(None, Some(TEAM), false, &[]);
    assert!(sees(&m, REP2, &c) && !sees(&m, REP, &c));
    assert_eq!(m.decide_conversation(Some(REP2), Read, &c).reason, Reason::LinkedRecordOwner { owner: Some("team".into()) });
    assert!(m.in_tab(REP2, Inbox::MyUnassigned, &c));
}

#[test]
fn others_conversations_are_not_mine() {
    let m = org();
    let c = conv(Some(REP2), Some(REP2), false, &[]);
    assert!(!sees(&m, REP, &c));
    assert_eq!(m.decide_conversation(Some(REP), Read, &c).reason, Reason::NoConversationAccess);
}

#[test]
fn new_without_mine_sees_only_new_conversations() {
    let m = org();
    assert!(sees(&m, NEWBIE, &conv(None, None, true, &[])));
    assert!(!sees(&m, NEWBIE, &conv(Some(NEWBIE), None, false, &[])), "assigned but not new");
    assert!(!sees(&m, NEWBIE, &conv(None, Some(NEWBIE), false, &[])), "linked to own record but not new");
    assert!(!sees(&m, REP, &conv(None, None, true, &[])), "mine without new");
}

#[test]
fn no_message_permission_means_no_conversation() {
    let m = org();
    for c in [conv(Some(LURKER), Some(LURKER), true, &[]), conv(None, None, false, &[])] {
        assert!(!sees(&m, LURKER, &c));
    }
    assert_eq!(m.conversation_scope(LURKER, Read), ConversationScope::Nothing);
}

#[test]
fn all_sees_every_conversation_but_revoked_read_beats_it() {
    let m = org();
    let c = conv(Some(REP), Some(REP), false, &[]);
    assert!(sees(&m, BOSS, &c));
    assert!(sees(&m, BOSS, &conv(None, None, false, &[])));
    assert!(!sees(&m, NOREAD, &c));
    assert_eq!(m.decide_conversation(Some(NOREAD), Read, &c).reason, Reason::NotGranted { module: "Messages".into(), action: Read });
}

#[test]
fn archiving_is_per_user_and_needs_the_archive_permission() {
    let m = org();
    // rep archived it (before losing archive, say): hidden from rep, not from rep2.
    let c = conv(Some(REP2), Some(REP), false, &[REP]);
    assert!(!sees(&m, REP, &c));
    assert_eq!(m.decide_conversation(Some(REP), Read, &c).reason, Reason::ArchivedWithoutPermission);
    assert!(sees(&m, REP2, &c));
    // The archivist sees what they archived, under Archive only.
    let a = conv(Some(ARCHIVIST), None, false, &[ARCHIVIST]);
    assert!(sees(&m, ARCHIVIST, &a));
    assert!(m.in_tab(ARCHIVIST, Inbox::Archive, &a) && !m.in_tab(ARCHIVIST, Inbox::All, &a) && !m.in_tab(ARCHIVIST, Inbox::AssignedToMe, &a));
    assert!(m.may_archive(ARCHIVIST) && m.may_archive(BOSS) && m.may_archive(ADMIN));
    assert!(!m.may_archive(REP) && !m.may_archive(AUDITOR) && !m.may_archive(GONE));
}

#[test]
fn view_all_and_admins_see_everything_disabled_users_nothing() {
    let m = org();
    let c = conv(Some(REP), None, false, &[REP]);
    assert!(sees(&m, AUDITOR, &c) && sees(&m, ADMIN, &c));
    assert!(!m.decide_conversation(Some(AUDITOR), Edit, &c).allowed, "View All is read only");
    assert!(!sees(&m, GONE, &conv(Some(GONE), Some(GONE), true, &[])));
    assert!(!m.decide_conversation(None, Read, &c).allowed);
}

#[test]
fn unassigned_tab_shows_unassigned_conversations_on_my_records() {
    let m = org();
    let mine = conv(None, Some(REP), false, &[]);
    let taken = conv(Some(REP2), Some(REP), false, &[]);
    assert!(m.in_tab(REP, Inbox::MyUnassigned, &mine) && !m.in_tab(REP, Inbox::MyUnassigned, &taken));
    assert!(!m.in_tab(REP, Inbox::New, &mine) && m.in_tab(REP, Inbox::New, &conv(None, Some(REP), true, &[])));
}

#[test]
fn permission_words_parse_and_list_the_allowed_ones() {
    assert_eq!("archive".parse::<MessagePermission>().unwrap(), Archive);
    assert_eq!(
        "everything".parse::<MessagePermission>().unwrap_err().to_string(),
        "unknown message permission \"everything\"; expected one of: mine, all, new, archive"
    );
}
