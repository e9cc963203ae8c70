//! Who may change the catalog (DESIGN §5): an acting CRM admin, a database superuser, or
//! the role that owns the extension (so a fresh install can be bootstrapped).

use pgrx::pg_sys;
use pgrx::spi::SpiClient;

use crate::catalog::audit::{audited_by, Audit};
use crate::catalog::load;
use crate::catalog::spi::on_catalog;
use crate::error::{CrmError, CrmResult, OrRaise};
use crate::session::{cache, identity};

pub fn require_admin() -> CrmResult<()> {
    require_admin_to("change the CRM catalog")
}

/// crm_access writes a table on someone's behalf as the table's owner, in a
/// security-restricted operation (`privileged::as_owner_of`, a secure view's write), and so do
/// PostgreSQL's own maintenance commands: the table owner's code running there would act with
/// the session's CRM user, an administrator's perhaps (red team of issue 24). No API call is
/// taken from there.
pub fn refuse_in_restricted_operation() -> CrmResult<()> {
    // SAFETY: reads the security context of the backend.
    if unsafe { pg_sys::InSecurityRestrictedOperation() } {
        return Err(CrmError::denied("crm_access's API cannot be called inside a security-restricted operation")
            .with_detail("A table owner's code runs there when crm_access (or PostgreSQL's maintenance) writes the table on someone's behalf; it may not act as the session's CRM user.")
            .with_hint("Call the function in a statement of its own."));
    }
    Ok(())
}

/// Like `require_admin`, for another privileged act (`what` completes "permission denied to").
pub fn require_admin_to(what: &str) -> CrmResult<()> {
    refuse_in_restricted_operation()?;
    admin_or_why()?.map_err(|why| {
        CrmError::denied(format!("permission denied to {what}"))
            .with_detail(why)
            .with_hint("Act as a CRM administrator, or connect as the extension owner or a superuser.")
    })
}

/// Whether the caller may administer the catalog.
pub fn is_admin() -> CrmResult<bool> {
    Ok(admin_or_why()?.is_ok())
}

/// `Ok(())` for an administrator, else why not.
fn admin_or_why() -> CrmResult<Result<(), String>> {
    let owner = load::extension_owner()?;
    // SAFETY: reads of the current user id and of role catalog rows.
    let caller = unsafe { pg_sys::GetUserId() };
    if unsafe { pg_sys::superuser_arg(caller) || pg_sys::has_privs_of_role(caller, owner) } {
        return Ok(Ok(()));
    }
    let m = cache::current(true)?;
    Ok(match identity::acting_user(&m)? {
        Ok(u) if u.is_admin => Ok(()),
        Ok(u) => Err(format!("CRM user \"{}\" is not an administrator", u.name)),
        Err(reason) => Err(reason.to_string()),
    })
}

/// Authorise the caller, then run `f` against the catalog as the catalog role with a
/// pinned search_path, as one audited call. Any error aborts the statement, so nothing is
/// half-applied, and nothing is logged.
pub fn administer<R>(audit: Audit, f: impl FnOnce(&mut SpiClient<'_>) -> CrmResult<R>) -> R {
    require_admin().or_raise();
    audited(audit, || on_catalog(f)).or_raise()
}

/// Run `f` as an audited API call by the acting user (the caller already authorised, so
/// the acting user is resolved).
pub fn audited<R>(audit: Audit, f: impl FnOnce() -> CrmResult<R>) -> CrmResult<R> {
    refuse_in_restricted_operation()?;
    audited_by(audit, identity::known_name(), f)
}
