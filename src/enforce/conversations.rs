//! Row security for the message module's own tables (DESIGN §3.5): `crm.conversations`
//! and `crm.messages` (which carries a trigger-kept copy of its conversation's columns).
//!
//! Conversations have no owner, so they get their own policy function,
//! `crm.can_converse(action, assigned_to, linked_owner, is_new, archived_by)`, specialised
//! at plan time like `crm.can`: into `true`, `false`, or for a user holding `mine` and `new`
//! without `archive`, `(assigned_to = 7 OR linked_owner = ANY('{7,40}') OR is_new)
//! AND NOT (archived_by @> '{7}')`: constants and plain columns, each branch indexable.

use std::rc::Rc;

use crm_model::{Action, Conversation, Filter};
use pgrx::prelude::*;

use super::{acting_filter, parse_action};
use crate::error::{CrmResult, OrRaise};

/// Which conversations the acting user may `action`, over `crm.can_converse`'s row
/// arguments. Reads by someone who cannot act (or on a broken catalog) reach nothing; writes
/// by them are refused with an error.
pub fn conversation_access(action: Action, planning: bool) -> CrmResult<Rc<Filter>> {
    acting_filter(action, planning, "conversations", |m, user| m.conversation_filter(user, action))
}

#[pg_extern(
    sql = "CREATE FUNCTION crm.can_converse(action text, assigned_to bigint, linked_owner bigint, is_new boolean, archived_by bigint[])
           RETURNS boolean STABLE PARALLEL SAFE LANGUAGE c SUPPORT crm.can_converse_support AS 'MODULE_PATHNAME', '@FUNCTION_NAME@';",
    requires = [planner::support::can_converse_support]
)]
fn can_converse(action: Option<&str>, assigned_to: Option<i64>, linked_owner: Option<i64>, is_new: Option<bool>, archived_by: Option<Vec<Option<i64>>>) -> bool {
    let Some(action) = action else { return false };
    conversation_access(parse_action(action), false).or_raise().admits(&Conversation {
        assigned_to,
        linked_owner,
        is_new: is_new.unwrap_or(false),
        archived_by: archived_by.unwrap_or_default().into_iter().flatten().collect(),
    })
}
