//! Who may change the catalog (DESIGN §5): an acting CRM admin, a database superuser, or
//! the role that owns the extension (so a fresh install can be bootstrapped).

use pgrx::spi::SpiClient;
use pgrx::{pg_sys, Spi};

use crate::catalog::{load, privileged};
use crate::error::{CrmError, CrmResult, OrRaise};
use crate::session::{cache, identity};

pub fn require_admin() -> CrmResult<pg_sys::Oid> {
    require_admin_to("change the CRM catalog")
}

/// Like `require_admin`, for another privileged act (`what` completes "permission denied to").
pub fn require_admin_to(what: &str) -> CrmResult<pg_sys::Oid> {
    let owner = load::extension_owner()?;
    let caller = unsafe { pg_sys::GetUserId() };
    if unsafe { pg_sys::superuser_arg(caller) || pg_sys::has_privs_of_role(caller, owner) } {
        return Ok(owner);
    }
    let m = cache::current(true)?;
    let why = match identity::acting_user(&m)? {
        Ok(u) if u.is_admin => return Ok(owner),
        Ok(u) => format!("CRM user \"{}\" is not an administrator", u.name),
        Err(reason) => reason.to_string(),
    };
    Err(CrmError::denied(format!("permission denied to {what}"))
        .with_detail(why)
        .with_hint("Act as a CRM administrator, or connect as the extension owner or a superuser."))
}

/// Authorise the caller, then run `f` against the catalog as the extension owner with a
/// pinned search_path. Any error aborts the statement, so nothing is half-applied.
pub fn administer<R>(f: impl FnOnce(&mut SpiClient<'_>) -> CrmResult<R>) -> R {
    let owner = require_admin().or_raise();
    privileged::as_owner(owner, || Spi::connect_mut(f)).or_raise()
}

/// Run `f` against the catalog as the extension owner (row security off, pinned search_path),
/// without requiring an administrator: for functions that decide with the engine themselves
/// what the acting user may do (assigning a conversation, inviting to an event).
pub fn as_extension_owner<R>(f: impl FnOnce(&mut SpiClient<'_>) -> CrmResult<R>) -> CrmResult<R> {
    let owner = load::extension_owner()?;
    privileged::as_owner(owner, || Spi::connect_mut(f))
}
