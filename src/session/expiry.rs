//! Grants that end (DESIGN §9): a model compiled at a statement's start is right until the
//! earliest end still to come (`Model::valid_until`). Nothing runs at that instant for us (no
//! job), so each backend notices it itself, before anything decides under an ended grant:
//! - at the start of every client statement, and at every run-time decision, the cache
//!   compares the model's end with the statement's start (`cache::current`);
//! - at the end of every transaction, with the clock (`expire_if_due`), so that the next
//!   transaction's reused plans are re-planned, not run;
//! - while the backend waits idle for its client, a timeout at the instant wakes it as a
//!   shared-invalidation catch-up does (`arm`): PostgreSQL then runs an empty transaction,
//!   whose end is the point above. A named prepared statement bound after the instant is so
//!   re-planned like any other, before PostgreSQL checks its plan; only one that a
//!   transaction begun before the instant binds again after it reaches the executor with an
//!   ended grant, and that one is refused there (`plans::refuse_if_overtaken`).

use std::cell::Cell;

use pgrx::pg_sys;

// The first user-definable `TimeoutId` (utils/timeout.h) of the supported releases:
// PostgreSQL 17 added TRANSACTION_TIMEOUT before it. Older releases, built only to check that
// the code compiles, get no wake-up: there a plan of an idle backend past an end is refused
// once (40001) instead of re-planned.
#[cfg(any(feature = "pg15", feature = "pg16"))]
const USER_TIMEOUT: Option<i32> = Some(12);
#[cfg(any(feature = "pg17", feature = "pg18"))]
const USER_TIMEOUT: Option<i32> = Some(13);
#[cfg(not(any(feature = "pg15", feature = "pg16", feature = "pg17", feature = "pg18")))]
const USER_TIMEOUT: Option<i32> = None;

unsafe extern "C-unwind" {
    fn RegisterTimeout(id: i32, handler: Option<unsafe extern "C" fn()>) -> i32;
    fn enable_timeout_at(id: i32, fin_time: pg_sys::TimestampTz);
    fn disable_timeout(id: i32, keep_indicator: bool);
}

thread_local! {
    /// Our timeout, once registered in this backend (timeouts are set up per backend).
    static TIMEOUT: Cell<Option<i32>> = const { Cell::new(None) };
    /// The instant the timeout is set for.
    static ARMED_FOR: Cell<Option<pg_sys::TimestampTz>> = const { Cell::new(None) };
}

/// Runs in the signal handler of PostgreSQL's timeouts: only what a handler may do. Asking
/// for a catch-up makes a backend idle for its client run an empty transaction (outside one)
/// or take in invalidations (inside one, where the next statement checks anyway).
unsafe extern "C" fn reached() {
    // SAFETY: both are what PostgreSQL's own catch-up signal handler does.
    unsafe {
        pg_sys::catchupInterruptPending = 1;
        pg_sys::SetLatch(pg_sys::MyLatch);
    }
}

/// Wake this backend at `until`, if it waits for its client then; `None` disarms.
pub fn arm(until: Option<pg_sys::TimestampTz>) {
    let Some(user_timeout) = USER_TIMEOUT else { return };
    if ARMED_FOR.get() == until {
        return;
    }
    // SAFETY: timeouts are initialised in every backend before any statement runs; a
    // handler is registered once per backend, in a free user slot.
    unsafe {
        let id = match TIMEOUT.get() {
            Some(id) => id,
            None if until.is_none() => return,
            None => {
                let id = RegisterTimeout(user_timeout, Some(reached));
                TIMEOUT.set(Some(id));
                id
            }
        };
        match until {
            Some(t) => enable_timeout_at(id, t),
            None => disable_timeout(id, false),
        }
    }
    ARMED_FOR.set(until);
}

/// PostgreSQL disables every timeout when it recovers from an error: set ours again.
pub fn rearm_after_error() {
    let until = ARMED_FOR.take();
    arm(until);
}
