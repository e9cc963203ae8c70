//! The compiled model and the owner scopes that policies filter on (DESIGN §3, §3.3).
//!
//! A scope answers "which owners' records may user u act on in module m": `All` (no filter),
//! or an explicit owner list (empty = nothing). Scopes are computed top-down from u's role
//! and groups; `decision.rs` answers the same question per record, bottom-up, and tests
//! compare them.

use std::collections::{BTreeMap, BTreeSet};

use crate::filter::{Filter, OWNER};
use crate::catalog::{Catalog, Group, Party, Profile, SharingRule, User};
use crate::grouped::Grouped;
use crate::groups::{member_lists, users_of, Members, UserIndex};
use crate::messages::MessagePermission;
use crate::roles::{RoleTree, RoleTreeError};
use crate::users::{UserRef, Users};
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

    /// The scope as a filter on a record policy's owner argument.
    pub fn filter(&self) -> Filter {
        match self {
            Scope::All => Filter::Const(true),
            Scope::Owners(v) => Filter::any_of_ids(OWNER, v),
        }
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
    #[error("module {module} is controlled by {parent}, which does not exist or leads back to it")]
    BrokenControl { module: String, parent: String },
}

/// What a user's profiles and permission sets grant, combined by union; the names of what
/// granted View All / Edit All are kept for reasons ("profile Auditor", "permission set X").
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct Privileges {
    pub view_all: Option<String>,
    pub edit_all: Option<String>,
    pub grants: BTreeMap<String, BTreeSet<Action>>,
    pub messages: BTreeSet<MessagePermission>,
}

impl Privileges {
    pub fn granted(&self, module: &str, action: Action) -> bool {
        self.grants.get(module).is_some_and(|a| a.contains(&action))
    }

    /// `source` names `p` in reasons: "profile X", "permission set X until ...".
    fn add(&mut self, source: &str, p: &Profile) {
        if p.view_all && self.view_all.is_none() {
            self.view_all = Some(source.to_string());
        }
        if p.edit_all && self.edit_all.is_none() {
            self.edit_all = Some(source.to_string());
        }
        for (module, actions) in &p.grants {
            self.grants.entry(module.clone()).or_default().extend(actions.iter().copied());
        }
        self.messages.extend(p.message_permissions.iter().copied());
    }
}

/// What each role's profiles grant, held once per distinct set of profiles: 400 roles of a
/// few kinds held 400 copies of the same grants (a sixth of a decoded model's heap at
/// 20,000 users).
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "RolePrivilegesRecord")]
pub(crate) struct RolePrivileges {
    of_role: BTreeMap<RoleId, u32>,
    distinct: Vec<Privileges>,
}

/// `RolePrivileges` as bytes hold it; read back only if every index holds.
#[derive(serde::Serialize, serde::Deserialize)]
struct RolePrivilegesRecord {
    of_role: BTreeMap<RoleId, u32>,
    distinct: Vec<Privileges>,
}

impl TryFrom<RolePrivilegesRecord> for RolePrivileges {
    type Error = &'static str;

    fn try_from(r: RolePrivilegesRecord) -> Result<RolePrivileges, &'static str> {
        if r.of_role.values().all(|&i| (i as usize) < r.distinct.len()) {
            Ok(RolePrivileges { of_role: r.of_role, distinct: r.distinct })
        } else {
            Err("a role's privileges out of range")
        }
    }
}

#[cfg(test)]
impl From<RolePrivileges> for RolePrivilegesRecord {
    fn from(r: RolePrivileges) -> RolePrivilegesRecord {
        RolePrivilegesRecord { of_role: r.of_role, distinct: r.distinct }
    }
}

impl RolePrivileges {
    /// From the catalog's (role, profile) pairs in order (`Catalog::normalise`).
    fn build(catalog: &Catalog) -> RolePrivileges {
        let profiles: BTreeMap<_, _> = catalog.profiles.iter().map(|p| (p.id, p)).collect();
        let mut by_role: BTreeMap<RoleId, Vec<&Profile>> = BTreeMap::new();
        for (role, profile) in &catalog.role_profiles {
            if let Some(p) = profiles.get(profile) {
                by_role.entry(*role).or_default().push(p);
            }
        }
        let mut out = RolePrivileges::default();
        let mut seen: BTreeMap<Vec<crate::ProfileId>, u32> = BTreeMap::new();
        for (role, ps) in by_role {
            let key: Vec<crate::ProfileId> = ps.iter().map(|p| p.id).collect();
            let at = *seen.entry(key).or_insert_with(|| {
                let mut combined = Privileges::default();
                for p in &ps {
                    combined.add(&format!("profile {}", p.name), p);
                }
                out.distinct.push(combined);
                (out.distinct.len() - 1) as u32
            });
            out.of_role.insert(role, at);
        }
        out
    }

    pub(crate) fn get(&self, role: &RoleId) -> Option<&Privileges> {
        self.of_role.get(role).map(|&i| &self.distinct[i as usize])
    }
}

/// A sharing rule with the owners whose records it shares and the users who receive them:
/// the target's users and, "shared below", every user whose role is above one of them.
/// Receivers are not listed one by one: with thousands of users per rule that list was most
/// of the model's memory and compile time, and two sorted lookups answer the same question.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct CompiledRule {
    pub rule: SharingRule,
    /// Sorted, distinct.
    pub source_owners: Vec<OwnerId>,
    /// Roles strictly above some target user: the bottom-up view of "shared below". Sorted,
    /// distinct (a vector, not a set: 300 rules' sets were a large part of an xl-org model).
    pub receiving_roles_above: Vec<RoleId>,
    /// Sorted, distinct.
    pub target_users: Vec<OwnerId>,
}

impl CompiledRule {
    /// Whether `u` receives what the rule shares.
    pub fn receives(&self, u: UserRef<'_>) -> bool {
        self.target_users.binary_search(&u.owner_id).is_ok() || self.receiving_roles_above.binary_search(&u.role).is_ok()
    }
}

/// The users by id, name and role; a user of a role the tree does not hold is an error.
pub(crate) fn index_users(user_list: Vec<User>, tree: &RoleTree) -> Result<Users, ModelError> {
    if let Some(u) = user_list.iter().find(|u| !tree.contains(u.role)) {
        return Err(ModelError::UnknownRole { user: u.name.to_string(), role: u.role });
    }
    Ok(Users::new(user_list))
}

/// The groups of each user, nested groups included.
pub(crate) fn groups_of_users(groups: &BTreeMap<OwnerId, Group>, index: &UserIndex) -> GroupsOfUsers {
    let mut pairs = Vec::new();
    for &g in groups.keys() {
        pairs.extend(users_of(Party::Group(g), index).into_iter().map(|u| (u, g)));
    }
    GroupsOfUsers::new(pairs)
}

/// What permission sets grant: each holder's privileges (its role's, then its sets' in the
/// catalog's order), and the holders of each set, sorted and distinct.
pub(crate) fn set_privileges(
    catalog: &Catalog,
    groups: &BTreeMap<OwnerId, Group>,
    role_privileges: &RolePrivileges,
    index: &UserIndex,
) -> (BTreeMap<OwnerId, Privileges>, BTreeMap<crate::ProfileId, Vec<OwnerId>>) {
    let sets: BTreeMap<_, _> = catalog.permission_sets.iter().map(|p| (p.id, p)).collect();
    let mut user_privileges: BTreeMap<OwnerId, Privileges> = BTreeMap::new();
    let mut set_holders: BTreeMap<crate::ProfileId, Vec<OwnerId>> = BTreeMap::new();
    for (set, assignee, until) in &catalog.permission_set_assignments {
        let Some(set) = sets.get(set) else { continue };
        let source = crate::record_shares::set_source(&set.name, *until);
        let holders: Vec<OwnerId> = if groups.contains_key(assignee) {
            users_of(Party::Group(*assignee), index)
        } else {
            index.users.contains_key(assignee).then_some(*assignee).into_iter().collect()
        };
        set_holders.entry(set.id).or_default().extend(&holders);
        for u in holders {
            user_privileges
                .entry(u)
                .or_insert_with(|| role_privileges.get(&index.users.held(&u).role).cloned().unwrap_or_default())
                .add(&source, set);
        }
    }
    for holders in set_holders.values_mut() {
        holders.sort_unstable();
        holders.dedup();
    }
    (user_privileges, set_holders)
}

/// A sharing rule with what it shares and with whom, looked up in `index`.
pub(crate) fn compile_rule(r: &SharingRule, index: &UserIndex, module_relations: &[(String, String)]) -> CompiledRule {
    let (source_owners, receiving_roles_above, target_users) = rule_reach(r.source, r.target, index);
    CompiledRule { rule: rule_as_compiled(r, module_relations), source_owners, receiving_roles_above, target_users }
}

/// The owners a rule from `source` shares and who receives it when it targets `target`:
/// `CompiledRule`'s sets, which depend on nothing else of the rule.
pub(crate) fn rule_reach(source: Party, target: Party, index: &UserIndex) -> (Vec<OwnerId>, Vec<RoleId>, Vec<OwnerId>) {
    let mut source_owners = users_of(source, index);
    if let Party::Group(g) = source {
        if let Err(at) = source_owners.binary_search(&g) {
            source_owners.insert(at, g);
        }
    }
    let target_users = users_of(target, index);
    // Each target user's strict ancestors.
    let target_roles: BTreeSet<RoleId> = target_users.iter().map(|t| index.users.held(t).role).collect();
    let receiving_roles_above = index.tree.at_or_above(target_roles.into_iter().filter_map(|r| index.tree.parent(r))).into_iter().collect();
    (source_owners, receiving_roles_above, target_users)
}

/// The rule as the model holds it. A rule carries access only to modules still related to its
/// own: a relation removed (or a module dropped and its name reused) takes the access with it,
/// whatever the rule's row still names (red team of issue 25).
pub(crate) fn rule_as_compiled(r: &SharingRule, module_relations: &[(String, String)]) -> SharingRule {
    let mut rule = r.clone();
    rule.related_modules.retain(|child| module_relations.iter().any(|(p, c)| *p == rule.module && c == child));
    rule
}

/// The groups of each user, as one sorted array per column rather than a vector per user:
/// with 20,000 users the per-user vectors' headers and the map's nodes were a fifth of the
/// model's memory.
pub(crate) type GroupsOfUsers = Grouped<OwnerId, OwnerId>;

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Model {
    pub(crate) catalog: Catalog,
    pub(crate) tree: RoleTree,
    /// By id, name and role.
    pub(crate) users: Users,
    pub(crate) groups: BTreeMap<OwnerId, Group>,
    pub(crate) members: Members,
    /// The groups of each user.
    pub(crate) user_groups: GroupsOfUsers,
    pub(crate) role_privileges: RolePrivileges,
    /// Only users with a permission set (directly or through a group) have their own entry.
    pub(crate) user_privileges: BTreeMap<OwnerId, Privileges>,
    /// The holders of each permission set, sorted and distinct (restriction rules name sets).
    pub(crate) set_holders: BTreeMap<crate::ProfileId, Vec<OwnerId>>,
    pub(crate) rules: Vec<CompiledRule>,
    pub(crate) defaults: BTreeMap<String, SharingLevel>,
    /// The earliest end of a grant still to come when compiled (`compile_at`).
    valid_until: Option<i64>,
}

impl Model {
    /// Compile a catalog with every grant that has an end counting (as at the beginning of
    /// time; `compile_at` for a moment). Its users move into the model (`Model::users`), so
    /// that the largest part of the catalog is held once: `catalog().users` is empty afterwards.
    pub fn compile(catalog: Catalog) -> Result<Model, ModelError> {
        Self::compile_at(catalog, i64::MIN)
    }

    /// Compile a catalog as it stands at the moment `at` (PostgreSQL timestamptz
    /// microseconds): a permission-set assignment whose `until` is not after `at` is left out,
    /// of the compiled catalog too (DESIGN §9). The model is right until `valid_until`, the
    /// earliest end still to come; whoever holds it compiles again for a moment at or after it.
    pub fn compile_at(mut catalog: Catalog, at: i64) -> Result<Model, ModelError> {
        catalog.normalise();
        let valid_until = catalog.permission_set_assignments.iter().filter_map(|a| a.2).filter(|&until| until > at).min();
        catalog.permission_set_assignments.retain(|a| a.2.is_none_or(|until| at < until));
        let tree = RoleTree::build(&catalog.roles)?;
        // Every chain of control ends at a module that governs itself (the API only lets a
        // new module be controlled by an existing one; a direct write could loop).
        for m in &catalog.modules {
            if let Some(parent) = &m.controlled_by {
                if catalog.governing_module(&m.name).is_none() {
                    return Err(ModelError::BrokenControl { module: m.name.clone(), parent: parent.clone() });
                }
            }
        }
        let users = index_users(std::mem::take(&mut catalog.users), &tree)?;
        let groups: BTreeMap<_, _> = catalog.groups.iter().map(|g| (g.owner_id, g.clone())).collect();
        let members = member_lists(&catalog.group_members);
        let index = UserIndex { tree: &tree, users: &users, members: &members };
        let user_groups = groups_of_users(&groups, &index);

        let role_privileges = RolePrivileges::build(&catalog);
        let (user_privileges, set_holders) = set_privileges(&catalog, &groups, &role_privileges, &index);
        let rules = catalog.sharing_rules.iter().map(|r| compile_rule(r, &index, &catalog.module_relations)).collect();
        let defaults = catalog.modules.iter().map(|m| (m.name.clone(), m.sharing_default)).collect();
        // What the model holds in its own form, it does not hold twice (every backend decodes
        // a copy): the roles are the tree, the groups and their members `groups` and
        // `members`, the rules `rules`. At xl-org scale (5,000 roles, 2,000 groups) their
        // catalog lists were a fifth of a decoded model's heap.
        catalog.roles = Vec::new();
        catalog.groups = Vec::new();
        catalog.group_members = Vec::new();
        catalog.sharing_rules = Vec::new();
        Ok(Model {
            catalog,
            tree,
            users,
            groups,
            members,
            user_groups,
            role_privileges,
            user_privileges,
            set_holders,
            rules,
            defaults,
            valid_until,
        })
    }

    /// The moment from which this model is out of date by the clock alone: a grant it holds
    /// ends then (None: none ends). A statement starting at or after it needs a model
    /// compiled for its own moment.
    pub fn valid_until(&self) -> Option<i64> {
        self.valid_until
    }

    /// The catalog compiled, without the lists the model holds in its own form (see
    /// `compile`): its users (`users()`), roles (`roles()`), groups, group members and
    /// sharing rules are empty.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    pub fn roles(&self) -> &RoleTree {
        &self.tree
    }

    pub fn user(&self, id: OwnerId) -> Option<UserRef<'_>> {
        self.users.get(&id)
    }

    pub fn group(&self, id: OwnerId) -> Option<&Group> {
        self.groups.get(&id)
    }

    /// A user's or a group's name.
    pub fn owner_name(&self, id: OwnerId) -> Option<&str> {
        self.users.get(&id).map(|u| u.name).or_else(|| self.groups.get(&id).map(|g| g.name.as_str()))
    }

    /// A user's or a group's owner id by name (they share one namespace).
    pub fn owner_by_name(&self, name: &str) -> Option<OwnerId> {
        self.user_by_name(name).map(|u| u.owner_id).or_else(|| self.groups.values().find(|g| g.name == name).map(|g| g.owner_id))
    }

    pub fn user_by_name(&self, name: &str) -> Option<UserRef<'_>> {
        self.users.by_name(name)
    }

    /// Users whose role is strictly below `user`'s role.
    pub(crate) fn subordinates(&self, user: UserRef<'_>) -> impl Iterator<Item = OwnerId> + '_ {
        self.tree.strictly_below(user.role).into_iter().flat_map(|r| self.users.of_role(r))
    }

    /// The profiles a role carries (not permission sets).
    pub(crate) fn profiles_of_role(&self, role: RoleId) -> impl Iterator<Item = &Profile> + '_ {
        self.catalog
            .role_profiles
            .iter()
            .filter(move |(r, _)| *r == role)
            .filter_map(|(_, p)| self.catalog.profiles.iter().find(|x| x.id == *p))
    }

    /// The groups `user` belongs to (directly, through roles, or nested).
    pub fn groups_of(&self, user: OwnerId) -> impl Iterator<Item = OwnerId> + '_ {
        self.user_groups.of(user).iter().copied()
    }

    pub fn users(&self) -> impl Iterator<Item = UserRef<'_>> {
        self.users.values()
    }

    pub fn has_module(&self, module: &str) -> bool {
        self.defaults.contains_key(module)
    }

    pub(crate) fn privileges_of(&self, user: UserRef<'_>) -> &Privileges {
        const NONE: &Privileges =
            &Privileges { view_all: None, edit_all: None, grants: BTreeMap::new(), messages: BTreeSet::new() };
        self.user_privileges.get(&user.owner_id).or_else(|| self.role_privileges.get(&user.role)).unwrap_or(NONE)
    }

    /// The owners whose records `user` may act on in `module` (steps 1–7 of DESIGN §3).
    /// For `create`, `import` and `export` this is the module-level answer: `All` or none.
    pub fn scope(&self, user: OwnerId, module: &str, action: Action) -> Scope {
        let Some(u) = self.users.get(&user).filter(|u| u.is_active) else { return Scope::none() };
        if !self.defaults.contains_key(module) {
            return Scope::none();
        }
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
        self.reach(u, module, action)
    }

    /// The owners of parent records (in `parent_module`) whose `child_module` records `user`
    /// may act on through rules that carry access to related modules (DESIGN §3.1). This
    /// adds to `scope` on the child's own owner; the child module's privilege still decides.
    pub fn scope_via_parent(&self, user: OwnerId, child_module: &str, parent_module: &str, action: Action) -> Scope {
        match self.scope(user, child_module, action) {
            Scope::All => return Scope::All,
            Scope::Owners(v) if v.is_empty() => return Scope::none(),
            Scope::Owners(_) => {}
        }
        let u = self.users.held(&user);
        let mut owners = Vec::new();
        for r in &self.rules {
            if r.rule.module == parent_module
                && r.rule.related_modules.iter().any(|m| m == child_module)
                && r.rule.access.covers(action)
                && r.receives(u)
            {
                owners.extend_from_slice(&r.source_owners);
            }
        }
        owners.sort_unstable();
        owners.dedup();
        Scope::Owners(owners)
    }

    /// Owners whose records `user` reaches by ownership, groups, hierarchy, the org-wide
    /// default and sharing rules, before any privilege check.
    fn reach(&self, u: UserRef<'_>, module: &str, action: Action) -> Scope {
        let governing = self.catalog.sharing_module(module);
        if self.defaults.get(governing).is_some_and(|d| d.opens(action)) {
            return Scope::All;
        }
        let mut owners: Vec<OwnerId> = vec![u.owner_id];
        owners.extend_from_slice(self.user_groups.of(u.owner_id));
        for role in self.tree.strictly_below(u.role) {
            owners.extend(self.users.of_role(role));
        }
        for r in &self.rules {
            if r.rule.module == governing && r.rule.access.covers(action) && r.receives(u) {
                owners.extend_from_slice(&r.source_owners);
            }
        }
        owners.sort_unstable();
        owners.dedup();
        Scope::Owners(owners)
    }

    /// The owners `user` may give a record to when creating it (`Create`) or changing its
    /// owner (`Edit`): those whose records the user may then edit (DESIGN §3.3), restricted
    /// to owners that exist. A new record needs an active owner; an existing record of a
    /// disabled user stays editable (the policy cannot tell a changed owner from a kept one).
    pub fn assignable(&self, user: OwnerId, module: &str, action: Action) -> Vec<OwnerId> {
        let scope = match action {
            Action::Create => match self.scope(user, module, Action::Create) {
                Scope::All if self.edits_everything(user) => Scope::All,
                Scope::All => self.reach(self.users.held(&user), module, Action::Edit),
                none => none,
            },
            Action::Edit => self.scope(user, module, Action::Edit),
            _ => Scope::none(),
        };
        let users = self.users.values().filter(|o| o.is_active || action == Action::Edit).map(|o| o.owner_id);
        let mut out: Vec<OwnerId> = users.chain(self.groups.keys().copied()).filter(|o| scope.contains(*o)).collect();
        out.sort_unstable();
        // An owner both a user and a group (a user row written by hand for a group's owner)
        // is listed once (red team of item 2: the filter built from it wants distinct ids).
        out.dedup();
        out
    }

    pub(crate) fn edits_everything(&self, user: OwnerId) -> bool {
        self.users.get(&user).is_some_and(|u| u.is_admin || self.privileges_of(u).edit_all.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_with_the_same_profiles_share_their_privileges() {
        let grants = |m: &str| BTreeMap::from([(m.to_string(), vec![Action::Read])]);
        let catalog = Catalog {
            profiles: vec![
                Profile { id: 1, name: "A".into(), grants: grants("Widgets"), ..Default::default() },
                Profile { id: 2, name: "B".into(), view_all: true, grants: grants("Gadgets"), ..Default::default() },
            ],
            role_profiles: vec![(10, 1), (11, 1), (12, 1), (12, 2), (13, 2)],
            ..Default::default()
        };
        let r = RolePrivileges::build(&catalog);
        assert_eq!(r.distinct.len(), 3);
        assert!(std::ptr::eq(r.get(&10).unwrap(), r.get(&11).unwrap()));
        let both = r.get(&12).unwrap();
        assert!(both.granted("Widgets", Action::Read) && both.granted("Gadgets", Action::Read));
        assert_eq!(both.view_all.as_deref(), Some("profile B"));
        assert!(!r.get(&13).unwrap().granted("Widgets", Action::Read));
        assert!(r.get(&14).is_none());
    }

    #[test]
    fn bytes_naming_privileges_out_of_range_are_refused() {
        let record = RolePrivilegesRecord { of_role: BTreeMap::from([(10, 1)]), distinct: vec![Privileges::default()] };
        let bytes = postcard::to_allocvec(&record).unwrap();
        assert!(postcard::from_bytes::<RolePrivileges>(&bytes).is_err());
        let record = RolePrivilegesRecord { of_role: BTreeMap::from([(10, 0)]), distinct: vec![Privileges::default()] };
        assert!(postcard::from_bytes::<RolePrivileges>(&postcard::to_allocvec(&record).unwrap()).is_ok());
    }
}
