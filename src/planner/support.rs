//! The support functions of the policy functions. Each reads its call's constant arguments,
//! asks enforcement (`crate::enforce`) for the acting user's `Filter` and hands back the
//! expression for it over the call's column arguments, through `super::support`.

use crm_model::{Action, Column, Conversation, Event, Filter, OWNER};

use super::RowVar;
use pgrx::prelude::*;
use pgrx::{pg_sys, Internal};

use super::nodes::{self, constant, Constant, Node};
use super::write_condition::write_condition;
use super::{support, Call, Reach};
use crate::enforce::{self, calendar, conversations, fields, Assignable};
use crate::error::OrRaise;
use crate::session::identity;

/// `filter` over the call's arguments: `columns[i]` is argument `first + i`.
fn over_args(filter: &Filter, call: &Call, first: usize, columns: &[Column]) -> Option<Node> {
    nodes::filter(filter, &|c| call.arg(first + columns.iter().position(|name| *name == c)?))
}

/// The action a policy function's first (or `i`th) argument names, if it is a constant.
fn action(call: &Call, i: usize) -> Option<Action> {
    call.constant::<String>(i)?.parse().ok()
}

/// `crm.can(tbl, action, owner)`.
#[pg_extern(immutable, parallel_safe)]
fn can_support(request: Internal) -> Internal {
    support(request, Reach::Query, |call| {
        let (tbl, action) = (call.constant::<pg_sys::Oid>(0)?, action(call, 1)?);
        over_args(&enforce::access(tbl, action, true).or_raise(), call, 2, &[OWNER])
    })
}

/// `crm.can_via_parent(tbl, action, parent_owner)`.
#[pg_extern(immutable, parallel_safe)]
fn can_via_parent_support(request: Internal) -> Internal {
    support(request, Reach::Query, |call| {
        let (tbl, action) = (call.constant::<pg_sys::Oid>(0)?, action(call, 1)?);
        over_args(&enforce::access_via_parent(tbl, action, true).or_raise(), call, 2, &[OWNER])
    })
}

/// `crm.can_assign(tbl, action, owner)`: rows whose owner the acting user may give records to
/// pass without a call; any other row reaches `crm.assert_can_assign`, which raises an error
/// that says why.
#[pg_extern(immutable, parallel_safe)]
fn can_assign_support(request: Internal) -> Internal {
    support(request, Reach::Query, |call| {
        let (tbl, action) = (call.constant::<pg_sys::Oid>(0)?, action(call, 1)?);
        let (owners, assert_fn) = enforce::assignable(tbl, action, true).or_raise();
        let assert = nodes::call(assert_fn, call.arg_list);
        Some(match owners {
            Assignable::Anyone => constant(Constant::Bool(true)),
            Assignable::Owners(owners) if !owners.is_empty() => nodes::any(vec![over_args(&Filter::any_of_ids(OWNER, &owners), call, 2, &[OWNER])?, assert]),
            Assignable::Owners(_) | Assignable::Nobody => assert,
        })
    })
}

/// `crm.within_restrictions(tbl, row)`: the restriction rules' filter over `tbl`'s own columns,
/// read from the row variable the policy passes (the table's whole row).
#[pg_extern(immutable, parallel_safe)]
fn within_restrictions_support(request: Internal) -> Internal {
    support(request, Reach::Query, |call| {
        let tbl = call.constant::<pg_sys::Oid>(0)?;
        let row = call.row_var(1, tbl)?;
        let filter = enforce::restrictions::restriction(tbl, true).or_raise();
        nodes::filter(&filter, &|c| table_column(tbl, row, c))
    })
}

/// `crm.shared(tbl, action, key)`: the keys of `tbl`'s records shared with the acting user,
/// as `key = ANY('{...}')` over the key argument (`false` for none).
#[pg_extern(immutable, parallel_safe)]
fn shared_support(request: Internal) -> Internal {
    support(request, Reach::Query, |call| {
        let (tbl, action) = (call.constant::<pg_sys::Oid>(0)?, action(call, 1)?);
        let filter = enforce::shares::shared(tbl, action, true).or_raise();
        nodes::filter(&filter, &|c| if c == enforce::shares::KEY { call.arg(2) } else { None })
    })
}

/// `crm.parent_shared(tbl, action, parent_key)`: the keys of the parent records whose shares
/// reach child table `tbl`'s records, as `parent_key = ANY('{...}')` (`false` for none).
#[pg_extern(immutable, parallel_safe)]
fn parent_shared_support(request: Internal) -> Internal {
    support(request, Reach::Query, |call| {
        let (tbl, action) = (call.constant::<pg_sys::Oid>(0)?, action(call, 1)?);
        let filter = enforce::shares::parent_shared(tbl, action, true).or_raise();
        nodes::filter(&filter, &|c| if c == enforce::shares::KEY { call.arg(2) } else { None })
    })
}

/// `crm.shared_write(tbl, key, owner)`: `false` for a user with no record of `tbl` shared for
/// editing; otherwise kept, and checked row by row.
#[pg_extern(immutable, parallel_safe)]
fn shared_write_support(request: Internal) -> Internal {
    support(request, Reach::Query, |call| {
        let tbl = call.constant::<pg_sys::Oid>(0)?;
        (!enforce::shares::edits_shared(tbl, true).or_raise()).then(|| constant(Constant::Bool(false)))
    })
}

/// Column `name` of `tbl`, as a variable of the range table entry `row` belongs to.
fn table_column(tbl: pg_sys::Oid, row: RowVar, name: &str) -> Option<Node> {
    let name = std::ffi::CString::new(name).ok()?;
    // SAFETY: syscache lookups of a live relation's attribute; makeVar allocates a new node in
    // the planning's memory context.
    unsafe {
        let attnum = pg_sys::get_attnum(tbl, name.as_ptr());
        if attnum <= 0 {
            return None;
        }
        let (mut typ, mut typmod, mut collation) = (pg_sys::InvalidOid, -1, pg_sys::InvalidOid);
        pg_sys::get_atttypetypmodcoll(tbl, attnum, &mut typ, &mut typmod, &mut collation);
        Some(pg_sys::makeVar(row.0.varno, attnum, typ, typmod, collation, 0).cast())
    }
}

/// `crm.can_see_event(action, owner_id, invitees, is_public)`.
#[pg_extern(immutable, parallel_safe)]
fn can_see_event_support(request: Internal) -> Internal {
    support(request, Reach::Query, |call| over_args(&calendar::event_access(action(call, 0)?, true).or_raise(), call, 1, &Event::COLUMNS))
}

/// `crm.knows_events()`.
#[pg_extern(immutable, parallel_safe)]
fn knows_events_support(request: Internal) -> Internal {
    support(request, Reach::Query, |_| Some(constant(Constant::Bool(calendar::sees_calendar(true)))))
}

/// `crm.can_converse(action, assigned_to, linked_owner, is_new, archived_by)`.
#[pg_extern(immutable, parallel_safe)]
fn can_converse_support(request: Internal) -> Internal {
    support(request, Reach::Query, |call| {
        over_args(&conversations::conversation_access(action(call, 0)?, true).or_raise(), call, 1, &Conversation::COLUMNS)
    })
}

/// `crm.acting_owner_id()` and `crm.acting_owner_ids()`: the acting user as constants.
#[pg_extern(immutable, parallel_safe)]
fn acting_owner_support(request: Internal) -> Internal {
    support(request, Reach::Query, |call| {
        let owners = identity::acting_owners(true).or_raise();
        Some(if call.result_type == pg_sys::INT8OID {
            match owners {
                Some((me, _)) => constant(Constant::Int8(me)),
                None => constant(Constant::NullInt8),
            }
        } else {
            constant(Constant::Int8Array(&owners.map(|(_, owned)| owned).unwrap_or_default()))
        })
    })
}

/// `crm.field_visible(tbl, field)`.
#[pg_extern(immutable, parallel_safe)]
fn field_visible_support(request: Internal) -> Internal {
    support(request, Reach::Query, |call| {
        let (tbl, field) = (call.constant::<pg_sys::Oid>(0)?, call.constant::<String>(1)?);
        Some(constant(Constant::Bool(fields::access(tbl, &field, true).readable())))
    })
}

/// `crm.field_changes(tbl, OLD, NEW)`, the WHEN condition of the field check on UPDATE. Out of
/// a query only as a trigger's WHEN condition, where the executor has made OLD the inner and
/// NEW the outer tuple.
#[pg_extern(immutable, parallel_safe)]
fn field_changes_support(request: Internal) -> Internal {
    support(request, Reach::TriggerWhen, |call| {
        let tbl = call.constant::<pg_sys::Oid>(0)?;
        let (old, new) = (call.row_var(1, tbl)?, call.row_var(2, tbl)?);
        if call.outside_query && !(old.is(pg_sys::INNER_VAR as i32) && new.is(pg_sys::OUTER_VAR as i32)) {
            return None;
        }
        Some(write_condition(tbl, Some(old), new))
    })
}

/// `crm.field_values(tbl, NEW)`, the WHEN condition of the field check on INSERT.
#[pg_extern(immutable, parallel_safe)]
fn field_values_support(request: Internal) -> Internal {
    support(request, Reach::TriggerWhen, |call| {
        let tbl = call.constant::<pg_sys::Oid>(0)?;
        let new = call.row_var(1, tbl)?;
        if call.outside_query && !new.is(pg_sys::OUTER_VAR as i32) {
            return None;
        }
        Some(write_condition(tbl, None, new))
    })
}
