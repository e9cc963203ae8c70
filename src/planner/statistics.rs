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
    /// Whether `ALTER ROLE`/`ALTER DATABASE ... SET crm.hide_statistics` holds it on for this
    /// session's login, read once per session (such settings apply to new sessions only).
    static STORED: Cell<Option<bool>> = const { Cell::new(None) };
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

/// Whether statistics are hidden from this session's plannings. The setting as it stands, or
/// the login's or database's stored setting: loaded as sessions start
/// (`session_preload_libraries`), crm_access defines the setting after the client's startup
/// options were taken, and PostgreSQL then drops a client's `-c crm.hide_statistics=...`
/// (not a superuser's to give) for the default, not for the stored value (red team of issue
/// 24, round 13). A setting in postgresql.conf or by ALTER SYSTEM holds only with the library
/// in `shared_preload_libraries`.
fn hidden() -> bool {
    if HIDE.get() {
        return true;
    }
    if let Some(stored) = STORED.get() {
        return stored;
    }
    const STORED_ON: &std::ffi::CStr = c"SELECT EXISTS (
        SELECT 1 FROM pg_catalog.pg_db_role_setting s, pg_catalog.unnest(s.setconfig) AS c(v)
        WHERE s.setrole IN (0, (SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) pg_catalog.session_user()))
          AND s.setdatabase IN (0, (SELECT d.oid FROM pg_catalog.pg_database d WHERE d.datname OPERATOR(pg_catalog.=) pg_catalog.current_database()))
          AND pg_catalog.split_part(c.v, '=', 1) OPERATOR(pg_catalog.=) 'crm.hide_statistics'
          AND pg_catalog.lower(pg_catalog.split_part(c.v, '=', 2)) OPERATOR(pg_catalog.=) ANY ('{on,true,yes,1,t,y}'))::text";
    // Planning the query below asks these hooks again: off meanwhile.
    STORED.set(Some(false));
    let stored = crate::catalog::privileged::as_invoker(|| crate::catalog::privileged::query_one(STORED_ON)).as_deref() == Some("true");
    STORED.set(Some(stored));
    stored
}

/// The audit log is under row security for everyone but administrators: its statistics would
/// tell any login how its entries are spread (red team of issue 24, round 13).
///
/// # Safety
/// `rte` must be a valid range-table entry.
unsafe fn audit_log(rte: *const pg_sys::RangeTblEntry) -> bool {
    let name = pg_sys::get_rel_name((*rte).relid);
    !name.is_null()
        && std::ffi::CStr::from_ptr(name).to_bytes() == b"audit_log"
        && pg_sys::get_rel_namespace((*rte).relid) == pg_sys::get_namespace_oid(c"crm".as_ptr(), true)
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
    if !rte.is_null() && !(*rte).securityQuals.is_null() && (audit_log(rte) || hidden()) {
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
    let table = pg_sys::IndexGetRelation(index, true);
    if table != pg_sys::InvalidOid && pg_sys::check_enable_rls(table, pg_sys::InvalidOid, true) == pg_sys::CheckEnableRlsResult::RLS_ENABLED as i32 && hidden() {
        return none(vardata);
    }
    match PREV_INDEX.get() {
        Some(prev) => prev(root, index, attnum, vardata),
        None => false,
    }
}
