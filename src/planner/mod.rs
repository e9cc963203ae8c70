//! Plan-time specialisation of the policies (DESIGN §6): every support function, and all the
//! node building they need, in one place.
//!
//! One static policy cannot give every viewer its best plan: `owner = ANY(f())` scans an
//! index for a rep but filters every row for an admin, and `(SELECT sees_all()) OR ...`
//! defeats the index for everyone. So the planner asks these support functions to replace a
//! policy function's call with what the acting user may reach: the engine's `Filter` for that
//! scope, turned into constants and plain column tests (`true`, `false`,
//! `owner = ANY('{...}'::bigint[])`, `invitees @> '{7}'`, ...), which the planner estimates
//! exactly and matches to indexes. The run-time functions (`enforce`) evaluate the same
//! `Filter` row by row when no simplification happens, so the two cannot drift.
//!
//! Safe because such a plan is never reused for another user or another catalog: each one
//! is marked when it is built, and changing `crm.user_name` (`session::guc`) or committing a
//! catalog change (`session::cache`) invalidates every marked plan (`session::plans`); a
//! change of login role re-plans through PostgreSQL's own RLS check. Only expressions of a
//! query being planned are simplified, and the trigger WHEN conditions of the field check,
//! which live for one statement (see `Reach`).
//!
//! Every support function takes the one path, `support`: the request is checked and read
//! here, the replacement is built from a `Call` whose arguments are already checked, and all
//! the raw node handling is in this module and `nodes`.

mod nodes;
pub mod statistics;
mod support;
mod write_condition;

use pgrx::{is_a, pg_sys, FromDatum, Internal, PgList};

use crate::catalog::tables::row_type_of;
use crate::session::plans;

/// Where a support function may replace a call.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Reach {
    /// Only in a query being planned. Expressions PostgreSQL simplifies outside a query are
    /// kept far longer than the acting user: a domain's CHECK for the backend's life, an
    /// index predicate or expression, a partition key in the relcache. Specialised there, one
    /// user's decisions would serve every later user of the backend (an index predicate would
    /// even stand in for the row policy it implies), so those keep the call, evaluated at run
    /// time for whoever acts.
    Query,
    /// Also outside a query: a trigger's WHEN condition, which the executor prepares once per
    /// statement with OLD and NEW as INNER_VAR and OUTER_VAR (see `write_condition`).
    TriggerWhen,
}

/// A policy function call the planner asks to simplify, with its arguments.
struct Call {
    args: Vec<*mut pg_sys::Node>,
    result_type: pg_sys::Oid,
    /// The planning's own copy of the argument list, for a replacement that keeps the call's
    /// arguments (`crm.assert_can_assign`).
    arg_list: *mut pg_sys::List,
    /// Outside a query being planned (a trigger's WHEN condition).
    outside_query: bool,
}

impl Call {
    /// Argument `i` if it is a non-NULL constant of a type `T` reads.
    fn constant<T: FromDatum>(&self, i: usize) -> Option<T> {
        let node = *self.args.get(i)?;
        // SAFETY: the argument nodes are valid nodes of the call being simplified (see
        // `read_request`); a Const's value is a datum of its own `consttype`.
        unsafe {
            if !is_a(node, pg_sys::NodeTag::T_Const) {
                return None;
            }
            let c = &*(node as *mut pg_sys::Const);
            T::from_polymorphic_datum(c.constvalue, c.constisnull, c.consttype)
        }
    }

    /// Argument `i`'s expression, to be copied into the replacement where it is used.
    fn arg(&self, i: usize) -> Option<*mut pg_sys::Node> {
        self.args.get(i).copied()
    }

    /// Argument `i` if it is a whole-row Var of this query level of relation `tbl`'s row type
    /// (`OLD`, `NEW`), so that Vars for `tbl`'s columns built on its range table entry are
    /// valid. Anything else (a row of another relation, a record, an outer reference) is `None`.
    fn row_var(&self, i: usize, tbl: pg_sys::Oid) -> Option<RowVar> {
        let node = *self.args.get(i)?;
        let row_type = row_type_of(tbl);
        // SAFETY: as in `constant`.
        unsafe {
            if !is_a(node, pg_sys::NodeTag::T_Var) {
                return None;
            }
            let var = &*(node as *mut pg_sys::Var);
            (var.varattno == 0 && var.varlevelsup == 0 && row_type != pg_sys::InvalidOid && var.vartype == row_type)
                .then_some(RowVar(*var))
        }
    }
}

/// A whole-row variable of a trigger's WHEN condition or a query (a copy of the Var: its
/// `varno` is `Index` before PostgreSQL 15 and `int` from 15 on).
#[derive(Clone, Copy)]
struct RowVar(pg_sys::Var);

impl RowVar {
    /// Whether the variable is the executor's inner (OLD) or outer (NEW) tuple.
    fn is(&self, special: i32) -> bool {
        self.0.varno as i64 == special as i64
    }
}

/// The one path of every support function: the call, if the request is a simplification
/// request PostgreSQL may take a specialised answer for (`reach`), and the replacement
/// `build` makes of it; `None` from either declines, and the call stays as written.
///
/// A call in a query being planned marks the plan as holding a decision
/// (`plans::depends_on_acting_user`), so that a new acting user or catalog re-plans it and
/// nothing else.
fn support(request: Internal, reach: Reach, build: impl FnOnce(&Call) -> Option<*mut pg_sys::Node>) -> Internal {
    // SAFETY: PostgreSQL calls a support function with a valid SupportRequest node; the
    // FuncExpr it names, its argument list and the PlannerInfo (if any) live in the
    // planner's memory for this call, where `build` allocates the replacement too.
    let call = unsafe { read_request(request, reach) };
    let replacement = call.and_then(|c| build(&c)).map_or(0usize, |node| node as usize);
    // A support function answers NULL (a null pointer, not SQL NULL) when it declines.
    Internal::from(Some(pg_sys::Datum::from(replacement)))
}

/// # Safety
/// `request` must be what PostgreSQL passes a support function.
unsafe fn read_request(request: Internal, reach: Reach) -> Option<Call> {
    let node = request.unwrap().map(|d| d.cast_mut_ptr::<pg_sys::Node>())?;
    if node.is_null() || !is_a(node, pg_sys::NodeTag::T_SupportRequestSimplify) {
        return None;
    }
    let req = &*(node as *mut pg_sys::SupportRequestSimplify);
    let outside_query = req.root.is_null();
    match (outside_query, reach) {
        (true, Reach::Query) => return None,
        (true, Reach::TriggerWhen) => {}
        (false, _) if !plans::depends_on_acting_user(req.root) => return None,
        (false, _) => {}
    }
    let fcall = &*req.fcall;
    let args = PgList::<pg_sys::Node>::from_pg(fcall.args).iter_ptr().collect();
    Some(Call { args, result_type: fcall.funcresulttype, arg_list: fcall.args, outside_query })
}
