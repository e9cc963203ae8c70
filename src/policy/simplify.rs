//! Plan-time specialisation of the policies (DESIGN §6).
//!
//! One static policy cannot give every viewer its best plan: `owner = ANY(f())` scans an
//! index for a rep but filters every row for an admin, and `(SELECT sees_all()) OR ...`
//! defeats the index for everyone. So the planner asks these support functions to replace
//! `crm.can(tbl, action, owner)` with what the acting user may reach, as constants:
//! `true` (no filter at all), `false`, or `owner = ANY('{...}'::bigint[])`, which the
//! planner estimates exactly and matches to an index on the owner column.
//!
//! Safe because such a plan is never reused for another user or another catalog: each one
//! is marked when it is built, and changing `crm.user_name` (`session::guc`) or committing a
//! catalog change (`session::cache`) invalidates every marked plan (`session::plans`); a
//! change of login role re-plans through PostgreSQL's own RLS check. Only expressions of a
//! query being planned are simplified, and the trigger WHEN conditions of `policy::fields`,
//! which live for one statement (see `simplify_request`). If no simplification happens, the
//! functions compute the same answer at run time.

use crm_model::Action;
use pgrx::prelude::*;
use pgrx::{is_a, pg_sys, Internal, PgList};

use super::enforce::{self, Access, Assignable};
use super::nodes::owner_in;
use crate::error::OrRaise;
use crate::session::plans;

#[derive(Clone, Copy)]
enum Policy {
    Access,
    AccessViaParent,
    Assignment,
}

#[pg_extern(immutable, parallel_safe)]
fn can_support(request: Internal) -> Internal {
    support(request, Policy::Access)
}

#[pg_extern(immutable, parallel_safe)]
fn can_via_parent_support(request: Internal) -> Internal {
    support(request, Policy::AccessViaParent)
}

#[pg_extern(immutable, parallel_safe)]
fn can_assign_support(request: Internal) -> Internal {
    support(request, Policy::Assignment)
}

/// A support function answers NULL (a null pointer, not SQL NULL) when it declines.
pub(super) fn declined() -> Internal {
    Internal::from(Some(pg_sys::Datum::from(0usize)))
}

/// The call to simplify, if the request is a simplification request made while planning a
/// query. Expressions PostgreSQL simplifies outside a query (no `root`) are kept far longer
/// than the acting user: a domain's CHECK for the backend's life, an index predicate or
/// expression, a partition key in the relcache. Specialised there, one user's decisions would
/// serve every later user of the backend (an index predicate would even stand in for the row
/// policy it implies), so those keep the call, evaluated at run time for whoever acts.
///
/// The plan being built is marked as holding a decision (`session::plans`), so that a new
/// acting user or catalog re-plans it and nothing else.
pub(super) unsafe fn simplify_request(request: Internal) -> Option<*mut pg_sys::FuncExpr> {
    let req = simplify_request_anywhere(request)?;
    plans::depends_on_acting_user((*req).root).then(|| (*req).fcall)
}

/// Any simplification request, with or without a query being planned (see `simplify_request`).
pub(super) unsafe fn simplify_request_anywhere(request: Internal) -> Option<*mut pg_sys::SupportRequestSimplify> {
    let node = request.unwrap().map(|d| d.cast_mut_ptr::<pg_sys::Node>())?;
    if node.is_null() || !is_a(node, pg_sys::NodeTag::T_SupportRequestSimplify) {
        return None;
    }
    Some(node as *mut pg_sys::SupportRequestSimplify)
}

/// The support function's answer: the replacement expression, or a refusal.
pub(super) fn answer(expr: Option<*mut pg_sys::Node>) -> Internal {
    match expr {
        Some(e) => Internal::from(Some(pg_sys::Datum::from(e))),
        None => declined(),
    }
}

fn support(request: Internal, policy: Policy) -> Internal {
    // SAFETY: PostgreSQL calls a support function with a valid SupportRequest node, and the
    // FuncExpr it names (and its argument list) live in the planner's memory for this call;
    // the nodes built here are allocated there too.
    unsafe {
        let Some(fcall) = simplify_request(request) else { return declined() };
        match simplify(fcall, policy) {
            Some(expr) => Internal::from(Some(pg_sys::Datum::from(expr))),
            None => declined(),
        }
    }
}

unsafe fn simplify(fcall: *mut pg_sys::FuncExpr, policy: Policy) -> Option<*mut pg_sys::Node> {
    let args = PgList::<pg_sys::Node>::from_pg((*fcall).args);
    let tbl = const_value::<pg_sys::Oid>(args.get_ptr(0)?)?;
    let action: Action = const_value::<String>(args.get_ptr(1)?)?.parse().ok()?;
    let owner = args.get_ptr(2)?;
    let access = match policy {
        Policy::Access => Some(enforce::access(tbl, action, true).or_raise()),
        Policy::AccessViaParent => Some(enforce::access_via_parent(tbl, action, true).or_raise()),
        Policy::Assignment => None,
    };
    Some(match access {
        Some(access) => match access {
            Access::All => pg_sys::makeBoolConst(true, false),
            Access::Nothing => pg_sys::makeBoolConst(false, false),
            Access::Owners(scope) => match &*scope {
                crm_model::Scope::Owners(owners) => owner_in(owner, owners),
                crm_model::Scope::All => pg_sys::makeBoolConst(true, false),
            },
        },
        // Rows whose owner is in the set pass without a call; any other row reaches
        // crm.assert_can_assign, which raises an error that says why.
        None => {
            let (owners, assert_fn) = enforce::assignable(tbl, action, true).or_raise();
            let assert = pg_sys::makeFuncExpr(
                assert_fn,
                pg_sys::BOOLOID,
                pg_sys::copyObjectImpl((*fcall).args.cast()).cast(),
                pg_sys::InvalidOid,
                pg_sys::InvalidOid,
                pg_sys::CoercionForm::COERCE_EXPLICIT_CALL,
            )
            .cast::<pg_sys::Node>();
            match owners {
                Assignable::Anyone => pg_sys::makeBoolConst(true, false),
                Assignable::Owners(owners) if !owners.is_empty() => {
                    let mut either = PgList::<pg_sys::Node>::new();
                    either.push(owner_in(owner, &owners));
                    either.push(assert);
                    pg_sys::makeBoolExpr(pg_sys::BoolExprType::OR_EXPR, either.into_pg(), -1).cast()
                }
                Assignable::Owners(_) | Assignable::Nobody => assert,
            }
        }
    })
}

pub(super) unsafe fn const_value<T: FromDatum>(node: *mut pg_sys::Node) -> Option<T> {
    if !is_a(node, pg_sys::NodeTag::T_Const) {
        return None;
    }
    let c = &*(node as *mut pg_sys::Const);
    T::from_polymorphic_datum(c.constvalue, c.constisnull, c.consttype)
}
