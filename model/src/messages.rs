//! The message module (DESIGN §3.5, seed 000): which conversations a user may see and act on.
//!
//! Conversations have no owner. They are reached through the profile message permissions
//! (`mine`, `all`, `new`, `archive`, independent of each other) on top of the Messages
//! module's actions: read to see, create to start, edit to reply, assign and archive,
//! delete to delete. View All / Edit All and admins come first, as for every module.
//!
//! `conversation_scope` is the top-down answer policies filter on; `decide_conversation`
//! judges one conversation from its facts. Tests hold them against each other.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use crate::access::Model;
use crate::decision::{Decision, Gate, Reason};
use crate::filter::{Column, Filter, Row, Value};
use crate::vocabulary::UnknownWord;
use crate::{Action, OwnerId};


#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MessagePermission {
    Mine,
    All,
    New,
    Archive,
}

impl MessagePermission {
    pub const ALL: [MessagePermission; 4] =
        [MessagePermission::Mine, MessagePermission::All, MessagePermission::New, MessagePermission::Archive];

    pub fn as_str(self) -> &'static str {
        match self {
            MessagePermission::Mine => "mine",
            MessagePermission::All => "all",
            MessagePermission::New => "new",
            MessagePermission::Archive => "archive",
        }
    }
}

impl FromStr for MessagePermission {
    type Err = UnknownWord;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        MessagePermission::ALL.iter().copied().find(|p| p.as_str() == s).ok_or_else(|| UnknownWord {
            kind: "message permission",
            word: s.to_string(),
            expected: MessagePermission::ALL.map(MessagePermission::as_str).join(", "),
        })
    }
}

impl fmt::Display for MessagePermission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What decides a conversation's visibility, as stored on the row.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Conversation {
    pub assigned_to: Option<OwnerId>,
    /// The owner of the linked lead or contact (kept by triggers), if linked.
    pub linked_owner: Option<OwnerId>,
    pub is_new: bool,
    pub archived_by: Vec<OwnerId>,
}

/// The conversations a user may act on, as a filter over the row's columns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConversationScope {
    Nothing,
    /// Every conversation, archived ones included.
    All,
    Filter(ConversationFilter),
}

/// `(every | assigned_to = user OR linked_owner ∈ owned | is_new) AND NOT archived by user`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConversationFilter {
    pub user: OwnerId,
    /// `all`: every conversation (then only the archive condition applies).
    pub every: bool,
    /// `mine`: conversations assigned to the user or linked to a record owned by one of
    /// these owners (the user and the groups the user belongs to), sorted.
    pub mine: Option<Vec<OwnerId>>,
    /// `new`: conversations flagged new.
    pub new: bool,
    /// Without `archive`, what the user archived is hidden from them.
    pub hide_archived: bool,
}

impl ConversationScope {
    /// The scope as a filter over `crm.can_converse`'s row arguments.
    pub fn filter(&self) -> Filter {
        match self {
            ConversationScope::Nothing => Filter::Const(false),
            ConversationScope::All => Filter::Const(true),
            ConversationScope::Filter(f) => {
                let reached = if f.every {
                    Filter::Const(true)
                } else {
                    Filter::or([
                        match &f.mine {
                            Some(owned) => Filter::or([
                                Filter::Eq(Conversation::ASSIGNED_TO, f.user),
                                Filter::any_of_ids(Conversation::LINKED_OWNER, owned),
                            ]),
                            None => Filter::Const(false),
                        },
                        if f.new { Filter::Is(Conversation::IS_NEW) } else { Filter::Const(false) },
                    ])
                };
                let archived = if f.hide_archived { Filter::negate(Filter::Contains(Conversation::ARCHIVED_BY, f.user)) } else { Filter::Const(true) };
                Filter::and([reached, archived])
            }
        }
    }
}

impl Conversation {
    pub const ASSIGNED_TO: Column = "assigned_to";
    pub const LINKED_OWNER: Column = "linked_owner";
    pub const IS_NEW: Column = "is_new";
    pub const ARCHIVED_BY: Column = "archived_by";
    /// The columns in the order `crm.can_converse` takes them after the action.
    pub const COLUMNS: [Column; 4] = [Conversation::ASSIGNED_TO, Conversation::LINKED_OWNER, Conversation::IS_NEW, Conversation::ARCHIVED_BY];
}

impl Row for Conversation {
    fn value(&self, column: &str) -> Option<Value<'_>> {
        match column {
            Conversation::ASSIGNED_TO => Some(Value::Id(self.assigned_to)),
            Conversation::LINKED_OWNER => Some(Value::Id(self.linked_owner)),
            Conversation::IS_NEW => Some(Value::Flag(Some(self.is_new))),
            Conversation::ARCHIVED_BY => Some(Value::Ids(Some(&self.archived_by))),
            _ => None,
        }
    }
}

/// The five inbox tabs (DESIGN §3.5). Each shows, of what the user may read, these rows;
/// archived conversations appear only under Archive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inbox {
    All,
    AssignedToMe,
    MyUnassigned,
    Archive,
    New,
}

impl Inbox {
    pub const TABS: [Inbox; 5] = [Inbox::All, Inbox::AssignedToMe, Inbox::MyUnassigned, Inbox::Archive, Inbox::New];

    /// The view that shows this tab.
    pub fn view(self) -> &'static str {
        match self {
            Inbox::All => "crm.inbox_all",
            Inbox::AssignedToMe => "crm.inbox_assigned_to_me",
            Inbox::MyUnassigned => "crm.inbox_my_unassigned",
            Inbox::Archive => "crm.inbox_archive",
            Inbox::New => "crm.inbox_new",
        }
    }
}

impl Model {
    /// The module whose actions govern conversations and their messages (the seed's
    /// Messages); none, and nothing is granted on them, if the catalog has no such module.
    pub fn messages_module(&self) -> &str {
        self.catalog.module_for(crate::Holds::Conversations).unwrap_or("")
    }
}

impl Model {
    pub(crate) fn message_permissions(&self, user: OwnerId) -> BTreeSet<MessagePermission> {
        self.users.get(&user).map(|u| self.privileges_of(u).messages.clone()).unwrap_or_default()
    }

    /// The user and the groups the user belongs to: whose records count as the user's own.
    pub fn owned_by(&self, user: OwnerId) -> Vec<OwnerId> {
        let mut owned: Vec<OwnerId> = std::iter::once(user).chain(self.groups_of(user)).collect();
        owned.sort_unstable();
        owned.dedup();
        owned
    }

    /// Which conversations `user` may `action` (read, create, edit, delete). A new
    /// conversation must be one its creator could then see: create filters like read.
    pub fn conversation_scope(&self, user: OwnerId, action: Action) -> ConversationScope {
        let Some(u) = self.users.get(&user).filter(|u| u.is_active) else { return ConversationScope::Nothing };
        if u.is_admin {
            return ConversationScope::All;
        }
        let p = self.privileges_of(u);
        if (action == Action::Read && p.view_all.is_some())
            || (matches!(action, Action::Read | Action::Create | Action::Edit) && p.edit_all.is_some())
        {
            return ConversationScope::All;
        }
        if !p.granted(self.messages_module(), action) {
            return ConversationScope::Nothing;
        }
        let has = |m| p.messages.contains(&m);
        let f = ConversationFilter {
            user,
            every: has(MessagePermission::All),
            mine: has(MessagePermission::Mine).then(|| self.owned_by(user)),
            new: has(MessagePermission::New),
            hide_archived: !has(MessagePermission::Archive),
        };
        match f {
            ConversationFilter { every: false, mine: None, new: false, .. } => ConversationScope::Nothing,
            ConversationFilter { every: true, hide_archived: false, .. } => ConversationScope::All,
            f => ConversationScope::Filter(f),
        }
    }

    /// One conversation's decision, judged from its facts, with the reason.
    pub fn decide_conversation(&self, user: Option<OwnerId>, action: Action, c: &Conversation) -> Decision {
        let u = match self.gate(user, self.messages_module(), action) {
            Gate::Open(u) => u,
            Gate::Settled(decided) => return decided,
        };
        let (user, p) = (u.owner_id, self.privileges_of(u));
        if !matches!(action, Action::Read | Action::Create | Action::Edit | Action::Delete) {
            return Decision::allow(Reason::ModuleLevel { module: self.messages_module().to_string(), action });
        }
        let has = |m| p.messages.contains(&m);
        if c.archived_by.contains(&user) && !has(MessagePermission::Archive) {
            return Decision::deny(Reason::ArchivedWithoutPermission);
        }
        if has(MessagePermission::All) {
            return Decision::allow(Reason::MessagePermission { permission: MessagePermission::All });
        }
        if has(MessagePermission::Mine) {
            if c.assigned_to == Some(user) {
                return Decision::allow(Reason::AssignedToYou);
            }
            if let Some(owner) = c.linked_owner {
                if owner == user {
                    return Decision::allow(Reason::LinkedRecordOwner { owner: None });
                }
                if let Some(g) = self.group(owner) {
                    if self.is_member(u, owner, &mut BTreeSet::new()) {
                        return Decision::allow(Reason::LinkedRecordOwner { owner: Some(g.name.clone()) });
                    }
                }
            }
        }
        if has(MessagePermission::New) && c.is_new {
            return Decision::allow(Reason::MessagePermission { permission: MessagePermission::New });
        }
        Decision::deny(Reason::NoConversationAccess)
    }

    /// Whether the conversation belongs in `tab` for `user`, given that the user may read it.
    pub fn in_tab(&self, user: OwnerId, tab: Inbox, c: &Conversation) -> bool {
        let archived = c.archived_by.contains(&user);
        match tab {
            Inbox::All => !archived,
            Inbox::AssignedToMe => !archived && c.assigned_to == Some(user),
            Inbox::MyUnassigned => {
                !archived && c.assigned_to.is_none() && c.linked_owner.is_some_and(|o| self.owned_by(user).contains(&o))
            }
            Inbox::Archive => archived,
            Inbox::New => !archived && c.is_new,
        }
    }

    /// May `user` archive (or unarchive) conversations at all: admins, and users holding
    /// the `archive` message permission. The conversation itself must be editable too.
    pub fn may_archive(&self, user: OwnerId) -> bool {
        self.users.get(&user).is_some_and(|u| u.is_active && u.is_admin) || self.message_permissions(user).contains(&MessagePermission::Archive)
    }
}
