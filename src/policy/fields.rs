//! Field access (DESIGN §3.2): masking columns in secure views, refusing writes to hidden and
//! read-only fields.
//!
//! `crm.secure_view(tbl)` creates `<table>_secure`, whose every column reads
//! `CASE WHEN crm.field_visible(tbl, 'col') THEN col END`. The planner asks
//! `field_visible_support` to replace each call with a constant for the acting user, so the
//! CASE folds to the bare column (or to NULL): no per-row call, and a filter on a visible
//! column through the view is still a filter on the column, able to use its index. Plans are
//! reset on a change of user or catalog as for row policies (see `simplify`).
//!
//! Writes are checked by `crm.check_field_writes()`, BEFORE row triggers `crm.protect` puts
//! on every protected table: whoever writes, through the view or directly, a changed hidden
//! or read-only field is refused with an error naming it. Their WHEN conditions are
//! specialised per statement (see `field_changes`), so writers who may change every field,
//! and rows that leave restricted fields alone, never call the trigger.

use std::ffi::CString;
use std::rc::Rc;

use crm_model::{FieldAccess, Unwritable};
use pgrx::prelude::*;
use pgrx::{pg_sys, Internal, PgList, PgTupleDesc};

use super::enforce::model;
use super::opened;
use super::rows::{require_firing, same_value, with_value, Firing};
use super::nodes::{any_of, bool_const};
use super::simplify::{answer, const_value, declined, simplify_request, simplify_request_anywhere};
use crate::error::{CrmError, CrmResult, OrRaise};
use crate::session::identity;
use crm_model::Action;

/// The acting user's access to `field` of `tbl`; hidden for anyone who cannot act, on a
/// table that is not protected, and on a broken catalog.
fn access(tbl: pg_sys::Oid, field: &str, planning: bool) -> FieldAccess {
    let Some(m) = model(Action::Read, planning).or_raise() else { return FieldAccess::Hidden };
    let (Some(module), Ok(u)) = (m.module_of(tbl), identity::acting_user(&m).or_raise()) else { return FieldAccess::Hidden };
    m.model.field_access(u.owner_id, module, field)
}

#[pg_extern(
    sql = "CREATE FUNCTION crm.field_visible(tbl regclass, field text) RETURNS boolean
           STABLE PARALLEL SAFE LANGUAGE c SUPPORT crm.field_visible_support AS 'MODULE_PATHNAME', '@FUNCTION_NAME@';",
    requires = [field_visible_support]
)]
fn field_visible(tbl: Option<pg_sys::Oid>, field: Option<&str>) -> bool {
    let (Some(tbl), Some(field)) = (tbl, field) else { return false };
    access(tbl, field, false).readable()
}

/// The fields of `tbl` the current user may not freely write; none when the check does not
/// apply (row security does not apply to them).
fn restricted_for_writer(tbl: pg_sys::Oid) -> Unwritable {
    let none = Unwritable::These(Vec::new());
    if opened::rows_opened(tbl) {
        return none;
    }
    // SAFETY: reads the relation's row security flags and the caller's role attributes.
    if unsafe { pg_sys::check_enable_rls(tbl, pg_sys::InvalidOid, true) } != pg_sys::CheckEnableRlsResult::RLS_ENABLED as i32 {
        return none;
    }
    // A broken catalog or nobody acting: check every field (the policies refuse anyway).
    let Ok(Some(m)) = model(Action::Edit, true) else { return Unwritable::Every };
    let Some(module) = m.module_of(tbl) else { return none };
    let Ok(Ok(u)) = identity::acting_user(&m) else { return Unwritable::Every };
    (*m.unwritable_fields(u.owner_id, tbl, module)).clone()
}

/// One column of the table, as the WHEN conditions need it.
struct Column {
    attnum: i16,
    name: String,
    typid: pg_sys::Oid,
    typmod: i32,
    collation: pg_sys::Oid,
    filled: Filled,
}

/// What an INSERT that leaves a column out puts in it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Filled {
    /// NULL: any other value was written by the writer.
    Null,
    /// A default (or identity) expression.
    Default,
    /// A generated column, which PostgreSQL never takes a written value for.
    Generated,
}

unsafe fn filled(a: &pg_sys::FormData_pg_attribute) -> Filled {
    if a.attgenerated != 0 {
        Filled::Generated
    } else if a.atthasdef || a.attidentity != 0 {
        Filled::Default
    } else {
        Filled::Null
    }
}

unsafe fn columns(tbl: pg_sys::Oid) -> Vec<Column> {
    let rel = pg_sys::RelationIdGetRelation(tbl);
    if rel.is_null() {
        return Vec::new();
    }
    let out = PgTupleDesc::from_pg_unchecked((*rel).rd_att)
        .iter()
        .filter(|a| !a.attisdropped)
        .map(|a| Column {
            attnum: a.attnum,
            name: std::ffi::CStr::from_ptr(a.attname.data.as_ptr()).to_string_lossy().into_owned(),
            typid: a.atttypid,
            typmod: a.atttypmod,
            collation: a.attcollation,
            filled: filled(a),
        })
        .collect();
    pg_sys::RelationClose(rel);
    out
}

/// The default (or identity) expression of column `attnum` of `tbl`, and whether it is
/// volatile (a sequence, clock_timestamp(), random()): evaluating it again would not give
/// the value an INSERT that left the column out got.
unsafe fn default_of(tbl: pg_sys::Oid, attnum: i16) -> Option<(*mut pg_sys::Node, bool)> {
    let rel = pg_sys::RelationIdGetRelation(tbl);
    if rel.is_null() {
        return None;
    }
    let expr = pg_sys::build_column_default(rel, attnum as i32);
    pg_sys::RelationClose(rel);
    (!expr.is_null()).then(|| (expr, pg_sys::contain_volatile_functions(expr)))
}

/// `left IS DISTINCT FROM right` with the type's equality; `None` if the type has none.
unsafe fn distinct(typid: pg_sys::Oid, collation: pg_sys::Oid, left: *mut pg_sys::Node, right: *mut pg_sys::Node) -> Option<*mut pg_sys::Node> {
    let eq = (*pg_sys::lookup_type_cache(typid, pg_sys::TYPECACHE_EQ_OPR as i32)).eq_opr;
    if eq == pg_sys::InvalidOid {
        return None;
    }
    let mut distinct = pgrx::PgBox::<pg_sys::OpExpr>::alloc_node(pg_sys::NodeTag::T_DistinctExpr);
    distinct.opno = eq;
    distinct.opfuncid = pg_sys::get_opcode(eq);
    distinct.opresulttype = pg_sys::BOOLOID;
    distinct.inputcollid = collation;
    let mut args = PgList::<pg_sys::Node>::new();
    args.push(left);
    args.push(right);
    distinct.args = args.into_pg();
    distinct.location = -1;
    Some(distinct.into_pg().cast())
}

/// The condition under which a write must reach `crm.check_field_writes()`, over the
/// trigger's `OLD`/`NEW` row variables, for each field the writer may not change: for an
/// update, `OLD.f IS DISTINCT FROM NEW.f`; for an insert, `NEW.f IS NOT NULL` for a field
/// without a default and `NEW.f IS DISTINCT FROM <its default>` for one with a stable
/// default. `false` when nothing is restricted, so the trigger is not even called. `true`
/// when the trigger must look itself: a type without equality (it then compares bytes), or
/// a volatile default (it then puts a freshly computed default in the field).
unsafe fn write_condition(tbl: pg_sys::Oid, old: Option<&pg_sys::Var>, new: &pg_sys::Var) -> *mut pg_sys::Node {
    let restricted = restricted_for_writer(tbl);
    let mut any = PgList::<pg_sys::Node>::new();
    for c in columns(tbl) {
        if c.filled == Filled::Generated || !restricted.includes(&c.name) {
            continue;
        }
        let var = |row: &pg_sys::Var| pg_sys::makeVar(row.varno, c.attnum, c.typid, c.typmod, c.collation, 0).cast::<pg_sys::Node>();
        let condition = match (old, c.filled) {
            (Some(old), _) => distinct(c.typid, c.collation, var(old), var(new)),
            (None, Filled::Null) => {
                let mut test = pgrx::PgBox::<pg_sys::NullTest>::alloc_node(pg_sys::NodeTag::T_NullTest);
                test.arg = var(new).cast();
                test.nulltesttype = pg_sys::NullTestType::IS_NOT_NULL;
                test.location = -1;
                Some(test.into_pg().cast())
            }
            (None, _) => match default_of(tbl, c.attnum) {
                Some((default, false)) => distinct(c.typid, c.collation, var(new), default),
                _ => None,
            },
        };
        match condition {
            Some(condition) => any.push(condition),
            None => return bool_const(true),
        }
    }
    any_of(any)
}

/// The row-variable argument of a WHEN condition (`OLD` or `NEW`): a whole-row Var of this
/// query level whose type is the row type of `tbl`, so that Vars for `tbl`'s columns built
/// on its range table entry are valid. Anything else (a row of another relation, a record,
/// an outer reference) is declined: the call then stays a call, and answers true.
unsafe fn row_var<'a>(node: Option<*mut pg_sys::Node>, tbl: pg_sys::Oid) -> Option<&'a pg_sys::Var> {
    let node = node?;
    if !pgrx::is_a(node, pg_sys::NodeTag::T_Var) {
        return None;
    }
    let var = &*(node as *mut pg_sys::Var);
    let row_type = pg_sys::get_rel_type_id(tbl);
    (var.varattno == 0 && var.varlevelsup == 0 && row_type != pg_sys::InvalidOid && var.vartype == row_type).then_some(var)
}

/// The SQL-callable forms check what the support functions check, and refuse with an error.
fn check_row_type(tbl: pg_sys::Oid, rows: &[Option<&pgrx::AnyElement>]) {
    // SAFETY: a syscache lookup; InvalidOid for anything that is not a relation.
    let row_type = unsafe { pg_sys::get_rel_type_id(tbl) };
    for row in rows.iter().flatten() {
        if row_type == pg_sys::InvalidOid || row.oid() != row_type {
            CrmError::datatype_mismatch("the rows given to crm.field_changes and crm.field_values must be rows of the table named first")
                .with_hint("These functions are the WHEN conditions of the triggers crm.protect() creates; they are not meant to be called directly.")
                .raise();
        }
    }
}

// WHEN conditions of the field check triggers. The executor plans a trigger's WHEN condition
// once per statement, so the support functions below turn these calls into plain column
// comparisons for the acting user: no function call per row, and the trigger runs only for a
// row that changes a field the writer may not change (and then refuses it). Unsimplified,
// they answer true and the trigger does the whole check.

#[pg_extern(
    sql = "CREATE FUNCTION crm.field_changes(tbl regclass, old_row anyelement, new_row anyelement) RETURNS boolean
           STABLE LANGUAGE c SUPPORT crm.field_changes_support AS 'MODULE_PATHNAME', '@FUNCTION_NAME@';",
    requires = [field_changes_support]
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
    requires = [field_values_support]
)]
fn field_values(tbl: Option<pg_sys::Oid>, new_row: Option<pgrx::AnyElement>) -> bool {
    if let Some(tbl) = tbl {
        check_row_type(tbl, &[new_row.as_ref()]);
    }
    true
}

#[pg_extern(immutable, parallel_safe)]
fn field_changes_support(request: Internal) -> Internal {
    // SAFETY: PostgreSQL calls a support function with a valid SupportRequest node, and the
    // FuncExpr it names (and its argument list) live in the planner's memory for this call;
    // the nodes built here are allocated there too.
    unsafe {
        let Some((fcall, when)) = when_request(request) else { return declined() };
        let args = PgList::<pg_sys::Node>::from_pg((*fcall).args);
        let tbl = args.get_ptr(0).and_then(|a| const_value::<pg_sys::Oid>(a));
        let Some(tbl) = tbl else { return declined() };
        let (Some(old), Some(new)) = (row_var(args.get_ptr(1), tbl), row_var(args.get_ptr(2), tbl)) else { return declined() };
        if when && (old.varno != pg_sys::INNER_VAR || new.varno != pg_sys::OUTER_VAR) {
            return declined();
        }
        answer(Some(write_condition(tbl, Some(old), new)))
    }
}

/// The call, and whether it is outside a query being planned. Then only a trigger's WHEN
/// condition may be simplified: the executor prepares it per statement, with OLD and NEW
/// turned into INNER_VAR and OUTER_VAR, which no index predicate or domain CHECK can hold.
unsafe fn when_request(request: Internal) -> Option<(*mut pg_sys::FuncExpr, bool)> {
    let req = simplify_request_anywhere(request)?;
    Some(((*req).fcall, (*req).root.is_null()))
}

#[pg_extern(immutable, parallel_safe)]
fn field_values_support(request: Internal) -> Internal {
    // SAFETY: PostgreSQL calls a support function with a valid SupportRequest node, and the
    // FuncExpr it names (and its argument list) live in the planner's memory for this call;
    // the nodes built here are allocated there too.
    unsafe {
        let Some((fcall, when)) = when_request(request) else { return declined() };
        let args = PgList::<pg_sys::Node>::from_pg((*fcall).args);
        let tbl = args.get_ptr(0).and_then(|a| const_value::<pg_sys::Oid>(a));
        let Some(tbl) = tbl else { return declined() };
        let Some(new) = row_var(args.get_ptr(1), tbl) else { return declined() };
        if when && new.varno != pg_sys::OUTER_VAR {
            return declined();
        }
        answer(Some(write_condition(tbl, None, new)))
    }
}

#[pg_extern(immutable, parallel_safe)]
fn field_visible_support(request: Internal) -> Internal {
    // SAFETY: PostgreSQL calls a support function with a valid SupportRequest node, and the
    // FuncExpr it names (and its argument list) live in the planner's memory for this call;
    // the nodes built here are allocated there too.
    unsafe {
        let Some(fcall) = simplify_request(request) else { return declined() };
        let args = PgList::<pg_sys::Node>::from_pg((*fcall).args);
        let tbl = args.get_ptr(0).and_then(|a| const_value::<pg_sys::Oid>(a));
        let field = args.get_ptr(1).and_then(|a| const_value::<String>(a));
        let (Some(tbl), Some(field)) = (tbl, field) else { return declined() };
        answer(Some(bool_const(access(tbl, &field, true).readable())))
    }
}

/// `schema.table`, as in error messages about that table.
unsafe fn qualified_name(tbl: pg_sys::Oid) -> String {
    let text = |p: *mut std::ffi::c_char| if p.is_null() { String::from("?") } else { std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned() };
    format!("{}.{}", text(pg_sys::get_namespace_name(pg_sys::get_rel_namespace(tbl))), text(pg_sys::get_rel_name(tbl)))
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

unsafe fn check_insert(tbl: pg_sys::Oid, att: &pg_sys::FormData_pg_attribute, value: pg_sys::Datum, isnull: bool, eval: &Evaluator) -> Insert {
    match filled(att) {
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
    // SAFETY: the trigger's relation is open for the whole call.
    let tbl = unsafe { (*rel).rd_id };
    let update = trigger.event().fired_by_update();
    let mut new = if update { data.tg_newtuple } else { data.tg_trigtuple };
    // A writer who bypasses row security (superuser, table owner without FORCE) is not a CRM
    // user; our own statements with the rows opened write only kept columns.
    // SAFETY (check_enable_rls): reads the relation's row security flags and the current
    // user's role attributes; `tbl` is the trigger's open relation.
    if opened::rows_opened(tbl)
        || unsafe { pg_sys::check_enable_rls(tbl, pg_sys::InvalidOid, true) } != pg_sys::CheckEnableRlsResult::RLS_ENABLED as i32
    {
        return Ok(trigger.new());
    }
    let checked: CrmResult<()> = (|| {
        let Some(m) = model(Action::Edit, false)? else { return Ok(()) };
        let Some(module) = m.module_of(tbl) else { return Ok(()) };
        // No acting user: the row policies refuse the write with their own error.
        let Ok(u) = identity::acting_user(&m)? else { return Ok(()) };
        let fields: Rc<Unwritable> = m.unwritable_fields(u.owner_id, tbl, module);
        // SAFETY: the trigger's relation and tuples are valid for the whole call; attribute
        // numbers come from the relation's own descriptor.
        unsafe {
            let desc = (*rel).rd_att;
            let tupdesc = PgTupleDesc::from_pg_unchecked(desc);
            let table = qualified_name(tbl);
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
