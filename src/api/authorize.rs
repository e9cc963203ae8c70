//! Who may change the catalog (DESIGN §5): an acting CRM admin, a database superuser, or
//! the role that owns the extension (so a fresh install can be bootstrapped).

use pgrx::pg_sys;
use pgrx::spi::SpiClient;

use crate::catalog::load;
use crate::catalog::spi::on_catalog;
use crate::error::{CrmError, CrmResult, OrRaise};
use crate::session::{cache, identity};

pub fn require_admin() -> CrmResult<()> {
    require_admin_to("change the CRM catalog")
}

/// Like `require_admin`, for another privileged act (`what` completes "permission denied to").
pub fn require_admin_to(what: &str) -> CrmResult<()> {
    let owner = load::extension_owner()?;
    // SAFETY: reads of the current user id and of role catalog rows.
    let caller = unsafe { pg_sys::GetUserId() };
    if unsafe { pg_sys::superuser_arg(caller) || pg_sys::has_privs_of_role(caller, owner) } {
        return Ok(());
    }
    let m = cache::current(true)?;
    let why = match identity::acting_user(&m)? {
        Ok(u) if u.is_admin => return Ok(()),
        Ok(u) => format!("CRM user \"{}\" is not an administrator", u.name),
        Err(reason) => reason.to_string(),
    };
    Err(CrmError::denied(format!("permission denied to {what}"))
        .with_detail(why)
        .with_hint("Act as a CRM administrator, or connect as the extension owner or a superuser."))
}

/// Authorise the caller, then run `f` against the catalog as the catalog role with a
/// pinned search_path. Any error aborts the statement, so nothing is half-applied.
pub fn administer<R>(f: impl FnOnce(&mut SpiClient<'_>) -> CrmResult<R>) -> R {
    require_admin().or_raise();
    on_catalog(f).or_raise()
}
