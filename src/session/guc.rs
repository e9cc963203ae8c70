//! The settings: `crm.user_name`, the acting CRM user asserted by a trusted role, and
//! `crm.require_local_user`, which keeps that assertion to one transaction.

use std::cell::Cell;
use std::ffi::{c_char, c_void, CStr, CString};

use pgrx::prelude::*;
use pgrx::{GucContext, GucFlags, GucRegistry, GucSetting};

use super::{identity, statement};

pub static USER_NAME: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
pub static REQUIRE_LOCAL_USER: GucSetting<bool> = GucSetting::<bool>::new(true);
pub static LOG_DENIALS: GucSetting<bool> = GucSetting::<bool>::new(true);
pub static KEEP_USER_PLANS: GucSetting<bool> = GucSetting::<bool>::new(false);

pub fn init() {
    // SAFETY: at library load; the settings' storage is static and the hooks never raise.
    LOADING.set(true);
    unsafe {
        GucRegistry::define_string_guc_with_hooks(
            c"crm.user_name",
            c"The CRM user this session acts as (honoured only for members of a trusted role).",
            c"Set per transaction with SET LOCAL or crm.set_user(); an empty value means no acting user.",
            &USER_NAME,
            GucContext::Userset,
            GucFlags::default(),
            Some(check_user_name),
            Some(assign_user_name),
            None,
        );
        LOADING.set(false);
        // A value a statement set before the library was loaded has no known author; only a
        // superuser's session running as a superuser is exempt (see `session::statement`).
        if let Some(conf) = user_name_option() {
            let session_value = (*conf).source == pg_sys::GucSource::PGC_S_SESSION && user_name().is_some();
            if session_value && !(pg_sys::superuser_arg(pg_sys::GetSessionUserId()) && pg_sys::superuser()) {
                TAINTED.set(Taint::BeforeLoad);
            }
        }
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
        // Superuser-only, set for the application's role: it trades a re-plan per pooled
        // transaction for a refusal (40001) of a prepared statement run before any user is
        // asserted (`session::plans`), a choice for whoever runs the application.
        GucRegistry::define_bool_guc(
            c"crm.keep_user_plans",
            c"Keep plans made for the acting user across transactions that assert the same user again.",
            c"With it on, a statement prepared earlier and run in a transaction before it asserts the acting user, when another user acted in the connection's previous transaction, is refused once (SQLSTATE 40001) instead of being planned anew.",
            &KEEP_USER_PLANS,
            GucContext::Suset,
            GucFlags::default(),
        );
    }
}

pub fn keep_user_plans() -> bool {
    KEEP_USER_PLANS.get()
}

/// What resolving the acting user depends on besides the catalog, the clock and the roles
/// (`identity::resolve`): the login, the setting, whether it is the transaction's own, whether
/// it may be honoured, and `crm.require_local_user`. A plan whose decisions were made under an
/// equal one decides as a new planning would (`session::plans`).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Acting {
    login: pg_sys::Oid,
    user_name: Option<Vec<u8>>,
    local: bool,
    taint: Taint,
    require_local: bool,
}

pub fn acting() -> Acting {
    Acting {
        // SAFETY: reads the session's login role id.
        login: unsafe { pg_sys::GetSessionUserId() },
        user_name: USER_NAME.get().map(CString::into_bytes),
        local: user_name_is_transaction_local(),
        taint: TAINTED.get(),
        require_local: REQUIRE_LOCAL_USER.get(),
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
    /// crm.set_user's oid and its hash while it sets the value: that call may be in the query.
    static SETTING_THROUGH: Cell<Option<(pg_sys::Oid, u32)>> = const { Cell::new(None) };
    /// Whether the current value may not be honoured, and why (until the client asserts a
    /// user again).
    static TAINTED: Cell<Taint> = const { Cell::new(Taint::None) };
    /// The library is being loaded: PostgreSQL applies again the values set before.
    static LOADING: Cell<bool> = const { Cell::new(false) };
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Taint {
    None,
    /// Put in place by code running inside a statement: a reset (RESET, set_config(..., NULL,
    /// ...)), which no check hook sees, or the revert of one; any other change there is refused.
    Nested,
    /// Set before the library was loaded in this session, when PostgreSQL kept the setting
    /// as a placeholder anyone's code could set: who set it cannot be told.
    BeforeLoad,
}

/// Why the current value may not be honoured, if it may not (see `check_user_name`).
pub fn user_name_taint() -> Taint {
    TAINTED.get()
}

/// Set `crm.user_name` for crm.set_user(), the function with oid `via`: the check hook lets
/// that one function of ours stand in the client's query.
pub fn set_user_name(value: &str, is_local: bool, via: pg_sys::Oid) {
    let value = CString::new(value).unwrap_or_default();
    SETTING_THROUGH.set(Some((via, crate::session::plans::function_hash(via))));
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            SETTING_THROUGH.set(None);
        }
    }
    let _reset = Reset;
    let action = if is_local { pg_sys::GucAction::GUC_ACTION_LOCAL } else { pg_sys::GucAction::GUC_ACTION_SET };
    // SAFETY: a plain setting of a string option, as set_config() does; errors are raised.
    unsafe {
        pg_sys::set_config_option(
            c"crm.user_name".as_ptr(),
            value.as_ptr(),
            pg_sys::GucContext::PGC_USERSET,
            pg_sys::GucSource::PGC_S_SESSION,
            action,
            true,
            0,
            false,
        );
    }
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

/// Only the client asserts identity (DESIGN §5): a change made in the session (SET, SET
/// LOCAL, set_config, a function's SET clause) is refused unless the client's own top-level
/// statement makes it and no one else's code can be running (`session::statement`). Values
/// from the configuration, ALTER ROLE/DATABASE ... SET or connection options are not the
/// session's doing and are judged when used (`crm.require_local_user`).
///
/// # Safety
/// Only PostgreSQL calls it, as the setting's check hook.
#[pg_guard]
unsafe extern "C-unwind" fn check_user_name(_newval: *mut *mut c_char, _extra: *mut *mut c_void, source: pg_sys::GucSource::Type) -> bool {
    if source != pg_sys::GucSource::PGC_S_SESSION || LOADING.get() || statement::may_assert_identity(SETTING_THROUGH.get()) {
        return true;
    }
    pg_sys::GUC_check_errcode(PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE as i32);
    pg_sys::GUC_check_errmsg_string = pg_sys::pstrdup(c"crm.user_name can only be set by a statement of the client's own".as_ptr());
    pg_sys::GUC_check_errdetail_string = pg_sys::pstrdup(
        c"Code running inside a statement (a policy, trigger, rule, default or index expression of a table, a function, a DO block or procedure) may not change the acting CRM user, nor may a query that reads a table or calls functions other than built-in ones."
            .as_ptr(),
    );
    pg_sys::GUC_check_errhint_string =
        pg_sys::pstrdup(c"Set it in a statement of its own: SET LOCAL crm.user_name = '...', or SELECT crm.set_user('...').".as_ptr());
    false
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
    // A change the check hook let through is the client's; any other change made inside a
    // statement is a reset (RESET, set_config(..., NULL, ...)) by someone else's code, or a
    // revert of one: never honoured until the client sets the user again.
    // Outside any statement (a revert at a transaction's end, with its resource owner gone)
    // nothing is judged, and nothing may look anything up.
    if LOADING.get() || !statement::inside() {
        // Judged once the library is loaded (`init`), or a revert.
    } else if statement::may_assert_identity(SETTING_THROUGH.get()) {
        TAINTED.set(Taint::None);
    } else {
        TAINTED.set(Taint::Nested);
    }
    if as_str(old) != as_str(newval) || as_str(newval).is_some() {
        identity::forget();
        crate::session::plans::acting_user_changed();
    }
}

/// # Safety
/// Only PostgreSQL calls it, as the setting's assign hook.
#[pg_guard]
unsafe extern "C-unwind" fn assign_require_local_user(_newval: bool, _extra: *mut c_void) {
    identity::forget();
    crate::session::plans::acting_user_changed();
}
