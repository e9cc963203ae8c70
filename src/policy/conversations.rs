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

use std::ffi::c_char;
use std::rc::Rc;

use crm_model::{Action, Conversation, ConversationFilter, ConversationScope, OwnerId};
use pgrx::prelude::*;
use pgrx::{is_a, pg_sys, Internal, PgList};

use super::enforce::{model, parse_action, refused};
use super::simplify::{const_value, declined, owner_in, INT8_EQ_OPERATOR};
use crate::error::{CrmResult, OrRaise};
use crate::session::identity;

/// Which conversations the acting user may `action`. Reads by someone who cannot act (or
/// on a broken catalog) reach nothing; writes by them are refused with an error.
pub fn conversation_access(action: Action, planning: bool) -> CrmResult<Rc<ConversationScope>> {
    let Some(m) = model(action, planning)? else { return Ok(Rc::new(ConversationScope::Nothing)) };
    match identity::acting_user(&m)? {
        Ok(u) => Ok(m.conversation_scope(u.owner_id, action)),
        Err(_) if action == Action::Read => Ok(Rc::new(ConversationScope::Nothing)),
        Err(reason) => Err(refused(&reason, action, "conversations")),
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
fn can_converse(action: &str, assigned_to: Option<i64>, linked_owner: Option<i64>, is_new: Option<bool>, archived_by: Option<Vec<Option<i64>>>) -> bool {
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

/// The request node, if it is a simplification request.
unsafe fn simplify_request(request: Internal) -> Option<*mut pg_sys::FuncExpr> {
    let node = request.unwrap().map(|d| d.cast_mut_ptr::<pg_sys::Node>())?;
    if node.is_null() || !is_a(node, pg_sys::NodeTag::T_SupportRequestSimplify) {
        return None;
    }
    Some((*(node as *mut pg_sys::SupportRequestSimplify)).fcall)
}

fn answer(expr: Option<*mut pg_sys::Node>) -> Internal {
    match expr {
        Some(e) => Internal::from(Some(pg_sys::Datum::from(e))),
        None => declined(),
    }
}

#[pg_extern(immutable, parallel_safe)]
fn can_converse_support(request: Internal) -> Internal {
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
    let copy = |n: *mut pg_sys::Node| pg_sys::copyObjectImpl(n.cast()).cast::<pg_sys::Node>();
    let [assigned_to, linked_owner, is_new, archived_by] = [columns[0], columns[1], columns[2], columns[3]];
    let mut reach = PgList::<pg_sys::Node>::new();
    if let Some(owned) = &f.mine {
        reach.push(int8_eq(copy(assigned_to), int8_const(f.user)));
        reach.push(owner_in(linked_owner, owned));
    }
    if f.new {
        reach.push(copy(is_new));
    }
    let reached = match (f.every, reach.len()) {
        (true, _) => None,
        (false, 1) => Some(reach.get_ptr(0).expect("one branch")),
        (false, _) => Some(pg_sys::makeBoolExpr(pg_sys::BoolExprType::OR_EXPR, reach.into_pg(), -1).cast()),
    };
    let not_archived = f.hide_archived.then(|| {
        let contains = pg_sys::make_opclause(
            pg_sys::Oid::from(pg_sys::OID_ARRAY_CONTAINS_OP),
            pg_sys::BOOLOID,
            false,
            copy(archived_by).cast(),
            int8_array_const(&[f.user]).cast(),
            pg_sys::InvalidOid,
            pg_sys::InvalidOid,
        );
        (*contains.cast::<pg_sys::OpExpr>()).opfuncid = pg_sys::Oid::from(pg_sys::F_ARRAYCONTAINS);
        pg_sys::make_notclause(contains.cast()).cast::<pg_sys::Node>()
    });
    match (reached, not_archived) {
        (Some(r), Some(n)) => {
            let mut both = PgList::<pg_sys::Node>::new();
            both.push(r);
            both.push(n);
            pg_sys::makeBoolExpr(pg_sys::BoolExprType::AND_EXPR, both.into_pg(), -1).cast()
        }
        (Some(e), None) | (None, Some(e)) => e,
        (None, None) => bool_const(true),
    }
}

unsafe fn bool_const(value: bool) -> *mut pg_sys::Node {
    pg_sys::makeBoolConst(value, false)
}

unsafe fn int8_const(value: i64) -> *mut pg_sys::Node {
    pg_sys::makeConst(pg_sys::INT8OID, -1, pg_sys::InvalidOid, 8, pg_sys::Datum::from(value), false, true).cast()
}

unsafe fn int8_array_const(values: &[i64]) -> *mut pg_sys::Node {
    let mut datums: Vec<pg_sys::Datum> = values.iter().map(|&v| pg_sys::Datum::from(v)).collect();
    let array = pg_sys::construct_array(datums.as_mut_ptr(), datums.len() as i32, pg_sys::INT8OID, 8, true, b'd' as c_char);
    pg_sys::makeConst(pg_sys::INT8ARRAYOID, -1, pg_sys::InvalidOid, -1, pg_sys::Datum::from(array), false, false).cast()
}

unsafe fn int8_eq(left: *mut pg_sys::Node, right: *mut pg_sys::Node) -> *mut pg_sys::Node {
    let op = pg_sys::make_opclause(INT8_EQ_OPERATOR, pg_sys::BOOLOID, false, left.cast(), right.cast(), pg_sys::InvalidOid, pg_sys::InvalidOid);
    (*op.cast::<pg_sys::OpExpr>()).opfuncid = pg_sys::Oid::from(pg_sys::F_INT8EQ);
    op.cast()
}
