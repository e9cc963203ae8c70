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
    /// (permission set, user or group owner id)
    #[serde(default)]
    pub permission_set_assignments: Vec<(i64, OwnerId)>,
    /// (module, field) hidden from every non-admin user (global field access).
    #[serde(default)]
    pub hidden_fields: Vec<(String, String)>,
    /// (calendar owner, user it is shared with).
    #[serde(default)]
    pub calendar_shares: Vec<(OwnerId, OwnerId)>,
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

/// Which modules' records hang under which (DESIGN §3.1): a rule on the parent module may
/// carry access to these.
pub fn related_modules(parent: &str) -> &'static [&'static str] {
    match parent {
        "Accounts" => &["Opportunities", "Tickets", "Quotes", "SalesOrders", "Invoices"],
        "Opportunities" => &["Quotes", "SalesOrders"],
        "Quotes" => &["SalesOrders"],
        "SalesOrders" => &["Invoices"],
        _ => &[],
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
    pub name: String,
    pub role: RoleId,
    pub is_admin: bool,
    pub is_active: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct Module {
    pub name: String,
    pub sharing_default: SharingLevel,
}
