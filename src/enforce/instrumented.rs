//! The counts an instrumented run (`EXPLAIN ANALYZE`, auto_explain) keeps of rows the reader
//! may not see.
//!
//! PostgreSQL runs leakproof conditions (text comparisons, say) in an index scan before a row
//! policy, so a scan under row security counts rows the policy then hides: "Rows Removed by
//! Filter", a bitmap index scan's rows, "Heap Blocks", "Heap Fetches", "Index Searches" and
//! the buffers read. Walking prefixes of a value through `EXPLAIN ANALYZE` recovered every
//! company name of leads a BI login may not see (issue 24, finding 7). So when an instrumented
//! run finishes (before EXPLAIN or auto_explain prints anything), those counts are zeroed in
//! every scan of a relation whose row security applies to the reader, with the counts of the
//! subplans its conditions ran, and buffer and WAL use in the whole plan (a node's include its
//! children's). Rows a node returns stay: above the policy they are rows the reader sees.
//!
//! The zeroing does not depend on the values (a notice only when something was hidden would
//! itself tell), and EXPLAIN says that it happened. What stays: how long the scan took, as for
//! any query, and PostgreSQL's statistics views (docs/security.md, "What remains").

use std::cell::Cell;

use pgrx::pg_sys;
use pgrx::prelude::*;

thread_local! {
    static PREV_FINISH: Cell<pg_sys::ExecutorFinish_hook_type> = const { Cell::new(None) };
}

pub fn init() {
    // SAFETY: chaining the backend's hook at library load, keeping the previous one.
    unsafe {
        PREV_FINISH.set(pg_sys::ExecutorFinish_hook);
        pg_sys::ExecutorFinish_hook = Some(executor_finish);
    }
}

/// # Safety
/// Only PostgreSQL calls it, as `ExecutorFinish_hook`, with arguments passed on unchanged.
#[pg_guard]
unsafe extern "C-unwind" fn executor_finish(query_desc: *mut pg_sys::QueryDesc) {
    match PREV_FINISH.get() {
        Some(prev) => pg_sys::ffi::pg_guard_ffi_boundary(|| prev(query_desc)),
        None => pg_sys::standard_ExecutorFinish(query_desc),
    }
    // EXPLAIN ANALYZE prints after ExecutorFinish and auto_explain at ExecutorEnd; both read
    // the nodes' instrumentation, allocated only when the run asked for it.
    if query_desc.is_null() || (*query_desc).instrument_options == 0 || (*query_desc).planstate.is_null() {
        return;
    }
    if hide_counts(query_desc) && crate::session::statement::explaining() {
        ereport!(
            PgLogLevel::NOTICE,
            PgSqlErrorCode::ERRCODE_SUCCESSFUL_COMPLETION,
            "counts of rows under row security are left out of this plan",
            "crm_access shows rows removed by filters and rechecks, index rows and searches, heap blocks and fetches, and buffer use as zero where row security applies: they count rows this role may not see."
        );
    }
}

struct Walk {
    stmt: *const pg_sys::PlannedStmt,
    hid: bool,
}

/// Zero what the plan's instrumentation counted of invisible rows; whether anything was
/// under row security.
///
/// # Safety
/// `query_desc` must be a finished, instrumented query.
unsafe fn hide_counts(query_desc: *mut pg_sys::QueryDesc) -> bool {
    let mut walk = Walk { stmt: (*query_desc).plannedstmt, hid: false };
    let planstate = (*query_desc).planstate;
    visit(planstate, (&raw mut walk).cast());
    if walk.hid {
        // A node's buffer and WAL use include its children's: none can stay.
        without_buffers(planstate, std::ptr::null_mut());
    }
    walk.hid
}

/// Plan-state walker: hides the counts of scans under row security.
///
/// # Safety
/// Only `hide_counts` and `planstate_tree_walker` call it, with a `Walk` as context.
#[pg_guard]
unsafe extern "C-unwind" fn visit(ps: *mut pg_sys::PlanState, context: *mut std::ffi::c_void) -> bool {
    let walk = &mut *context.cast::<Walk>();
    if let Some(index) = scanned_relation((*ps).plan) {
        if row_secured(walk.stmt, index) {
            hide_scan(ps);
            walk.hid = true;
        }
    }
    pg_sys::planstate_tree_walker(ps, Some(visit), context)
}

/// The range-table index of the relation a scan node reads, if it reads one.
///
/// # Safety
/// `plan` must be valid.
unsafe fn scanned_relation(plan: *const pg_sys::Plan) -> Option<pg_sys::Index> {
    use pg_sys::NodeTag::*;
    #[cfg(not(feature = "pg13"))]
    let tid_range = (*plan).type_ == T_TidRangeScan;
    #[cfg(feature = "pg13")]
    let tid_range = false;
    let scans = matches!(
        (*plan).type_,
        T_SeqScan | T_SampleScan | T_IndexScan | T_IndexOnlyScan | T_BitmapIndexScan | T_BitmapHeapScan | T_TidScan | T_ForeignScan | T_CustomScan
    );
    if !(scans || tid_range) {
        return None;
    }
    Some((*plan.cast::<pg_sys::Scan>()).scanrelid)
}

/// The role a relation's privileges (and row security) are checked as: a view's owner for
/// the relations it reads, else the current user (`InvalidOid`).
///
/// # Safety
/// `rte` must be an entry of `stmt`'s range table.
#[cfg(any(feature = "pg13", feature = "pg14", feature = "pg15"))]
unsafe fn checked_as(_stmt: *const pg_sys::PlannedStmt, rte: *const pg_sys::RangeTblEntry) -> pg_sys::Oid {
    (*rte).checkAsUser
}

/// # Safety
/// As above.
#[cfg(not(any(feature = "pg13", feature = "pg14", feature = "pg15")))]
unsafe fn checked_as(stmt: *const pg_sys::PlannedStmt, rte: *const pg_sys::RangeTblEntry) -> pg_sys::Oid {
    let infos = pgrx::PgList::<pg_sys::RTEPermissionInfo>::from_pg((*stmt).permInfos);
    match ((*rte).perminfoindex as usize).checked_sub(1).and_then(|i| infos.get_ptr(i)) {
        Some(info) => (*info).checkAsUser,
        None => pg_sys::InvalidOid,
    }
}

/// Whether row security applies to the relation a scan reads at range-table `index`: its
/// own, or its parent's when it is a partition or inheritance child read through the parent
/// (whose policies are then in its conditions).
///
/// # Safety
/// `index` must be a relation entry of `stmt`'s range table.
unsafe fn row_secured(stmt: *const pg_sys::PlannedStmt, index: pg_sys::Index) -> bool {
    let rtable = pgrx::PgList::<pg_sys::RangeTblEntry>::from_pg((*stmt).rtable);
    let appended = pgrx::PgList::<pg_sys::AppendRelInfo>::from_pg((*stmt).appendRelations);
    let mut index = index;
    // Each step goes to a parent, whose index differs; the bound only guards a malformed list.
    for _ in 0..=appended.len() {
        let Some(rte) = (index as usize).checked_sub(1).and_then(|i| rtable.get_ptr(i)) else { return false };
        if (*rte).rtekind == pg_sys::RTEKind::RTE_RELATION
            && pg_sys::check_enable_rls((*rte).relid, checked_as(stmt, rte), true) == pg_sys::CheckEnableRlsResult::RLS_ENABLED as i32
        {
            return true;
        }
        match appended.iter_ptr().find(|a| (**a).child_relid == index) {
            Some(a) => index = (*a).parent_relid,
            None => return false,
        }
    }
    false
}

/// Zero one instrumentation's counts of rows a filter, recheck or index saw (`scanned`: the
/// rows it returned are index entries, not rows past the policy).
fn hide_in(instr: &mut pg_sys::Instrumentation, scanned: bool) {
    instr.nfiltered1 = 0.0;
    instr.nfiltered2 = 0.0;
    // Index-only scans count heap fetches here.
    instr.ntuples2 = 0.0;
    if scanned {
        instr.ntuples = 0.0;
        instr.tuplecount = 0.0;
    }
}

/// # Safety
/// `ps` must be a valid plan state of a finished, instrumented run.
unsafe fn hide_instrumentation(ps: *mut pg_sys::PlanState, scanned: bool) {
    if let Some(instr) = (*ps).instrument.as_mut() {
        hide_in(instr, scanned);
    }
    if let Some(workers) = (*ps).worker_instrument.as_mut() {
        let n = usize::try_from(workers.num_workers).unwrap_or(0);
        for instr in workers.instrument.as_mut_slice(n) {
            hide_in(instr, scanned);
        }
    }
}

/// Hide a scan's counts of rows before its conditions: its own, its node's, and those of the
/// subplans its conditions ran (once per row they looked at).
///
/// # Safety
/// `ps` must be a valid plan state of a finished, instrumented run.
unsafe fn hide_scan(ps: *mut pg_sys::PlanState) {
    let bitmap_index = (*(*ps).plan).type_ == pg_sys::NodeTag::T_BitmapIndexScan;
    hide_instrumentation(ps, bitmap_index);
    hide_node_counts(ps);
    for sub in pgrx::PgList::<pg_sys::SubPlanState>::from_pg((*ps).subPlan).iter_ptr() {
        hide_everything((*sub).planstate, std::ptr::null_mut());
    }
}

/// Plan-state walker: zero every count of a subplan's nodes.
///
/// # Safety
/// Only `hide_scan` and `planstate_tree_walker` call it.
#[pg_guard]
unsafe extern "C-unwind" fn hide_everything(ps: *mut pg_sys::PlanState, context: *mut std::ffi::c_void) -> bool {
    if ps.is_null() {
        return false;
    }
    hide_instrumentation(ps, true);
    if let Some(instr) = (*ps).instrument.as_mut() {
        instr.nloops = instr.nloops.min(1.0);
    }
    hide_node_counts(ps);
    pg_sys::planstate_tree_walker(ps, Some(hide_everything), context)
}

/// The counts a node keeps outside its instrumentation: heap blocks of a bitmap heap scan,
/// index searches (PostgreSQL 18).
///
/// # Safety
/// `ps` must be a valid plan state.
#[cfg(not(feature = "pg18"))]
unsafe fn hide_node_counts(ps: *mut pg_sys::PlanState) {
    if (*(*ps).plan).type_ == pg_sys::NodeTag::T_BitmapHeapScan {
        let state = ps.cast::<pg_sys::BitmapHeapScanState>();
        (*state).exact_pages = 0;
        (*state).lossy_pages = 0;
    }
}

/// # Safety
/// As above.
#[cfg(feature = "pg18")]
unsafe fn hide_node_counts(ps: *mut pg_sys::PlanState) {
    unsafe fn searches(own: &mut pg_sys::IndexScanInstrumentation, shared: *mut pg_sys::SharedIndexScanInstrumentation) {
        own.nsearches = 0;
        if let Some(shared) = shared.as_mut() {
            let n = usize::try_from(shared.num_workers).unwrap_or(0);
            for w in shared.winstrument.as_mut_slice(n) {
                w.nsearches = 0;
            }
        }
    }
    match (*(*ps).plan).type_ {
        pg_sys::NodeTag::T_BitmapHeapScan => {
            let state = &mut *ps.cast::<pg_sys::BitmapHeapScanState>();
            state.stats.exact_pages = 0;
            state.stats.lossy_pages = 0;
            if let Some(shared) = state.sinstrument.as_mut() {
                let n = usize::try_from(shared.num_workers).unwrap_or(0);
                for w in shared.sinstrument.as_mut_slice(n) {
                    w.exact_pages = 0;
                    w.lossy_pages = 0;
                }
            }
        }
        pg_sys::NodeTag::T_IndexScan => {
            let state = &mut *ps.cast::<pg_sys::IndexScanState>();
            searches(&mut state.iss_Instrument, state.iss_SharedInfo);
        }
        pg_sys::NodeTag::T_IndexOnlyScan => {
            let state = &mut *ps.cast::<pg_sys::IndexOnlyScanState>();
            searches(&mut state.ioss_Instrument, state.ioss_SharedInfo);
        }
        pg_sys::NodeTag::T_BitmapIndexScan => {
            let state = &mut *ps.cast::<pg_sys::BitmapIndexScanState>();
            searches(&mut state.biss_Instrument, state.biss_SharedInfo);
        }
        _ => {}
    }
}

/// Plan-state walker: zero every node's buffer and WAL use.
///
/// # Safety
/// Only `hide_counts` and `planstate_tree_walker` call it.
#[pg_guard]
unsafe extern "C-unwind" fn without_buffers(ps: *mut pg_sys::PlanState, context: *mut std::ffi::c_void) -> bool {
    if ps.is_null() {
        return false;
    }
    let clear = |instr: &mut pg_sys::Instrumentation| {
        instr.bufusage = pg_sys::BufferUsage::default();
        instr.walusage = pg_sys::WalUsage::default();
    };
    if let Some(instr) = (*ps).instrument.as_mut() {
        clear(instr);
    }
    if let Some(workers) = (*ps).worker_instrument.as_mut() {
        let n = usize::try_from(workers.num_workers).unwrap_or(0);
        workers.instrument.as_mut_slice(n).iter_mut().for_each(clear);
    }
    pg_sys::planstate_tree_walker(ps, Some(without_buffers), context)
}
