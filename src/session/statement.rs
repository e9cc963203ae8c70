//! Where the backend stands in the client's statement, and so whose code may be running.
//!
//! PostgreSQL runs code of other roles inside a client's statement: the policies, triggers,
//! rules, defaults, CHECK constraints and index expressions of the tables it uses, and the
//! functions these call, all as the client's own role. In a trusted application's session such
//! code could set `crm.user_name` and act as anyone (issue 24, finding 1). So the acting user
//! may be asserted only where no such code can be running (DESIGN §5, "Only the client asserts
//! identity"): in a top-level `SET`/`RESET` of the client, or in a top-level query of the client
//! that reads no relation and calls no function but built-in ones and crm_access's own (`SELECT
//! crm.set_user('alice')`, `SELECT set_config('crm.user_name', $1, true)`), sent as a simple
//! query or through the extended protocol (not a statement prepared with SQL's `PREPARE`,
//! which any code in the session could replace). Everything nested — a query a function runs, a trigger, the planning of
//! any query (which may fold functions), a `DO` block's or procedure's statements — is not.
//! Except in a superuser's session while running as a superuser, where any code could do
//! anything already.
//!
//! The frames follow the executor (run and finish: AFTER triggers fire in finish) and utility
//! commands; the planner hook (`plans`) tracks plannings. Frames are popped by drop guards,
//! also when an error unwinds through them (previous hooks are called inside pgrx's error
//! boundary).

use std::cell::RefCell;

use pgrx::pg_sys;
use pgrx::prelude::*;

#[derive(Clone)]
enum Frame {
    /// A utility command: whether it came from the client itself, and what it is.
    Utility { toplevel: bool, kind: UtilityKind },
    /// An executor run or finish of this plan (valid while the frame is on the stack);
    /// `client` when it is the query of a portal the client's protocol made (see `client_run`).
    Run { stmt: *const pg_sys::PlannedStmt, client: bool },
}

#[derive(Clone, PartialEq, Eq)]
enum UtilityKind {
    /// SET, RESET, DISCARD: commands that change settings and run nobody's code.
    Setting,
    /// COPY ... FROM into a table named with its schema (schema, table): what pg_restore runs.
    CopyInto(String, String),
    /// EXPLAIN, which runs the query it explains inside it when it analyzes.
    Explain,
    /// LOCK TABLE (see `catalog::locks`).
    Lock,
    Other,
}

thread_local! {
    static FRAMES: RefCell<Vec<Frame>> = const { RefCell::new(Vec::new()) };
    /// The library was loaded inside code nested in a statement we did not see start: until
    /// the transaction ends, where we stand is unknown, so nothing may assert identity.
    static LOADED_NESTED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    static PREV_RUN: std::cell::Cell<pg_sys::ExecutorRun_hook_type> = const { std::cell::Cell::new(None) };
    static PREV_FINISH: std::cell::Cell<pg_sys::ExecutorFinish_hook_type> = const { std::cell::Cell::new(None) };
    static PREV_UTILITY: std::cell::Cell<pg_sys::ProcessUtility_hook_type> = const { std::cell::Cell::new(None) };
}

pub fn init() {
    // SAFETY: chaining the backend's hooks at library load, keeping the previous ones. A
    // library loaded while a statement runs sees only the frames that start after: a client's
    // top-level statement loads it with no error context set up (before its executor runs),
    // while a function, a SQL function's or SPI's query, a trigger or a DO block has one.
    unsafe {
        LOADED_NESTED.set(!pg_sys::error_context_stack.is_null());
        PREV_RUN.set(pg_sys::ExecutorRun_hook);
        pg_sys::ExecutorRun_hook = Some(executor_run);
        PREV_FINISH.set(pg_sys::ExecutorFinish_hook);
        pg_sys::ExecutorFinish_hook = Some(executor_finish);
        PREV_UTILITY.set(pg_sys::ProcessUtility_hook);
        pg_sys::ProcessUtility_hook = Some(process_utility);
    }
}

/// Pops a frame (and any left above it) on drop, also when an error unwinds through.
struct Pushed {
    index: usize,
}

impl Drop for Pushed {
    fn drop(&mut self) {
        FRAMES.with(|f| f.borrow_mut().truncate(self.index));
    }
}

fn push(frame: Frame) -> Pushed {
    FRAMES.with(|f| {
        let mut f = f.borrow_mut();
        f.push(frame);
        Pushed { index: f.len() - 1 }
    })
}

/// How many executor runs and utility commands are in progress (0 between statements).
pub fn depth() -> usize {
    FRAMES.with(|f| f.borrow().len())
}

/// Whether a client statement (or a planning) is in progress.
pub fn inside() -> bool {
    depth() > 0 || super::plans::planning() || LOADED_NESTED.get()
}

/// The transaction ended: every statement it ran is over.
pub fn transaction_ended() {
    LOADED_NESTED.set(false);
}

/// Whether the acting user may be set now (see the module comment). `own_function` is the
/// crm_access function doing the setting, if any, with its hash as plans record it: that one
/// function may be in the query.
pub fn may_assert_identity(own_function: Option<(pg_sys::Oid, u32)>) -> bool {
    // SAFETY: reads a flag of the backend's state.
    if unsafe { pg_sys::InitializingParallelWorker } {
        // A parallel worker takes its leader's settings, which the leader checked.
        return true;
    }
    // SAFETY: reads of the backend's role ids and their catalog rows.
    if unsafe { pg_sys::superuser_arg(pg_sys::GetSessionUserId()) && pg_sys::superuser() } {
        // A superuser's session running as a superuser: whatever code runs there could do
        // anything already (a trigger fired by a superuser's write runs as the superuser).
        // Code of a table owner run as the owner (ANALYZE, crm_access's own writes) or a
        // superuser's SECURITY DEFINER function called in someone else's session is not this.
        return true;
    }
    if super::plans::planning() || LOADED_NESTED.get() {
        return false;
    }
    FRAMES.with(|f| match f.borrow().as_slice() {
        [Frame::Utility { toplevel: true, kind: UtilityKind::Setting }] => true,
        // SAFETY: a frame's plan is valid while the frame is on the stack.
        // SAFETY: the frame's plan is valid while the frame is on the stack.
        [Frame::Run { stmt, client: true }] => unsafe { runs_nobody_elses_code(*stmt, own_function) },
        _ => false,
    })
}

/// A query that reads no relation (so no policy, trigger, rule, default or index of anyone's
/// runs), whose plan is a single `Result` or function scan, every expression of which has a
/// built-in type and calls only built-in functions (or our own `own_function`), so that no
/// domain's CHECK, type input function or operator of anyone's can run inside it (red team of
/// issue 24: a composite or `jsonb_to_record` column of another owner's domain type); and
/// whose plan depends on no function or type that is not built in (PostgreSQL records every
/// such function among the plan's invalidation items, inlined SQL functions included).
///
/// # Safety
/// `stmt` must be null or a valid `PlannedStmt`.
unsafe fn runs_nobody_elses_code(stmt: *const pg_sys::PlannedStmt, own_function: Option<(pg_sys::Oid, u32)>) -> bool {
    if stmt.is_null() || (*stmt).commandType != pg_sys::CmdType::CMD_SELECT || !(*stmt).utilityStmt.is_null() {
        return false;
    }
    if !plain_plan(stmt, own_function.map(|(oid, _)| oid)) {
        return false;
    }
    if !pgrx::PgList::<pg_sys::Oid>::from_pg((*stmt).relationOids).is_empty() {
        return false;
    }
    let rtable = pgrx::PgList::<pg_sys::RangeTblEntry>::from_pg((*stmt).rtable);
    if rtable.iter_ptr().any(|rte| (*rte).rtekind == pg_sys::RTEKind::RTE_RELATION || (*rte).relid != pg_sys::InvalidOid) {
        return false;
    }
    pgrx::PgList::<pg_sys::PlanInvalItem>::from_pg((*stmt).invalItems).iter_ptr().all(|item| {
        let item = &*item;
        if item.cacheId == pg_sys::SysCacheIdentifier::PROCOID as i32 {
            super::plans::is_own_item(item) || Some(item.hashValue) == own_function.map(|(_, hash)| hash)
        } else {
            super::plans::is_own_item(item)
        }
    })
}

/// The plan of a query that can run no one's code: a `Result` or a function scan, with no
/// subplan, child plan or init plan, whose expressions are built-in all through.
///
/// # Safety
/// `stmt` must be a valid `PlannedStmt`.
unsafe fn plain_plan(stmt: *const pg_sys::PlannedStmt, own_function: Option<pg_sys::Oid>) -> bool {
    let plan = (*stmt).planTree;
    if plan.is_null() || !(*stmt).subplans.is_null() || !(*plan).initPlan.is_null() || !(*plan).lefttree.is_null() || !(*plan).righttree.is_null() {
        return false;
    }
    let mut context = own_function.unwrap_or(pg_sys::InvalidOid);
    let ctx = (&mut context as *mut pg_sys::Oid).cast::<std::ffi::c_void>();
    let built_in = |node: *mut pg_sys::List| node.is_null() || !foreign_code(node.cast(), ctx);
    let common = built_in((*plan).targetlist) && built_in((*plan).qual);
    match (*plan).type_ {
        pg_sys::NodeTag::T_Result => common && built_in((*plan.cast::<pg_sys::Result>()).resconstantqual.cast()),
        pg_sys::NodeTag::T_FunctionScan => {
            let functions = pgrx::PgList::<pg_sys::RangeTblFunction>::from_pg((*plan.cast::<pg_sys::FunctionScan>()).functions);
            common
                && functions.iter_ptr().all(|f| {
                    !foreign_code((*f).funcexpr, ctx)
                        && pgrx::PgList::<pg_sys::Oid>::from_pg((*f).funccoltypes).iter_oid().all(|t| t.to_u32() < pg_sys::FirstNormalObjectId)
                })
        }
        _ => false,
    }
}

/// Expression walker: whether `node` holds a value of a type that is not built in, or calls a
/// function that is not (but for the one in `context`, our own).
///
/// # Safety
/// Only `expression_tree_walker` and `plain_plan` call it, with an expression tree and a
/// pointer to the allowed function's oid.
#[pg_guard]
unsafe extern "C-unwind" fn foreign_code(node: *mut pg_sys::Node, context: *mut std::ffi::c_void) -> bool {
    if node.is_null() {
        return false;
    }
    let own = *context.cast::<pg_sys::Oid>();
    let built_in = |oid: pg_sys::Oid| oid.to_u32() < pg_sys::FirstNormalObjectId || (oid == own && own != pg_sys::InvalidOid);
    let structural = matches!((*node).type_, pg_sys::NodeTag::T_List | pg_sys::NodeTag::T_TargetEntry);
    if !structural {
        if !built_in(pg_sys::exprType(node)) {
            return true;
        }
        let function = match (*node).type_ {
            pg_sys::NodeTag::T_FuncExpr => Some((*node.cast::<pg_sys::FuncExpr>()).funcid),
            pg_sys::NodeTag::T_OpExpr | pg_sys::NodeTag::T_DistinctExpr | pg_sys::NodeTag::T_NullIfExpr => Some((*node.cast::<pg_sys::OpExpr>()).opfuncid),
            pg_sys::NodeTag::T_ScalarArrayOpExpr => Some((*node.cast::<pg_sys::ScalarArrayOpExpr>()).opfuncid),
            _ => None,
        };
        if function.is_some_and(|f| !built_in(f)) {
            return true;
        }
    }
    pg_sys::expression_tree_walker(node, Some(foreign_code), context)
}

extern "C-unwind" {
    /// PostgreSQL's own callback, which the extended protocol's Execute sets up to report the
    /// portal's parameters (the symbol itself, not pgrx's wrapper of it).
    #[link_name = "ParamsErrorCallback"]
    fn params_error_callback(arg: *mut std::ffi::c_void);
}

/// Whether this run is the client's own query: the main query of the active portal, run with
/// no error context but the one the protocol's Execute sets up. Whatever runs inside a function
/// (a SQL function's query, an SPI cursor a PL/pgSQL loop fetches from, a trigger at COMMIT, a
/// domain's CHECK at Bind or parse time) has its language's or SPI's context on that stack,
/// even when no frame of ours is around it (red team of issue 24, round 9).
///
/// # Safety
/// `query_desc` must be null or valid.
unsafe fn client_run(query_desc: *const pg_sys::QueryDesc) -> bool {
    let portal = pg_sys::ActivePortal;
    if query_desc.is_null() || portal.is_null() || !std::ptr::eq((*portal).queryDesc, query_desc) {
        return false;
    }
    // The unnamed portal: only the protocol makes it (a simple query's, or a Bind without a
    // portal name). A named one may be a cursor that code in the session made under the name
    // of a portal the client was about to Execute (`CLOSE`, then `DECLARE`, or a PL/pgSQL
    // `OPEN`: red team of issue 24, round 11).
    if (*portal).name.is_null() || *(*portal).name != 0 {
        return false;
    }
    // A statement prepared with SQL's PREPARE may be anyone's: code running in the session
    // can DEALLOCATE the client's statement and PREPARE its own under the name the client
    // executes next (red team of issue 24, round 10). Only the protocol's own (Parse) ones,
    // and unnamed ones, are the client's.
    if !(*portal).prepStmtName.is_null() && *(*portal).prepStmtName != 0 {
        let prepared = pg_sys::FetchPreparedStatement((*portal).prepStmtName, false);
        if prepared.is_null() || (*prepared).from_sql {
            return false;
        }
    }
    let protocol = params_error_callback as *const () as usize;
    let mut context = pg_sys::error_context_stack;
    while !context.is_null() {
        if (*context).callback.map(|f| f as *const () as usize) != Some(protocol) {
            return false;
        }
        context = (*context).previous;
    }
    true
}

/// # Safety
/// Only PostgreSQL calls it, as `ExecutorRun_hook`, with arguments passed on unchanged.
#[cfg(any(feature = "pg13", feature = "pg14", feature = "pg15", feature = "pg16", feature = "pg17"))]
#[pg_guard]
unsafe extern "C-unwind" fn executor_run(query_desc: *mut pg_sys::QueryDesc, direction: pg_sys::ScanDirection::Type, count: u64, execute_once: bool) {
    let _frame = push(Frame::Run { stmt: plan_of(query_desc), client: client_run(query_desc) });
    match PREV_RUN.get() {
        Some(prev) => pg_sys::ffi::pg_guard_ffi_boundary(|| prev(query_desc, direction, count, execute_once)),
        None => pg_sys::standard_ExecutorRun(query_desc, direction, count, execute_once),
    }
    super::plans::statement_ended();
}

/// # Safety
/// As above.
#[cfg(not(any(feature = "pg13", feature = "pg14", feature = "pg15", feature = "pg16", feature = "pg17")))]
#[pg_guard]
unsafe extern "C-unwind" fn executor_run(query_desc: *mut pg_sys::QueryDesc, direction: pg_sys::ScanDirection::Type, count: u64) {
    let _frame = push(Frame::Run { stmt: plan_of(query_desc), client: client_run(query_desc) });
    match PREV_RUN.get() {
        Some(prev) => pg_sys::ffi::pg_guard_ffi_boundary(|| prev(query_desc, direction, count)),
        None => pg_sys::standard_ExecutorRun(query_desc, direction, count),
    }
    super::plans::statement_ended();
}

/// # Safety
/// `query_desc` must be null or valid.
unsafe fn plan_of(query_desc: *const pg_sys::QueryDesc) -> *const pg_sys::PlannedStmt {
    if query_desc.is_null() {
        std::ptr::null()
    } else {
        (*query_desc).plannedstmt
    }
}

/// # Safety
/// Only PostgreSQL calls it, as `ExecutorFinish_hook`, with arguments passed on unchanged.
#[pg_guard]
unsafe extern "C-unwind" fn executor_finish(query_desc: *mut pg_sys::QueryDesc) {
    let _frame = push(Frame::Run { stmt: plan_of(query_desc), client: client_run(query_desc) });
    match PREV_FINISH.get() {
        Some(prev) => pg_sys::ffi::pg_guard_ffi_boundary(|| prev(query_desc)),
        None => pg_sys::standard_ExecutorFinish(query_desc),
    }
    super::plans::statement_ended();
}

/// # Safety
/// `copy` must be a valid `CopyStmt`.
unsafe fn copy_into(copy: *const pg_sys::CopyStmt) -> UtilityKind {
    let rel = (*copy).relation;
    if !(*copy).is_from || rel.is_null() || (*rel).schemaname.is_null() || (*rel).relname.is_null() {
        return UtilityKind::Other;
    }
    let name = |p: *const std::ffi::c_char| std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned();
    UtilityKind::CopyInto(name((*rel).schemaname), name((*rel).relname))
}

/// Whether the client's own top-level statement is `COPY schema.table FROM ...`: a load, as
/// pg_restore's. What runs nested in it is that table's triggers (the audit log's own, for
/// crm_access's tables, which only their owner or a superuser could add to).
pub fn copying_into(schema: &str, table: &str) -> bool {
    FRAMES.with(|f| {
        matches!(f.borrow().first(), Some(Frame::Utility { toplevel: true, kind: UtilityKind::CopyInto(s, t) }) if s == schema && t == table)
    })
}

/// Whether the innermost statement in progress is an `EXPLAIN` (the query it analyzes has
/// finished running).
pub fn explaining() -> bool {
    FRAMES.with(|f| matches!(f.borrow().last(), Some(Frame::Utility { kind: UtilityKind::Explain, .. })))
}

/// # Safety
/// `pstmt` must be a valid utility `PlannedStmt`.
unsafe fn utility_frame(pstmt: *const pg_sys::PlannedStmt, context: pg_sys::ProcessUtilityContext::Type) -> Frame {
    let node = if pstmt.is_null() { std::ptr::null_mut() } else { (*pstmt).utilityStmt };
    let kind = if node.is_null() {
        UtilityKind::Other
    } else {
        match (*node).type_ {
            pg_sys::NodeTag::T_VariableSetStmt | pg_sys::NodeTag::T_DiscardStmt => UtilityKind::Setting,
            pg_sys::NodeTag::T_CopyStmt => copy_into(node.cast()),
            pg_sys::NodeTag::T_ExplainStmt => UtilityKind::Explain,
            pg_sys::NodeTag::T_LockStmt => UtilityKind::Lock,
            _ => UtilityKind::Other,
        }
    };
    Frame::Utility { toplevel: context == pg_sys::ProcessUtilityContext::PROCESS_UTILITY_TOPLEVEL && depth() == 0, kind }
}

/// Whether a utility command may run or make plans: anything but transaction control and
/// settings (which a pooled transaction runs before it asserts its user: see
/// `plans::settle`).
///
/// # Safety
/// `pstmt` must be the valid utility statement `frame` was made from.
unsafe fn may_use_plans(pstmt: *const pg_sys::PlannedStmt, frame: &Frame) -> bool {
    if matches!(frame, Frame::Utility { kind: UtilityKind::Setting, .. }) {
        return false;
    }
    let node = if pstmt.is_null() { std::ptr::null_mut() } else { (*pstmt).utilityStmt };
    node.is_null() || !matches!((*node).type_, pg_sys::NodeTag::T_TransactionStmt | pg_sys::NodeTag::T_VariableShowStmt)
}

/// Tell `commits` that this transaction runs COMMIT PREPARED.
///
/// # Safety
/// `pstmt` must be the utility statement being run.
unsafe fn note_commit_prepared(pstmt: *mut pg_sys::PlannedStmt) {
    let node = (*pstmt).utilityStmt;
    if !node.is_null() && (*node).type_ == pg_sys::NodeTag::T_TransactionStmt {
        let stmt = node as *mut pg_sys::TransactionStmt;
        if (*stmt).kind == pg_sys::TransactionStmtKind::TRANS_STMT_COMMIT_PREPARED {
            crate::catalog::commits::committed_prepared();
        }
    }
}

/// # Safety
/// Only PostgreSQL calls it, as `ProcessUtility_hook`, with arguments passed on unchanged.
#[cfg(feature = "pg13")]
#[pg_guard]
unsafe extern "C-unwind" fn process_utility(
    pstmt: *mut pg_sys::PlannedStmt,
    query_string: *const std::ffi::c_char,
    context: pg_sys::ProcessUtilityContext::Type,
    params: pg_sys::ParamListInfo,
    query_env: *mut pg_sys::QueryEnvironment,
    dest: *mut pg_sys::DestReceiver,
    qc: *mut pg_sys::QueryCompletion,
) {
    // An EXECUTE fetches its plan before any query starts: a grant that has ended must
    // invalidate it first (`expiry`).
    super::cache::expire_if_due(super::plans::decision_moment());
    note_commit_prepared(pstmt);
    let frame = utility_frame(pstmt, context);
    if may_use_plans(pstmt, &frame) {
        super::plans::settle();
    }
    let load = restore_load(pstmt, &frame);
    let locking = matches!(frame, Frame::Utility { kind: UtilityKind::Lock, .. });
    let _frame = push(frame);
    let run = || match PREV_UTILITY.get() {
        Some(prev) => pg_sys::ffi::pg_guard_ffi_boundary(|| prev(pstmt, query_string, context, params, query_env, dest, qc)),
        None => pg_sys::standard_ProcessUtility(pstmt, query_string, context, params, query_env, dest, qc),
    };
    run_load(load, run);
    super::plans::statement_ended();
    if locking {
        if let Err(e) = crate::catalog::locks::refuse_strong_locks() {
            e.raise();
        }
    }
}

/// # Safety
/// Only PostgreSQL calls it, as `ProcessUtility_hook`, with arguments passed on unchanged.
#[cfg(not(feature = "pg13"))]
#[pg_guard]
#[allow(clippy::too_many_arguments)]
unsafe extern "C-unwind" fn process_utility(
    pstmt: *mut pg_sys::PlannedStmt,
    query_string: *const std::ffi::c_char,
    read_only_tree: bool,
    context: pg_sys::ProcessUtilityContext::Type,
    params: pg_sys::ParamListInfo,
    query_env: *mut pg_sys::QueryEnvironment,
    dest: *mut pg_sys::DestReceiver,
    qc: *mut pg_sys::QueryCompletion,
) {
    // An EXECUTE fetches its plan before any query starts: a grant that has ended must
    // invalidate it first (`expiry`).
    super::cache::expire_if_due(super::plans::decision_moment());
    note_commit_prepared(pstmt);
    let frame = utility_frame(pstmt, context);
    if may_use_plans(pstmt, &frame) {
        super::plans::settle();
    }
    let load = restore_load(pstmt, &frame);
    let locking = matches!(frame, Frame::Utility { kind: UtilityKind::Lock, .. });
    let _frame = push(frame);
    let run = || match PREV_UTILITY.get() {
        Some(prev) => pg_sys::ffi::pg_guard_ffi_boundary(|| prev(pstmt, query_string, read_only_tree, context, params, query_env, dest, qc)),
        None => pg_sys::standard_ProcessUtility(pstmt, query_string, read_only_tree, context, params, query_env, dest, qc),
    };
    run_load(load, run);
    super::plans::statement_ended();
    if locking {
        if let Err(e) = crate::catalog::locks::refuse_strong_locks() {
            e.raise();
        }
    }
}

/// The table of crm_access a client's own `COPY ... FROM` loads as a restore does
/// (`catalog::restore`), if it is one.
///
/// # Safety
/// `pstmt` must be the valid utility statement `frame` was made from.
unsafe fn restore_load(pstmt: *const pg_sys::PlannedStmt, frame: &Frame) -> Option<pg_sys::Oid> {
    match frame {
        Frame::Utility { toplevel: true, kind: UtilityKind::CopyInto(..) } => crate::catalog::restore::whole_row_load((*pstmt).utilityStmt.cast()),
        _ => None,
    }
}

/// Run a utility statement; a restore's load as a replica applies rows, then noted.
fn run_load(load: Option<pg_sys::Oid>, run: impl FnOnce()) {
    match load {
        None => run(),
        Some(relid) => {
            crate::catalog::restore::as_replica(run);
            if let Err(e) = crate::catalog::restore::noted(relid) {
                e.raise();
            }
        }
    }
}
