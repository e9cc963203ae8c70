//! Identity functions: act as a user, ask who is acting, look up owner ids.

use pgrx::prelude::*;

use crm_model::{Action, User};

use crate::error::{CrmError, CrmResult, OrRaise, required};
use crate::session::cache;
use crate::session::identity::{self, Identity};

/// The acting user, and the model; writes by someone who cannot act are refused.
pub fn acting(action: Action, what: &str) -> CrmResult<(std::rc::Rc<cache::Loaded>, User)> {
    super::authorize::refuse_in_restricted_operation()?;
    let m = cache::current(true)?;
    let me = identity::acting_user(&m)?.map_err(|reason| CrmError::cannot_act(&reason, action, what))?.to_user();
    Ok((m, me))
}

/// The acting user's name; NULL when there is none (or the named user does not exist).
#[pg_extern(stable)]
fn acting_user() -> Option<String> {
    let m = cache::current(true).or_raise();
    match identity::resolve(&m).or_raise() {
        Identity::User(id) => m.model.user(id).map(|u| u.name.to_string()),
        Identity::None | Identity::Unknown(_) => None,
    }
}

/// Where this backend's model of the current catalog comes from: `published` (the bytes the
/// last catalog commit compiled, `crm.compiled_model`) or `compiled` (this backend compiled the
/// catalog itself: none published, or this transaction changed the catalog).
#[pg_extern(stable)]
fn model_source() -> &'static str {
    cache::current(true).or_raise().source
}

/// The owner id of a user (groups share the same id space).
#[pg_extern(stable)]
fn owner_id(name: Option<&str>) -> i64 {
    let name = required("name", name);
    let m = cache::current(true).or_raise();
    match m.model.owner_by_name(name) {
        Some(id) => id,
        None => CrmError::undefined("CRM user or group", name).with_hint("See crm.user_directory and crm.groups.").raise(),
    }
}

/// Checks that the session may assert an acting user and that the user exists, so that a
/// mistake is an error now rather than an empty result later.
#[pg_extern(volatile)]
fn check_acting_user(name: &str) -> bool {
    let m = cache::current(true).or_raise();
    crate::session::identity::check_may_assert(&m).or_raise();
    if m.model.user_by_name(name).is_none() {
        CrmError::undefined("CRM user", name).with_hint("See crm.user_directory for existing users.").raise();
    }
    true
}

/// Sets the acting user for the transaction (or, with `is_local` false, the session), as
/// `set_config('crm.user_name', name, is_local)` would, after checking that the session may
/// assert it and that the user exists. A C function without a SET clause, so the setting
/// applies to the caller's transaction; and one of ours, so the check hook lets it stand in
/// the client's own statement (`session::statement`).
#[pg_extern(
    sql = "CREATE FUNCTION crm.set_user(name text, is_local boolean DEFAULT true) RETURNS text
           VOLATILE CALLED ON NULL INPUT LANGUAGE c AS 'MODULE_PATHNAME', '@FUNCTION_NAME@';",
    requires = [check_acting_user]
)]
fn set_user(name: Option<&str>, is_local: Option<bool>, fcinfo: pg_sys::FunctionCallInfo) -> String {
    let name = name.unwrap_or_default();
    if !name.is_empty() {
        check_acting_user(name);
    }
    // SAFETY: PostgreSQL passes a valid call context with its lookup data.
    let oid = unsafe { (*(*fcinfo).flinfo).fn_oid };
    crate::session::guc::set_user_name(name, is_local.unwrap_or(false), oid);
    name.to_string()
}

// The inbox views (sql/messages.sql) compare with the acting user as constants: the planner
// replaces these calls (`crate::planner::support::acting_owner_support`), so the views stay
// sargable.

#[pg_extern(
    sql = "CREATE FUNCTION crm.acting_owner_id() RETURNS bigint
           STABLE PARALLEL SAFE LANGUAGE c SUPPORT crm.acting_owner_support AS 'MODULE_PATHNAME', '@FUNCTION_NAME@';",
    requires = [planner::support::acting_owner_support]
)]
fn acting_owner_id() -> Option<i64> {
    identity::acting_owners(false).or_raise().map(|(me, _)| me)
}

#[pg_extern(
    sql = "CREATE FUNCTION crm.acting_owner_ids() RETURNS bigint[]
           STABLE PARALLEL SAFE LANGUAGE c SUPPORT crm.acting_owner_support AS 'MODULE_PATHNAME', '@FUNCTION_NAME@';",
    requires = [planner::support::acting_owner_support]
)]
fn acting_owner_ids() -> Vec<i64> {
    identity::acting_owners(false).or_raise().map(|(_, owned)| owned).unwrap_or_default()
}
