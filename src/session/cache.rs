//! The per-backend cache of the compiled model, invalidated transactionally.
//!
//! Backends are single-threaded, so thread-locals are enough. Every catalog change fires a
//! statement trigger that sends a relcache invalidation for the changed catalog table.
//! PostgreSQL delivers that message with exactly the visibility we need:
//! - to this backend at the next command (CommandCounterIncrement), so later statements of
//!   the same transaction see its own changes;
//! - to every other backend only after commit, when they next accept invalidations (at the
//!   start of their next transaction, or when planning, which calls `current()`);
//! - on rollback, replayed locally, so a model that included rolled-back changes is dropped.
//!
//! The callback marks the model stale and invalidates the cached plans that embed decisions
//! taken from the model (see `crate::planner`, `session::plans`).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use crm_model::{Action, Filter, Model, OwnerId, Unwritable};
use pgrx::prelude::*;

use crate::catalog::load::{self, LoadedCatalog, ParentLink};
use crate::catalog::privileged;
use super::identity;
use crate::error::{CrmError, CrmResult};

/// The compiled model with what enforcement needs, and memoised per-(user, table, action)
/// answers: a statement plans each protected table once, but a run-time fallback may ask
/// per row. A pooled connection acting for thousands of users in turn would grow the memo
/// without bound, so it is simply emptied when it reaches `MEMO_LIMIT` entries.
pub struct Loaded {
    pub model: Model,
    /// `published` or `compiled` (`crm.model_source()`).
    pub source: &'static str,
    pub assert_fn: pg_sys::Oid,
    parent_links: HashMap<u32, ParentLink>,
    /// Record filters of a table, directly (`false`) or through its parent (`true`).
    records: Memo<(OwnerId, u32, Action, bool), Filter>,
    assignable: Memo<(OwnerId, u32, Action), Vec<OwnerId>>,
    events: Memo<(OwnerId, Action), Filter>,
    conversations: Memo<(OwnerId, Action), Filter>,
    fields: Memo<(OwnerId, u32), Unwritable>,
    restrictions: Memo<(OwnerId, u32), Filter>,
}

impl Loaded {
    /// The module a protected table belongs to.
    pub fn module_of(&self, tbl: pg_sys::Oid) -> Option<&str> {
        self.model.catalog().protected_tables.get(&tbl.to_u32()).map(|(m, _)| m.as_str())
    }

    /// Whether conversations link to the records of protected table `tbl`.
    pub fn links_conversations(&self, tbl: pg_sys::Oid) -> bool {
        self.module_of(tbl).is_some_and(|m| self.model.catalog().links_conversations(m))
    }

    /// The module of the parent table a child table is linked to.
    pub fn parent_module_of(&self, child: pg_sys::Oid) -> Option<&str> {
        let link = self.parent_links.get(&child.to_u32())?;
        self.model.catalog().protected_tables.get(&link.parent).map(|(m, _)| m.as_str())
    }

    /// A child table's link to its parent table.
    pub fn link_of(&self, child: pg_sys::Oid) -> Option<&ParentLink> {
        self.parent_links.get(&child.to_u32())
    }

    /// The tables linked to `parent` as children, with their links.
    pub fn children_of(&self, parent: pg_sys::Oid) -> Vec<(pg_sys::Oid, &ParentLink)> {
        let mut children: Vec<_> = self
            .parent_links
            .iter()
            .filter(|(_, l)| l.parent == parent.to_u32())
            .map(|(&child, l)| (pg_sys::Oid::from(child), l))
            .collect();
        children.sort_by_key(|(c, _)| c.to_u32());
        children
    }

    /// The owner column of a protected table.
    pub fn owner_column_of(&self, tbl: pg_sys::Oid) -> Option<&str> {
        self.model.catalog().protected_tables.get(&tbl.to_u32()).map(|(_, c)| c.as_str())
    }

    /// Which rows of `tbl` (a `module` table) `user` may `action`, by their owner.
    pub fn record_filter(&self, user: OwnerId, tbl: pg_sys::Oid, module: &str, action: Action) -> Rc<Filter> {
        memo(&self.records, (user, tbl.to_u32(), action, false), || self.model.scope(user, module, action).filter())
    }

    /// Which rows of child table `tbl` (a `module` table linked to a `parent` table) `user`
    /// may `action` by their parent's owner.
    pub fn parent_filter(&self, user: OwnerId, tbl: pg_sys::Oid, module: &str, parent: &str, action: Action) -> Rc<Filter> {
        memo(&self.records, (user, tbl.to_u32(), action, true), || self.model.scope_via_parent(user, module, parent, action).filter())
    }

    /// Which events `user` may `action` (for read: whose details).
    pub fn event_filter(&self, user: OwnerId, action: Action) -> Rc<Filter> {
        memo(&self.events, (user, action), || self.model.event_scope(user, action).filter())
    }

    pub fn assignable(&self, user: OwnerId, tbl: pg_sys::Oid, module: &str, action: Action) -> Rc<Vec<OwnerId>> {
        memo(&self.assignable, (user, tbl.to_u32(), action), || self.model.assignable(user, module, action))
    }

    /// The fields of `tbl` (a `module` table) the user may not freely write.
    pub fn unwritable_fields(&self, user: OwnerId, tbl: pg_sys::Oid, module: &str) -> Rc<Unwritable> {
        memo(&self.fields, (user, tbl.to_u32()), || self.model.unwritable_fields(user, module))
    }

    /// Which rows of `tbl` (a `module` table) `user` may reach at all under restriction rules.
    pub fn restriction_filter(&self, user: OwnerId, tbl: pg_sys::Oid, module: &str) -> Rc<Filter> {
        memo(&self.restrictions, (user, tbl.to_u32()), || self.model.restriction_filter(user, module))
    }

    pub fn conversation_filter(&self, user: OwnerId, action: Action) -> Rc<Filter> {
        memo(&self.conversations, (user, action), || self.model.conversation_scope(user, action).filter())
    }
}

type Memo<K, V> = RefCell<HashMap<K, Rc<V>>>;

fn memo<K: std::hash::Hash + Eq, V>(memo: &Memo<K, V>, key: K, compute: impl FnOnce() -> V) -> Rc<V> {
    if let Some(v) = memo.borrow().get(&key) {
        return v.clone();
    }
    let v = Rc::new(compute());
    let mut memo = memo.borrow_mut();
    if memo.len() >= MEMO_LIMIT {
        memo.clear();
    }
    memo.insert(key, v.clone());
    v
}

const MEMO_LIMIT: usize = 4096;

thread_local! {
    static MODEL: RefCell<Option<Rc<Loaded>>> = const { RefCell::new(None) };
    static STALE: Cell<bool> = const { Cell::new(true) };
    /// Catalog relations of the loaded model; kept apart from MODEL so the callback never
    /// needs a borrow that loading might hold.
    static CATALOG_RELIDS: RefCell<Vec<u32>> = const { RefCell::new(Vec::new()) };
    static GENERATION: Cell<u64> = const { Cell::new(0) };
    /// The roles the loaded model names (trusted, mapped), as the hashes role invalidations
    /// carry; `None` when no model is loaded (see `roles_changed`).
    static ROLE_HASHES: RefCell<Option<Vec<u32>>> = const { RefCell::new(None) };
    /// A load is in progress (see `relcache_changed`).
    static LOADING: Cell<bool> = const { Cell::new(false) };
    /// The client statement in which invalidations were last taken in (see `current`).
    static ACCEPTED_IN: Cell<pgrx::pg_sys::TimestampTz> = const { Cell::new(0) };
    /// The client statement whose catch-up found the model fresh (see `parallel_may_keep`).
    static FRESH_IN: Cell<pgrx::pg_sys::TimestampTz> = const { Cell::new(0) };
    /// The model the planning in progress decides with (see `current`).
    static PINNED: RefCell<Option<Rc<Loaded>>> = const { RefCell::new(None) };
    /// The catalog tables hold a past moment's catalog (see `rebuilding`).
    static REBUILDING: Cell<bool> = const { Cell::new(false) };
}

/// Run `f`, which rewinds the catalog tables to a past moment in a subtransaction it rolls
/// back (`catalog::history`). Meanwhile no model is loaded from them (a decision needed then
/// fails closed), and afterwards, whatever happened inside, the cached model, identities and
/// plans are thrown away: no invalidation announces the rollback of a rewind done in replica
/// mode, and a model loaded from the rewound tables would otherwise serve the next client of
/// a pooled connection (issue 24, finding 4).
pub fn rebuilding<R>(f: impl FnOnce() -> R) -> R {
    struct Done(bool);
    impl Drop for Done {
        fn drop(&mut self) {
            REBUILDING.set(self.0);
            STALE.set(true);
            MODEL.with(|m| m.borrow_mut().take());
            identity::forget();
            privileged::forget_checked_roles();
            crate::session::plans::invalidate();
        }
    }
    let _done = Done(REBUILDING.replace(true));
    f()
}

/// Whether a past catalog is being rebuilt (`rebuilding`): its writes change nothing that
/// stays, so they invalidate nothing.
pub fn is_rebuilding() -> bool {
    REBUILDING.get()
}

/// The outermost planning ended: the next one takes the model of its moment.
pub fn planning_ended() {
    PINNED.with(|p| p.borrow_mut().take());
}

/// Called once per backend, at library load.
pub fn init() {
    // SAFETY: registers functions that live as long as the library; PostgreSQL calls them
    // only from its invalidation processing, inside a transaction.
    unsafe {
        pg_sys::CacheRegisterRelcacheCallback(Some(relcache_changed), pg_sys::Datum::from(0));
        // Identity also depends on database roles: membership in a trusted role, and the
        // names that crm.db_role_map maps. Neither is a crm.* change, and PostgreSQL does
        // not re-plan on them, so a change there forgets identities and resets plans too.
        for cache in [pg_sys::SysCacheIdentifier::AUTHMEMROLEMEM, pg_sys::SysCacheIdentifier::AUTHOID] {
            pg_sys::CacheRegisterSyscacheCallback(cache as i32, Some(roles_changed), pg_sys::Datum::from(0));
        }
    }
}

/// # Safety
/// Only PostgreSQL calls it, as a relcache callback registered in `init`; it touches only
/// this backend's own state.
#[pg_guard]
unsafe extern "C-unwind" fn relcache_changed(_arg: pg_sys::Datum, relid: pg_sys::Oid) {
    // While a load runs, any relation counts: its snapshot may predate the change this
    // message announces, and a backend's first load does not know the catalog's relations
    // yet (a CI soak caught a backend keeping a model from before a commit it had missed so).
    let ours = relid == pg_sys::InvalidOid
        || LOADING.get()
        || CATALOG_RELIDS.with(|r| r.try_borrow().map(|r| r.contains(&relid.to_u32())).unwrap_or(true));
    // A share or unshare: what the backend holds of the shares, and the plans built on it,
    // not the model (`shares`).
    if !ours && super::shares::is_shares_table(relid) {
        super::shares::forget();
        crate::session::plans::invalidate();
        return;
    }
    if ours {
        super::shares::forget();
        STALE.set(true);
        privileged::forget_checked_roles();
        // Always, not only when the model was fresh: plans made while the catalog could not
        // be loaded (which let nothing through) must not outlive its repair either.
        crate::session::plans::invalidate();
    }
}

/// # Safety
/// Only PostgreSQL calls it, as a syscache callback registered in `init`; it touches only
/// this backend's own state.
#[pg_guard]
unsafe extern "C-unwind" fn roles_changed(_arg: pg_sys::Datum, cache: i32, hash: u32) {
    // Any login may change its own role (ALTER ROLE CURRENT_USER PASSWORD) hundreds of times
    // a second; each change reaches every backend. Only a change of a role a decision depends
    // on counts (issue 24, finding 6): one the model trusts or maps, the session's login, or
    // an extension role. Memberships always count (trust follows them through any role).
    if cache == pg_sys::SysCacheIdentifier::AUTHOID as i32 && hash != 0 && !role_matters(hash) {
        return;
    }
    identity::forget();
    privileged::forget_checked_roles();
    // The model binds mappings and trusted roles to role oids whose names still match
    // (catalog::load); a renamed, dropped or re-created role must be looked at again.
    STALE.set(true);
    crate::session::plans::invalidate();
}

/// Whether a change of the role whose AUTHOID hash is `hash` can change a decision.
fn role_matters(hash: u32) -> bool {
    let hash_of = |oid: pg_sys::Oid| crate::session::plans::role_hash(oid);
    // SAFETY: reads the session's login role id.
    let login = unsafe { pg_sys::GetSessionUserId() };
    if hash_of(login) == hash || privileged::checked_roles().into_iter().any(|r| hash_of(r) == hash) {
        return true;
    }
    ROLE_HASHES.with(|h| match h.try_borrow() {
        Ok(h) => h.as_ref().is_none_or(|hashes| hashes.contains(&hash)),
        Err(_) => true,
    })
}

/// The model last loaded, if any, without loading or checking for changes.
pub fn peek() -> Option<Rc<Loaded>> {
    PINNED.with(|p| p.borrow().clone()).or_else(|| MODEL.with(|m| m.borrow().clone()))
}

/// Increases whenever a new model is loaded; identity resolution caches against it.
pub fn generation() -> u64 {
    GENERATION.get()
}

/// The model for deciding `action`, or for reads a fail-closed `None` with a warning when the
/// catalog is broken: a read then reaches nothing, a write is refused with the error.
pub fn for_action(action: Action, planning: bool) -> CrmResult<Option<Rc<Loaded>>> {
    match current(planning) {
        Ok(m) => Ok(Some(m)),
        Err(e) if action == Action::Read => {
            super::plans::failed_closed();
            pgrx::warning!("{}: no protected rows are visible", e.message());
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// The model as of the latest committed catalog (plus this transaction's own changes).
/// `accept` first takes in pending invalidations; planning does, run-time checks only at
/// their first call in a client statement, so that a statement does not switch models
/// halfway through its rows.
///
/// A planning decides every policy of its statement with one model: it has several
/// policies to specialise (a DELETE's and the SELECT's on the same table, a join's), and
/// PostgreSQL accepts invalidations in between whenever it locks a relation. A model that
/// changed halfway would make a statement no catalog version explains (the soak found one in
/// 1.26 million statements). So the first model a planning takes is kept until it ends
/// (`plans::planning_ended`); a change that arrived meanwhile has already invalidated, in
/// full, the plan being built (its transaction has decided: `plans::invalidate`).
pub fn current(accept: bool) -> CrmResult<Rc<Loaded>> {
    let planning = super::plans::planning();
    if planning {
        if let Some(m) = PINNED.with(|p| p.borrow().clone()) {
            return Ok(m);
        }
    }
    // A run-time decision (crm.can() with arguments known only while running, a trigger)
    // takes in invalidations once per client statement, unless that statement already did.
    let accept = accept || statement_not_caught_up();
    let m = current_unpinned(accept)?;
    if planning {
        PINNED.with(|p| *p.borrow_mut() = Some(m.clone()));
        super::plans::model_taken();
    }
    Ok(m)
}

/// Whether this client statement has not taken in invalidations yet. A statement that plans
/// nothing anew (a prepared one, a PL/pgSQL function's cached expressions) would otherwise
/// decide under a catalog that a commit before it began has overtaken (red team, round 4).
fn statement_not_caught_up() -> bool {
    // SAFETY: reads a global of the backend. Parallel workers never take in invalidations
    // themselves: they run their leader's decisions.
    let worker = unsafe { pg_sys::ParallelWorkerNumber } >= 0;
    !worker && ACCEPTED_IN.get() != super::plans::statement_start()
}

/// Take in invalidations once per client statement, as it starts executing (the executor
/// hook): before PL/pgSQL reuses a simple expression, whose validity it checks without
/// taking any in. A query about to enter parallel mode, where the catalog cannot be loaded,
/// gets a stale model reloaded first, so that what it plans inside (a parallel-restricted
/// function's queries) can decide.
pub fn catch_up_once_per_statement(parallel: bool) {
    if statement_not_caught_up() {
        crate::catalog::commits::wait_for_catalog_commits();
        // SAFETY: called as a query starts, inside a transaction.
        unsafe { pg_sys::AcceptInvalidationMessages() };
        ACCEPTED_IN.set(super::plans::statement_start());
    }
    // Every query, not once per client statement: a procedure's or DO block's queries run in
    // transactions that start after it (`plans::decision_moment`). Not in a parallel worker,
    // which runs its leader's decisions.
    // SAFETY: reads a global of the backend.
    if unsafe { pg_sys::ParallelWorkerNumber } < 0 {
        expire_if_due(super::plans::decision_moment());
    }
    // SAFETY: reads a flag of the current transaction.
    let in_parallel = unsafe { pg_sys::IsInParallelMode() };
    // A backend's first load too (CI, 2026-12-06: a leader whose first protected query was
    // a parallel-restricted function's saw nothing), where crm_access is installed.
    if parallel && !REBUILDING.get() && STALE.get() && !in_parallel && (MODEL.with(|m| m.borrow().is_some()) || crm_schema_exists()) {
        // A broken catalog fails closed where it is used, with its own error. An invalidation
        // of any relation that arrives while the model loads leaves it stale (`relcache_changed`:
        // an autovacuum of a user table will do), and inside the parallel query it then cannot
        // be loaded: loaded again, a few times at most (CI, 2026-12-07: a leader's
        // parallel-restricted function saw nothing, twice in a day).
        for _ in 0..3 {
            if current_unpinned(false).is_err() || !STALE.get() {
                break;
            }
        }
    }
    if !in_parallel && !STALE.get() && MODEL.with(|m| m.borrow().is_some()) {
        FRESH_IN.set(super::plans::statement_start());
    }
}

fn crm_schema_exists() -> bool {
    // SAFETY: a syscache lookup by name.
    unsafe { pg_sys::get_namespace_oid(c"crm".as_ptr(), true) != pg_sys::InvalidOid }
}

/// Whether a stale model may still decide: inside a parallel query (where no model can be
/// loaded) when this client statement's catch-up found it fresh. What made it stale was
/// taken in after the statement began (an ANALYZE of a catalog table by autovacuum, a
/// change committed meanwhile), and a change counts from the next statement (DESIGN §6);
/// failing closed instead showed a leader nothing at random (CI, 2026-12-06).
fn parallel_may_keep() -> bool {
    // SAFETY: reads a flag of the current transaction.
    let in_parallel = unsafe { pg_sys::IsInParallelMode() };
    in_parallel && FRESH_IN.get() == super::plans::statement_start()
}

fn current_unpinned(accept: bool) -> CrmResult<Rc<Loaded>> {
    if REBUILDING.get() {
        return Err(CrmError::prerequisite("the CRM catalog is being rebuilt for a past moment in this session")
            .with_hint("Nothing is decided while crm.who_could, crm.explain_access(..., at) or crm.access_changes rewinds the catalog."));
    }
    if accept {
        // A catalog commit between becoming visible and sending its invalidations is waited
        // out first (`catalog::commits`).
        crate::catalog::commits::wait_for_catalog_commits();
        // SAFETY: called inside a transaction (from SQL functions and planner hooks); the
        // callbacks it may run are ours and PostgreSQL's own.
        unsafe { pg_sys::AcceptInvalidationMessages() };
        ACCEPTED_IN.set(super::plans::statement_start());
    }
    let start = super::plans::decision_moment();
    expire_if_due(start);
    if !STALE.get() || parallel_may_keep() {
        if let Some(m) = MODEL.with(|m| m.borrow().clone()) {
            return Ok(m);
        }
    }
    // Cleared before loading: an invalidation that arrives while we load sets it again.
    STALE.set(false);
    // The stale model goes first, so that the new one is not decoded beside it (a statement
    // still planning with it keeps its own `Rc` until it ends), and no error in the load can
    // leave it in place.
    MODEL.with(|slot| slot.borrow_mut().take());
    let loaded = {
        let _loading = Loading::start();
        // The model the last catalog commit published, else the catalog compiled here.
        match crate::catalog::publish::read(start) {
            Ok(Some((model, bindings))) => Ok(published(model, bindings)),
            Ok(None) => load::load().and_then(|c| compile(c, start)),
            Err(e) => Err(e),
        }
    };
    release_freed();
    match loaded {
        Ok(m) => {
            MODEL.with(|slot| *slot.borrow_mut() = Some(m.clone()));
            super::expiry::arm(next_end());
            GENERATION.set(GENERATION.get() + 1);
            Ok(m)
        }
        Err(e) => {
            STALE.set(true);
            MODEL.with(|slot| *slot.borrow_mut() = None);
            Err(e)
        }
    }
}

/// Give back to the system the memory a load freed: the replaced model, the catalog reads'
/// planner and executor memory, a compile's work. The allocator keeps freed pages resident
/// in its free lists, so a backend that had reloaded the model four times held twice it
/// (large-org, issue 28 item 1: 4.0 MB grown against 1.9 after its first load; 2.0 once
/// trimmed). Once per load, not per statement.
fn release_freed() {
    // SAFETY: glibc's malloc_trim returns free pages to the system; nothing allocated moves.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Marks a load in progress until dropped, also when the load raises an error.
struct Loading;

impl Loading {
    fn start() -> Self {
        LOADING.set(true);
        Loading
    }
}

impl Drop for Loading {
    fn drop(&mut self) {
        LOADING.set(false);
        // An error PostgreSQL raised inside the load (a lock or statement timeout, a cancel)
        // unwinds past the code that marks a failed load stale: the next statement loads
        // again, a parallel one before it enters parallel mode (review of b14a766; before it,
        // the stale model stayed and kept deciding).
        if std::thread::panicking() {
            STALE.set(true);
        }
    }
}

/// Drop the model if a grant it holds has ended by `now` (DESIGN §9), and the plans that hold
/// its decisions: PostgreSQL re-plans them before running them again (`session::expiry`).
/// Returns whether it did.
pub fn expire_if_due(now: pg_sys::TimestampTz) -> bool {
    let model_due = model_valid_until().is_some_and(|t| t <= now);
    let shares_due = super::shares::valid_until().is_some_and(|t| t <= now);
    if model_due {
        STALE.set(true);
        MODEL.with(|m| m.borrow_mut().take());
    }
    if model_due || shares_due {
        super::shares::forget();
        super::expiry::arm(next_end());
        crate::session::plans::invalidate();
    }
    model_due || shares_due
}

fn model_valid_until() -> Option<i64> {
    MODEL.with(|m| m.try_borrow().ok().and_then(|m| m.as_ref().and_then(|m| m.model.valid_until())))
}

/// The next end of a grant this backend holds: of its model, or of a share it holds.
pub fn next_end() -> Option<i64> {
    match (model_valid_until(), super::shares::valid_until()) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Compiled as at the start of the statement that needs it: a grant that has ended by then
/// counts for nothing (`expire_if_due` drops the model at the next end).
fn compile(loaded: LoadedCatalog, at: pg_sys::TimestampTz) -> CrmResult<Rc<Loaded>> {
    bound(&loaded.catalog, &loaded.catalog_relids);
    let model = Model::compile_at(loaded.catalog, at).map_err(|e| CrmError::broken_catalog(e.to_string()))?;
    Ok(ready(model, "compiled", loaded.assert_fn, loaded.parent_links))
}

/// A model another backend compiled (`catalog::publish`), with this moment's bindings.
fn published(model: Model, bindings: crate::catalog::publish::Bindings) -> Rc<Loaded> {
    bound(model.catalog(), &bindings.catalog_relids);
    ready(model, "published", bindings.assert_fn, bindings.parent_links)
}

/// Note what invalidates a model of `catalog`: its catalog relations, the roles it names.
fn bound(catalog: &crm_model::Catalog, catalog_relids: &std::collections::HashSet<u32>) {
    CATALOG_RELIDS.with(|r| *r.borrow_mut() = catalog_relids.iter().copied().collect());
    let roles = catalog.trusted_roles.iter().chain(catalog.db_role_map.keys());
    let hashes = roles.map(|&r| crate::session::plans::role_hash(pg_sys::Oid::from(r))).collect();
    ROLE_HASHES.with(|h| *h.borrow_mut() = Some(hashes));
}

fn ready(model: Model, source: &'static str, assert_fn: u32, parent_links: HashMap<u32, ParentLink>) -> Rc<Loaded> {
    Rc::new(Loaded {
        model,
        source,
        assert_fn: pg_sys::Oid::from(assert_fn),
        parent_links,
        records: RefCell::default(),
        assignable: RefCell::default(),
        events: RefCell::default(),
        conversations: RefCell::default(),
        fields: RefCell::default(),
        restrictions: RefCell::default(),
    })
}
