//! Explicit table locks on crm_access's own tables (red team of issue 27).
//!
//! PUBLIC holds DELETE on the message and calendar tables (row security decides which rows),
//! and PostgreSQL lets whoever holds DELETE `LOCK TABLE` in any mode, directly or through a
//! view over the table: one plain login holding `ACCESS EXCLUSIVE` on `crm.conversations`
//! stopped every inbox, and on a subscriber the apply worker (so every later revocation).
//! After a `LOCK` statement by anyone but a superuser, a lock that holds others' reads or
//! writes (SHARE and stronger) on a table of crm_access refuses the statement, which gives
//! the lock back with the transaction.

use super::privileged::{as_invoker, query_one};
use crate::error::{CrmError, CrmResult};

const STRONG_LOCKS: &std::ffi::CStr = c"
    SELECT pg_catalog.string_agg(DISTINCT l.relation::pg_catalog.regclass::text, ', ')
    FROM pg_catalog.pg_locks l
    JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.objid = l.relation AND d.deptype = 'e'
    JOIN pg_catalog.pg_extension e ON e.oid = d.refobjid AND e.extname = 'crm_access'
    WHERE l.pid = pg_catalog.pg_backend_pid() AND l.locktype = 'relation' AND l.granted
      AND l.database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database())
      AND l.mode IN ('ShareLock', 'ShareRowExclusiveLock', 'ExclusiveLock', 'AccessExclusiveLock')";

/// After a `LOCK` statement: refuse it if it left this session holding such a lock.
pub fn refuse_strong_locks() -> CrmResult<()> {
    // SAFETY: reads a flag of the current user.
    if unsafe { pgrx::pg_sys::superuser() } {
        return Ok(());
    }
    match as_invoker(|| query_one(STRONG_LOCKS)) {
        None => Ok(()),
        Some(tables) => Err(CrmError::denied(format!("crm_access's tables cannot be locked: this LOCK would hold every other session's use of {tables}"))
            .with_hint("Lock the rows you change (SELECT ... FOR UPDATE) to serialise with others.")),
    }
}
