//! Keeping copied access columns true under concurrency (DESIGN §3.1, §3.5).
//!
//! A child keeps its parent record's owner (`crm_parent_owner`), a conversation its linked
//! lead's owner (`linked_owner`). Each copy has a writer (the child or conversation being
//! written, which reads the source record) and a pusher (the source record's change of
//! owner, which rewrites every copy). Without care, a writer that read the old owner can
//! commit after the pusher rewrote the copies it could see, and its copy stays stale.
//!
//! So writers take a shared, and pushers an exclusive, transaction-level lock on the source
//! table, and both read and write under the latest snapshot rather than the transaction's:
//! whoever comes second waits for the first to commit and then sees its work, in READ
//! COMMITTED and REPEATABLE READ alike. Owner changes are rare, so one lock per source
//! table (not per record) keeps the lock table small for bulk writes. The lock is an object
//! lock that no SQL command takes (not an advisory lock, which anyone could take and hold to
//! block every writer).

use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::CString;

use pgrx::pg_sys;

use crate::error::{CrmError, CrmResult};

/// The sub-object number of the lock on copies of a table's owners: the lock tag is
/// (pg_class, table, COPIES), which no command of PostgreSQL's takes (a column has a number
/// of at most 1600), and users cannot take object locks of their choice.
const COPIES: u16 = u16::MAX;

/// A statement argument: type, value, and whether it is NULL.
pub type Arg = (pg_sys::Oid, pg_sys::Datum, bool);

thread_local! {
    /// Prepared statements by text and argument types. These triggers run once per row, so
    /// parsing and planning each time would dominate a bulk write. Saved plans are
    /// re-planned by PostgreSQL whenever a table they use changes, and whenever crm_access
    /// invalidates its plans (a new acting user, a catalog change; `session::plans`): each run is planned for
    /// the acting user of the moment, like any other statement.
    static PLANS: RefCell<HashMap<(String, Vec<u32>), pg_sys::SPIPlanPtr>> = RefCell::new(HashMap::new());
}

/// Run `sql` under the latest snapshot. Returns the number of rows processed and the first
/// column of the first row as a bigint (the statements here return owner ids), if any.
pub fn execute(sql: &str, args: &[Arg], read_only: bool) -> CrmResult<(u64, Option<i64>)> {
    run(sql, args, read_only, None, true)
}

/// `execute` under the statement's own snapshot, for statements that are not copies: the
/// writes a secure view passes on, which run once per row and so want the prepared plan.
pub fn execute_now(sql: &str, args: &[Arg], read_only: bool) -> CrmResult<(u64, Option<i64>)> {
    run(sql, args, read_only, None, false)
}

/// `execute` inside a statement trigger, whose transition tables `sql` may name. Not cached:
/// a plan over one firing's transition tables is of no use to the next.
pub fn execute_in_trigger(trigger: *mut pg_sys::TriggerData, sql: &str, args: &[Arg], read_only: bool) -> CrmResult<(u64, Option<i64>)> {
    run(sql, args, read_only, Some(trigger), true)
}

fn run(sql: &str, args: &[Arg], read_only: bool, trigger: Option<*mut pg_sys::TriggerData>, latest: bool) -> CrmResult<(u64, Option<i64>)> {
    let mut types: Vec<pg_sys::Oid> = args.iter().map(|a| a.0).collect();
    let mut values: Vec<pg_sys::Datum> = args.iter().map(|a| a.1).collect();
    let nulls: Vec<std::ffi::c_char> = args.iter().map(|a| if a.2 { b'n' } else { b' ' } as std::ffi::c_char).collect();
    let key = (sql.to_string(), types.iter().map(|t| t.to_u32()).collect::<Vec<_>>());
    // SAFETY: a complete SPI connect/prepare/execute/finish; argument arrays outlive the
    // call; the result is read before SPI_finish frees it. An error raised inside unwinds
    // through pgrx's guard and the transaction's abort cleans SPI up. Saved plans live in
    // their own memory context until the backend exits.
    unsafe {
        pg_sys::SPI_connect();
        if let Some(trigger) = trigger {
            pg_sys::SPI_register_trigger_data(trigger);
        }
        let cached = if trigger.is_none() { PLANS.with(|p| p.borrow().get(&key).copied()) } else { None };
        let plan = match cached {
            Some(plan) => plan,
            None => {
                let text = CString::new(sql).map_err(|_| CrmError::invalid("statement contains a NUL byte"))?;
                let plan = pg_sys::SPI_prepare(text.as_ptr(), types.len() as i32, types.as_mut_ptr());
                if plan.is_null() {
                    pg_sys::SPI_finish();
                    return Err(CrmError::invalid(format!("cannot prepare {sql}")));
                }
                if trigger.is_none() {
                    pg_sys::SPI_keepplan(plan);
                    PLANS.with(|p| p.borrow_mut().insert(key, plan));
                }
                plan
            }
        };
        let status = pg_sys::SPI_execute_snapshot(
            plan,
            values.as_mut_ptr(),
            nulls.as_ptr(),
            if latest { pg_sys::GetLatestSnapshot() } else { std::ptr::null_mut() },
            std::ptr::null_mut(),
            read_only,
            true,
            0,
        );
        if status < 0 {
            pg_sys::SPI_finish();
            return Err(CrmError::invalid(format!("{sql} failed (SPI status {status})")));
        }
        let processed = pg_sys::SPI_processed;
        let mut first = None;
        if processed > 0 && !pg_sys::SPI_tuptable.is_null() {
            let table = &*pg_sys::SPI_tuptable;
            let mut isnull = false;
            let datum = pg_sys::SPI_getbinval(*table.vals, table.tupdesc, 1, &mut isnull);
            if !isnull {
                first = Some(datum.value() as i64);
            }
        }
        pg_sys::SPI_finish();
        Ok((processed, first))
    }
}

/// Run `sql` (read-only, no arguments) under the latest snapshot: each row's first column as
/// text and second as a bigint.
pub fn text_and_ids(sql: &str) -> CrmResult<(Vec<Option<String>>, Vec<Option<i64>>)> {
    let text = CString::new(sql).map_err(|_| CrmError::invalid("statement contains a NUL byte"))?;
    // SAFETY: a complete SPI connect/execute/finish; the values are copied out of SPI's
    // result before SPI_finish frees it.
    unsafe {
        pg_sys::SPI_connect();
        let plan = pg_sys::SPI_prepare(text.as_ptr(), 0, std::ptr::null_mut());
        if plan.is_null() {
            pg_sys::SPI_finish();
            return Err(CrmError::invalid(format!("cannot prepare {sql}")));
        }
        let status = pg_sys::SPI_execute_snapshot(plan, std::ptr::null_mut(), std::ptr::null(), pg_sys::GetLatestSnapshot(), std::ptr::null_mut(), true, true, 0);
        if status < 0 {
            pg_sys::SPI_finish();
            return Err(CrmError::invalid(format!("{sql} failed (SPI status {status})")));
        }
        let (mut keys, mut ids) = (Vec::new(), Vec::new());
        if !pg_sys::SPI_tuptable.is_null() {
            let table = &*pg_sys::SPI_tuptable;
            for i in 0..pg_sys::SPI_processed as usize {
                let row = *table.vals.add(i);
                let raw = pg_sys::SPI_getvalue(row, table.tupdesc, 1);
                keys.push((!raw.is_null()).then(|| std::ffi::CStr::from_ptr(raw).to_string_lossy().into_owned()));
                let mut isnull = false;
                let datum = pg_sys::SPI_getbinval(row, table.tupdesc, 2, &mut isnull);
                ids.push((!isnull).then(|| datum.value() as i64));
            }
        }
        pg_sys::SPI_finish();
        Ok((keys, ids))
    }
}

/// The tag of an object lock of this database that no SQL command takes: crm_access's own
/// locks use sub-object numbers past any column's.
pub fn object_lock_tag(class: pg_sys::Oid, object: pg_sys::Oid, sub: u16) -> pg_sys::LOCKTAG {
    pg_sys::LOCKTAG {
        // SAFETY: MyDatabaseId is set for the whole life of a backend connected to a database.
        locktag_field1: unsafe { pg_sys::MyDatabaseId }.to_u32(),
        locktag_field2: class.to_u32(),
        locktag_field3: object.to_u32(),
        locktag_field4: sub,
        locktag_type: pg_sys::LockTagType::LOCKTAG_OBJECT as u8,
        locktag_lockmethodid: pg_sys::DEFAULT_LOCKMETHOD as u8,
    }
}

/// Take the lock on copies of `source`'s owners, for the rest of the transaction: shared for
/// a writer of a copy, exclusive for the pusher of a change (see the module comment). Taking
/// it again is a local hash lookup.
pub fn lock_copies_of(source: pg_sys::Oid, exclusive: bool) {
    let tag = object_lock_tag(pg_sys::RelationRelationId, source, COPIES);
    let mode = if exclusive { pg_sys::ExclusiveLock } else { pg_sys::ShareLock };
    // SAFETY: a transaction-level lock (sessionLock = false) that waits (dontWait = false),
    // with the deadlock detector watching; it is released at the end of the transaction, or
    // of the subtransaction that took it.
    unsafe { pg_sys::LockAcquire(&tag, mode as i32, false, false) };
}
