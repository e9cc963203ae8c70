//! One record's decision, and the step of DESIGN §3 that made it (what `explain` prints).
//! Computed record by record, walking up the role tree from the owner, independently of
//! the owner scopes in `access.rs`.

use std::fmt;

use crate::{Action, Model, OwnerId, SharingLevel};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub reason: Reason,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reason {
    NoActingUser,
    UnknownUser { user: String },
    Disabled { user: String },
    UnknownModule { module: String },
    Admin { user: String },
    ViewAll { profile: String },
    EditAll { profile: String },
    NotGranted { module: String, action: Action },
    ModuleLevel { module: String, action: Action },
    Owner,
    Subordinate { owner: String, owner_role: String, your_role: String },
    OrgDefault { module: String, level: SharingLevel },
    NoRecordAccess { owner: String, module: String },
    UnknownOwner { owner: OwnerId },
    InactiveOwner { owner: String },
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::NoActingUser => write!(f, "no acting CRM user"),
            Reason::UnknownUser { user } => write!(f, "no CRM user is named {user}"),
            Reason::Disabled { user } => write!(f, "CRM user {user} is disabled"),
            Reason::UnknownModule { module } => write!(f, "no module is named {module}"),
            Reason::Admin { user } => write!(f, "{user} is an administrator"),
            Reason::ViewAll { profile } => write!(f, "profile {profile} grants View All"),
            Reason::EditAll { profile } => write!(f, "profile {profile} grants Edit All"),
            Reason::NotGranted { module, action } => write!(f, "revoked: no profile grants {action} on {module}"),
            Reason::ModuleLevel { module, action } => write!(f, "a profile grants {action} on {module}"),
            Reason::Owner => write!(f, "you own the record"),
            Reason::Subordinate { owner, owner_role, your_role } => {
                write!(f, "owner is {owner}, in role {owner_role} below your role {your_role}")
            }
            Reason::OrgDefault { module, level } => write!(f, "the org-wide default of {module} is {level}"),
            Reason::NoRecordAccess { owner, module } => {
                write!(f, "the record is owned by {owner}, whose {module} records are not shared with you")
            }
            Reason::UnknownOwner { owner } => write!(f, "owner id {owner} is not a CRM user or group"),
            Reason::InactiveOwner { owner } => write!(f, "CRM user {owner} is disabled and cannot own records"),
        }
    }
}

fn allow(reason: Reason) -> Decision {
    Decision { allowed: true, reason }
}

fn deny(reason: Reason) -> Decision {
    Decision { allowed: false, reason }
}

impl Model {
    /// May `user` perform `action` on a `module` record owned by `owner`?
    /// For create/import/export the owner is not consulted (see `decide_assignment`).
    pub fn decide(&self, user: Option<OwnerId>, module: &str, action: Action, owner: OwnerId) -> Decision {
        let Some(user) = user else { return deny(Reason::NoActingUser) };
        let Some(u) = self.users.get(&user) else { return deny(Reason::UnknownUser { user: user.to_string() }) };
        if !u.is_active {
            return deny(Reason::Disabled { user: u.name.clone() });
        }
        let Some(&default) = self.defaults.get(module) else {
            return deny(Reason::UnknownModule { module: module.to_string() });
        };
        if u.is_admin {
            return allow(Reason::Admin { user: u.name.clone() });
        }
        let p = self.privileges_of(u);
        if let (Action::Read, Some(profile)) = (action, &p.view_all) {
            return allow(Reason::ViewAll { profile: profile.clone() });
        }
        if let (Action::Read | Action::Create | Action::Edit, Some(profile)) = (action, &p.edit_all) {
            return allow(Reason::EditAll { profile: profile.clone() });
        }
        if !p.granted(module, action) {
            return deny(Reason::NotGranted { module: module.to_string(), action });
        }
        if !action.is_record_level() {
            return allow(Reason::ModuleLevel { module: module.to_string(), action });
        }
        self.decide_record(u.owner_id, module, default, action, owner)
    }

    fn decide_record(&self, user: OwnerId, module: &str, default: SharingLevel, action: Action, owner: OwnerId) -> Decision {
        if owner == user {
            return allow(Reason::Owner);
        }
        let me = &self.users[&user];
        if let Some(o) = self.users.get(&owner) {
            if self.tree.is_strictly_above(me.role, o.role) {
                return allow(Reason::Subordinate {
                    owner: o.name.clone(),
                    owner_role: self.tree.name(o.role).to_string(),
                    your_role: self.tree.name(me.role).to_string(),
                });
            }
        }
        if default.opens(action) {
            return allow(Reason::OrgDefault { module: module.to_string(), level: default });
        }
        let owner = self.users.get(&owner).map(|o| o.name.clone()).unwrap_or_else(|| owner.to_string());
        deny(Reason::NoRecordAccess { owner, module: module.to_string() })
    }

    /// May `user` create (`Create`) or re-own (`Edit`) a `module` record so that `owner` owns it?
    pub fn decide_assignment(&self, user: Option<OwnerId>, module: &str, action: Action, owner: OwnerId) -> Decision {
        let module_level = self.decide(user, module, action, owner);
        if !module_level.allowed {
            return module_level;
        }
        let Some(o) = self.users.get(&owner) else { return deny(Reason::UnknownOwner { owner }) };
        if !o.is_active && action == Action::Create {
            return deny(Reason::InactiveOwner { owner: o.name.clone() });
        }
        let user = user.expect("an allowed decision has a user");
        if action == Action::Create && !self.edits_everything(user) {
            // The new owner must be one whose records the creator may then edit (§3.3).
            return self.decide_record(user, module, self.defaults[module], Action::Edit, owner);
        }
        module_level
    }
}
