//! Field access (DESIGN §3.2): masking columns in secure views, refusing writes to hidden and
//! read-only fields.
//!
//! `crm.secure_view(tbl)` creates `<table>_secure`, whose every column reads
//! `CASE WHEN crm.field_visible(tbl, 'col') THEN col END`. The planner asks
//! `field_visible_support` to replace each call with a constant for the acting user, so the
//! CASE folds to the bare column (or to NULL): no per-row call, and a filter on a visible
//! column through the view is still a filter on the column, able to use its index. Plans are
//! reset on a change of user or catalog as for row policies (see `crate::planner`).
//!
//! Writes are checked by `crm.check_field_writes()`, BEFORE row triggers `crm.protect` puts
//! on every protected table: whoever writes, through the view or directly, a changed hidden
//! or read-only field is refused with an error naming it. Their WHEN conditions are
//! specialised per statement (`crate::planner`), so writers who may change every field,
//! and rows that leave restricted fields alone, never call the trigger.

use std::ffi::CString;
use std::rc::Rc;

use crm_model::{Action, FieldAccess, Unwritable};
use pgrx::prelude::*;
use pgrx::{pg_sys, PgTupleDesc};

use super::opened;
use super::rows::{require_firing, same_value, trigger_table, with_value, Firing};
use crate::catalog::tables::{default_of, qualified_name, row_security_applies, row_type_of, Filled};
use crate::error::{CrmError, CrmResult, OrRaise};
use crate::session::{cache, identity};

/// The acting user's access to `field` of `tbl`; hidden for anyone who cannot act, on a
/// table that is not protected, and on a broken catalog.
pub fn access(tbl: pg_sys::Oid, field: &str, planning: bool) -> FieldAccess {
    let Some(m) = cache::for_action(Action::Read, planning).or_raise() else { return FieldAccess::Hidden };
    let (Some(module), Ok(u)) = (m.module_of(tbl), identity::acting_user(&m).or_raise()) else { return FieldAccess::Hidden };
    m.model.field_access(u.owner_id, module, field)
}

#[pg_extern(
    sql = "CREATE FUNCTION crm.field_visible(tbl regclass, field text) RETURNS boolean
           STABLE PARALLEL SAFE LANGUAGE c SUPPORT crm.field_visible_support AS 'MODULE_PATHNAME', '@FUNCTION_NAME@';",
    requires = [planner::support::field_visible_support]
)]
fn field_visible(tbl: Option<pg_sys::Oid>, field: Option<&str>) -> bool {
    let (Some(tbl), Some(field)) = (tbl, field) else { return false };
    access(tbl, field, false).readable()
}

/// The fields of `tbl` the current user may not freely write; none when the check does not
/// apply (row security does not apply to them).
pub fn restricted_for_writer(tbl: pg_sys::Oid) -> Unwritable {
    let none = Unwritable::These(Vec::new());
    if opened::rows_opened(tbl) {
        return none;
    }
    if !row_security_applies(tbl, pg_sys::InvalidOid) {
        return none;
    }
    // A broken catalog or nobody acting: check every field (the policies refuse anyway).
    let Ok(Some(m)) = cache::for_action(Action::Edit, true) else { return Unwritable::Every };
    let Some(module) = m.module_of(tbl) else { return none };
    let Ok(Ok(u)) = identity::acting_user(&m) else { return Unwritable::Every };
    (*m.unwritable_fields(u.owner_id, tbl, module)).clone()
}

/// The SQL-callable forms check what the support functions check, and refuse with an error.
fn check_row_type(tbl: pg_sys::Oid, rows: &[Option<&pgrx::AnyElement>]) {
    let row_type = row_type_of(tbl);
    for row in rows.iter().flatten() {
        if row_type == pg_sys::InvalidOid || row.oid() != row_type {
            CrmError::datatype_mismatch("the rows given to crm.field_changes and crm.field_values must be rows of the table named first")
                .with_hint("These functions are the WHEN conditions of the triggers crm.protect() creates; they are not meant to be called directly.")
                .raise();
        }
    }
}

// WHEN conditions of the field check triggers. The executor plans a trigger's WHEN condition
// once per statement, so the planner's support functions turn these calls into plain column
// comparisons for the acting user: no function call per row, and the trigger runs only for a
// row that changes a field the writer may not change (and then refuses it). Unsimplified,
// they answer true and the trigger does the whole check.

#[pg_extern(
    sql = "CREATE FUNCTION crm.field_changes(tbl regclass, old_row anyelement, new_row anyelement) RETURNS boolean
           STABLE LANGUAGE c SUPPORT crm.field_changes_support AS 'MODULE_PATHNAME', '@FUNCTION_NAME@';",
    requires = [planner::support::field_changes_support]
)]
fn field_changes(tbl: Option<pg_sys::Oid>, old_row: Option<pgrx::AnyElement>, new_row: Option<pgrx::AnyElement>) -> bool {
    if let Some(tbl) = tbl {
        check_row_type(tbl, &[old_row.as_ref(), new_row.as_ref()]);
    }
    true
}

#[pg_extern(
    sql = "CREATE FUNCTION crm.field_values(tbl regclass, new_row anyelement) RETURNS boolean
           STABLE LANGUAGE c SUPPORT crm.field_values_support AS 'MODULE_PATHNAME', '@FUNCTION_NAME@';",
    requires = [planner::support::field_values_support]
)]
fn field_values(tbl: Option<pg_sys::Oid>, new_row: Option<pgrx::AnyElement>) -> bool {
    if let Some(tbl) = tbl {
        check_row_type(tbl, &[new_row.as_ref()]);
    }
    true
}

/// A write through a secure view that sets a field hidden from the acting user is refused,
/// whatever the value. Hidden fields read NULL there, so every value written to one is the
/// writer's own; and the table's check, which refuses only a changed value, would accept the
/// stored one and so confirm a guess of it (red team round 6). Nobody acting: the row
/// policies refuse the write with their own error.
pub fn check_view_write(tbl: pg_sys::Oid, table: &str, fields: &[&str]) -> CrmResult<()> {
    let Some(m) = cache::for_action(Action::Edit, false)? else { return Ok(()) };
    let Some(module) = m.module_of(tbl) else { return Ok(()) };
    let Ok(u) = identity::acting_user(&m)? else { return Ok(()) };
    // It runs for every row written through a view: the memoised restricted fields answer
    // without working out the user's privileges again, but for the rare user for whom every
    // field is restricted.
    let restricted = m.unwritable_fields(u.owner_id, tbl, module);
    for field in fields {
        let access = match &*restricted {
            Unwritable::These(list) => list.iter().find(|(name, _)| name == field).map_or(FieldAccess::ReadWrite, |(_, a)| *a),
            Unwritable::Every => m.model.field_access(u.owner_id, module, field),
        };
        if !access.readable() {
            return Err(refused(&u.name, field, table, access));
        }
    }
    Ok(())
}

fn refused(user: &str, field: &str, table: &str, access: FieldAccess) -> CrmError {
    let what = if access == FieldAccess::Hidden { "hidden from" } else { "read-only for" };
    CrmError::denied(format!("field \"{field}\" of {table} is {what} CRM user \"{user}\""))
        .with_detail("Writes to hidden and read-only fields are refused; nothing was changed.")
        .with_hint("Leave the field out of the INSERT or UPDATE, or ask an administrator about crm.set_field_access().")
        .about(Some(table), Some("write"), Some(&format!("field \"{field}\" is {what} the user")))
}

/// An executor state for evaluating default expressions, freed on drop: the values it
/// computes live only as long as it does, so they are copied into the new row before.
struct Evaluator(*mut pg_sys::EState);

impl Evaluator {
    fn new() -> Self {
        // SAFETY: a fresh executor state in the current memory context.
        Evaluator(unsafe { pg_sys::CreateExecutorState() })
    }

    /// The value of `expr` (the column's default) now.
    ///
    /// # Safety
    /// `expr` must be a valid expression; its value lives as long as the executor state.
    unsafe fn eval(&self, expr: *mut pg_sys::Node) -> (pg_sys::Datum, bool) {
        let state = pg_sys::ExecPrepareExpr(expr.cast(), self.0);
        let econtext = pg_sys::MakePerTupleExprContext(self.0);
        let mut isnull = false;
        let value = pg_sys::ExecEvalExprSwitchContext(state, econtext, &mut isnull);
        (value, isnull)
    }
}

impl Drop for Evaluator {
    fn drop(&mut self) {
        // SAFETY: frees the state created in `new`, once.
        unsafe { pg_sys::FreeExecutorState(self.0) };
    }
}

/// Whether an INSERT put `value` into a restricted field of its own choosing (DESIGN §3.2):
/// a field without a default must be NULL; a field with a stable default must hold that
/// default (a CHECK against an explicit value); a field with a volatile default (a
/// sequence, clock_timestamp()) cannot be told apart from a written value, so it gets a
/// freshly computed default whatever was written (`Replace`).
enum Insert {
    Allowed,
    Refused,
    Replace(pg_sys::Datum, bool),
}

/// # Safety
/// `value` must be a datum of `att`'s type, `att` a live column of `tbl`.
unsafe fn check_insert(tbl: pg_sys::Oid, att: &pg_sys::FormData_pg_attribute, value: pg_sys::Datum, isnull: bool, eval: &Evaluator) -> Insert {
    match Filled::of(att) {
        Filled::Generated => Insert::Allowed,
        Filled::Null if isnull => Insert::Allowed,
        Filled::Null => Insert::Refused,
        Filled::Default => match default_of(tbl, att.attnum) {
            None if isnull => Insert::Allowed,
            None => Insert::Refused,
            Some((expr, true)) => {
                let (v, null) = eval.eval(expr);
                Insert::Replace(v, null)
            }
            Some((expr, false)) => {
                let (v, null) = eval.eval(expr);
                if isnull == null && (isnull || same_value(value, v, att)) {
                    Insert::Allowed
                } else {
                    Insert::Refused
                }
            }
        },
    }
}

#[pg_trigger]
fn check_field_writes<'a>(trigger: &'a PgTrigger<'a>) -> Result<Option<PgHeapTuple<'a, AllocatedByPostgres>>, PgTriggerError> {
    require_firing(trigger, "crm.check_field_writes()", Firing::BeforeWrite);
    let data = trigger.trigger_data();
    let rel = data.tg_relation;
    let tbl = trigger_table(trigger);
    let update = trigger.event().fired_by_update();
    let mut new = if update { data.tg_newtuple } else { data.tg_trigtuple };
    // A writer who bypasses row security (superuser, table owner without FORCE) is not a CRM
    // user; our own statements with the rows opened write only kept columns.
    if opened::rows_opened(tbl) || !row_security_applies(tbl, pg_sys::InvalidOid) {
        return Ok(trigger.new());
    }
    let checked: CrmResult<()> = (|| {
        let Some(m) = cache::for_action(Action::Edit, false)? else { return Ok(()) };
        let Some(module) = m.module_of(tbl) else { return Ok(()) };
        // No acting user: the row policies refuse the write with their own error.
        let Ok(u) = identity::acting_user(&m)? else { return Ok(()) };
        let fields: Rc<Unwritable> = m.unwritable_fields(u.owner_id, tbl, module);
        // SAFETY: the trigger's relation and tuples are valid for the whole call; attribute
        // numbers come from the relation's own descriptor.
        unsafe {
            let desc = (*rel).rd_att;
            let tupdesc = PgTupleDesc::from_pg_unchecked(desc);
            let table = qualified_name(tbl).unwrap_or_default();
            let columns: Vec<(i32, String, FieldAccess)> = match &*fields {
                Unwritable::These(list) => list
                    .iter()
                    .filter_map(|(name, a)| {
                        let c = CString::new(name.as_str()).ok()?;
                        let attnum = pg_sys::attnameAttNum(rel, c.as_ptr(), false);
                        (attnum > 0).then(|| (attnum, name.clone(), *a))
                    })
                    .collect(),
                Unwritable::Every => tupdesc
                    .iter()
                    .filter(|a| !a.attisdropped)
                    .map(|a| (a.attnum as i32, std::ffi::CStr::from_ptr(a.attname.data.as_ptr()).to_string_lossy().into_owned(), FieldAccess::Hidden))
                    .collect(),
            };
            let eval = Evaluator::new();
            for (attnum, name, a) in columns {
                let att = tupdesc.get(attnum as usize - 1).expect("attnum within the descriptor");
                let (mut new_null, mut old_null) = (false, false);
                let nv = pg_sys::heap_getattr(new, attnum, desc, &mut new_null);
                let refused_now = if update {
                    let ov = pg_sys::heap_getattr(data.tg_trigtuple, attnum, desc, &mut old_null);
                    new_null != old_null || (!new_null && !same_value(nv, ov, att))
                } else {
                    match check_insert(tbl, att, nv, new_null, &eval) {
                        Insert::Allowed => false,
                        Insert::Refused => true,
                        Insert::Replace(value, null) => {
                            // The new tuple holds a copy of the value before `eval` frees it.
                            new = with_value(new, desc, attnum, (value, null));
                            false
                        }
                    }
                };
                if refused_now {
                    return Err(refused(&u.name, &name, &table, a));
                }
            }
        }
        Ok(())
    })();
    checked.or_raise();
    if std::ptr::eq(new, if update { data.tg_newtuple } else { data.tg_trigtuple }) {
        return Ok(trigger.new());
    }
    // SAFETY: `new` was built by heap_modify_tuple_by_cols for this relation's descriptor.
    Ok(Some(unsafe { PgHeapTuple::from_heap_tuple(PgTupleDesc::from_pg_unchecked((*rel).rd_att), new) }))
}
