//! A plain snapshot of the catalog tables, exactly as loaded; no derived data.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::fields::FieldAccess;
use crate::messages::MessagePermission;
use crate::{Action, OwnerId, ProfileId, RoleId, SharingLevel};

#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
pub struct Catalog {
    pub roles: Vec<Role>,
    pub profiles: Vec<Profile>,
    /// (role, profile): a role may carry several profiles; their grants combine by union.
    pub role_profiles: Vec<(RoleId, ProfileId)>,
    pub users: Vec<User>,
    pub modules: Vec<Module>,
    /// (parent, child) module relations: a rule on a parent record can carry access to the
    /// child records under it (DESIGN §3.1, §9).
    #[serde(default)]
    pub module_relations: Vec<(String, String)>,
    /// Protected tables by relation oid: (module, owner column).
    pub protected_tables: BTreeMap<u32, (String, String)>,
    /// Login role oid -> CRM user owner id (roles are bound by oid, so that a role re-created
    /// or renamed to a mapped name is not taken for the mapped one).
    pub db_role_map: BTreeMap<u32, OwnerId>,
    /// Oids of the database roles whose members may assert the acting user through `crm.user_name`.
    pub trusted_roles: Vec<u32>,
    #[serde(default)]
    pub groups: Vec<Group>,
    #[serde(default)]
    pub group_members: Vec<GroupMember>,
    #[serde(default)]
    pub sharing_rules: Vec<SharingRule>,
    #[serde(default)]
    pub permission_sets: Vec<Profile>,
    /// (permission set, user or group owner id, until): an assignment counts for a moment
    /// strictly before its `until` (PostgreSQL timestamptz microseconds), or always (DESIGN §9).
    #[serde(default)]
    pub permission_set_assignments: Vec<(i64, OwnerId, Option<i64>)>,
    /// (module, field) hidden from every non-admin user (global field access).
    #[serde(default)]
    pub hidden_fields: Vec<(String, String)>,
    /// (calendar owner, user it is shared with).
    #[serde(default)]
    pub calendar_shares: Vec<(OwnerId, OwnerId)>,
    /// Restriction rules (DESIGN §9).
    #[serde(default)]
    pub restriction_rules: Vec<RestrictionRule>,
}

/// A restriction rule (DESIGN §9): for the users it applies to, a record of `module` is
/// reachable only if its `column`, as text, is one of `allowed`, on top of everything else.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct RestrictionRule {
    pub id: i64,
    pub module: String,
    pub applies_to: Restricted,
    pub column: String,
    pub allowed: Vec<String>,
}

/// Whom a restriction rule applies to: a role's users, the users of a role and every role
/// below it, a group's members, or the holders of a permission set. Written as
/// `{"kind": "permission_set", "id": 3}`, as `Party` is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(from = "RestrictedRecord", into = "RestrictedRecord")]
pub enum Restricted {
    Role(RoleId),
    RoleAndSubordinates(RoleId),
    Group(OwnerId),
    PermissionSet(ProfileId),
}

#[derive(Clone, Copy, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
enum RestrictedKind {
    Role,
    RoleAndSubordinates,
    Group,
    PermissionSet,
}

#[derive(Clone, Copy, Deserialize, Serialize)]
struct RestrictedRecord {
    kind: RestrictedKind,
    id: i64,
}

impl From<RestrictedRecord> for Restricted {
    fn from(r: RestrictedRecord) -> Restricted {
        match r.kind {
            RestrictedKind::Role => Restricted::Role(r.id),
            RestrictedKind::RoleAndSubordinates => Restricted::RoleAndSubordinates(r.id),
            RestrictedKind::Group => Restricted::Group(r.id),
            RestrictedKind::PermissionSet => Restricted::PermissionSet(r.id),
        }
    }
}

impl From<Restricted> for RestrictedRecord {
    fn from(r: Restricted) -> RestrictedRecord {
        let (kind, id) = match r {
            Restricted::Role(id) => (RestrictedKind::Role, id),
            Restricted::RoleAndSubordinates(id) => (RestrictedKind::RoleAndSubordinates, id),
            Restricted::Group(id) => (RestrictedKind::Group, id),
            Restricted::PermissionSet(id) => (RestrictedKind::PermissionSet, id),
        };
        RestrictedRecord { kind, id }
    }
}

/// A group owns records like a user; its members share that ownership.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct Group {
    pub owner_id: OwnerId,
    pub name: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct GroupMember {
    pub group: OwnerId,
    pub member: Party,
}

/// Who a group membership or a sharing rule names. Users only as group members: sharing
/// rules never name users (seed 004).
///
/// Written as `{"kind": "role", "id": 3}` (`PartyRecord`): a struct rather than serde's
/// adjacently tagged enum, which a format without field names (the model's bytes) cannot read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(from = "PartyRecord", into = "PartyRecord")]
pub enum Party {
    User(OwnerId),
    Role(RoleId),
    RoleAndSubordinates(RoleId),
    Group(OwnerId),
}

#[derive(Clone, Copy, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
enum PartyKind {
    User,
    Role,
    RoleAndSubordinates,
    Group,
}

#[derive(Clone, Copy, Deserialize, Serialize)]
struct PartyRecord {
    kind: PartyKind,
    id: i64,
}

impl From<PartyRecord> for Party {
    fn from(r: PartyRecord) -> Party {
        match r.kind {
            PartyKind::User => Party::User(r.id),
            PartyKind::Role => Party::Role(r.id),
            PartyKind::RoleAndSubordinates => Party::RoleAndSubordinates(r.id),
            PartyKind::Group => Party::Group(r.id),
        }
    }
}

impl From<Party> for PartyRecord {
    fn from(p: Party) -> PartyRecord {
        let (kind, id) = match p {
            Party::User(id) => (PartyKind::User, id),
            Party::Role(id) => (PartyKind::Role, id),
            Party::RoleAndSubordinates(id) => (PartyKind::RoleAndSubordinates, id),
            Party::Group(id) => (PartyKind::Group, id),
        };
        PartyRecord { kind, id }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleAccess {
    Read,
    ReadWrite,
}

impl RuleAccess {
    pub fn as_str(self) -> &'static str {
        match self {
            RuleAccess::Read => "read",
            RuleAccess::ReadWrite => "read_write",
        }
    }

    /// Rules only add read (and, for read_write, edit); they never grant delete.
    pub fn covers(self, action: Action) -> bool {
        matches!((self, action), (_, Action::Read) | (RuleAccess::ReadWrite, Action::Edit))
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct SharingRule {
    pub id: i64,
    pub module: String,
    pub source: Party,
    pub target: Party,
    pub access: RuleAccess,
    /// Related modules this rule also shares: child records whose parent the source owns.
    #[serde(default)]
    pub related_modules: Vec<String>,
}

impl Catalog {
    /// Put every list of rows in key order: a model's bytes then depend on the catalog alone,
    /// not on the order a load read its tables in (a table's physical order, a join's plan,
    /// which ANALYZE may change), so a model patched with a change (`patch`) has exactly the
    /// bytes a compile of the same catalog has (red team of issue 28, item 2). Lists a row
    /// holds (a restriction rule's allowed values, a rule's related modules) are its content
    /// and stay as they are.
    pub(crate) fn normalise(&mut self) {
        self.roles.sort_by_key(|r| r.id);
        for p in self.profiles.iter_mut().chain(self.permission_sets.iter_mut()) {
            for actions in p.grants.values_mut() {
                actions.sort_unstable();
            }
            p.message_permissions.sort_unstable();
        }
        self.profiles.sort_by_key(|p| p.id);
        self.permission_sets.sort_by_key(|p| p.id);
        self.role_profiles.sort_unstable();
        self.users.sort_by_key(|u| u.owner_id);
        self.modules.sort_by(|a, b| a.name.cmp(&b.name));
        self.module_relations.sort_unstable();
        self.trusted_roles.sort_unstable();
        self.groups.sort_by_key(|g| g.owner_id);
        self.group_members.sort_by_key(|m| (m.group, m.member));
        self.sharing_rules.sort_by_key(|r| r.id);
        self.permission_set_assignments.sort_unstable();
        self.hidden_fields.sort_unstable();
        self.calendar_shares.sort_unstable();
        self.restriction_rules.sort_by_key(|r| r.id);
    }

    /// The modules whose records hang under `parent`'s (DESIGN §3.1, §9: `crm.module_relations`):
    /// a rule on the parent module may carry access to these.
    pub fn related_modules<'a>(&'a self, parent: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.module_relations.iter().filter(move |(p, _)| p == parent).map(|(_, c)| c.as_str())
    }

    /// The module whose default and sharing rules govern `module`'s records: the end of its
    /// chain of control (Contacts are controlled by Accounts, seed 004), else itself.
    /// `Model::compile` refuses a catalog whose chains do not end.
    pub fn sharing_module<'a>(&'a self, module: &'a str) -> &'a str {
        self.governing_module(module).unwrap_or(module)
    }

    /// The end of `module`'s chain of control; None if it leads to a missing module or back
    /// to one already on it.
    pub fn governing_module<'a>(&'a self, module: &'a str) -> Option<&'a str> {
        let mut at = module;
        for _ in 0..=self.modules.len() {
            match self.module(at) {
                None if at == module => return Some(module),
                None => return None,
                Some(m) => match m.controlled_by.as_deref() {
                    None => return Some(at),
                    Some(parent) => at = parent,
                },
            }
        }
        None
    }

    /// The module named `name`.
    pub fn module(&self, name: &str) -> Option<&Module> {
        self.modules.iter().find(|m| m.name == name)
    }

    /// The module whose actions govern crm_access's own records of `kind` (conversations and
    /// their messages, events), if the catalog has one.
    pub fn module_for(&self, kind: Holds) -> Option<&str> {
        self.modules.iter().find(|m| m.holds == Some(kind)).map(|m| m.name.as_str())
    }

    /// Whether conversations link to records of `module` (DESIGN §3.5).
    pub fn links_conversations(&self, module: &str) -> bool {
        self.module(module).is_some_and(|m| m.links_conversations)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct Role {
    pub id: RoleId,
    pub name: String,
    pub parent: Option<RoleId>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct Profile {
    pub id: ProfileId,
    pub name: String,
    pub view_all: bool,
    pub edit_all: bool,
    /// module -> granted actions
    pub grants: BTreeMap<String, Vec<Action>>,
    /// Message module permissions (DESIGN §3.5): which conversations Messages actions reach.
    #[serde(default)]
    pub message_permissions: Vec<MessagePermission>,
    /// Field access (DESIGN §3.2): module -> field -> access; unmentioned fields are read_write.
    #[serde(default)]
    pub fields: BTreeMap<String, BTreeMap<String, FieldAccess>>,
}

/// The loader sends users as arrays in this field order (`catalog::load` in the extension).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct User {
    pub owner_id: OwnerId,
    /// Held inline up to 24 bytes: a heap allocation per user was a fifth of a decoded
    /// model's heap at 20,000 users, and most of its allocations.
    pub name: compact_str::CompactString,
    pub role: RoleId,
    pub is_admin: bool,
    pub is_active: bool,
}

/// A module (DESIGN §9: modules are data, the standard ones shipped as rows).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct Module {
    pub name: String,
    pub sharing_default: SharingLevel,
    /// "Controlled by parent": the module whose default and rules govern this one's records.
    #[serde(default)]
    pub controlled_by: Option<String>,
    /// Which of crm_access's own record tables this module's actions govern.
    #[serde(default)]
    pub holds: Option<Holds>,
    /// Conversations link to this module's records (their owner decides who sees them).
    #[serde(default)]
    pub links_conversations: bool,
}

impl Module {
    /// A module with no parent, role or link: a custom module as `crm.create_module` makes it.
    pub fn new(name: impl Into<String>, sharing_default: SharingLevel) -> Module {
        Module { name: name.into(), sharing_default, controlled_by: None, holds: None, links_conversations: false }
    }
}

/// crm_access's own record tables a module can govern.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Holds {
    /// crm.conversations and crm.messages (the message module, DESIGN §3.5).
    Conversations,
    /// crm.events (the calendar, DESIGN §3.4).
    Events,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The extension's load reads users and group memberships as JSON arrays in the fields'
    /// order (src/catalog/load.rs: objects cost twice the query time), and other tables as
    /// objects: both read alike.
    #[test]
    fn memberships_and_users_read_from_arrays_as_from_objects() {
        let arrays: Vec<GroupMember> = serde_json::from_str(r#"[[7, ["role_and_subordinates", 3]], [7, ["group", 9]], [9, ["user", 12]]]"#).unwrap();
        let objects: Vec<GroupMember> = serde_json::from_str(
            r#"[{"group": 7, "member": {"kind": "role_and_subordinates", "id": 3}}, {"group": 7, "member": {"kind": "group", "id": 9}},
                {"group": 9, "member": {"kind": "user", "id": 12}}]"#,
        )
        .unwrap();
        assert_eq!(arrays, objects);
        assert_eq!(arrays[0], GroupMember { group: 7, member: Party::RoleAndSubordinates(3) });
        assert_eq!(arrays[2].member, Party::User(12));
        assert!(serde_json::from_str::<Vec<GroupMember>>(r#"[[7, ["team", 3]]]"#).is_err(), "an unknown kind");
        assert!(serde_json::from_str::<Vec<GroupMember>>(r#"[[7, ["role"]]]"#).is_err(), "a member without its id");
        let user: User = serde_json::from_str(r#"[5, "ann", 2, false, true]"#).unwrap();
        assert_eq!((user.owner_id, &*user.name, user.role, user.is_admin, user.is_active), (5, "ann", 2, false, true));
    }
}
