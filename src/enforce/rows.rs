//! Reading the rows a trigger fires for: columns by name, values, comparisons, text.

use std::ffi::{CStr, CString};

use pgrx::pg_sys;

/// The table (or view) a trigger fires on.
pub fn trigger_table(trigger: &pgrx::PgTrigger<'_>) -> pg_sys::Oid {
    trigger.relid().expect("a trigger fires on a relation")
}

/// A column value: the datum and whether it is NULL.
pub type Value = (pg_sys::Datum, bool);

/// A live column of `rel` by name: its attribute number and its catalog row.
///
/// # Safety
/// `rel` must be an open relation; the returned row lives as long as its descriptor.
pub unsafe fn column<'a>(rel: pg_sys::Relation, name: &str) -> Option<(i32, &'a pg_sys::FormData_pg_attribute)> {
    let c = CString::new(name).ok()?;
    let n = pg_sys::attnameAttNum(rel, c.as_ptr(), false) as i32;
    if n <= 0 {
        return None;
    }
    // pgrx finds the attribute where each PostgreSQL version keeps it; the row itself lives
    // in the relation's descriptor, not in the temporary wrapper.
    let att: *const pg_sys::FormData_pg_attribute = pgrx::PgTupleDesc::from_pg_unchecked((*rel).rd_att).get(n as usize - 1)?;
    Some((n, &*att))
}

/// The value of attribute `attnum` of `tuple`.
///
/// # Safety
/// `tuple` must be a valid tuple of descriptor `desc`, and `attnum` one of its attributes.
pub unsafe fn value(tuple: pg_sys::HeapTuple, desc: pg_sys::TupleDesc, attnum: i32) -> Value {
    let mut isnull = false;
    let datum = pg_sys::heap_getattr(tuple, attnum, desc, &mut isnull);
    (datum, isnull)
}

/// Whether two values of one column are the same (NULLs are the same as each other).
///
/// # Safety
/// Both values must be of the type `att` describes.
pub unsafe fn same(a: Value, b: Value, att: &pg_sys::FormData_pg_attribute) -> bool {
    a.1 == b.1 && (a.1 || same_value(a.0, b.0, att))
}

/// Binary equality of two non-null values of one type (a changed representation counts as
/// a change: the checks that use it err towards refusing).
///
/// # Safety
/// Both values must be non-null values of the type `att` describes.
pub unsafe fn same_value(a: pg_sys::Datum, b: pg_sys::Datum, att: &pg_sys::FormData_pg_attribute) -> bool {
    if att.attbyval {
        return a == b;
    }
    match att.attlen {
        -1 => {
            let (x, y) = (pg_sys::pg_detoast_datum_packed(a.cast_mut_ptr()), pg_sys::pg_detoast_datum_packed(b.cast_mut_ptr()));
            let (lx, ly) = (pgrx::varlena::varsize_any_exhdr(x), pgrx::varlena::varsize_any_exhdr(y));
            lx == ly
                && std::slice::from_raw_parts(pgrx::varlena::vardata_any(x) as *const u8, lx)
                    == std::slice::from_raw_parts(pgrx::varlena::vardata_any(y) as *const u8, ly)
        }
        -2 => CStr::from_ptr(a.cast_mut_ptr()) == CStr::from_ptr(b.cast_mut_ptr()),
        n => std::slice::from_raw_parts(a.cast_mut_ptr::<u8>(), n as usize) == std::slice::from_raw_parts(b.cast_mut_ptr::<u8>(), n as usize),
    }
}

/// A non-null value of type `typ` as text, by the type's output function.
pub fn text_of(value: pg_sys::Datum, typ: pg_sys::Oid) -> String {
    // SAFETY: the type's own output function applied to a value of that type.
    unsafe {
        let (mut output, mut varlena) = (pg_sys::InvalidOid, false);
        pg_sys::getTypeOutputInfo(typ, &mut output, &mut varlena);
        CStr::from_ptr(pg_sys::OidOutputFunctionCall(output, value)).to_string_lossy().into_owned()
    }
}

/// `row` with attribute `attnum` set to `value` (a new tuple in the current memory context).
///
/// # Safety
/// `row` must be a valid tuple of `desc`, and `value` of the attribute's type.
pub unsafe fn with_value(row: pg_sys::HeapTuple, desc: pg_sys::TupleDesc, attnum: i32, value: Value) -> pg_sys::HeapTuple {
    let (mut values, mut nulls, mut cols) = ([value.0], [value.1], [attnum]);
    pg_sys::heap_modify_tuple_by_cols(row, desc, 1, cols.as_mut_ptr(), values.as_mut_ptr(), nulls.as_mut_ptr())
}

/// How a crm_access trigger function must fire. Anyone may attach the function
/// to a table of theirs; fired any other way it refuses, before it reads a row (or a
/// transition table) that such a trigger does not have.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Firing {
    /// BEFORE INSERT OR UPDATE, for each row (it checks or completes the new row).
    BeforeWrite,
    /// AFTER UPDATE or AFTER DELETE, once per statement (it reads the transition tables).
    AfterChangeStatement,
    /// INSTEAD OF INSERT, UPDATE or DELETE on a view, for each row.
    InsteadOfRow,
}

pub fn require_firing(trigger: &pgrx::PgTrigger<'_>, function: &str, firing: Firing) {
    let e = trigger.event();
    let ok = match firing {
        Firing::BeforeWrite => e.fired_for_row() && e.fired_before() && (e.fired_by_insert() || e.fired_by_update()),
        Firing::AfterChangeStatement => {
            // The statements these triggers run name the transition tables crm_old and
            // crm_new; under any other names, those names would be looked up as relations,
            // and could find a temporary view of the caller's (found in pg_temp even with
            // a pinned search_path). So the names must be exactly those.
            let t = trigger.trigger();
            // SAFETY: the trigger's transition table names are NULL or C strings owned by the
            // relcache entry of the firing trigger, alive for this call.
            let named = |p: *mut std::ffi::c_char, want: &CStr| !p.is_null() && unsafe { CStr::from_ptr(p) } == want;
            let tables = (e.fired_by_update() && named(t.tgoldtable, c"crm_old") && named(t.tgnewtable, c"crm_new"))
                || (e.fired_by_delete() && named(t.tgoldtable, c"crm_old") && t.tgnewtable.is_null());
            e.fired_for_statement() && e.fired_after() && tables
        }
        Firing::InsteadOfRow => e.fired_for_row() && e.fired_instead(),
    };
    if !ok {
        let how = match firing {
            Firing::BeforeWrite => "BEFORE INSERT OR UPDATE ... FOR EACH ROW",
            Firing::AfterChangeStatement => "AFTER UPDATE (REFERENCING OLD TABLE AS crm_old NEW TABLE AS crm_new) or AFTER DELETE (REFERENCING OLD TABLE AS crm_old) ... FOR EACH STATEMENT",
            Firing::InsteadOfRow => "INSTEAD OF INSERT OR UPDATE OR DELETE ... FOR EACH ROW",
        };
        crate::error::CrmError::prerequisite(format!("{function} must be fired {how}"))
            .with_hint("It is a trigger function crm_access attaches itself (crm.protect, crm.link_parent, crm.secure_view).")
            .raise();
    }
}
