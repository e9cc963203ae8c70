//! The run-time side of enforcement (DESIGN §2: "enforcement helpers used by policies"): what
//! the acting user may reach, as the engine's `Filter`s, and the SQL functions the policies
//! and triggers call. The planner (`crate::planner`) turns the same filters into expressions;
//! evaluated here they give the same answer row by row when no simplification happened. One
//! source of truth, so the two cannot drift.
//!
//! - records (`crm.can`, `crm.can_via_parent`, `crm.can_assign`, `crm.assert_can_assign`): here;
//! - events and conversations: `calendar`, `conversations`; fields: `fields`;
//! - the triggers `crm.protect` attaches: `linked` (copied access columns), `truncate`, and
//!   the field check in `fields`, `parent_owner` (a child's copy of its parent's owner), and
//!   `secure_view_write` (writes through a secure view); `rows` reads a trigger's rows; `opened` holds the two
//!   exemptions crm_access grants its own statements;
//! - what an instrumented run (`EXPLAIN ANALYZE`) counts of rows the reader may not see: `instrumented`.

pub mod calendar;
pub mod conversations;
pub mod fields;
pub mod instrumented;
pub mod linked;
pub mod opened;
pub mod parent_owner;
pub mod restrictions;
pub mod rows;
pub mod secure_view_write;
pub mod shares;
pub mod truncate;

use std::rc::Rc;

use crm_model::{Action, Filter, OwnerId, Owned};
use pgrx::pg_sys;
use pgrx::prelude::*;

use crate::catalog::tables::qualified_name;
use crate::error::{CrmError, CrmResult};
use crate::session::cache::{self, Loaded};
use crate::session::identity;

/// `table schema.name`, as refusals name a table (the oid if it no longer exists).
fn table_named(tbl: pg_sys::Oid) -> String {
    format!("table {}", qualified_name(tbl).unwrap_or_else(|| tbl.to_u32().to_string()))
}

fn nothing() -> Rc<Filter> {
    Rc::new(Filter::Const(false))
}

/// The acting user's filter for `action` on the extension's own tables (`what`: events,
/// conversations): nothing for reads on a broken catalog or by someone who cannot act; for
/// writes by someone who cannot act, an error.
fn acting_filter(action: Action, planning: bool, what: &str, filter: impl FnOnce(&Loaded, OwnerId) -> Rc<Filter>) -> CrmResult<Rc<Filter>> {
    let Some(m) = cache::for_action(action, planning)? else { return Ok(nothing()) };
    match identity::acting_user(&m)? {
        Ok(u) => Ok(filter(&m, u.owner_id)),
        Err(_) if action == Action::Read => Ok(nothing()),
        Err(reason) => Err(CrmError::cannot_act(&reason, action, what)),
    }
}

/// Which rows of `tbl` the acting user may `action` (read, edit, delete), by their owner.
/// Reads by someone who cannot act see nothing; writes by them are refused with an error.
pub fn access(tbl: pg_sys::Oid, action: Action, planning: bool) -> CrmResult<Rc<Filter>> {
    access_by(tbl, action, planning, |m, user| Some(m.record_filter(user, tbl, m.module_of(tbl)?, action)))
}

/// Which rows of a child table `tbl` the acting user may `action` through its parent's owner
/// (rules on the parent module that carry access to the child's module).
pub fn access_via_parent(tbl: pg_sys::Oid, action: Action, planning: bool) -> CrmResult<Rc<Filter>> {
    access_by(tbl, action, planning, |m, user| Some(m.parent_filter(user, tbl, m.module_of(tbl)?, m.parent_module_of(tbl)?, action)))
}

/// The common rules of both: fail closed on a broken catalog (reads) or an unregistered
/// table (`filter` answers `None`), refuse writes by someone who cannot act.
fn access_by(
    tbl: pg_sys::Oid,
    action: Action,
    planning: bool,
    filter: impl FnOnce(&Loaded, OwnerId) -> Option<Rc<Filter>>,
) -> CrmResult<Rc<Filter>> {
    if opened::rows_opened(tbl) {
        return Ok(Rc::new(Filter::Const(true)));
    }
    let Some(m) = cache::for_action(action, planning)? else { return Ok(nothing()) };
    if m.module_of(tbl).is_none() {
        return Ok(nothing());
    }
    let user = match identity::acting_user(&m)? {
        Ok(u) => u.owner_id,
        Err(_) if action == Action::Read => return Ok(nothing()),
        Err(reason) => return Err(CrmError::cannot_act(&reason, action, &table_named(tbl))),
    };
    Ok(filter(&m, user).unwrap_or_else(nothing))
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
        return Err(CrmError::denied(format!("{} is not protected by crm_access", table_named(tbl))));
    };
    let user = match identity::acting_user(&m)? {
        Ok(u) => u,
        Err(reason) => return Err(CrmError::cannot_act(&reason, action, &table_named(tbl))),
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
        .about(Some(&qualified_name(tbl).unwrap_or_default()), Some(what), Some(&d.reason.to_string())))
}

pub(crate) fn parse_action(action: &str) -> Action {
    action.parse::<Action>().unwrap_or_else(|e| CrmError::invalid(e.to_string()).raise())
}

// The run-time functions. Policies call them with a constant table and action, and the
// planner normally replaces each call (`crate::planner`); evaluated as written they give
// the same answer row by row.

#[pg_extern(
    sql = "CREATE FUNCTION crm.can(tbl regclass, action text, owner bigint) RETURNS boolean
           STABLE PARALLEL SAFE LANGUAGE c SUPPORT crm.can_support AS 'MODULE_PATHNAME', '@FUNCTION_NAME@';",
    requires = [planner::support::can_support]
)]
fn can(tbl: Option<pg_sys::Oid>, action: Option<&str>, owner: Option<i64>) -> bool {
    // A NULL table or action names nothing to reach (policies always pass constants).
    let (Some(tbl), Some(action)) = (tbl, action) else { return false };
    access(tbl, parse_action(action), false).unwrap_or_else(|e| e.raise()).admits(&Owned(owner))
}

#[pg_extern(
    sql = "CREATE FUNCTION crm.can_via_parent(tbl regclass, action text, parent_owner bigint) RETURNS boolean
           STABLE PARALLEL SAFE LANGUAGE c SUPPORT crm.can_via_parent_support AS 'MODULE_PATHNAME', '@FUNCTION_NAME@';",
    requires = [planner::support::can_via_parent_support]
)]
fn can_via_parent(tbl: Option<pg_sys::Oid>, action: Option<&str>, parent_owner: Option<i64>) -> bool {
    let (Some(tbl), Some(action)) = (tbl, action) else { return false };
    access_via_parent(tbl, parse_action(action), false).unwrap_or_else(|e| e.raise()).admits(&Owned(parent_owner))
}

#[pg_extern(
    sql = "CREATE FUNCTION crm.can_assign(tbl regclass, action text, owner bigint) RETURNS boolean
           VOLATILE PARALLEL SAFE LANGUAGE c SUPPORT crm.can_assign_support AS 'MODULE_PATHNAME', '@FUNCTION_NAME@';",
    requires = [planner::support::can_assign_support]
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
