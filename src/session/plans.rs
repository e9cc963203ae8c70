//! Which cached plans a change of acting user or catalog must throw away.
//!
//! Policies are specialised while planning (`crate::planner`), so a plan can embed what
//! one acting user may reach under one catalog. Resetting every plan of the backend at each
//! change (what PostgreSQL's `ResetPlanCache` does) is always safe but re-plans statements
//! that never touch a protected table, in every pooled transaction. So a change between
//! transactions invalidates only plans marked as holding a decision, and a change in the
//! middle of a transaction that has already consulted the model resets everything.
//!
//! **Marking.** A marked plan carries an invalidation item naming a function that does not
//! exist (oid 0: no dependency PostgreSQL records can name it); firing that item through the
//! plan cache's own callback invalidates exactly those plans and plpgsql cached expressions.
//! A plan is marked when, while it was being planned:
//! - a support function specialised a policy in it (`depends_on_acting_user`);
//! - a decision was consulted at all (`decision_made`: identity was resolved), which covers a
//!   nested planning or a run-time `crm.can()` inside a function folded at plan time;
//! - any function that is not built in was set up to run (`needs_fmgr_hook`), or a SECURITY
//!   DEFINER function or one with a `SET` clause was called (`fmgr_hook`: PostgreSQL does not
//!   ask `needs_fmgr_hook` about those), or a query was started (`executor_start`): an
//!   IMMUTABLE function folded into the plan may have read protected rows through plans or
//!   cursors made earlier, whose decisions the folded constant now holds (found by the red
//!   team, both rounds). What stays unseen is a function looked up before the planning began
//!   and called without a security wrapper (a user-defined type's comparison function, say),
//!   reading protected rows while the planner compares constants; and expressions PostgreSQL
//!   folds once outside any planning and keeps in the relation cache (index expressions and
//!   predicates, partition keys), until that relation changes. Domain constraints, kept in
//!   the type cache, are flushed by every invalidation (`invalidate`).
//! Plannings nest (folding a function plans its body inside the outer planning), so each
//! mark goes to every planning in progress; the planner hook keeps that stack.
//!
//! **A plan reused within a transaction.** PostgreSQL takes in other sessions' invalidations
//! when a statement locks a relation it did not hold yet: a transaction that runs a prepared
//! statement (or a PL/pgSQL function's query) again, every lock already held, reuses the plan
//! without hearing of a catalog change committed since. So a marked plan also carries a serial
//! and the epoch (count of `invalidate` calls) its planning began in, and when it is about to
//! run other than fresh from its planning, `executor_start` takes the invalidations in first:
//! if any arrived, the plan's decisions are overtaken and it is refused with a serialization
//! failure (it cannot be re-planned from there); run again, it is planned anew.
//!
//! **Resetting everything.** Within a transaction, state that outlives one statement holds
//! decisions without any plan of the plan cache: a SQL function's plans live in its call's
//! lookup data for the transaction, and plpgsql keeps a simple expression's state (and the
//! SQL functions it calls) until its plan is invalidated. So a change that arrives after the
//! transaction consulted the model (a function's `SET crm.user_name`, a second `SET LOCAL`,
//! a catalog change committed meanwhile) resets every plan, as before. Such state ends with
//! the transaction, so a change at a transaction's start (the pooled `SET LOCAL`) and the
//! revert at its end need only the targeted invalidation. Plans built before this library
//! was loaded into the backend cannot have been marked, so its first invalidation is a full
//! reset too.
//!
//! **The same user again** (`crm.keep_user_plans`, off by default). In the pooled protocol
//! every transaction asserts its user and reverts it at its end, so every marked plan is
//! planned again in every transaction, even when the connection's transactions all act as
//! the same user. With the setting on, a change of the acting user between transactions is
//! not acted on at once: the plans remember what the user was resolved from (`guc::Acting`:
//! login, setting, whether it is the transaction's own, whether it may be honoured,
//! `crm.require_local_user`), and the change is looked at (`settle`) when it could first
//! matter: at the end of the client statement that asserted a user, at the end of any
//! planning that holds a decision, and before any utility command but transaction control
//! and settings, any call of a function that is neither built in nor ours (a domain's CHECK
//! at Bind time runs one) and any run of a marked plan other than fresh from its planning. Equal:
//! the plans decide as a new planning would, and are kept; different: they are invalidated.
//! The one place PostgreSQL reuses a plan with no hook of ours before it is a protocol-level
//! Bind: a marked plan run there for another user (a transaction that runs a prepared
//! statement before asserting anyone) is refused with a serialization failure, and planned
//! anew when run again, exactly as a plan overtaken by a catalog change. A change within a
//! transaction that has made or run a decision resets everything at once, as before. Only
//! plans with a relation are kept so: they run through an executor start, which checks
//! them. A plan that scans no relation (a PL/pgSQL simple expression, which PostgreSQL may run
//! through a function handle its caches keep, a range type's `subtype_diff` while planning,
//! with no hook of ours) carries another marker, invalidated at once at every change, with
//! the domain constraints; and a procedure's COMMIT invalidates everything it may have
//! kept, since no client statement follows it (red team of the setting).

use std::cell::{Cell, RefCell};

use pgrx::pg_sys;
use pgrx::prelude::*;

thread_local! {
    static MARKER_HASH: Cell<Option<u32>> = const { Cell::new(None) };
    static EAGER_HASH: Cell<Option<u32>> = const { Cell::new(None) };
    /// One entry per planning in progress: whether it holds a decision, and the epoch it began in.
    static PLANNINGS: RefCell<Vec<(bool, u32)>> = const { RefCell::new(Vec::new()) };
    /// Counts `invalidate` calls: a marked plan still valid was made in the current epoch.
    static EPOCH: Cell<u32> = const { Cell::new(0) };
    /// The epoch the last settled change of the acting user began (`settle`): a plan of an
    /// earlier epoch refused later was overtaken by it, whichever hook settled it.
    static ACTING_EPOCH: Cell<u32> = const { Cell::new(0) };
    /// Numbers the marked plans made; `FRESH` is the latest one, with the start of the
    /// client statement that made it, until it starts executing.
    static SERIAL: Cell<u32> = const { Cell::new(0) };
    static FRESH: Cell<(u32, pg_sys::TimestampTz)> = const { Cell::new((0, 0)) };
    /// A read failed closed (the catalog could not be loaded): plans may deny everything.
    static FAILED_CLOSED: Cell<bool> = const { Cell::new(false) };
    /// Whether the current transaction has consulted the model.
    static DECIDED: Cell<bool> = const { Cell::new(false) };
    /// Whether plans may exist that were built without our hooks (see the module comment).
    static UNTRACKED: Cell<bool> = const { Cell::new(true) };
    /// What the acting user was resolved from when the valid marked plans were made, once
    /// known (see "The same user again").
    static PLANNED_FOR: std::cell::RefCell<Option<crate::session::guc::Acting>> = const { std::cell::RefCell::new(None) };
    /// The acting user may have changed since `PLANNED_FOR` was looked at; and whether that
    /// change was made by the client statement in progress.
    static ACTING_CHANGED: Cell<bool> = const { Cell::new(false) };
    static CHANGED_IN_STATEMENT: Cell<bool> = const { Cell::new(false) };

    static PREV_PLANNER: Cell<pg_sys::planner_hook_type> = const { Cell::new(None) };
    static PREV_NEEDS_FMGR: Cell<pg_sys::needs_fmgr_hook_type> = const { Cell::new(None) };
    static PREV_FMGR: Cell<pg_sys::fmgr_hook_type> = const { Cell::new(None) };
    static PREV_EXECUTOR_START: Cell<pg_sys::ExecutorStart_hook_type> = const { Cell::new(None) };
}

const MARKER_CACHE: pg_sys::SysCacheIdentifier::Type = pg_sys::SysCacheIdentifier::PROCOID;
/// Cache ids no syscache has, for items that carry a marked plan's serial and epoch: no
/// invalidation ever names them, and PostgreSQL copies them with the plan.
const SERIAL_ITEM: i32 = -1;
const EPOCH_ITEM: i32 = -2;

pub fn init() {
    // SAFETY: chaining the backend's hooks at library load, keeping the previous ones.
    unsafe {
        PREV_PLANNER.set(pg_sys::planner_hook);
        pg_sys::planner_hook = Some(planner);
        PREV_NEEDS_FMGR.set(pg_sys::needs_fmgr_hook);
        pg_sys::needs_fmgr_hook = Some(needs_fmgr_hook);
        PREV_FMGR.set(pg_sys::fmgr_hook);
        pg_sys::fmgr_hook = Some(fmgr_hook);
        PREV_EXECUTOR_START.set(pg_sys::ExecutorStart_hook);
        pg_sys::ExecutorStart_hook = Some(executor_start);
    }
}

fn marker_hash() -> u32 {
    hash_of(&MARKER_HASH, pg_sys::InvalidOid)
}

/// The marker of plans with no relation (PL/pgSQL's simple expressions, a query of constants):
/// they run with no executor start to check them, so a change of the acting user invalidates
/// them at once, also with `crm.keep_user_plans` on (see "The same user again"). Hashed from
/// the largest oid, which no function has in practice (a collision only invalidates more).
fn eager_hash() -> u32 {
    hash_of(&EAGER_HASH, pg_sys::Oid::from(u32::MAX))
}

fn hash_of(cache: &'static std::thread::LocalKey<Cell<Option<u32>>>, oid: pg_sys::Oid) -> u32 {
    cache.with(|h| {
        *h.get().get_or_insert_with(|| {
            // SAFETY: hashing a key needs the syscache initialised, which it is in any
            // backend that plans or runs our hooks; no catalog access happens.
            let hash = unsafe {
                pg_sys::GetSysCacheHashValue(
                    MARKER_CACHE as i32,
                    pg_sys::Datum::from(oid),
                    pg_sys::Datum::from(0),
                    pg_sys::Datum::from(0),
                    pg_sys::Datum::from(0),
                )
            };
            // 0 means "every entry" to the callbacks; never send it.
            if hash == 0 { 1 } else { hash }
        })
    })
}

/// Append the marker to a list of invalidation items, unless it is there already.
///
/// # Safety
/// `items` must be a valid `List` of `PlanInvalItem`s (or NIL), in the current memory context's lifetime.
unsafe fn with_marker(items: *mut pg_sys::List) -> *mut pg_sys::List {
    with_hash(items, marker_hash())
}

/// # Safety
/// As for `with_marker`.
unsafe fn with_hash(items: *mut pg_sys::List, hash: u32) -> *mut pg_sys::List {
    let list = pgrx::PgList::<pg_sys::PlanInvalItem>::from_pg(items);
    if list.iter_ptr().any(|i| (*i).cacheId == MARKER_CACHE as i32 && (*i).hashValue == hash) {
        return items;
    }
    with_item(items, MARKER_CACHE as i32, hash)
}

/// # Safety
/// As for `with_marker`.
unsafe fn with_item(items: *mut pg_sys::List, cache_id: i32, hash: u32) -> *mut pg_sys::List {
    // Allocated in the current (planner's) memory context, like the items PostgreSQL records.
    let item = pg_sys::palloc0(std::mem::size_of::<pg_sys::PlanInvalItem>()).cast::<pg_sys::PlanInvalItem>();
    (*item).type_ = pg_sys::NodeTag::T_PlanInvalItem;
    (*item).cacheId = cache_id;
    (*item).hashValue = hash;
    pg_sys::lappend(items, item.cast())
}

/// Whether the plan's range table has a relation: then PL/pgSQL cannot run it as a simple
/// expression (`CachedPlanAllowsSimpleValidityCheck`), so it runs only through an executor
/// start, where a reused plan is checked. Not `relationOids`: it also lists the relations a
/// plan names as constants (`'leads'::regclass`), which a simple expression may (red team).
///
/// # Safety
/// `stmt` must be a valid `PlannedStmt`.
unsafe fn scans_a_relation(stmt: *const pg_sys::PlannedStmt) -> bool {
    pgrx::PgList::<pg_sys::RangeTblEntry>::from_pg((*stmt).rtable).iter_ptr().any(|rte| (*rte).rtekind == pg_sys::RTEKind::RTE_RELATION)
}

/// `items` without the items naming `hash` in the marker's cache.
///
/// # Safety
/// As for `with_marker`.
unsafe fn without_hash(items: *mut pg_sys::List, hash: u32) -> *mut pg_sys::List {
    let mut kept = std::ptr::null_mut();
    for item in pgrx::PgList::<pg_sys::PlanInvalItem>::from_pg(items).iter_ptr() {
        if !((*item).cacheId == MARKER_CACHE as i32 && (*item).hashValue == hash) {
            kept = pg_sys::lappend(kept, item.cast());
        }
    }
    kept
}

/// A marked plan's serial and the epoch its planning began in, if it is marked.
///
/// # Safety
/// `stmt` must be a valid `PlannedStmt`.
unsafe fn serial_and_epoch(stmt: *const pg_sys::PlannedStmt) -> Option<(u32, u32)> {
    let (mut serial, mut epoch) = (None, None);
    for item in pgrx::PgList::<pg_sys::PlanInvalItem>::from_pg((*stmt).invalItems).iter_ptr() {
        match (*item).cacheId {
            SERIAL_ITEM => serial = Some((*item).hashValue),
            EPOCH_ITEM => epoch = Some((*item).hashValue),
            _ => {}
        }
    }
    serial.zip(epoch)
}

/// Whether a plan's invalidation item is one of ours (the marker, a serial or an epoch).
pub fn is_own_item(item: &pg_sys::PlanInvalItem) -> bool {
    matches!(item.cacheId, SERIAL_ITEM | EPOCH_ITEM)
        || (item.cacheId == MARKER_CACHE as i32 && (item.hashValue == marker_hash() || item.hashValue == eager_hash()))
}

/// The hash a plan's invalidation item carries for function `oid`.
pub fn function_hash(oid: pg_sys::Oid) -> u32 {
    // SAFETY: hashing a key, as in `marker_hash`.
    unsafe {
        pg_sys::GetSysCacheHashValue(
            MARKER_CACHE as i32,
            pg_sys::Datum::from(oid),
            pg_sys::Datum::from(0),
            pg_sys::Datum::from(0),
            pg_sys::Datum::from(0),
        )
    }
}

/// The hash a role invalidation carries for role `oid`.
pub fn role_hash(oid: pg_sys::Oid) -> u32 {
    // SAFETY: hashing a key, as in `marker_hash`.
    unsafe {
        pg_sys::GetSysCacheHashValue(
            pg_sys::SysCacheIdentifier::AUTHOID as i32,
            pg_sys::Datum::from(oid),
            pg_sys::Datum::from(0),
            pg_sys::Datum::from(0),
            pg_sys::Datum::from(0),
        )
    }
}

fn mark_plannings() {
    PLANNINGS.with(|p| p.borrow_mut().iter_mut().for_each(|(held, _)| *held = true));
}

/// Record on the plan being built that it holds a decision of ours. Returns false when
/// there is no plan to record on, and then nothing may be specialised.
///
/// # Safety
/// `root` must be null or the planner's `PlannerInfo` of the planning in progress.
pub unsafe fn depends_on_acting_user(root: *mut pg_sys::PlannerInfo) -> bool {
    if root.is_null() || (*root).glob.is_null() {
        return false;
    }
    // On the glob as well as on the plannings in progress: an expression planned for a
    // plpgsql cached expression has a glob but goes through no planner hook.
    // The eager marker: an expression planned with no planner hook is relation-free; the
    // planner hook makes a plan with relations deferrable (`planner`).
    let glob = (*root).glob;
    (*glob).invalItems = with_hash((*glob).invalItems, eager_hash());
    decision_made();
    true
}

/// The model was consulted for a decision (identity resolved): every planning in progress
/// holds it, and so does this transaction.
pub fn decision_made() {
    DECIDED.set(true);
    mark_plannings();
}

/// The current transaction ended: its statement-spanning state (SQL functions' plans,
/// plpgsql's expression states) is gone.
pub fn transaction_ended() {
    DECIDED.set(false);
    if super::statement::depth() > 0 && crate::session::guc::keep_user_plans() {
        // A procedure's or DO block's COMMIT or ROLLBACK: its next transaction has no client
        // statement of its own to look at the reverted user, so the plans go now (red team).
        // (Off, the revert's assign hook invalidates them, as it always did.)
        invalidate_plans(false);
    }
    values_may_revert();
    // A plan that let nothing through because the catalog could not be loaded then (during a
    // parallel operation, say) must not outlive the transaction: nothing repairs that.
    if FAILED_CLOSED.replace(false) {
        invalidate();
    }
}

/// A transaction or subtransaction is ending: whatever it set is reverted (whether or not
/// PostgreSQL calls an assign hook for it), and a value it set may now be the session's own.
/// Kept plans are looked at again before they next serve anyone.
/// (In a transaction that has made or run a decision, a change is acted on at once by the
/// hooks that see it, `identity::reset_if_honoured` among them, as before.)
pub fn values_may_revert() {
    // Off, every change is acted on at once by the hooks that see it: nothing is deferred,
    // and a session whose user never changes (a mapped login) keeps its plans as before.
    if crate::session::guc::keep_user_plans() && !DECIDED.get() && PLANNED_FOR.with(|p| p.borrow().is_some()) {
        invalidate_eager();
        ACTING_CHANGED.set(true);
    }
}

/// A decision failed closed because the catalog could not be loaded.
pub fn failed_closed() {
    FAILED_CLOSED.set(true);
}

/// The planning in progress took its model now (`cache::current`): its decisions, and those
/// of the plannings nested in it, are as of this epoch.
pub fn model_taken() {
    let epoch = EPOCH.get();
    PLANNINGS.with(|p| p.borrow_mut().iter_mut().for_each(|(_, e)| *e = epoch));
}

/// The start of the current client statement (each protocol message of the client starts one).
pub fn statement_start() -> pg_sys::TimestampTz {
    // SAFETY: reads a timestamp of the current transaction state.
    unsafe { pg_sys::GetCurrentStatementStartTimestamp() }
}

/// The moment grants that end are judged at (DESIGN §9: a grant counts for a statement that
/// starts before its end): the current statement's start, or, inside a procedure or DO block
/// that commits, the start of its current transaction, which is later (red team of issue 26:
/// a loop committing in a DO block kept one statement's start, and an ended grant, for good).
pub fn decision_moment() -> pg_sys::TimestampTz {
    // SAFETY: reads timestamps of the current transaction state.
    unsafe { pg_sys::GetCurrentStatementStartTimestamp().max(pg_sys::GetCurrentTransactionStartTimestamp()) }
}

/// Invalidate the plans that may hold a decision of ours, in this backend: only the marked
/// ones between transactions, all of them within a transaction that consulted the model.
pub fn invalidate() {
    invalidate_plans(DECIDED.get());
}

/// Invalidate the marked plans, or every plan (`everything`, or while untracked plans may exist).
fn invalidate_plans(everything: bool) {
    EPOCH.set(EPOCH.get().wrapping_add(1));
    PLANNED_FOR.with(|p| p.borrow_mut().take());
    ACTING_CHANGED.set(false);
    let everything = everything | UNTRACKED.replace(false);
    // SAFETY: both only mark plans invalid (no catalog access, no error), which is safe
    // inside GUC assign hooks, invalidation callbacks and transaction callbacks. The
    // targeted one runs the syscache callbacks of the marker's cache with our hash: the plan
    // cache's invalidates marked plans, any other sees the hash of a function that does not
    // exist.
    unsafe {
        if everything {
            pg_sys::ResetPlanCache();
        } else {
            pg_sys::CallSyscacheCallbacks(MARKER_CACHE as i32, marker_hash());
            pg_sys::CallSyscacheCallbacks(MARKER_CACHE as i32, eager_hash());
        }
        // Domain CHECK expressions are prepared once per backend with their IMMUTABLE calls
        // folded, outside any planning we see: a function that read protected rows would keep
        // one user's answer in the type cache for good (red team, third round). Constraint
        // callbacks with hash 0 make the type cache reload every domain's constraints at
        // their next use (and the foreign-key cache its entries); both only set flags.
        pg_sys::CallSyscacheCallbacks(pg_sys::SysCacheIdentifier::CONSTROID as i32, 0);
    }
}

/// Invalidate what no executor start of ours checks before it runs: relation-free plans
/// (the eager marker) and domain constraints. The deferrable plans, and the epoch their
/// reuse is checked against, are left alone.
fn invalidate_eager() {
    // SAFETY: as in `invalidate_plans`.
    unsafe {
        pg_sys::CallSyscacheCallbacks(MARKER_CACHE as i32, eager_hash());
        pg_sys::CallSyscacheCallbacks(pg_sys::SysCacheIdentifier::CONSTROID as i32, 0);
    }
}

/// The acting user may have changed (`crm.user_name` or `crm.require_local_user` assigned or
/// reverted, the end of a transaction that honoured a transaction-local user). Acted on at
/// once unless `crm.keep_user_plans` is on and this transaction has neither made nor run a
/// decision (see "The same user again").
pub fn acting_user_changed() {
    if DECIDED.get() || UNTRACKED.get() || !crate::session::guc::keep_user_plans() {
        invalidate();
        return;
    }
    invalidate_eager();
    ACTING_CHANGED.set(true);
    if super::statement::inside() {
        CHANGED_IN_STATEMENT.set(true);
    }
}

/// Look at a change of the acting user not acted on yet: the marked plans are kept if they
/// were made for the acting user as it is now, and invalidated otherwise. Reads settings and
/// backend state only, so it is safe in any hook.
pub fn settle() {
    if !ACTING_CHANGED.replace(false) {
        return;
    }
    CHANGED_IN_STATEMENT.set(false);
    let now = crate::session::guc::acting();
    if PLANNED_FOR.with(|p| p.borrow().as_ref().is_some_and(|then| *then != now)) {
        // The change was deferred only in a transaction that had neither made nor run a
        // decision, and since then none was made or run but for the acting user as it is now
        // (every other way to one settles first): only the marked plans hold another's.
        invalidate_plans(false);
        ACTING_EPOCH.set(EPOCH.get());
    }
}

/// A client statement (or a command nested in it) ended: a user it asserted is looked at now,
/// before the next statement reuses a plan without asking us (a protocol-level Bind).
pub fn statement_ended() {
    if CHANGED_IN_STATEMENT.replace(false) {
        settle();
    }
}

/// Whether function `oid` is a C function of this library (the extension's `module_pathname`).
///
/// # Safety
/// In a transaction, where the syscache may be read (as `fmgr_info` does around the hook).
unsafe fn of_this_library(oid: pg_sys::Oid) -> bool {
    // Only C functions have a `probin`.
    let tuple = pg_sys::SearchSysCache1(MARKER_CACHE as i32, pg_sys::Datum::from(oid));
    if tuple.is_null() {
        return false;
    }
    let mut isnull = false;
    let probin = pg_sys::SysCacheGetAttr(MARKER_CACHE as i32, tuple, pg_sys::Anum_pg_proc_probin as pg_sys::AttrNumber, &mut isnull);
    let ours = !isnull && {
        let path = pg_sys::text_to_cstring(probin.cast_mut_ptr());
        matches!(std::ffi::CStr::from_ptr(path).to_bytes(), b"crm_access" | b"$libdir/crm_access")
    };
    pg_sys::ReleaseSysCache(tuple);
    ours
}

/// Pops this planning's entry, also when planning raises an error.
struct Planning;

impl Drop for Planning {
    fn drop(&mut self) {
        let outermost = PLANNINGS.with(|p| {
            let mut p = p.borrow_mut();
            p.pop();
            p.is_empty()
        });
        if outermost {
            super::cache::planning_ended();
        }
    }
}

/// Whether a planning (with our hook) is in progress.
pub fn planning() -> bool {
    planning_depth() > 0
}

/// How many plannings are in progress (plannings nest: folding a function plans its body).
pub fn planning_depth() -> usize {
    PLANNINGS.with(|p| p.borrow().len())
}

/// # Safety
/// Only PostgreSQL calls it, as `planner_hook` (set in `init`), with the hook's arguments,
/// which it passes on unchanged to the previous hook or the standard planner.
#[pg_guard]
unsafe extern "C-unwind" fn planner(
    parse: *mut pg_sys::Query,
    query_string: *const std::ffi::c_char,
    cursor_options: std::ffi::c_int,
    bound_params: pg_sys::ParamListInfo,
) -> *mut pg_sys::PlannedStmt {
    // A nested planning decides with the model its outermost planning took (`cache::current`).
    PLANNINGS.with(|p| {
        let mut p = p.borrow_mut();
        let epoch = p.first().map_or(EPOCH.get(), |&(_, e)| e);
        p.push((false, epoch));
    });
    let planning = Planning;
    let stmt = match PREV_PLANNER.get() {
        Some(prev) => prev(parse, query_string, cursor_options, bound_params),
        None => pg_sys::standard_planner(parse, query_string, cursor_options, bound_params),
    };
    let (held, epoch) = PLANNINGS.with(|p| p.borrow().last().copied().unwrap_or((true, EPOCH.get())));
    drop(planning);
    if held && !stmt.is_null() {
        let serial = match SERIAL.get().wrapping_add(1) {
            0 => 1,
            n => n,
        };
        SERIAL.set(serial);
        (*stmt).invalItems = if scans_a_relation(stmt) {
            with_marker(without_hash((*stmt).invalItems, eager_hash()))
        } else {
            with_hash((*stmt).invalItems, eager_hash())
        };
        (*stmt).invalItems = with_item((*stmt).invalItems, SERIAL_ITEM, serial);
        (*stmt).invalItems = with_item((*stmt).invalItems, EPOCH_ITEM, epoch);
        FRESH.set((serial, statement_start()));
        // Its decisions were made for the acting user as it is now: plans made for another
        // must go (a planning that holds no decision, as crm.set_user()'s own, keeps them).
        settle();
        if PLANNED_FOR.with(|p| p.borrow().is_none()) {
            let acting = crate::session::guc::acting();
            PLANNED_FOR.with(|p| p.replace(Some(acting)));
        }
    }
    stmt
}

/// A marked plan about to run other than fresh from its planning in this same client
/// statement: PostgreSQL took in no invalidation since validating it when every lock it
/// needs was already held (which is what a transaction re-running a prepared statement looks
/// like), so a catalog change committed meanwhile has not invalidated it. Take the
/// invalidations in now; if any reached the plan since its model was taken, its decisions
/// are overtaken and it must not run. It is invalidated as it is refused, so that the
/// statement run again is planned anew. A plan fresh from its planning runs with that
/// planning's decisions (docs/security.md).
///
/// # Safety
/// `stmt` must be null or a valid `PlannedStmt`.
unsafe fn refuse_if_overtaken(stmt: *const pg_sys::PlannedStmt) {
    // Parallel workers run their leader's plan, which the leader checked. The leader itself
    // is checked, in parallel mode too (a parallel-restricted function's queries run there).
    if stmt.is_null() || pg_sys::ParallelWorkerNumber >= 0 {
        return;
    }
    let Some((serial, epoch)) = serial_and_epoch(stmt) else { return };
    // Fresh: planned by this client statement, or by the one that made the portal it runs
    // in (a Bind, whose Execute starts a DML statement's plan); a plan made but never started
    // by an earlier statement (a Bind without Execute, say) is not.
    let (fresh, planned_in) = FRESH.get();
    let portal = pg_sys::ActivePortal;
    let portal_made = if portal.is_null() { None } else { Some((*portal).creation_time) };
    if fresh == serial && (planned_in == statement_start() || Some(planned_in) == portal_made) {
        FRESH.set((0, 0));
        return;
    }
    // A change of the acting user this plan's decisions may not hold for (`settle`, here or
    // in a hook that ran before, such as a domain's CHECK at Bind).
    settle();
    let acting_changed = (ACTING_EPOCH.get().wrapping_sub(epoch) as i32) > 0;
    crate::catalog::commits::wait_for_catalog_commits();
    pg_sys::AcceptInvalidationMessages();
    // A grant its decisions hold may have ended since (`session::expiry`).
    let ended = super::cache::expire_if_due(decision_moment());
    if EPOCH.get() != epoch {
        invalidate();
        if ended {
            crate::error::CrmError::grant_ended().raise();
        }
        if acting_changed {
            crate::error::CrmError::acting_user_changed().raise();
        }
        crate::error::CrmError::catalog_changed().raise();
    }
    // Its decisions now serve this transaction as if it had made them: a change of the
    // acting user from here on resets everything.
    DECIDED.set(true);
}

/// User code is about to run: if a planning is in progress, it may fold a decision into it.
fn user_code_runs() {
    if planning() {
        mark_plannings();
    }
}

/// Asked whenever a function that is not built in (and neither SECURITY DEFINER nor with a
/// `SET` clause) is looked up to be called. We never ask for the call-level hook ourselves
/// (the answer is the previous hook's); we only note that user code may run.
///
/// # Safety
/// Only PostgreSQL calls it, as `needs_fmgr_hook` (set in `init`).
#[pg_guard]
unsafe extern "C-unwind" fn needs_fmgr_hook(fn_oid: pg_sys::Oid) -> bool {
    // A function of ours decides at run time for the acting user as it is; crm.set_user()
    // is looked up by the very statement that asserts the next user.
    if ACTING_CHANGED.get() && !of_this_library(fn_oid) {
        settle();
    }
    user_code_runs();
    match PREV_NEEDS_FMGR.get() {
        Some(prev) => prev(fn_oid),
        None => false,
    }
}

/// Called around every call of a SECURITY DEFINER function or one with a `SET` clause (and
/// of functions another hook asked for).
///
/// # Safety
/// Only PostgreSQL calls it, as `fmgr_hook` (set in `init`), with arguments it passes on
/// unchanged.
#[pg_guard]
unsafe extern "C-unwind" fn fmgr_hook(event: pg_sys::FmgrHookEventType::Type, flinfo: *mut pg_sys::FmgrInfo, arg: *mut pg_sys::Datum) {
    settle();
    user_code_runs();
    if let Some(prev) = PREV_FMGR.get() {
        prev(event, flinfo, arg);
    }
}

/// A query starts (a function's statement, a cursor's): inside a planning, user code runs.
///
/// # Safety
/// Only PostgreSQL calls it, as `ExecutorStart_hook` (set in `init`), with arguments it
/// passes on unchanged.
#[pg_guard]
unsafe extern "C-unwind" fn executor_start(query_desc: *mut pg_sys::QueryDesc, eflags: std::ffi::c_int) {
    user_code_runs();
    if !query_desc.is_null() {
        refuse_if_overtaken((*query_desc).plannedstmt);
    }
    let parallel = !query_desc.is_null() && !(*query_desc).plannedstmt.is_null() && (*(*query_desc).plannedstmt).parallelModeNeeded;
    super::cache::catch_up_once_per_statement(parallel);
    match PREV_EXECUTOR_START.get() {
        Some(prev) => prev(query_desc, eflags),
        None => pg_sys::standard_ExecutorStart(query_desc, eflags),
    }
}
