//! SPI helpers for the API and the policy DDL: one-value queries, and the two contexts
//! their SQL runs in (see `privileged`): as the catalog role over crm.* tables, or as the
//! caller over anyone's tables.

use pgrx::prelude::*;
use pgrx::spi::SpiClient;
use pgrx::{PgTryBuilder, Spi};

use super::privileged;
use crate::error::{CrmError, CrmResult};

pub type Client<'a, 'b> = &'a mut SpiClient<'b>;

/// The first column of the first row `sql` returns, or `None` when it returns no row.
pub fn one<T: FromDatum + IntoDatum>(c: &SpiClient<'_>, sql: &str, args: &[pgrx::datum::DatumWithOid<'_>]) -> CrmResult<Option<T>> {
    let table = c.select(sql, Some(1), args)?;
    if table.is_empty() {
        return Ok(None);
    }
    Ok(table.first().get_one::<T>()?)
}

/// The id an `INSERT ... RETURNING id` returns (run as a write: SPI refuses writes in a
/// read-only query, which `one` is).
pub fn insert_returning_id(c: Client, sql: &str, args: &[pgrx::datum::DatumWithOid<'_>]) -> CrmResult<i64> {
    Ok(c.update(sql, None, args)?.first().get_one::<i64>()?.expect("INSERT ... RETURNING returns a row"))
}

/// The id that `sql` (taking the name as $1) finds, or an "undefined" error naming it.
pub fn find(c: &SpiClient<'_>, sql: &str, kind: &str, name: &str, hint: &str) -> CrmResult<i64> {
    one::<i64>(c, sql, &[name.into()])?
        .ok_or_else(|| CrmError::undefined(kind, name).with_hint(hint.to_string()))
}

pub fn exists(c: &SpiClient<'_>, sql: &str, args: &[pgrx::datum::DatumWithOid<'_>]) -> CrmResult<bool> {
    Ok(one::<i32>(c, sql, args)?.is_some())
}

/// Run `f` against the crm.* tables as the catalog role (pinned search_path), without
/// authorising anyone: for administration already authorised, and for functions that
/// decide with the engine themselves what the acting user may do (assigning a
/// conversation, inviting to an event). `f` runs only fixed statements over crm.* tables.
pub fn on_catalog<R>(f: impl FnOnce(&mut SpiClient<'_>) -> CrmResult<R>) -> CrmResult<R> {
    privileged::as_catalog_role(|| Spi::connect_mut(f))
}

/// Run `f` as the caller (pinned search_path): every statement on a user's table, so that
/// it runs with the caller's privileges and row security, never with more.
pub fn as_caller<R>(f: impl FnOnce(&mut SpiClient<'_>) -> CrmResult<R>) -> CrmResult<R> {
    privileged::as_invoker(|| Spi::connect_mut(f))
}

/// Run `f` in a subtransaction, kept when it succeeds, rolled back when it fails (its error
/// is returned as text, and nothing of it remains).
pub fn best_effort<R>(f: impl FnOnce() -> CrmResult<R>) -> Result<R, String> {
    // SAFETY: PL/pgSQL's exception-block pattern: an internal subtransaction (allowed while
    // committing), the caller's memory context and resource owner given back after it is
    // released or rolled back; pgrx flushes a caught error's state.
    unsafe {
        let context = pg_sys::CurrentMemoryContext;
        let owner = pg_sys::CurrentResourceOwner;
        pg_sys::BeginInternalSubTransaction(std::ptr::null());
        pg_sys::MemoryContextSwitchTo(context);
        let result = PgTryBuilder::new(std::panic::AssertUnwindSafe(|| f().map_err(|e| e.message().to_string())))
            .catch_others(|e| {
                Err(match e {
                    pgrx::pg_sys::panic::CaughtError::PostgresError(r) | pgrx::pg_sys::panic::CaughtError::ErrorReport(r) => r.message().to_string(),
                    _ => "an internal error".to_string(),
                })
            })
            .execute();
        if result.is_ok() {
            pg_sys::ReleaseCurrentSubTransaction();
        } else {
            pg_sys::RollbackAndReleaseCurrentSubTransaction();
        }
        pg_sys::MemoryContextSwitchTo(context);
        pg_sys::CurrentResourceOwner = owner;
        result
    }
}

/// Run `f` with an active snapshot: a commit's own callbacks may have none (after a utility
/// statement, COMMIT PREPARED, DROP ... CASCADE), and SPI needs one even where its statement
/// brings its own.
pub fn with_snapshot<R>(f: impl FnOnce() -> R) -> R {
    struct Pushed;
    impl Drop for Pushed {
        fn drop(&mut self) {
            if !std::thread::panicking() {
                // SAFETY: pops the snapshot pushed below (an error aborts the transaction,
                // which pops it itself).
                unsafe { pg_sys::PopActiveSnapshot() };
            }
        }
    }
    // SAFETY: a fresh snapshot of this transaction, popped by `Pushed`.
    unsafe { pg_sys::PushActiveSnapshot(pg_sys::GetTransactionSnapshot()) };
    let _pushed = Pushed;
    f()
}
