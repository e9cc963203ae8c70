//! What a policy lets the acting user reach, shared by the planner support function (which
//! turns it into a constant expression) and by the run-time functions (which evaluate it
//! when no simplification happened). One source of truth, so the two cannot drift.

use std::ffi::CStr;
use std::rc::Rc;

use crm_model::{Action, OwnerId, Scope};
use pgrx::pg_sys;
use pgrx::prelude::*;

use super::opened;
use crate::error::{CrmError, CrmResult};
use crate::session::cache::{self, Loaded};
use crate::session::identity;

pub enum Access {
    All,
    Nothing,
    Owners(Rc<Scope>),
}

impl Access {
    /// Whether a row with this owner passes (a row without one passes only `All`).
    fn admits(&self, owner: Option<OwnerId>) -> bool {
        match self {
            Access::All => true,
            Access::Nothing => false,
            Access::Owners(s) => owner.is_some_and(|o| s.contains(o)),
        }
    }
}

fn table_name(tbl: pg_sys::Oid) -> String {
    // SAFETY: get_rel_name returns a palloc'd copy of the name, or NULL for a missing relation.
    unsafe {
        let name = pg_sys::get_rel_name(tbl);
        if name.is_null() { tbl.to_u32().to_string() } else { CStr::from_ptr(name).to_string_lossy().into_owned() }
    }
}

/// The model, or for reads a fail-closed `None` with a warning when the catalog is broken.
pub(crate) fn model(action: Action, planning: bool) -> CrmResult<Option<Rc<Loaded>>> {
    match cache::current(planning) {
        Ok(m) => Ok(Some(m)),
        Err(e) if action == Action::Read => {
            crate::session::plans::failed_closed();
            pgrx::warning!("{}: no protected rows are visible", e.message());
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Which rows of `tbl` the acting user may `action` (read, edit, delete). Reads by someone
/// who cannot act see nothing; writes by them are refused with an error.
pub fn access(tbl: pg_sys::Oid, action: Action, planning: bool) -> CrmResult<Access> {
    access_by(tbl, action, planning, |m, user| Some(m.scope(user, tbl, m.module_of(tbl)?, action)))
}

/// Which rows of a child table `tbl` the acting user may `action` through its parent's owner
/// (rules on the parent module that carry access to the child's module).
pub fn access_via_parent(tbl: pg_sys::Oid, action: Action, planning: bool) -> CrmResult<Access> {
    access_by(tbl, action, planning, |m, user| {
        let (module, parent) = (m.module_of(tbl)?, m.parent_module_of(tbl)?);
        Some(Rc::new(m.model.scope_via_parent(user, module, parent, action)))
    })
}

/// The common rules of both: fail closed on a broken catalog (reads) or an unregistered
/// table (`scope` answers `None`), refuse writes by someone who cannot act.
fn access_by(
    tbl: pg_sys::Oid,
    action: Action,
    planning: bool,
    scope: impl FnOnce(&Loaded, OwnerId) -> Option<Rc<Scope>>,
) -> CrmResult<Access> {
    if opened::rows_opened(tbl) {
        return Ok(Access::All);
    }
    let Some(m) = model(action, planning)? else { return Ok(Access::Nothing) };
    if m.module_of(tbl).is_none() {
        return Ok(Access::Nothing);
    }
    let user = match identity::acting_user(&m)? {
        Ok(u) => u.owner_id,
        Err(_) if action == Action::Read => return Ok(Access::Nothing),
        Err(reason) => return Err(CrmError::cannot_act(&reason, action, &format!("table {}", table_name(tbl)))),
    };
    let Some(scope) = scope(&m, user) else { return Ok(Access::Nothing) };
    Ok(match &*scope {
        Scope::All => Access::All,
        Scope::Owners(v) if v.is_empty() => Access::Nothing,
        Scope::Owners(_) => Access::Owners(scope),
    })
}

/// Whom the acting user may give a `tbl` record to, when creating it or changing its owner.
pub enum Assignable {
    /// Anyone: our own statement with the table's rows opened (see `opened`).
    Anyone,
    /// These owners; any other owner is refused by `crm.assert_can_assign`.
    Owners(Rc<Vec<OwnerId>>),
    /// Nobody may act (no identity, unknown or disabled user, table not protected).
    Nobody,
}

/// The owners the acting user may give a `tbl` record to when creating it (`Create`) or
/// changing its owner (`Edit`), and `crm.assert_can_assign`, which refuses any other.
pub fn assignable(tbl: pg_sys::Oid, action: Action, planning: bool) -> CrmResult<(Assignable, pg_sys::Oid)> {
    let m = cache::current(planning)?;
    if opened::rows_opened(tbl) {
        return Ok((Assignable::Anyone, m.assert_fn));
    }
    let Some(module) = m.module_of(tbl) else { return Ok((Assignable::Nobody, m.assert_fn)) };
    Ok(match identity::acting_user(&m)? {
        Ok(u) => (Assignable::Owners(m.assignable(u.owner_id, tbl, module, action)), m.assert_fn),
        Err(_) => (Assignable::Nobody, m.assert_fn),
    })
}

/// Check one written row's owner; raise with the reason when it is not allowed.
pub fn check_assignment(tbl: pg_sys::Oid, action: Action, owner: Option<OwnerId>) -> CrmResult<()> {
    if opened::rows_opened(tbl) {
        return Ok(());
    }
    let m = cache::current(false)?;
    let Some(module) = m.module_of(tbl) else {
        return Err(CrmError::denied(format!("table {} is not protected by crm_access", table_name(tbl))));
    };
    let user = match identity::acting_user(&m)? {
        Ok(u) => u,
        Err(reason) => return Err(CrmError::cannot_act(&reason, action, &format!("table {}", table_name(tbl)))),
    };
    let Some(owner) = owner else {
        return Err(CrmError::invalid(format!("a {module} record must have an owner")));
    };
    let d = m.model.decide_assignment(Some(user.owner_id), module, action, owner);
    if d.allowed {
        return Ok(());
    }
    let owner_name = m.model.owner_name(owner).map(str::to_string).unwrap_or_else(|| owner.to_string());
    let what = if action == Action::Create { "create" } else { "assign" };
    let article = if module.starts_with(['A', 'E', 'I', 'O', 'U']) { "an" } else { "a" };
    Err(CrmError::denied(format!("CRM user \"{}\" may not {what} {article} {module} record owned by {owner_name}", user.name))
        .with_detail(d.reason.to_string())
        .with_hint("Records can be given to yourself, users below your role, or anyone whose records you may edit.")
        .about(Some(&table_name(tbl)), Some(what), Some(&d.reason.to_string())))
}

pub(crate) fn parse_action(action: &str) -> Action {
    action.parse::<Action>().unwrap_or_else(|e| CrmError::invalid(e.to_string()).raise())
}

// The run-time functions. Policies call them with a constant table and action, and the
// planner normally replaces each call (see `simplify`); evaluated as written they give
// the same answer row by row.

#[pg_extern(
    sql = "CREATE FUNCTION crm.can(tbl regclass, action text, owner bigint) RETURNS boolean
           STABLE PARALLEL SAFE LANGUAGE c SUPPORT crm.can_support AS 'MODULE_PATHNAME', '@FUNCTION_NAME@';",
    requires = [simplify::can_support]
)]
fn can(tbl: Option<pg_sys::Oid>, action: Option<&str>, owner: Option<i64>) -> bool {
    // A NULL table or action names nothing to reach (policies always pass constants).
    let (Some(tbl), Some(action)) = (tbl, action) else { return false };
    access(tbl, parse_action(action), false).unwrap_or_else(|e| e.raise()).admits(owner)
}

#[pg_extern(
    sql = "CREATE FUNCTION crm.can_via_parent(tbl regclass, action text, parent_owner bigint) RETURNS boolean
           STABLE PARALLEL SAFE LANGUAGE c SUPPORT crm.can_via_parent_support AS 'MODULE_PATHNAME', '@FUNCTION_NAME@';",
    requires = [simplify::can_via_parent_support]
)]
fn can_via_parent(tbl: Option<pg_sys::Oid>, action: Option<&str>, parent_owner: Option<i64>) -> bool {
    let (Some(tbl), Some(action)) = (tbl, action) else { return false };
    access_via_parent(tbl, parse_action(action), false).unwrap_or_else(|e| e.raise()).admits(parent_owner)
}

#[pg_extern(
    sql = "CREATE FUNCTION crm.can_assign(tbl regclass, action text, owner bigint) RETURNS boolean
           VOLATILE PARALLEL SAFE LANGUAGE c SUPPORT crm.can_assign_support AS 'MODULE_PATHNAME', '@FUNCTION_NAME@';",
    requires = [simplify::can_assign_support]
)]
fn can_assign(tbl: Option<pg_sys::Oid>, action: Option<&str>, owner: Option<i64>) -> bool {
    assert_can_assign(tbl, action, owner)
}

#[pg_extern(
    sql = "CREATE FUNCTION crm.assert_can_assign(tbl regclass, action text, owner bigint) RETURNS boolean
           VOLATILE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', '@FUNCTION_NAME@';"
)]
fn assert_can_assign(tbl: Option<pg_sys::Oid>, action: Option<&str>, owner: Option<i64>) -> bool {
    let (tbl, action) = (crate::error::required("tbl", tbl), crate::error::required("action", action));
    check_assignment(tbl, parse_action(action), owner).unwrap_or_else(|e| e.raise());
    true
}
