//! Incremental changes (issue 28, item 2): a catalog change applied to a compiled model
//! instead of compiling the whole catalog again. A patch leaves exactly the model a compile of
//! the changed catalog makes, byte for byte (`tests/properties.rs` holds each to it on random
//! organisations); a change no patch covers is compiled.

use std::collections::{BTreeMap, BTreeSet};

use crate::access::{groups_of_users, index_users, rule_as_compiled, rule_reach, set_privileges, CompiledRule, ModelError};
use crate::groups::{member_lists, users_of, Members, UserIndex};
use crate::{GroupMember, Model, OwnerId, Party, RoleId, SharingLevel, SharingRule, User, UserRef};

impl Model {
    /// The org-wide sharing defaults as the catalog holds them now: `levels` by module name,
    /// a module without one private (as the catalog's load reads `crm.sharing_defaults`, a
    /// level for a module that does not exist counting for nothing). Nothing else a compile
    /// derives depends on a default: decisions read them as they are made.
    pub fn patch_sharing_defaults(&mut self, levels: &BTreeMap<String, SharingLevel>) {
        for m in &mut self.catalog.modules {
            m.sharing_default = levels.get(&m.name).copied().unwrap_or(SharingLevel::Private);
        }
        self.defaults = self.catalog.modules.iter().map(|m| (m.name.clone(), m.sharing_default)).collect();
    }

    /// The sharing rules as the catalog holds them now (`crm.sharing_rules`, in any order). What a rule shares and with whom depends only on its source and
    /// target and on the users, roles and groups, which this change leaves alone: a source and
    /// target the model already compiled keep their sets, and only new ones are looked up.
    pub fn patch_sharing_rules(&mut self, mut rules: Vec<SharingRule>) {
        rules.sort_by_key(|r| r.id);
        let known: BTreeMap<(Party, Party), &CompiledRule> = self.rules.iter().map(|c| ((c.rule.source, c.rule.target), c)).collect();
        let index = UserIndex { tree: &self.tree, users: &self.users, members: &self.members };
        let compiled = rules
            .iter()
            .map(|r| {
                let (source_owners, receiving_roles_above, target_users) = match known.get(&(r.source, r.target)) {
                    Some(c) => (c.source_owners.clone(), c.receiving_roles_above.clone(), c.target_users.clone()),
                    None => rule_reach(r.source, r.target, &index),
                };
                CompiledRule { rule: rule_as_compiled(r, &self.catalog.module_relations), source_owners, receiving_roles_above, target_users }
            })
            .collect();
        self.rules = compiled;
    }

    /// The group memberships as the catalog holds them now (`crm.group_members`, in any
    /// order); users, roles and the groups themselves unchanged. What hangs on memberships is
    /// computed again from the model for the groups whose users may have changed (those whose
    /// own members changed, and the groups holding them, at any depth): each user's groups, the
    /// reach of every rule naming such a group; and what permission sets grant. Every other
    /// group and rule keeps its sets (a member added at 20,000 users: issue 28, item 2).
    pub fn patch_group_members(&mut self, members: Vec<GroupMember>) {
        self.set_members(member_lists(&members));
    }

    /// The memberships of the groups `groups` as the catalog holds them now (`rows`: every
    /// membership of those groups; a group without one has none left), every other group's
    /// as the model holds them: for a commit that knows which groups' members it changed and
    /// reads only those (`patch_group_members`).
    pub fn patch_changed_members(&mut self, groups: &[OwnerId], rows: Vec<GroupMember>) {
        let changed: BTreeSet<OwnerId> = groups.iter().copied().chain(rows.iter().map(|m| m.group)).collect();
        let gone = self.members.pairs().filter(|(g, _)| changed.contains(g)).collect();
        let members = self.members.changed(gone, rows.into_iter().map(|m| (m.group, m.member)).collect());
        self.set_members(members);
    }

    fn set_members(&mut self, members: Members) {
        let mut affected: BTreeSet<OwnerId> = self.members.keys().iter().chain(members.keys()).copied().filter(|&g| self.members.of(g) != members.of(g)).collect();
        self.members = members;
        self.with_holders(&mut affected);
        self.regroup(&affected);
        let index = UserIndex { tree: &self.tree, users: &self.users, members: &self.members };
        let (user_privileges, set_holders) = set_privileges(&self.catalog, &self.groups, &self.role_privileges, &index);
        let touches = |p: Party| matches!(p, Party::Group(g) if affected.contains(&g));
        for c in &mut self.rules {
            if touches(c.rule.source) || touches(c.rule.target) {
                (c.source_owners, c.receiving_roles_above, c.target_users) = rule_reach(c.rule.source, c.rule.target, &index);
            }
        }
        self.user_privileges = user_privileges;
        self.set_holders = set_holders;
    }

    /// `affected` with every group that holds one of them as a member, at any depth.
    fn with_holders(&self, affected: &mut BTreeSet<OwnerId>) {
        loop {
            let more: Vec<OwnerId> = self
                .members
                .groups()
                .filter(|(g, ps)| !affected.contains(g) && ps.iter().any(|p| matches!(p, Party::Group(x) if affected.contains(x))))
                .map(|(g, _)| g)
                .collect();
            if more.is_empty() {
                break;
            }
            affected.extend(more);
        }
    }

    /// Each user's groups, with the users of the groups `affected` looked up again.
    fn regroup(&mut self, affected: &BTreeSet<OwnerId>) {
        if affected.is_empty() {
            return;
        }
        let index = UserIndex { tree: &self.tree, users: &self.users, members: &self.members };
        let gone: Vec<(OwnerId, OwnerId)> = self.user_groups.pairs().filter(|(_, g)| affected.contains(g)).collect();
        let mut added = Vec::new();
        for &g in self.groups.keys().filter(|g| affected.contains(g)) {
            added.extend(users_of(Party::Group(g), &index).into_iter().map(|u| (u, g)));
        }
        self.user_groups = self.user_groups.changed(gone, added);
    }

    /// The users `ids` as the catalog holds them now (`rows`: those of them that are still
    /// users; an id without a row was deleted), every other user as the model holds it: for
    /// a commit that knows which users it changed and reads only those (`patch_users`).
    pub fn patch_changed_users(&mut self, ids: &[OwnerId], rows: Vec<User>) -> Result<(), ModelError> {
        let changed: BTreeSet<OwnerId> = ids.iter().copied().chain(rows.iter().map(|u| u.owner_id)).collect();
        // The usual commit: users moved or flagged, none added, renamed or deleted. Set in
        // place, without reading every user out and sorting them again (a user moved at
        // 20,000 users: issue 28, item 2).
        if rows.len() == changed.len() && self.users.hold_by_name(&rows) {
            if let Some(u) = rows.iter().find(|u| !self.tree.contains(u.role)) {
                return Err(ModelError::UnknownRole { user: u.name.to_string(), role: u.role });
            }
            let moved: Vec<(OwnerId, RoleId, RoleId)> =
                rows.iter().map(|u| (u.owner_id, self.users.held(&u.owner_id).role, u.role)).filter(|&(_, from, to)| from != to).collect();
            self.users.set_in_place(&rows);
            if !moved.is_empty() {
                self.after_moves(&moved);
            }
            return Ok(());
        }
        let mut users: Vec<User> = self.users.values().filter(|u| !changed.contains(&u.owner_id)).map(UserRef::to_user).collect();
        users.extend(rows);
        self.patch_users(users)
    }

    /// The users as the catalog holds them now (`crm.users` with their names, in any order):
    /// a user moved to another role, made an administrator or not, disabled or enabled, or a
    /// user row added for an owner or deleted; roles, groups and their memberships, profiles
    /// and rules unchanged. Everything that hangs on users is computed again from the model:
    /// the users' indexes, each user's groups (a group may hold a role), what permission sets
    /// grant, and every rule's reach. What a compile refuses (a user of a role that does not
    /// exist) leaves the model as it was and is returned for the compile to report.
    pub fn patch_users(&mut self, mut users: Vec<User>) -> Result<(), ModelError> {
        users.sort_by_key(|u| u.owner_id);
        // Only flags changed (a user disabled, made an administrator): nothing a compile
        // derives reads them; decisions read them as they are made.
        let same = |u: &User, m: UserRef<'_>| u.owner_id == m.owner_id && u.role == m.role && u.name == m.name;
        if users.len() == self.users.len() && users.iter().zip(self.users.values()).all(|(u, m)| same(u, m)) {
            self.users.replace_same_names(users);
            return Ok(());
        }
        let same_names = |u: &User, m: UserRef<'_>| u.owner_id == m.owner_id && u.name == m.name;
        if users.len() == self.users.len() && users.iter().zip(self.users.values()).all(|(u, m)| same_names(u, m)) {
            return self.move_users(users);
        }
        self.users = index_users(users, &self.tree)?;
        let index = UserIndex { tree: &self.tree, users: &self.users, members: &self.members };
        self.user_groups = groups_of_users(&self.groups, &index);
        let (user_privileges, set_holders) = set_privileges(&self.catalog, &self.groups, &self.role_privileges, &index);
        self.user_privileges = user_privileges;
        self.set_holders = set_holders;
        for c in &mut self.rules {
            (c.source_owners, c.receiving_roles_above, c.target_users) = rule_reach(c.rule.source, c.rule.target, &index);
        }
        Ok(())
    }

    /// Users moved to other roles (the same ids and names; flags may change too): only the
    /// sets that hang on the roles they left or joined are computed again. A role party
    /// covers a moved user's role, a role-and-subordinates party one of its roles or their
    /// ancestors; a group is affected when a member is, nested groups included; a rule when
    /// its source or target is, or a moved user receives it (its receiving roles follow its
    /// receivers' roles). Everything else keeps its sets.
    fn move_users(&mut self, users: Vec<User>) -> Result<(), ModelError> {
        let moved: Vec<(OwnerId, RoleId, RoleId)> =
            users.iter().filter_map(|u| self.users.get(&u.owner_id).filter(|m| m.role != u.role).map(|m| (u.owner_id, m.role, u.role))).collect();
        if let Some(u) = users.iter().find(|u| !self.tree.contains(u.role)) {
            return Err(ModelError::UnknownRole { user: u.name.to_string(), role: u.role });
        }
        self.users.replace_same_names(users);
        self.after_moves(&moved);
        Ok(())
    }

    /// What hangs on the roles of users `moved` (id, the role it left, the role it joined),
    /// once the users hold their new roles (`move_users`).
    fn after_moves(&mut self, moved: &[(OwnerId, RoleId, RoleId)]) {
        let roles: BTreeSet<RoleId> = moved.iter().flat_map(|&(_, from, to)| [from, to]).collect();
        let above = self.tree.at_or_above(roles.iter().copied());
        let covers = |p: &Party| match p {
            Party::Role(r) => roles.contains(r),
            Party::RoleAndSubordinates(r) => above.contains(r),
            _ => false,
        };
        // Groups whose users change: a member covers a moved role, or is such a group.
        let mut affected: BTreeSet<OwnerId> =
            self.members.groups().filter(|(_, ps)| ps.iter().any(covers)).map(|(g, _)| g).collect();
        self.with_holders(&mut affected);
        self.regroup(&affected);
        let index = UserIndex { tree: &self.tree, users: &self.users, members: &self.members };
        let (user_privileges, set_holders) = set_privileges(&self.catalog, &self.groups, &self.role_privileges, &index);
        self.user_privileges = user_privileges;
        self.set_holders = set_holders;
        let touches = |p: &Party| covers(p) || matches!(p, Party::Group(g) if affected.contains(g));
        for c in &mut self.rules {
            let receives_moved = moved.iter().any(|(u, _, _)| c.target_users.binary_search(u).is_ok());
            if touches(&c.rule.source) || touches(&c.rule.target) || receives_moved {
                (c.source_owners, c.receiving_roles_above, c.target_users) = rule_reach(c.rule.source, c.rule.target, &index);
            }
        }
    }
}
