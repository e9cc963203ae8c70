//! Running catalog SQL safely on behalf of a caller.
//!
//! Admin functions are SECURITY INVOKER so that the caller can be authorised by who they
//! really are (`GetUserId()`), then they write as the extension owner, who owns the
//! catalog tables; PUBLIC can only read them. Every such query runs with `search_path`
//! pinned to `pg_catalog, pg_temp`, so a caller's own functions or operators can never be
//! picked up by a query that runs with the owner's rights (or that builds the model).

use pgrx::pg_sys;

/// Restores the user id and security context on drop, also when an error unwinds through.
struct UserSwitch {
    user: pg_sys::Oid,
    context: i32,
}

impl Drop for UserSwitch {
    fn drop(&mut self) {
        unsafe { pg_sys::SetUserIdAndSecContext(self.user, self.context) };
    }
}

/// Pops the GUC nest level (and so the pinned search_path) on drop.
struct PinnedSearchPath {
    level: i32,
}

impl Drop for PinnedSearchPath {
    fn drop(&mut self) {
        // On an error the transaction's abort unwinds GUC nest levels itself; popping here
        // too would be a double pop, so only the normal path restores.
        if !std::thread::panicking() {
            unsafe { pg_sys::AtEOXact_GUC(true, self.level) };
        }
    }
}

fn pin_search_path() -> PinnedSearchPath {
    unsafe {
        let level = pg_sys::NewGUCNestLevel();
        pg_sys::set_config_option(
            c"search_path".as_ptr(),
            c"pg_catalog, pg_temp".as_ptr(),
            pg_sys::GucContext::PGC_USERSET,
            pg_sys::GucSource::PGC_S_SESSION,
            pg_sys::GucAction::GUC_ACTION_SAVE,
            true,
            0,
            false,
        );
        PinnedSearchPath { level }
    }
}

/// Run `f` with a pinned search_path, as the current user.
pub fn with_pinned_search_path<R>(f: impl FnOnce() -> R) -> R {
    let _pin = pin_search_path();
    f()
}

/// Run `f` with a pinned search_path, as `owner` (the extension owner), with row security
/// off: catalog administration that touches protected tables (moving a departing user's
/// records) must see every row, and fails outright rather than see a filtered subset if
/// the owner could not bypass row security.
pub fn as_owner<R>(owner: pg_sys::Oid, f: impl FnOnce() -> R) -> R {
    let _pin = pin_search_path();
    unsafe {
        pg_sys::set_config_option(
            c"row_security".as_ptr(),
            c"off".as_ptr(),
            pg_sys::GucContext::PGC_USERSET,
            pg_sys::GucSource::PGC_S_SESSION,
            pg_sys::GucAction::GUC_ACTION_SAVE,
            true,
            0,
            false,
        );
    }
    let mut saved = UserSwitch { user: pg_sys::Oid::INVALID, context: 0 };
    unsafe {
        pg_sys::GetUserIdAndSecContext(&mut saved.user, &mut saved.context);
        pg_sys::SetUserIdAndSecContext(owner, saved.context | pg_sys::SECURITY_LOCAL_USERID_CHANGE as i32);
    }
    f()
}
