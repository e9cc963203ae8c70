//! `crm.hide_statistics`: planning a role's queries without the column statistics of tables
//! whose rows it may not all see.
//!
//! ANALYZE gathers a table's statistics (most common values, histograms, distinct counts) over
//! every row, and PostgreSQL uses them to estimate leakproof conditions (text `=`, `<`, ...)
//! even on a table under row security. So a plain `EXPLAIN` of `WHERE company = 'Globex'`
//! estimates how many rows hold that value, the hidden ones included, and a walk over prefixes
//! reads how hidden values are spread (red team of issue 24, finding 7). With the setting on,
//! such a table's columns and expression indexes have no statistics for the planner: estimates
//! come from the table's size alone (`pg_class.reltuples`, which any login can read). Plans
//! may then be worse, so it is off by default and meant for the logins that must not learn
//! that much (`ALTER ROLE bi_login SET crm.hide_statistics = on`); only superusers may set it.

use std::cell::Cell;

use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::{GucContext, GucFlags, GucRegistry, GucSetting};

pub static HIDE: GucSetting<bool> = GucSetting::<bool>::new(false);

thread_local! {
    static PREV_RELATION: Cell<pg_sys::get_relation_stats_hook_type> = const { Cell::new(None) };
    static PREV_INDEX: Cell<pg_sys::get_index_stats_hook_type> = const { Cell::new(None) };
}

pub fn init() {
    GucRegistry::define_bool_guc(
        c"crm.hide_statistics",
        c"Plan without the column statistics of tables under row security.",
        c"Their statistics are gathered over every row, the hidden ones included; estimates then come from the table's size alone.",
        &HIDE,
        GucContext::Suset,
        GucFlags::default(),
    );
    // SAFETY: chaining the backend's hooks at library load, keeping the previous ones.
    unsafe {
        PREV_RELATION.set(pg_sys::get_relation_stats_hook);
        pg_sys::get_relation_stats_hook = Some(relation_stats);
        PREV_INDEX.set(pg_sys::get_index_stats_hook);
        pg_sys::get_index_stats_hook = Some(index_stats);
    }
}

/// Give the planner no statistics: it then estimates as for a column never analyzed.
///
/// # Safety
/// `vardata` must be the planner's.
unsafe fn none(vardata: *mut pg_sys::VariableStatData) -> bool {
    (*vardata).statsTuple = std::ptr::null_mut();
    (*vardata).freefunc = None;
    true
}

/// # Safety
/// Only PostgreSQL calls it, as `get_relation_stats_hook`, with arguments passed on unchanged.
#[pg_guard]
unsafe extern "C-unwind" fn relation_stats(
    root: *mut pg_sys::PlannerInfo,
    rte: *mut pg_sys::RangeTblEntry,
    attnum: pg_sys::AttrNumber,
    vardata: *mut pg_sys::VariableStatData,
) -> bool {
    // Row security applied to this relation in this planning: its policies are on the entry.
    if HIDE.get() && !rte.is_null() && !(*rte).securityQuals.is_null() {
        return none(vardata);
    }
    match PREV_RELATION.get() {
        Some(prev) => prev(root, rte, attnum, vardata),
        None => false,
    }
}

/// # Safety
/// Only PostgreSQL calls it, as `get_index_stats_hook`, with arguments passed on unchanged.
#[pg_guard]
unsafe extern "C-unwind" fn index_stats(
    root: *mut pg_sys::PlannerInfo,
    index: pg_sys::Oid,
    attnum: pg_sys::AttrNumber,
    vardata: *mut pg_sys::VariableStatData,
) -> bool {
    if HIDE.get() {
        let table = pg_sys::IndexGetRelation(index, true);
        if table != pg_sys::InvalidOid && pg_sys::check_enable_rls(table, pg_sys::InvalidOid, true) == pg_sys::CheckEnableRlsResult::RLS_ENABLED as i32 {
            return none(vardata);
        }
    }
    match PREV_INDEX.get() {
        Some(prev) => prev(root, index, attnum, vardata),
        None => false,
    }
}
