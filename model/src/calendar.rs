//! Calendar sharing (DESIGN §3.4, §4; seed 004): events belong to the Activities module and
//! are private by default. Everyone who may read Activities knows every event's slot (busy);
//! details are readable by the owner, invitees, admins and View All, and, for public events,
//! by users above the owner in the role hierarchy and users the owner shared the calendar
//! with. Edit: owner, admins, Edit All, users above the owner for public events. Delete:
//! owner, admins, users above the owner for public events. A new event belongs to its
//! creator (admins and Edit All may create events for anyone).

use std::collections::BTreeSet;

use crate::access::Model;
use crate::decision::{Decision, Gate, Reason};
use crate::filter::{Column, Filter, Row, Value};
use crate::{Action, OwnerId};


/// What decides an event's audience, as stored on the row.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Event {
    pub owner: OwnerId,
    pub invitees: Vec<OwnerId>,
    pub public: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventScope {
    Nothing,
    All,
    /// `owner = user OR (invited AND invitees ∋ user) OR (public AND owner ∈ public_owners)`.
    Filter { user: OwnerId, invited: bool, public_owners: Vec<OwnerId> },
}

impl EventScope {
    /// The scope as a filter over `crm.can_see_event`'s row arguments.
    pub fn filter(&self) -> Filter {
        match self {
            EventScope::Nothing => Filter::Const(false),
            EventScope::All => Filter::Const(true),
            EventScope::Filter { user, invited, public_owners } => Filter::or([
                Filter::Eq(Event::OWNER, *user),
                if *invited { Filter::Contains(Event::INVITEES, *user) } else { Filter::Const(false) },
                Filter::and([Filter::Is(Event::PUBLIC), Filter::any_of_ids(Event::OWNER, public_owners)]),
            ]),
        }
    }
}

impl Event {
    pub const OWNER: Column = "owner_id";
    pub const INVITEES: Column = "invitees";
    pub const PUBLIC: Column = "is_public";
    /// The columns in the order `crm.can_see_event` takes them after the action.
    pub const COLUMNS: [Column; 3] = [Event::OWNER, Event::INVITEES, Event::PUBLIC];
}

impl Row for Event {
    fn value(&self, column: &str) -> Option<Value<'_>> {
        match column {
            Event::OWNER => Some(Value::Id(Some(self.owner))),
            Event::INVITEES => Some(Value::Ids(Some(&self.invitees))),
            Event::PUBLIC => Some(Value::Flag(Some(self.public))),
            _ => None,
        }
    }
}

impl Model {
    /// The module whose actions govern events (the seed's Activities); none, and nothing is
    /// granted on them, if the catalog has no such module.
    pub fn events_module(&self) -> &str {
        self.catalog.module_for(crate::Holds::Events).unwrap_or("")
    }
}

impl Model {
    /// Whether `user` sees the calendar at all (every event's slot): Activities read.
    pub fn knows_events(&self, user: OwnerId) -> bool {
        self.event_scope(user, Action::Read) != EventScope::Nothing
    }

    /// Which events `user` may `action`: for read, whose details the user may see.
    pub fn event_scope(&self, user: OwnerId, action: Action) -> EventScope {
        let Some(u) = self.users.get(&user).filter(|u| u.is_active) else { return EventScope::Nothing };
        if u.is_admin {
            return EventScope::All;
        }
        let p = self.privileges_of(u);
        if (action == Action::Read && p.view_all.is_some())
            || (matches!(action, Action::Read | Action::Create | Action::Edit) && p.edit_all.is_some())
        {
            return EventScope::All;
        }
        if !p.granted(self.events_module(), action) {
            return EventScope::Nothing;
        }
        let mut public_owners: BTreeSet<OwnerId> = BTreeSet::new();
        if matches!(action, Action::Read | Action::Edit | Action::Delete) {
            public_owners.extend(self.subordinates(u));
        }
        if action == Action::Read {
            public_owners.extend(self.catalog.calendar_shares.iter().filter(|(_, with)| *with == user).map(|(owner, _)| *owner));
        }
        match action {
            Action::Read | Action::Edit | Action::Delete | Action::Create => EventScope::Filter {
                user,
                invited: action == Action::Read,
                public_owners: public_owners.into_iter().collect(),
            },
            // Import and export are module-level.
            _ => EventScope::All,
        }
    }

    /// One event's decision, judged from its facts, with the reason.
    pub fn decide_event(&self, user: Option<OwnerId>, action: Action, e: &Event) -> Decision {
        let u = match self.gate(user, self.events_module(), action) {
            Gate::Open(u) => u,
            Gate::Settled(decided) => return decided,
        };
        let user = u.owner_id;
        if matches!(action, Action::Import | Action::Export) {
            return Decision::allow(Reason::ModuleLevel { module: self.events_module().to_string(), action });
        }
        if e.owner == user {
            return Decision::allow(Reason::Owner);
        }
        if action == Action::Read && e.invitees.contains(&user) {
            return Decision::allow(Reason::Invited);
        }
        let owner = self.users.get(&e.owner);
        if e.public && matches!(action, Action::Read | Action::Edit | Action::Delete) {
            if let Some(o) = owner.filter(|o| self.tree.is_strictly_above(u.role, o.role)) {
                return Decision::allow(Reason::PublicEventBelow { owner: o.name.to_string() });
            }
        }
        if e.public && action == Action::Read && self.catalog.calendar_shares.contains(&(e.owner, user)) {
            return Decision::allow(Reason::SharedCalendar { owner: self.owner_name(e.owner).unwrap_or("?").to_string() });
        }
        let owner = self.owner_name(e.owner).map(str::to_string).unwrap_or_else(|| e.owner.to_string());
        Decision::deny(Reason::NoEventAccess { owner, public: e.public })
    }
}
