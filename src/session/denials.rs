//! One server-log line per refusal (DESIGN §8): a LOG message with a fixed prefix and a JSON
//! object, so that refused writes and refused identity assertions can be found and counted
//! in the log. `crm.log_denials` (superuser-only, on by default) switches it off.
//!
//! Every `CrmError` with SQLSTATE 42501 passes through here as it is raised. The line is
//! built without touching the catalog or loading anything, so logging cannot fail or change
//! the refusal: the acting user comes from what identity resolution already found.

use std::ffi::CStr;

use pgrx::pg_sys;

use super::{guc, identity};

/// Every line starts with this; what follows is one JSON object on the same line.
pub const PREFIX: &str = "crm_access denial: ";

/// Log a refusal: of `action` on `table` when known, for `reason`.
pub fn log(table: Option<&str>, action: Option<&str>, reason: &str) {
    if !guc::log_denials() {
        return;
    }
    // JSON escapes quotes and control characters, so a hostile name cannot forge a line.
    let line = serde_json::json!({
        "user": identity::known_name(),
        "asserted": guc::user_name(),
        "db_user": session_user(),
        "table": table,
        "action": action,
        "reason": reason,
    });
    pgrx::log!("{PREFIX}{line}");
}

fn session_user() -> Option<String> {
    // SAFETY: reads the session's login role id; GetUserNameFromId with noerr returns NULL
    // for a role that no longer exists, or a palloc'd C string.
    unsafe {
        let name = pg_sys::GetUserNameFromId(pg_sys::GetSessionUserId(), true);
        (!name.is_null()).then(|| CStr::from_ptr(name).to_string_lossy().into_owned())
    }
}
