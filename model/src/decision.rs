//! One record's decision, and the step of DESIGN §3 that made it (what `explain` prints).
//! Computed record by record, walking up from the owner (role tree, group membership),
//! independently of the owner scopes in `access.rs`.

use std::collections::BTreeSet;
use std::fmt;

use crate::catalog::Party;
use crate::users::UserRef;
use crate::messages::MessagePermission;
use crate::{Action, Model, OwnerId, RuleAccess, SharingLevel};

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
    /// `source` is "profile X" or "permission set X".
    ViewAll { source: String },
    EditAll { source: String },
    NotGranted { module: String, action: Action },
    ModuleLevel { module: String, action: Action },
    Owner,
    GroupMember { group: String },
    Subordinate { owner: String, owner_role: String, your_role: String },
    OrgDefault { module: String, level: SharingLevel },
    SharedByRule { rule: i64, access: RuleAccess, source: String, target: String },
    NoRecordAccess { owner: String, module: String },
    UnknownOwner { owner: OwnerId },
    InactiveOwner { owner: String },
    /// Message module (§3.5).
    MessagePermission { permission: MessagePermission },
    AssignedToYou,
    /// `owner`: the group through which the user owns the linked record, if not directly.
    LinkedRecordOwner { owner: Option<String> },
    ArchivedWithoutPermission,
    NoConversationAccess,
    /// Calendar (§3.4).
    Invited,
    PublicEventBelow { owner: String },
    SharedCalendar { owner: String },
    NoEventAccess { owner: String, public: bool },
    /// Restriction rules (DESIGN §9): `rules` describes those that apply.
    Restricted { rules: String },
    /// A record share (DESIGN §9): who shared it, with whom (`user U`, `role R`, ...), and
    /// until when (PostgreSQL timestamptz microseconds; the caller writes it as a time), and
    /// the parent module when it is the parent record's share that reaches a child record.
    SharedRecord { by: String, with: String, access: RuleAccess, until: Option<i64>, through: Option<String> },
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::NoActingUser => write!(f, "no acting CRM user"),
            Reason::UnknownUser { user } => write!(f, "no CRM user is named {user}"),
            Reason::Disabled { user } => write!(f, "CRM user {user} is disabled"),
            Reason::UnknownModule { module } => write!(f, "no module is named {module}"),
            Reason::Admin { user } => write!(f, "{user} is an administrator"),
            Reason::ViewAll { source } => write!(f, "{source} grants View All"),
            Reason::EditAll { source } => write!(f, "{source} grants Edit All"),
            Reason::NotGranted { module, action } => write!(f, "revoked: no profile or permission set grants {action} on {module}"),
            Reason::ModuleLevel { module, action } => write!(f, "a profile or permission set grants {action} on {module}"),
            Reason::Owner => write!(f, "you own the record"),
            Reason::GroupMember { group } => write!(f, "the record is owned by group {group}, of which you are a member"),
            Reason::Subordinate { owner, owner_role, your_role } => {
                write!(f, "owner is {owner}, in role {owner_role} below your role {your_role}")
            }
            Reason::OrgDefault { module, level } => write!(f, "the org-wide default of {module} is {level}"),
            Reason::SharedByRule { rule, access, source, target } => {
                write!(f, "shared by rule {rule} ({}) from {source} to {target}", access.as_str())
            }
            Reason::NoRecordAccess { owner, module } => {
                write!(f, "the record is owned by {owner}, whose {module} records are not shared with you")
            }
            Reason::UnknownOwner { owner } => write!(f, "owner id {owner} is not a CRM user or group"),
            Reason::InactiveOwner { owner } => write!(f, "CRM user {owner} is disabled and cannot own records"),
            Reason::MessagePermission { permission } => write!(f, "a profile or permission set grants the {permission} message permission"),
            Reason::AssignedToYou => write!(f, "the conversation is assigned to you"),
            Reason::LinkedRecordOwner { owner: None } => write!(f, "you own the record the conversation is linked to"),
            Reason::LinkedRecordOwner { owner: Some(g) } => {
                write!(f, "the record the conversation is linked to is owned by group {g}, of which you are a member")
            }
            Reason::ArchivedWithoutPermission => write!(f, "you archived the conversation and hold no archive message permission"),
            Reason::Invited => write!(f, "you are invited to the event"),
            Reason::PublicEventBelow { owner } => write!(f, "the event is public and its owner {owner} is below your role"),
            Reason::SharedCalendar { owner } => write!(f, "the event is public and {owner} shares their calendar with you"),
            Reason::NoEventAccess { owner, public } => write!(
                f,
                "the event belongs to {owner}; {}",
                if *public { "it is public, but you are not above them and they do not share their calendar with you" } else { "it is private and you are not invited" }
            ),
            Reason::SharedRecord { by, with, access, until, through } => {
                write!(f, "shared by {by} with {with} ({})", access.as_str())?;
                if let Some(t) = until {
                    write!(f, " until {}", crate::record_shares::timestamp_text(*t))?;
                }
                match through {
                    Some(parent) => write!(f, " through its parent {parent} record"),
                    None => Ok(()),
                }
            }
            Reason::Restricted { rules } => write!(f, "the record is outside every restriction rule that applies to you: {rules}"),
            Reason::NoConversationAccess => {
                write!(f, "the conversation is not assigned to you, not linked to a record you own, and no message permission reaches it")
            }
        }
    }
}

impl Decision {
    pub fn allow(reason: Reason) -> Decision {
        Decision { allowed: true, reason }
    }

    pub fn deny(reason: Reason) -> Decision {
        Decision { allowed: false, reason }
    }
}

fn allow(reason: Reason) -> Decision {
    Decision::allow(reason)
}

fn deny(reason: Reason) -> Decision {
    Decision::deny(reason)
}

/// What the gate (`Model::gate`) makes of a request.
pub(crate) enum Gate<'a> {
    /// Decided, allowed or denied, before any record-level rule.
    Settled(Decision),
    /// The acting user, whose access the module's own rules decide.
    Open(UserRef<'a>),
}

impl Model {
    /// May `user` perform `action` on a `module` record owned by `owner`?
    /// For create/import/export the owner is not consulted (see `decide_assignment`).
    pub fn decide(&self, user: Option<OwnerId>, module: &str, action: Action, owner: OwnerId) -> Decision {
        let u = match self.gate(user, module, action) {
            Gate::Open(u) => u,
            Gate::Settled(decided) => return decided,
        };
        if !action.is_record_level() {
            return allow(Reason::ModuleLevel { module: module.to_string(), action });
        }
        self.decide_record(u, module, action, owner)
    }

    /// Steps 1–5 of DESIGN §3, common to records, conversations and events: who is acting,
    /// admins, View All / Edit All, and the module privilege. Either one of them settles the
    /// decision, or the acting user goes on to the module's own rules.
    pub(crate) fn gate(&self, user: Option<OwnerId>, module: &str, action: Action) -> Gate<'_> {
        let Some(user) = user else { return Gate::Settled(deny(Reason::NoActingUser)) };
        let Some(u) = self.users.get(&user) else { return Gate::Settled(deny(Reason::UnknownUser { user: user.to_string() })) };
        if !u.is_active {
            return Gate::Settled(deny(Reason::Disabled { user: u.name.to_string() }));
        }
        if !self.defaults.contains_key(module) {
            return Gate::Settled(deny(Reason::UnknownModule { module: module.to_string() }));
        }
        if u.is_admin {
            return Gate::Settled(allow(Reason::Admin { user: u.name.to_string() }));
        }
        let p = self.privileges_of(u);
        if let (Action::Read, Some(source)) = (action, &p.view_all) {
            return Gate::Settled(allow(Reason::ViewAll { source: source.clone() }));
        }
        if let (Action::Read | Action::Create | Action::Edit, Some(source)) = (action, &p.edit_all) {
            return Gate::Settled(allow(Reason::EditAll { source: source.clone() }));
        }
        if !p.granted(module, action) {
            return Gate::Settled(deny(Reason::NotGranted { module: module.to_string(), action }));
        }
        Gate::Open(u)
    }

    fn decide_record(&self, me: UserRef<'_>, module: &str, action: Action, owner: OwnerId) -> Decision {
        if owner == me.owner_id {
            return allow(Reason::Owner);
        }
        if let Some(g) = self.groups.get(&owner) {
            if self.is_member(me, owner, &mut BTreeSet::new()) {
                return allow(Reason::GroupMember { group: g.name.clone() });
            }
        }
        if let Some(o) = self.users.get(&owner) {
            if self.tree.is_strictly_above(me.role, o.role) {
                return allow(Reason::Subordinate {
                    owner: o.name.to_string(),
                    owner_role: self.tree.name(o.role).to_string(),
                    your_role: self.tree.name(me.role).to_string(),
                });
            }
        }
        let governing = self.catalog.sharing_module(module);
        if let Some(&level) = self.defaults.get(governing).filter(|d| d.opens(action)) {
            return allow(Reason::OrgDefault { module: governing.to_string(), level });
        }
        for r in self.rules.iter().filter(|r| r.rule.module == governing && r.rule.access.covers(action)) {
            let from_source = match r.rule.source {
                Party::Group(g) if g == owner => true,
                source => self.users.get(&owner).is_some_and(|o| self.party_has(source, o, &mut BTreeSet::new())),
            };
            if from_source && r.receives(me) {
                return allow(Reason::SharedByRule {
                    rule: r.rule.id,
                    access: r.rule.access,
                    source: self.describe(r.rule.source),
                    target: self.describe(r.rule.target),
                });
            }
        }
        let owner = self.owner_name(owner).map(str::to_string).unwrap_or_else(|| owner.to_string());
        deny(Reason::NoRecordAccess { owner, module: module.to_string() })
    }

    /// A child record's decision: its own owner first, then (if that denies) a rule on the
    /// parent module that carries access to `child_module` and whose source owns the parent.
    pub fn decide_child(
        &self,
        user: Option<OwnerId>,
        child_module: &str,
        parent_module: &str,
        action: Action,
        owner: OwnerId,
        parent_owner: Option<OwnerId>,
    ) -> Decision {
        let own = self.decide(user, child_module, action, owner);
        let (Some(p), false, Reason::NoRecordAccess { .. }) = (parent_owner, own.allowed, &own.reason) else { return own };
        let me = self.users.held(&user.expect("a record-level denial has a user"));
        for r in self.rules.iter().filter(|r| {
            r.rule.module == parent_module && r.rule.related_modules.iter().any(|m| m == child_module) && r.rule.access.covers(action)
        }) {
            let from_source = match r.rule.source {
                Party::Group(g) if g == p => true,
                source => self.users.get(&p).is_some_and(|o| self.party_has(source, o, &mut BTreeSet::new())),
            };
            if from_source && r.receives(me) {
                return allow(Reason::SharedByRule {
                    rule: r.rule.id,
                    access: r.rule.access,
                    source: format!("{} (through the parent {parent_module} record)", self.describe(r.rule.source)),
                    target: self.describe(r.rule.target),
                });
            }
        }
        own
    }

    /// Whether user `u` belongs to group `g`, following member groups upward from `u`.
    pub(crate) fn is_member(&self, u: UserRef<'_>, g: OwnerId, seen: &mut BTreeSet<OwnerId>) -> bool {
        seen.insert(g) && self.members.of(g).iter().any(|m| self.party_has(*m, u, seen))
    }

    fn party_has(&self, party: Party, u: UserRef<'_>, seen: &mut BTreeSet<OwnerId>) -> bool {
        match party {
            Party::User(id) => id == u.owner_id,
            Party::Role(r) => u.role == r,
            Party::RoleAndSubordinates(r) => u.role == r || self.tree.is_strictly_above(r, u.role),
            Party::Group(g) => self.is_member(u, g, seen),
        }
    }

    /// "role X", "role X and subordinates", "group G", "user U".
    pub fn describe(&self, party: Party) -> String {
        match party {
            Party::User(id) => format!("user {}", self.owner_name(id).unwrap_or("?")),
            Party::Role(r) => format!("role {}", self.tree.name(r)),
            Party::RoleAndSubordinates(r) => format!("role {} and subordinates", self.tree.name(r)),
            Party::Group(g) => format!("group {}", self.owner_name(g).unwrap_or("?")),
        }
    }

    /// May `user` create (`Create`) or re-own (`Edit`) a `module` record so that `owner` owns it?
    pub fn decide_assignment(&self, user: Option<OwnerId>, module: &str, action: Action, owner: OwnerId) -> Decision {
        let module_level = self.decide(user, module, action, owner);
        if !module_level.allowed {
            return module_level;
        }
        let is_group = self.groups.contains_key(&owner);
        match self.users.get(&owner) {
            None if !is_group => return deny(Reason::UnknownOwner { owner }),
            Some(o) if !o.is_active && action == Action::Create => {
                return deny(Reason::InactiveOwner { owner: o.name.to_string() })
            }
            _ => {}
        }
        let user = user.expect("an allowed decision has a user");
        if action == Action::Create && !self.edits_everything(user) {
            // The new owner must be one whose records the creator may then edit (§3.3).
            return self.decide_record(self.users.held(&user), module, Action::Edit, owner);
        }
        module_level
    }
}
