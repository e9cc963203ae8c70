//! Row security for the message module's own tables (DESIGN §3.5): `crm.conversations`
//! and `crm.messages` (which carries a trigger-kept copy of its conversation's columns).
//!
//! Conversations have no owner, so they get their own policy function,
//! `crm.can_converse(action, assigned_to, linked_owner, is_new, archived_by)`, specialised
//! at plan time like `crm.can`: into `true`, `false`, or for a user holding `mine` and `new`
//! without `archive`, `(assigned_to = 7 OR linked_owner = ANY('{7,40}') OR is_new)
//! AND NOT (archived_by @> '{7}')`: constants and plain columns, each branch indexable.
//! `crm.acting_owner_id()` and `crm.acting_owner_ids()` give the inbox views the acting
//! user as constants the same way, so the views stay sargable too.

use std::rc::Rc;

use crm_model::{Action, Conversation, ConversationFilter, ConversationScope, OwnerId};
use pgrx::prelude::*;
use pgrx::{pg_sys, Internal, PgList};

use super::enforce::{model, parse_action};
use super::nodes::{all_of, any_of, array_contains, bool_const, copy, int8_array_const, int8_const, int8_eq, owner_in};
use super::simplify::{answer, const_value, declined, simplify_request};
use crate::error::{CrmError, CrmResult, OrRaise};
use crate::session::identity;

/// Which conversations the acting user may `action`. Reads by someone who cannot act (or
/// on a broken catalog) reach nothing; writes by them are refused with an error.
pub fn conversation_access(action: Action, planning: bool) -> CrmResult<Rc<ConversationScope>> {
    let Some(m) = model(action, planning)? else { return Ok(Rc::new(ConversationScope::Nothing)) };
    match identity::acting_user(&m)? {
        Ok(u) => Ok(m.conversation_scope(u.owner_id, action)),
        Err(_) if action == Action::Read => Ok(Rc::new(ConversationScope::Nothing)),
        Err(reason) => Err(CrmError::cannot_act(&reason, action, "conversations")),
    }
}

/// The acting user's owner id, and the owners whose records count as theirs (the user and
/// their groups); `None` when nobody may act.
fn acting_owners() -> Option<(OwnerId, Vec<OwnerId>)> {
    let m = model(Action::Read, true).or_raise()?;
    let u = identity::acting_user(&m).or_raise().ok()?;
    Some((u.owner_id, m.model.owned_by(u.owner_id)))
}

#[pg_extern(
    sql = "CREATE FUNCTION crm.can_converse(action text, assigned_to bigint, linked_owner bigint, is_new boolean, archived_by bigint[])
           RETURNS boolean STABLE PARALLEL SAFE LANGUAGE c SUPPORT crm.can_converse_support AS 'MODULE_PATHNAME', '@FUNCTION_NAME@';",
    requires = [can_converse_support]
)]
fn can_converse(action: Option<&str>, assigned_to: Option<i64>, linked_owner: Option<i64>, is_new: Option<bool>, archived_by: Option<Vec<Option<i64>>>) -> bool {
    let Some(action) = action else { return false };
    let scope = conversation_access(parse_action(action), false).or_raise();
    scope.admits(&Conversation {
        assigned_to,
        linked_owner,
        is_new: is_new.unwrap_or(false),
        archived_by: archived_by.unwrap_or_default().into_iter().flatten().collect(),
    })
}

#[pg_extern(
    sql = "CREATE FUNCTION crm.acting_owner_id() RETURNS bigint
           STABLE PARALLEL SAFE LANGUAGE c SUPPORT crm.acting_owner_support AS 'MODULE_PATHNAME', '@FUNCTION_NAME@';",
    requires = [acting_owner_support]
)]
fn acting_owner_id() -> Option<i64> {
    acting_owners().map(|(me, _)| me)
}

#[pg_extern(
    sql = "CREATE FUNCTION crm.acting_owner_ids() RETURNS bigint[]
           STABLE PARALLEL SAFE LANGUAGE c SUPPORT crm.acting_owner_support AS 'MODULE_PATHNAME', '@FUNCTION_NAME@';",
    requires = [acting_owner_support]
)]
fn acting_owner_ids() -> Vec<i64> {
    acting_owners().map(|(_, owned)| owned).unwrap_or_default()
}

#[pg_extern(immutable, parallel_safe)]
fn can_converse_support(request: Internal) -> Internal {
    // SAFETY: PostgreSQL calls a support function with a valid SupportRequest node, and the
    // FuncExpr it names (and its argument list) live in the planner's memory for this call;
    // the nodes built here are allocated there too.
    unsafe {
        let Some(fcall) = simplify_request(request) else { return declined() };
        let args = PgList::<pg_sys::Node>::from_pg((*fcall).args);
        let Some(action) = args.get_ptr(0).and_then(|a| const_value::<String>(a)).and_then(|a| a.parse::<Action>().ok()) else {
            return declined();
        };
        let columns: Option<Vec<_>> = (1..5).map(|i| args.get_ptr(i)).collect();
        let Some(columns) = columns else { return declined() };
        let scope = conversation_access(action, true).or_raise();
        answer(Some(filter_expr(&scope, &columns)))
    }
}

#[pg_extern(immutable, parallel_safe)]
fn acting_owner_support(request: Internal) -> Internal {
    // SAFETY: PostgreSQL calls a support function with a valid SupportRequest node, and the
    // FuncExpr it names (and its argument list) live in the planner's memory for this call;
    // the nodes built here are allocated there too.
    unsafe {
        let Some(fcall) = simplify_request(request) else { return declined() };
        let owners = acting_owners();
        let expr = if (*fcall).funcresulttype == pg_sys::INT8OID {
            match owners {
                Some((me, _)) => int8_const(me),
                None => pg_sys::makeNullConst(pg_sys::INT8OID, -1, pg_sys::InvalidOid).cast(),
            }
        } else {
            int8_array_const(&owners.map(|(_, owned)| owned).unwrap_or_default())
        };
        answer(Some(expr))
    }
}

/// The scope as an expression over the row's columns `[assigned_to, linked_owner, is_new,
/// archived_by]` (the argument nodes of the call).
unsafe fn filter_expr(scope: &ConversationScope, columns: &[*mut pg_sys::Node]) -> *mut pg_sys::Node {
    let f: &ConversationFilter = match scope {
        ConversationScope::Nothing => return bool_const(false),
        ConversationScope::All => return bool_const(true),
        ConversationScope::Filter(f) => f,
    };
    let [assigned_to, linked_owner, is_new, archived_by] = [columns[0], columns[1], columns[2], columns[3]];
    let mut reach = PgList::<pg_sys::Node>::new();
    if let Some(owned) = &f.mine {
        reach.push(int8_eq(copy(assigned_to), int8_const(f.user)));
        reach.push(owner_in(linked_owner, owned));
    }
    if f.new {
        reach.push(copy(is_new));
    }
    let reached = (!f.every).then(|| any_of(reach));
    let not_archived = f.hide_archived.then(|| {
        pg_sys::make_notclause(array_contains(copy(archived_by), f.user).cast()).cast::<pg_sys::Node>()
    });
    let mut all = PgList::<pg_sys::Node>::new();
    for e in [reached, not_archived].into_iter().flatten() {
        all.push(e);
    }
    all_of(all)
}
