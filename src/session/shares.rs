//! What each backend holds of the record shares (DESIGN §9, issue 26): per acting user, table
//! and action, the keys of the records shared with them (`crm.shares`), fetched when a policy
//! first needs them and kept until a share or unshare commits anywhere.
//!
//! Shares are not compiled into the model: they change far more often than the catalog, and
//! one share must not make every backend recompile. A commit on `crm.shares` sends the
//! relcache invalidation of that table (the `catalog_changed` trigger); `cache` hands it here,
//! which forgets these keys and invalidates the plans that hold decisions (re-planning fetches
//! the keys anew, one index lookup), and leaves the model alone. A share with an end is held
//! until that end: the earliest end of what is held counts as an end of the model does
//! (`session::expiry`).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use crm_model::{Action, Filter, OwnerId};
use pgrx::datum::TimestampWithTimeZone;
use pgrx::prelude::*;
use pgrx::spi::SpiClient;

use crate::catalog::privileged;
use crate::error::CrmResult;
use crate::session::cache::Loaded;

/// The records of one table shared with one user for one action: each key's text with the
/// record's owner when it was shared (a write must keep that owner, `crm.shared_write`).
#[derive(Debug)]
pub struct Shared {
    pub keys: HashMap<String, OwnerId>,
    /// The keys as a filter over the column `column` (built once: a planning per statement
    /// must not sort thousands of keys again).
    pub filter: Rc<Filter>,
}

impl Shared {
    fn new(keys: HashMap<String, OwnerId>) -> Shared {
        let mut sorted: Vec<String> = keys.keys().cloned().collect();
        sorted.sort_unstable();
        let filter = Rc::new(if sorted.is_empty() { Filter::Const(false) } else { Filter::OneOf(KEY.to_string(), sorted) });
        Shared { keys, filter }
    }
}

/// The column name the filter gives the shared record's key.
pub const KEY: &str = "key";

type Key = (OwnerId, u32, Action);

thread_local! {
    static MEMO: RefCell<HashMap<Key, Rc<Shared>>> = RefCell::new(HashMap::new());
    /// The model generation the memo was filled under: a new model may put a user elsewhere
    /// (another role, group, manager), and so change whose shares reach them.
    static FILLED_UNDER: Cell<u64> = const { Cell::new(0) };
    /// The earliest end among the shares held, if any.
    static VALID_UNTIL: Cell<Option<i64>> = const { Cell::new(None) };
    /// crm.shares's oid, once known (its invalidations are told apart by it).
    static RELID: Cell<Option<pg_sys::Oid>> = const { Cell::new(None) };
}

/// A memo larger than this is emptied (a pooled connection acting for thousands of users).
const MEMO_LIMIT: usize = 4096;

/// Whether `relid` is crm.shares (known once the shares have been read in this backend; before,
/// nothing is held that its invalidation could make stale).
pub fn is_shares_table(relid: pg_sys::Oid) -> bool {
    RELID.get() == Some(relid)
}

/// Forget every key held (a share committed, a model changed, an end passed).
pub fn forget() {
    MEMO.with(|m| {
        if let Ok(mut m) = m.try_borrow_mut() {
            m.clear();
        }
    });
    VALID_UNTIL.set(None);
}

/// The earliest end among the shares held.
pub fn valid_until() -> Option<i64> {
    VALID_UNTIL.get()
}

/// The records of `tbl` shared with `user` for `action` (read: any share; edit: `read_write`
/// ones), counting at the current statement's start. Fetched under the latest snapshot, as the
/// model is loaded (`catalog::load`), so that what an invalidation already announced is seen.
pub fn shared_with(m: &Loaded, user: OwnerId, tbl: pg_sys::Oid, action: Action) -> CrmResult<Rc<Shared>> {
    if FILLED_UNDER.get() != crate::session::cache::generation() {
        forget();
        FILLED_UNDER.set(crate::session::cache::generation());
    }
    let key = (user, tbl.to_u32(), action);
    if let Some(s) = MEMO.with(|memo| memo.borrow().get(&key).cloned()) {
        return Ok(s);
    }
    // Parallel mode has no latest snapshot to read them under: nothing is shared there, and
    // the plan that decided so ends with its transaction (`plans::failed_closed`).
    // SAFETY: reads a flag of the current transaction.
    if unsafe { pg_sys::IsInParallelMode() } {
        crate::session::plans::failed_closed();
        return Ok(Rc::new(Shared::new(HashMap::new())));
    }
    let parties = m.model.share_parties(user);
    let now = crate::session::plans::decision_moment();
    let (shared, until) = fetch(tbl, action, &parties, now)?;
    let shared = Rc::new(shared);
    if let Some(u) = until {
        VALID_UNTIL.set(Some(VALID_UNTIL.get().map_or(u, |v| v.min(u))));
        super::expiry::arm(crate::session::cache::next_end());
    }
    MEMO.with(|memo| {
        let mut memo = memo.borrow_mut();
        if memo.len() >= MEMO_LIMIT {
            memo.clear();
        }
        memo.insert(key, shared.clone());
    });
    Ok(shared)
}

/// Learn crm.shares's oid, before reading it: its invalidations are told apart by it.
fn note_relid() {
    if RELID.get().is_none() {
        // SAFETY: syscache lookups by name.
        let relid = unsafe {
            let schema = pg_sys::get_namespace_oid(c"crm".as_ptr(), true);
            if schema == pg_sys::InvalidOid { pg_sys::InvalidOid } else { pg_sys::get_relname_relid(c"shares".as_ptr(), schema) }
        };
        RELID.set((relid != pg_sys::InvalidOid).then_some(relid));
    }
}

const FETCH: &str = "SELECT record_id, owner_id, ((extract(epoch FROM until) - 946684800) * 1000000)::int8
    FROM crm.shares
    WHERE tbl = $1 AND (access = 'read_write' OR $2) AND (until IS NULL OR until > $3)
      AND (   (kind = 'user' AND target_id = ANY($4)) OR (kind = 'group' AND target_id = ANY($5))
           OR (kind = 'role' AND target_id = ANY($6)) OR (kind = 'role_and_subordinates' AND target_id = ANY($7)))";

fn fetch(tbl: pg_sys::Oid, action: Action, p: &crm_model::ShareParties, now: pg_sys::TimestampTz) -> CrmResult<(Shared, Option<i64>)> {
    note_relid();
    let mut keys = HashMap::new();
    let mut until: Option<i64> = None;
    if p.users.is_empty() {
        return Ok((Shared::new(keys), None));
    }
    let now = TimestampWithTimeZone::try_from(now).unwrap_or_else(|_| TimestampWithTimeZone::positive_infinity());
    // SAFETY: the snapshot pushed is popped before returning, on success and on error alike
    // (an error aborts the transaction, which pops active snapshots itself).
    unsafe { pg_sys::PushActiveSnapshot(pg_sys::GetLatestSnapshot()) };
    let read = privileged::as_catalog_role(|| {
        Spi::connect(|c: &SpiClient<'_>| -> CrmResult<()> {
            let rows = c.select(
                FETCH,
                None,
                &[
                    tbl.into(),
                    (action == Action::Read).into(),
                    now.into(),
                    p.users.clone().into(),
                    p.groups.clone().into(),
                    p.roles.clone().into(),
                    p.roles_and_subordinates.clone().into(),
                ],
            )?;
            for r in rows {
                if let (Some(key), Some(owner)) = (r.get::<String>(1)?, r.get::<i64>(2)?) {
                    keys.insert(key, owner);
                }
                if let Some(u) = r.get::<i64>(3)? {
                    until = Some(until.map_or(u, |v| v.min(u)));
                }
            }
            Ok(())
        })
    });
    // SAFETY: pops the snapshot pushed above.
    unsafe { pg_sys::PopActiveSnapshot() };
    read?;
    Ok((Shared::new(keys), until))
}
