//! The compiled model and the owner scopes that policies filter on (DESIGN §3, §3.3).
//!
//! A scope answers "which owners' records may user u act on in module m": `All` (no filter),
//! or an explicit owner list (empty = nothing). Scopes are computed top-down from u's role;
//! `decision.rs` answers the same question per record, bottom-up, and tests compare them.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::catalog::{Catalog, User};
use crate::roles::{RoleTree, RoleTreeError};
use crate::{Action, OwnerId, RoleId, SharingLevel};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Every record: the policy needs no owner filter.
    All,
    /// Records owned by these owners (sorted, distinct; empty means none).
    Owners(Vec<OwnerId>),
}

impl Scope {
    pub fn none() -> Scope {
        Scope::Owners(Vec::new())
    }

    pub fn contains(&self, owner: OwnerId) -> bool {
        match self {
            Scope::All => true,
            Scope::Owners(v) => v.binary_search(&owner).is_ok(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    #[error(transparent)]
    Roles(#[from] RoleTreeError),
    #[error("user {user} has role id {role}, which does not exist")]
    UnknownRole { user: String, role: RoleId },
}

/// What a user's profiles grant, combined by union; the profile names are kept for reasons.
#[derive(Clone, Debug, Default)]
pub(crate) struct Privileges {
    pub view_all: Option<String>,
    pub edit_all: Option<String>,
    pub grants: BTreeMap<String, BTreeSet<Action>>,
}

impl Privileges {
    pub fn granted(&self, module: &str, action: Action) -> bool {
        self.grants.get(module).is_some_and(|a| a.contains(&action))
    }
}

#[derive(Clone, Debug)]
pub struct Model {
    pub(crate) catalog: Catalog,
    pub(crate) tree: RoleTree,
    pub(crate) users: BTreeMap<OwnerId, User>,
    users_by_name: HashMap<String, OwnerId>,
    users_by_role: BTreeMap<RoleId, Vec<OwnerId>>,
    pub(crate) privileges: BTreeMap<RoleId, Privileges>,
    pub(crate) defaults: BTreeMap<String, SharingLevel>,
}

impl Model {
    pub fn compile(catalog: Catalog) -> Result<Model, ModelError> {
        let tree = RoleTree::build(&catalog.roles)?;
        let mut users = BTreeMap::new();
        let mut users_by_name = HashMap::new();
        let mut users_by_role: BTreeMap<RoleId, Vec<OwnerId>> = BTreeMap::new();
        for u in &catalog.users {
            if !tree.contains(u.role) {
                return Err(ModelError::UnknownRole { user: u.name.clone(), role: u.role });
            }
            users.insert(u.owner_id, u.clone());
            users_by_name.insert(u.name.clone(), u.owner_id);
            users_by_role.entry(u.role).or_default().push(u.owner_id);
        }
        let profiles: BTreeMap<_, _> = catalog.profiles.iter().map(|p| (p.id, p)).collect();
        let mut privileges: BTreeMap<RoleId, Privileges> = BTreeMap::new();
        for (role, profile) in &catalog.role_profiles {
            let (Some(p), entry) = (profiles.get(profile), privileges.entry(*role).or_default()) else { continue };
            if p.view_all && entry.view_all.is_none() {
                entry.view_all = Some(p.name.clone());
            }
            if p.edit_all && entry.edit_all.is_none() {
                entry.edit_all = Some(p.name.clone());
            }
            for (module, actions) in &p.grants {
                entry.grants.entry(module.clone()).or_default().extend(actions.iter().copied());
            }
        }
        let defaults = catalog.modules.iter().map(|m| (m.name.clone(), m.sharing_default)).collect();
        Ok(Model { catalog, tree, users, users_by_name, users_by_role, privileges, defaults })
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    pub fn roles(&self) -> &RoleTree {
        &self.tree
    }

    pub fn user(&self, id: OwnerId) -> Option<&User> {
        self.users.get(&id)
    }

    pub fn user_by_name(&self, name: &str) -> Option<&User> {
        self.users_by_name.get(name).and_then(|id| self.users.get(id))
    }

    pub fn users(&self) -> impl Iterator<Item = &User> {
        self.users.values()
    }

    pub fn has_module(&self, module: &str) -> bool {
        self.defaults.contains_key(module)
    }

    pub(crate) fn privileges_of(&self, user: &User) -> &Privileges {
        const NONE: &Privileges = &Privileges { view_all: None, edit_all: None, grants: BTreeMap::new() };
        self.privileges.get(&user.role).unwrap_or(NONE)
    }

    /// The owners whose records `user` may act on in `module` (steps 1–7 of DESIGN §3).
    /// For `create`, `import` and `export` this is the module-level answer: `All` or none.
    pub fn scope(&self, user: OwnerId, module: &str, action: Action) -> Scope {
        let Some(u) = self.users.get(&user).filter(|u| u.is_active) else { return Scope::none() };
        let Some(&default) = self.defaults.get(module) else { return Scope::none() };
        if u.is_admin {
            return Scope::All;
        }
        let p = self.privileges_of(u);
        if (action == Action::Read && p.view_all.is_some())
            || (matches!(action, Action::Read | Action::Create | Action::Edit) && p.edit_all.is_some())
        {
            return Scope::All;
        }
        if !p.granted(module, action) {
            return Scope::none();
        }
        if !action.is_record_level() {
            return Scope::All;
        }
        self.reach(u, default, action)
    }

    /// Owners whose records `user` reaches by ownership, hierarchy and the org-wide default,
    /// before any privilege check.
    fn reach(&self, u: &User, default: SharingLevel, action: Action) -> Scope {
        if default.opens(action) {
            return Scope::All;
        }
        let mut owners: BTreeSet<OwnerId> = BTreeSet::from([u.owner_id]);
        for role in self.tree.strictly_below(u.role) {
            owners.extend(self.users_by_role.get(&role).into_iter().flatten().copied());
        }
        Scope::Owners(owners.into_iter().collect())
    }

    /// The owners `user` may give a record to when creating it (`Create`) or changing its
    /// owner (`Edit`): those whose records the user may then edit (DESIGN §3.3), restricted
    /// to owners that exist. A new record needs an active owner; an existing record of a
    /// disabled user stays editable (the policy cannot tell a changed owner from a kept one).
    pub fn assignable(&self, user: OwnerId, module: &str, action: Action) -> Vec<OwnerId> {
        let scope = match action {
            Action::Create => match self.scope(user, module, Action::Create) {
                Scope::All if self.edits_everything(user) => Scope::All,
                Scope::All => {
                    let u = &self.users[&user];
                    self.reach(u, self.defaults[module], Action::Edit)
                }
                none => none,
            },
            Action::Edit => self.scope(user, module, Action::Edit),
            _ => Scope::none(),
        };
        self.users.values().filter(|o| (o.is_active || action == Action::Edit) && scope.contains(o.owner_id)).map(|o| o.owner_id).collect()
    }

    pub(crate) fn edits_everything(&self, user: OwnerId) -> bool {
        self.users.get(&user).is_some_and(|u| u.is_admin || self.privileges_of(u).edit_all.is_some())
    }
}
