//! A plain snapshot of the catalog tables, exactly as loaded; no derived data.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::{Action, OwnerId, ProfileId, RoleId, SharingLevel};

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct Catalog {
    pub roles: Vec<Role>,
    pub profiles: Vec<Profile>,
    /// (role, profile): a role may carry several profiles; their grants combine by union.
    pub role_profiles: Vec<(RoleId, ProfileId)>,
    pub users: Vec<User>,
    pub modules: Vec<Module>,
    /// Protected tables by relation oid: (module, owner column).
    pub protected_tables: BTreeMap<u32, (String, String)>,
    /// Login role name -> CRM user owner id.
    pub db_role_map: BTreeMap<String, OwnerId>,
    /// Database roles whose members may assert the acting user through `crm.user_name`.
    pub trusted_roles: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Role {
    pub id: RoleId,
    pub name: String,
    pub parent: Option<RoleId>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct Profile {
    pub id: ProfileId,
    pub name: String,
    pub view_all: bool,
    pub edit_all: bool,
    /// module -> granted actions
    pub grants: BTreeMap<String, Vec<Action>>,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct User {
    pub owner_id: OwnerId,
    pub name: String,
    pub role: RoleId,
    pub is_admin: bool,
    pub is_active: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Module {
    pub name: String,
    pub sharing_default: SharingLevel,
}
