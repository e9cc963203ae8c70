//! Catalog commits, one at a time, dated in the order they become visible (issue 24).
//!
//! A transaction that changed the catalog takes the commit lock (exclusive) just before it
//! commits, and PostgreSQL releases it only after the commit's invalidations are sent. So:
//!
//! - **Dating.** While holding it, the transaction dates its audit entries with the clock
//!   (`crm.audit_log.at`, rewritten once at pre-commit): catalog commits are serialised, so
//!   the dates follow commit order, and a past catalog is rebuilt by undoing entries in that
//!   order (`history`). Before, entries carried their transaction's start, and a revocation
//!   committed by a transaction opened before the grant it undid read as earlier than the
//!   grant (finding 5). An entry is dated when its commit began; the commit becomes visible
//!   a moment later (the commit's own work, a synchronous standby's acknowledgement).
//! - **The window between a commit and its invalidations.** PostgreSQL makes a commit visible
//!   just before it sends its invalidations. A session that plans (or reuses a plan, or takes
//!   in invalidations once per statement) takes the same lock in a weaker mode (ROW
//!   EXCLUSIVE), briefly, before taking in invalidations (`wait_for_catalog_commits`): a
//!   catalog commit in flight has then sent its invalidations, so no statement sees a
//!   committed change's rows while deciding as
//!   before it. The price: such a planning waits out a catalog commit in progress.

use std::cell::{Cell, RefCell};

use pgrx::pg_sys;
use pgrx::prelude::*;

use crate::error::CrmResult;

thread_local! {
    /// This transaction changed a table the model is compiled from.
    static CHANGED: Cell<bool> = const { Cell::new(false) };
    /// The tables the model is compiled from that this transaction changed (`publish` patches
    /// the published model when they allow it); a subtransaction rolled back leaves its own.
    static CHANGED_TABLES: RefCell<Vec<pg_sys::Oid>> = const { RefCell::new(Vec::new()) };
    /// This transaction changed record shares (crm.shares, not compiled).
    static SHARES_CHANGED: Cell<bool> = const { Cell::new(false) };
    /// This transaction holds the commit lock (it is committing).
    static HOLDING: Cell<bool> = const { Cell::new(false) };
    /// This transaction ran COMMIT PREPARED (`committed_prepared`).
    static COMMITTED_PREPARED: Cell<bool> = const { Cell::new(false) };
    /// The audit entries this transaction appended (some may be gone with a subtransaction).
    static APPENDED: RefCell<Vec<i64>> = const { RefCell::new(Vec::new()) };
    /// Rewriting this transaction's entries' dates: the append-only trigger lets that through.
    static STAMPING: Cell<bool> = const { Cell::new(false) };
    /// The users (by owner id) and the groups whose memberships (by group id) this
    /// transaction changed (`Keyed`).
    static KEYS: RefCell<[Keys; 2]> = const { RefCell::new([Keys::NONE, Keys::NONE]) };
    /// This transaction altered a crm table (`altered`): its commit compiles.
    static ALTERED: Cell<bool> = const { Cell::new(false) };
}

/// The sub-object number of the commit lock: the lock tag is (pg_namespace, schema crm,
/// COMMITS), which no command of PostgreSQL's takes and users cannot take.
const COMMITS: u16 = u16::MAX - 1;

pub fn init() {
    // SAFETY: registers a function that lives as long as the library, at library load.
    unsafe { pg_sys::RegisterXactCallback(Some(transaction_event), std::ptr::null_mut()) };
}

/// A table the model is compiled from, `relid`, changed in this transaction.
pub fn catalog_changed(relid: pg_sys::Oid) {
    CHANGED.set(true);
    CHANGED_TABLES.with(|t| {
        let mut t = t.borrow_mut();
        if !t.contains(&relid) {
            t.push(relid);
        }
    });
}

/// An `ALTER TABLE` of a crm table in this transaction: a catalog table's triggers may have
/// been off for some of its changes (or another's, committed since the last compile), so its
/// commit compiles the catalog rather than patch what its triggers saw.
pub fn altered() {
    ALTERED.set(true);
    CHANGED.set(true);
}

/// Whether this transaction altered a crm table (`altered`).
pub fn altered_here() -> bool {
    ALTERED.get()
}

/// The catalog tables whose changed rows a commit reads alone, by a key of theirs (`publish`):
/// crm.users by owner id, crm.group_members by group id (every membership of a group whose
/// members changed).
#[derive(Clone, Copy)]
pub enum Keyed {
    Users = 0,
    GroupMembers = 1,
}

impl Keyed {
    /// The table, and the column of its rows that is the key.
    pub fn of_table(table: &str) -> Option<(Keyed, &'static str)> {
        match table {
            "users" => Some((Keyed::Users, "owner_id")),
            "group_members" => Some((Keyed::GroupMembers, "group_id")),
            _ => None,
        }
    }
}

/// What this transaction changed in one `Keyed` table: the keys the audit log's statement
/// trigger handed over (`noted`; a rolled-back subtransaction's stay: reading an unchanged
/// row again is harmless, missing a changed one is not), and its statements: seen by the
/// catalog trigger, handed over by the audit trigger, a change seen otherwise. The keys are
/// complete only if every statement seen was handed over and nothing came otherwise.
struct Keys {
    keys: Vec<i64>,
    seen: u32,
    noted: u32,
    otherwise: bool,
}

impl Keys {
    const NONE: Keys = Keys { keys: Vec::new(), seen: 0, noted: 0, otherwise: false };
}

/// A statement changed a `Keyed` table whose rows the audit trigger hands over (`handed_over`),
/// or rows of it were changed otherwise: where statement triggers do not fire (a logical
/// replication apply), or by a TRUNCATE, which removes rows the trigger's read may not see.
pub fn keyed_changed(table: Keyed, handed_over: bool) {
    KEYS.with(|k| {
        let k = &mut k.borrow_mut()[table as usize];
        if handed_over {
            k.seen += 1;
        } else {
            k.otherwise = true;
        }
    });
}

/// The audit log's trigger handed over a statement's rows of a `Keyed` table: `keys` those
/// it removed and added; `None` if a row had no key it could read.
pub fn keyed_noted(table: Keyed, keys: Option<Vec<i64>>) {
    KEYS.with(|k| {
        let k = &mut k.borrow_mut()[table as usize];
        k.noted += 1;
        k.otherwise |= keys.is_none();
        k.keys.extend(keys.into_iter().flatten());
    });
}

/// The keys of every row of a `Keyed` table this transaction changed (a superset), if each
/// statement that changed it handed its rows to the audit log's trigger; `None` otherwise (a
/// trigger disabled by hand, a replica's apply, a past catalog rebuilt): `publish` then
/// reads the whole table.
pub fn changed_keys(table: Keyed) -> Option<Vec<i64>> {
    KEYS.with(|k| {
        let k = &k.borrow()[table as usize];
        (k.seen == k.noted && !k.otherwise).then(|| {
            let mut keys = k.keys.clone();
            keys.sort_unstable();
            keys.dedup();
            keys
        })
    })
}

/// The tables the model is compiled from that this transaction changed; empty when its
/// change came otherwise (a COMMIT PREPARED publishing again).
pub fn changed_tables() -> Vec<pg_sys::Oid> {
    CHANGED_TABLES.with(|t| t.borrow().clone())
}

/// Whether this transaction changed the catalog: its own model holds changes no published
/// one does (`publish::read`).
pub fn changed_here() -> bool {
    CHANGED.get()
}

/// This transaction runs COMMIT PREPARED: a prepared catalog change published a row without
/// bytes (`publish::prepared`), which would have every backend compile until the next catalog
/// commit (red team of issue 28: a user could keep a database there); its commit publishes the
/// model again when it finds that row.
pub fn committed_prepared() {
    COMMITTED_PREPARED.set(true);
}

/// Record shares changed in this transaction. Its commit takes the commit lock in SHARE mode
/// when it changed nothing compiled: share commits need not wait for each other (two shares of
/// one row are ordered by the row's lock, and shares of different rows commute in the log), so
/// many commit at once (issue 26: serialised, 8 clients made 94 shares a second); they still
/// wait for, and are waited for by, a catalog commit (whose checkpoint then sees them all) and
/// planners (the window between a commit and its invalidations, as for the catalog).
pub fn shares_changed() {
    SHARES_CHANGED.set(true);
}

/// An audit entry was appended in this transaction.
pub fn appended(id: i64) {
    APPENDED.with(|a| a.borrow_mut().push(id));
}

/// Whether the append-only trigger is seeing this transaction's own dating.
pub fn stamping() -> bool {
    STAMPING.get()
}

fn lock_tag() -> Option<pg_sys::LOCKTAG> {
    // SAFETY: a syscache lookup of the schema's oid; none when the extension is not there.
    let schema = unsafe { pg_sys::get_namespace_oid(c"crm".as_ptr(), true) };
    if schema == pg_sys::InvalidOid {
        return None;
    }
    Some(super::latest::object_lock_tag(pg_sys::NamespaceRelationId, schema, COMMITS))
}

/// Wait until no catalog commit is between becoming visible and sending its invalidations
/// (see the module comment). Cheap when none is: one lock taken and given back.
pub fn wait_for_catalog_commits() {
    // SAFETY: reads backend flags; parallel workers and sessions outside a transaction (or in
    // a failed one) take no lock.
    let usable = unsafe { pg_sys::IsTransactionState() && pg_sys::ParallelWorkerNumber < 0 && !pg_sys::IsInParallelMode() };
    // A commit holding the lock plans its own statements (the dating): no catalog commit can be
    // in flight then (EXCLUSIVE, or SHARE, which no catalog commit's EXCLUSIVE is granted
    // beside), and asking for ROW EXCLUSIVE beside another share commit's SHARE would have the
    // two wait for each other.
    if !usable || HOLDING.get() {
        return;
    }
    let Some(tag) = lock_tag() else { return };
    // SAFETY: a transaction-level lock, waited for under the deadlock detector, given back at
    // once. ROW EXCLUSIVE conflicts with a committer's EXCLUSIVE one (held by a transaction that
    // waits for nothing else while it holds it) and not with another reader's, and is the
    // strongest mode a hot standby may take (where no catalog commit ever holds the lock).
    unsafe {
        pg_sys::LockAcquire(&tag, pg_sys::RowExclusiveLock as i32, false, false);
        pg_sys::LockRelease(&tag, pg_sys::RowExclusiveLock as i32, false);
    }
}

/// # Safety
/// Only PostgreSQL calls it, as a transaction callback registered in `init`.
#[pg_guard]
unsafe extern "C-unwind" fn transaction_event(event: pg_sys::XactEvent::Type, _arg: *mut std::ffi::c_void) {
    use pg_sys::XactEvent::*;
    match event {
        XACT_EVENT_PRE_COMMIT | XACT_EVENT_PRE_PREPARE => {
            if event == XACT_EVENT_PRE_COMMIT && COMMITTED_PREPARED.get() && !CHANGED.get() && super::publish::stale() {
                CHANGED.set(true);
            }
            let changed = CHANGED.get() || SHARES_CHANGED.get() || APPENDED.with(|a| !a.borrow().is_empty());
            // A prepared transaction would hold the lock until COMMIT PREPARED, and every
            // planning would wait for it: it is dated at PREPARE, unserialised.
            // Shares alone commit together, but one at a time when a checkpoint is due, which
            // only an exclusive holder takes.
            let lock = match (event == XACT_EVENT_PRE_COMMIT, CHANGED.get() || !SHARES_CHANGED.get()) {
                (false, _) => None,
                (true, true) => Some(Lock::Exclusive),
                (true, false) if newest_appended().is_some_and(super::checkpoints::due) => Some(Lock::Exclusive),
                (true, false) => Some(Lock::Shares),
            };
            // The catalog this commit leaves, compiled before the lock so that planners do
            // not wait for it (`publish`); a prepared transaction publishes that it changed it.
            let compiled = (lock == Some(Lock::Exclusive) && CHANGED.get()).then(super::publish::compile).flatten();
            if changed {
                if let Err(e) = before_commit(lock, compiled) {
                    e.raise();
                }
            }
            if event == XACT_EVENT_PRE_PREPARE && CHANGED.get() {
                if let Err(e) = super::publish::prepared() {
                    e.raise();
                }
            }
        }
        XACT_EVENT_COMMIT | XACT_EVENT_ABORT | XACT_EVENT_PREPARE | XACT_EVENT_PARALLEL_COMMIT | XACT_EVENT_PARALLEL_ABORT => {
            CHANGED.set(false);
            CHANGED_TABLES.with(|t| t.borrow_mut().clear());
            SHARES_CHANGED.set(false);
            HOLDING.set(false);
            COMMITTED_PREPARED.set(false);
            APPENDED.with(|a| a.borrow_mut().clear());
            STAMPING.set(false);
            KEYS.with(|k| *k.borrow_mut() = [Keys::NONE, Keys::NONE]);
            ALTERED.set(false);
        }
        _ => {}
    }
}

/// The newest audit entry this transaction appended.
fn newest_appended() -> Option<i64> {
    APPENDED.with(|a| a.borrow().iter().copied().max())
}

/// How a commit takes the commit lock.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Lock {
    /// One catalog commit at a time (the dating, checkpoints, a restore's end).
    Exclusive,
    /// Record shares only: with each other, never with a catalog commit (`shares_changed`).
    Shares,
}

/// Take the commit lock (`None`: a PREPARE, which takes none), then date this transaction's
/// entries.
fn before_commit(lock: Option<Lock>, compiled: Option<super::publish::Compiled>) -> CrmResult<()> {
    let Some(tag) = lock_tag() else { return Ok(()) };
    if let Some(mode) = lock {
        let mode = if mode == Lock::Exclusive { pg_sys::ExclusiveLock } else { pg_sys::ShareLock };
        // SAFETY: a transaction-level lock, released after the commit has sent its
        // invalidations; waited for under the deadlock detector. SHARE conflicts with
        // EXCLUSIVE and with the planners' ROW EXCLUSIVE, not with itself.
        unsafe { pg_sys::LockAcquire(&tag, mode as i32, false, false) };
        HOLDING.set(true);
    }
    let serialise = lock == Some(Lock::Exclusive);
    let ids: Vec<i64> = APPENDED.with(|a| a.borrow().clone());
    if ids.is_empty() && !serialise {
        return Ok(());
    }
    struct Stamping;
    impl Drop for Stamping {
        fn drop(&mut self) {
            STAMPING.set(false);
        }
    }
    STAMPING.set(true);
    let _stamping = Stamping;
    // The commit has no statement, so no snapshot: its statements need one.
    super::spi::with_snapshot(|| {
        if serialise {
            // Under the commit lock, so no other catalog commit lands between its check and its
            // forgetting.
            super::restore::forget_if_whole()?;
        }
        if let Some(compiled) = compiled {
            super::publish::write(compiled)?;
        }
        if ids.is_empty() {
            return Ok(());
        }
        super::spi::on_catalog(|c| {
            c.update(
                "WITH now AS (SELECT pg_catalog.clock_timestamp() AS t)
                 UPDATE crm.audit_log SET at = (SELECT t FROM now) WHERE id OPERATOR(pg_catalog.=) ANY ($1)",
                None,
                &[ids.into()],
            )?;
            Ok(())
        })?;
        if serialise {
            super::checkpoints::take_if_due()?;
        }
        Ok(())
    })
}
