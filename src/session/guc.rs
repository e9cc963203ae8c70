//! The `crm.user_name` setting: the acting CRM user asserted by a trusted role.

use std::ffi::{c_char, c_void, CStr, CString};

use pgrx::prelude::*;
use pgrx::{GucContext, GucFlags, GucRegistry, GucSetting};

use super::identity;

pub static USER_NAME: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);

pub fn init() {
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
    }
}

/// The current value; `None` when unset or empty.
pub fn user_name() -> Option<String> {
    USER_NAME.get().map(|v| v.to_string_lossy().into_owned()).filter(|v| !v.is_empty())
}

/// A plan simplified for one acting user must never run for another: when the setting
/// changes (SET, SET LOCAL, its revert at transaction end, RESET, DISCARD), every cached
/// plan is marked for re-planning. Runs inside GUC machinery, so it must not raise.
#[pg_guard]
unsafe extern "C-unwind" fn assign_user_name(newval: *const c_char, _extra: *mut c_void) {
    let old = *USER_NAME.as_ptr();
    let as_str = |p: *const c_char| if p.is_null() { None } else { Some(CStr::from_ptr(p).to_bytes()).filter(|s| !s.is_empty()) };
    if as_str(old) != as_str(newval) {
        identity::forget();
        pg_sys::ResetPlanCache();
    }
}
