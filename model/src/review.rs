//! An access review (DESIGN §8): for one user, every module and action, how far the user
//! reaches and what grants it. Derived from the same decisions as enforcement: `scope` gives
//! the reach, `decide` (record by record, over every owner) the reasons.

use std::collections::BTreeSet;

use crate::decision::{Gate, Reason};
use crate::{Action, Model, OwnerId, Scope};

/// How far a user reaches in a module for an action.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reach {
    /// Every record.
    All,
    /// The records of some owners.
    Owners,
    None,
}

impl Reach {
    pub fn as_str(self) -> &'static str {
        match self {
            Reach::All => "all",
            Reach::Owners => "owners",
            Reach::None => "none",
        }
    }
}

/// One line of a review.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Review {
    pub module: String,
    pub action: Action,
    pub reach: Reach,
    /// How many owners' records (every user and group for `All`).
    pub owners: usize,
    /// What grants it, sorted: "profile Sales", "permission set X", "View All (profile
    /// Auditor)", "administrator", "own records", "group Team", "role hierarchy",
    /// "org-wide default public_read", "rule 7"; or why nothing does; and the restriction
    /// rules that narrow it ("restricted by rule 3 (region in West)").
    pub reasons: Vec<String>,
}

/// A granting reason as a review names it: the kind of grant, not the record it reached.
fn label(reason: &Reason) -> String {
    match reason {
        Reason::Admin { .. } => "administrator".into(),
        Reason::ViewAll { source } => format!("View All ({source})"),
        Reason::EditAll { source } => format!("Edit All ({source})"),
        Reason::Owner => "own records".into(),
        Reason::GroupMember { group } => format!("group {group}"),
        Reason::Subordinate { .. } => "role hierarchy".into(),
        Reason::OrgDefault { module, level } => format!("org-wide default {level} of {module}"),
        Reason::SharedByRule { rule, .. } => format!("rule {rule}"),
        other => other.to_string(),
    }
}

impl Model {
    /// Every module and action, in module then action order, for `user` (an owner id).
    pub fn access_review(&self, user: OwnerId) -> Vec<Review> {
        let every_owner: Vec<OwnerId> = self.users.keys().chain(self.groups.keys()).copied().collect();
        let mut out = Vec::new();
        for module in self.defaults.keys() {
            for action in Action::ALL {
                let (reach, owners) = match self.scope(user, module, action) {
                    Scope::All => (Reach::All, every_owner.len()),
                    Scope::Owners(v) if v.is_empty() => (Reach::None, 0),
                    Scope::Owners(v) => (Reach::Owners, v.len()),
                };
                let mut reasons = BTreeSet::new();
                match self.gate(Some(user), module, action) {
                    Gate::Settled(d) => {
                        reasons.insert(label(&d.reason));
                    }
                    Gate::Open(u) => {
                        reasons.extend(self.grant_sources(u.owner_id, module, action));
                        if action.is_record_level() {
                            for &o in &every_owner {
                                let d = self.decide(Some(user), module, action, o);
                                if d.allowed {
                                    reasons.insert(label(&d.reason));
                                }
                            }
                        }
                    }
                }
                // Restriction rules narrow every record-level reach by the records' columns.
                if action.is_record_level() && reach != Reach::None {
                    for r in self.restrictions_of(user, module) {
                        reasons.insert(format!("restricted by rule {} ({} in {})", r.id, r.column, r.allowed.join(", ")));
                    }
                }
                out.push(Review { module: module.clone(), action, reach, owners, reasons: reasons.into_iter().collect() });
            }
        }
        out
    }

    /// The profiles (through the user's role) and permission sets (assigned to the user or to
    /// a group the user is in) that grant `action` on `module`.
    fn grant_sources(&self, user: OwnerId, module: &str, action: Action) -> Vec<String> {
        let Some(u) = self.users.get(&user) else { return Vec::new() };
        let grants = |p: &crate::Profile| p.grants.get(module).is_some_and(|a| a.contains(&action));
        let c = self.catalog();
        let mut out = Vec::new();
        for (role, profile) in &c.role_profiles {
            if *role == u.role {
                out.extend(c.profiles.iter().filter(|p| p.id == *profile && grants(p)).map(|p| format!("profile {}", p.name)));
            }
        }
        let groups: BTreeSet<OwnerId> = self.groups_of(user).collect();
        for (set, assignee, until) in &c.permission_set_assignments {
            if *assignee == user || groups.contains(assignee) {
                out.extend(c.permission_sets.iter().filter(|p| p.id == *set && grants(p)).map(|p| crate::record_shares::set_source(&p.name, *until)));
            }
        }
        out
    }
}

/// What a user gained and lost in one module and record action between two models.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReachChange {
    pub module: String,
    pub action: Action,
    /// Owners whose records the user reaches now and did not before (sorted).
    pub gained: Vec<OwnerId>,
    /// Owners whose records the user reached before and does not now (sorted).
    pub lost: Vec<OwnerId>,
}

impl Model {
    /// The owners `user` reaches for `action` in `module`, listed (every owner for `All`).
    fn reached(&self, user: OwnerId, module: &str, action: Action) -> BTreeSet<OwnerId> {
        match self.scope(user, module, action) {
            Scope::All => self.users.keys().chain(self.groups.keys()).copied().collect(),
            Scope::Owners(v) => v.into_iter().collect(),
        }
    }

    /// How `user`'s reach differs here from `before`, per module and record action (read,
    /// edit, delete); only what changed.
    pub fn reach_changes(&self, before: &Model, user: OwnerId) -> Vec<ReachChange> {
        let modules: BTreeSet<&String> = self.defaults.keys().chain(before.defaults.keys()).collect();
        let mut out = Vec::new();
        for module in modules {
            for action in Action::ALL.into_iter().filter(|a| a.is_record_level()) {
                let (now, then) = (self.reached(user, module, action), before.reached(user, module, action));
                let gained: Vec<OwnerId> = now.difference(&then).copied().collect();
                let lost: Vec<OwnerId> = then.difference(&now).copied().collect();
                if !gained.is_empty() || !lost.is_empty() {
                    out.push(ReachChange { module: module.clone(), action, gained, lost });
                }
            }
        }
        out
    }
}
