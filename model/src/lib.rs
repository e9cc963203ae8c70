//! The crm_access permission engine, free of pgrx.
//!
//! `Catalog` is a plain snapshot of the `crm.*` tables; `Model::compile` validates it and
//! precomputes the role tree; `Model::scope` gives the owner set a policy filters on, and
//! `Model::decide` gives one record's decision with the step of DESIGN §3 that made it.
//! The two are computed independently (down the tree for scopes, up the tree for decisions)
//! so that tests can hold each against the other and against what RLS returns. Each scope
//! also reads as a `Filter`, the data the planner turns into an expression and the run-time
//! fallback evaluates.

mod access;
mod calendar;
mod catalog;
mod decision;
mod fields;
mod filter;
mod grouped;
mod groups;
mod messages;
mod patch;
mod record_shares;
mod restriction;
mod review;
mod roles;
mod shared;
mod users;
mod vocabulary;

pub use access::{Model, ModelError, Scope};
pub use users::UserRef;
pub use catalog::{Catalog, Group, GroupMember, Holds, Module, Party, Profile, Restricted, RestrictionRule, Role, RuleAccess, SharingRule, User};
pub use calendar::{Event, EventScope};
pub use decision::{Decision, Reason};
pub use fields::{FieldAccess, Unwritable};
pub use filter::{Column, Filter, Owned, Row, Value, OWNER};
pub use messages::{Conversation, ConversationFilter, ConversationScope, Inbox, MessagePermission};
pub use record_shares::{RecordShare, ShareParties};
pub use review::{Reach, ReachChange, Review};
pub use roles::RoleTree;
pub use vocabulary::{Action, SharingLevel, UnknownWord};

/// Users and groups share one id space: a protected table's owner column holds either.
pub type OwnerId = i64;
pub type RoleId = i64;
pub type ProfileId = i64;
