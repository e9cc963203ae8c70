//! The settings: `crm.user_name`, the acting CRM user asserted by a trusted role, and
//! `crm.require_local_user`, which keeps that assertion to one transaction.

use std::cell::Cell;
use std::ffi::{c_char, c_void, CStr, CString};

use pgrx::prelude::*;
use pgrx::{GucContext, GucFlags, GucRegistry, GucSetting};

use super::identity;

pub static USER_NAME: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
pub static REQUIRE_LOCAL_USER: GucSetting<bool> = GucSetting::<bool>::new(true);
pub static LOG_DENIALS: GucSetting<bool> = GucSetting::<bool>::new(true);

pub fn init() {
    // SAFETY: at library load; the settings' storage is static and the hooks never raise.
    unsafe {
        GucRegistry::define_string_guc_with_hooks(
            c"crm.user_name",
            c"The CRM user this session acts as (honoured only for members of a trusted role).",
            c"Set per transaction with SET LOCAL or crm.set_user(); an empty value means no acting user.",
            &USER_NAME,
            GucContext::Userset,
            GucFlags::default(),
            None,
            Some(assign_user_name),
            None,
        );
        // Superuser-only: it guards a trusted application against its own mistake (a
        // session-level assertion that a pooler hands to the next client), so the application
        // must not be able to switch it off for itself.
        GucRegistry::define_bool_guc_with_hooks(
            c"crm.require_local_user",
            c"Honour crm.user_name only when it was set for the current transaction.",
            c"A value set for the whole session (SET without LOCAL, crm.set_user(name, false), a connection option, ALTER ROLE ... SET) is refused for non-superusers while this is on.",
            &REQUIRE_LOCAL_USER,
            GucContext::Suset,
            GucFlags::default(),
            None,
            Some(assign_require_local_user),
            None,
        );
        // Superuser-only too: whoever is refused must not be able to keep it out of the log.
        GucRegistry::define_bool_guc(
            c"crm.log_denials",
            c"Log one line per refused write or identity assertion.",
            c"Each line is a LOG message starting with \"crm_access denial: \" followed by a JSON object.",
            &LOG_DENIALS,
            GucContext::Suset,
            GucFlags::default(),
        );
    }
}

/// The current value; `None` when unset or empty.
pub fn user_name() -> Option<String> {
    USER_NAME.get().map(|v| v.to_string_lossy().into_owned()).filter(|v| !v.is_empty())
}

pub fn require_local_user() -> bool {
    REQUIRE_LOCAL_USER.get()
}

pub fn log_denials() -> bool {
    LOG_DENIALS.get()
}

/// Whether the current value of `crm.user_name` was set inside the current transaction and
/// goes away when it ends: the setting's stack (PostgreSQL's record of changes to undo at
/// transaction end) has entries, none of which is a session-level SET, and the value itself
/// was given in this session (source `PGC_S_SESSION`: SET LOCAL, set_config, a function's
/// SET clause). A value with no stack entry was set by an earlier transaction, a connection
/// option or ALTER ROLE ... SET; `SET LOCAL ... TO DEFAULT` brings such a value back with
/// its own source, and is refused the same way.
pub fn user_name_is_transaction_local() -> bool {
    let Some(conf) = user_name_option() else { return false };
    // SAFETY: the option record lives as long as the backend; its stack is only changed by
    // this backend, between our calls.
    unsafe {
        if (*conf).source != pg_sys::GucSource::PGC_S_SESSION {
            return false;
        }
        let mut entry = (*conf).stack;
        if entry.is_null() {
            return false;
        }
        while !entry.is_null() {
            if matches!((*entry).state, pg_sys::GucStackState::GUC_SET | pg_sys::GucStackState::GUC_SET_LOCAL) {
                return false;
            }
            entry = (*entry).prev;
        }
    }
    true
}

thread_local! {
    static USER_NAME_OPTION: Cell<*mut pg_sys::config_generic> = const { Cell::new(std::ptr::null_mut()) };
}

/// PostgreSQL's record of `crm.user_name` (allocated once, never freed), looked up once.
fn user_name_option() -> Option<*mut pg_sys::config_generic> {
    let cached = USER_NAME_OPTION.with(Cell::get);
    if !cached.is_null() {
        return Some(cached);
    }
    // SAFETY: called after `init` defined the option.
    let found = unsafe { find_user_name_option() };
    if found.is_null() {
        return None;
    }
    USER_NAME_OPTION.with(|c| c.set(found));
    Some(found)
}

/// # Safety
/// Call after `init` defined the option. Returns PostgreSQL's own record of it, valid for
/// the backend's life, or null.
#[cfg(any(feature = "pg13", feature = "pg14", feature = "pg15"))]
unsafe fn find_user_name_option() -> *mut pg_sys::config_generic {
    // Before 16, find_option() is private to guc.c; the array of options is public.
    let all = pg_sys::get_guc_variables();
    let n = pg_sys::GetNumConfigOptions() as usize;
    (0..n)
        .map(|i| *all.add(i))
        .find(|&g| !g.is_null() && CStr::from_ptr((*g).name).to_bytes().eq_ignore_ascii_case(b"crm.user_name"))
        .unwrap_or(std::ptr::null_mut())
}

/// # Safety
/// As above.
#[cfg(not(any(feature = "pg13", feature = "pg14", feature = "pg15")))]
unsafe fn find_user_name_option() -> *mut pg_sys::config_generic {
    pg_sys::find_option(c"crm.user_name".as_ptr(), false, true, pgrx::PgLogLevel::ERROR as i32)
}

/// A plan simplified for one acting user must never run for another, nor once the value
/// that chose the user has become a session-level one (`crm.require_local_user`): whenever
/// the setting is assigned a non-empty value or changes (SET, SET LOCAL, its revert at
/// transaction end, RESET, DISCARD, a function's SET clause), every cached plan holding a
/// decision of ours is marked for re-planning (`session::plans`). Runs inside GUC machinery, so it must not raise.
///
/// # Safety
/// Only PostgreSQL calls it, as the setting's assign hook: `newval` is null or a C string,
/// and the setting's storage still holds the old value.
#[pg_guard]
unsafe extern "C-unwind" fn assign_user_name(newval: *const c_char, _extra: *mut c_void) {
    let old = *USER_NAME.as_ptr();
    let as_str = |p: *const c_char| if p.is_null() { None } else { Some(CStr::from_ptr(p).to_bytes()).filter(|s| !s.is_empty()) };
    if as_str(old) != as_str(newval) || as_str(newval).is_some() {
        identity::forget();
        crate::session::plans::invalidate();
    }
}

/// # Safety
/// Only PostgreSQL calls it, as the setting's assign hook.
#[pg_guard]
unsafe extern "C-unwind" fn assign_require_local_user(_newval: bool, _extra: *mut c_void) {
    identity::forget();
    crate::session::plans::invalidate();
}
