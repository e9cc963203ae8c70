//! Running SQL with the right rights (DESIGN §5). Nothing here ever runs as a superuser.
//!
//! Two contexts, each with `search_path` pinned to `pg_catalog, pg_temp`, so that a
//! caller's own functions, operators or tables can never be picked up by our queries (the
//! temporary schema is never searched for functions or operators):
//! - **the invoker** (`as_invoker`): data-path work on users' tables (transfers, parent-owner
//!   pushes, reading a record for `explain_access`, the DDL of `protect`) runs with the
//!   caller's own privileges and row security, so whatever a table owner's trigger, CHECK or
//!   index expression does, it does as the caller, as if the caller had run the statement;
//! - **the catalog role** (`as_catalog_role`): `crm_access_catalog`, NOLOGIN, neither
//!   SUPERUSER nor BYPASSRLS, owns the crm.* tables. Only our fixed statements over crm.*
//!   run as it: nothing a caller chose (no user table, type, cast or operator) is reached.

use std::ffi::CStr;

use pgrx::pg_sys;

use crate::error::{CrmError, CrmResult};

/// The role that owns the catalog (created by the extension script, sql/catalog.sql).
pub const CATALOG_ROLE: &str = "crm_access_catalog";

/// Restores the user id and security context on drop, also when an error unwinds through.
struct UserSwitch {
    user: pg_sys::Oid,
    context: i32,
}

impl UserSwitch {
    /// Act as `user`, adding `flags` to the current security context.
    fn to(user: pg_sys::Oid, flags: u32) -> UserSwitch {
        let mut saved = UserSwitch { user: pg_sys::Oid::INVALID, context: 0 };
        // SAFETY: plain reads and writes of the backend's current user id and security
        // context; the drop restores exactly what was read.
        unsafe {
            pg_sys::GetUserIdAndSecContext(&mut saved.user, &mut saved.context);
            pg_sys::SetUserIdAndSecContext(user, saved.context | (pg_sys::SECURITY_LOCAL_USERID_CHANGE | flags) as i32);
        }
        saved
    }
}

impl Drop for UserSwitch {
    fn drop(&mut self) {
        // SAFETY: restores the values saved in `to`.
        unsafe { pg_sys::SetUserIdAndSecContext(self.user, self.context) };
    }
}

/// Pops the GUC nest level (and so the pinned search_path) on drop.
struct PinnedSearchPath {
    level: i32,
}

impl Drop for PinnedSearchPath {
    fn drop(&mut self) {
        // On an error the transaction's abort unwinds GUC nest levels itself; popping here
        // too would be a double pop, so only the normal path restores.
        if !std::thread::panicking() {
            // SAFETY: pops the nest level pushed in `pin_search_path`.
            unsafe { pg_sys::AtEOXact_GUC(true, self.level) };
        }
    }
}

fn pin_search_path() -> PinnedSearchPath {
    // SAFETY: a new GUC nest level, then a transaction-local setting inside it.
    unsafe {
        let level = pg_sys::NewGUCNestLevel();
        pg_sys::set_config_option(
            c"search_path".as_ptr(),
            c"pg_catalog, pg_temp".as_ptr(),
            pg_sys::GucContext::PGC_USERSET,
            pg_sys::GucSource::PGC_S_SESSION,
            pg_sys::GucAction::GUC_ACTION_SAVE,
            true,
            0,
            false,
        );
        PinnedSearchPath { level }
    }
}

/// Run `f` with a pinned search_path, as the current user.
pub fn as_invoker<R>(f: impl FnOnce() -> R) -> R {
    let _pin = pin_search_path();
    f()
}

/// Run one read-only query that returns one value, under the current active snapshot.
/// Raw SPI rather than pgrx's client: usable while planning, and it never writes.
pub fn query_one(sql: &CStr) -> Option<String> {
    // SAFETY: a complete SPI connect/execute/finish; the value is copied out before finish.
    unsafe {
        pg_sys::SPI_connect();
        let status = pg_sys::SPI_execute(sql.as_ptr(), true, 1);
        let value = if status == pg_sys::SPI_OK_SELECT as i32 && pg_sys::SPI_processed == 1 {
            let table = &*pg_sys::SPI_tuptable;
            let raw = pg_sys::SPI_getvalue(*table.vals, table.tupdesc, 1);
            (!raw.is_null()).then(|| CStr::from_ptr(raw).to_string_lossy().into_owned())
        } else {
            None
        };
        pg_sys::SPI_finish();
        value
    }
}

/// The catalog role is the owner of crm.roles; found through the table, not by name, so a
/// role created (or renamed) to that name later is never taken for it. If it has been made
/// a superuser or given BYPASSRLS, nothing runs as it: the separation would be void.
const CATALOG_OWNER: &CStr = c"SELECT r.oid::text || ' ' || (r.rolsuper OR r.rolbypassrls OR r.rolcanlogin)::text
    FROM pg_catalog.pg_class c JOIN pg_catalog.pg_roles r ON r.oid = c.relowner
    WHERE c.oid = 'crm.roles'::pg_catalog.regclass";

thread_local! {
    /// The catalog role as last checked; forgotten on any change of roles or of the catalog
    /// (see `session::cache`), so a role altered to SUPERUSER is refused at the next use.
    static CHECKED_ROLE: std::cell::Cell<Option<pg_sys::Oid>> = const { std::cell::Cell::new(None) };
}

pub fn forget_catalog_role() {
    CHECKED_ROLE.set(None);
}

pub fn catalog_role() -> CrmResult<pg_sys::Oid> {
    if let Some(role) = CHECKED_ROLE.get() {
        return Ok(role);
    }
    let row = as_invoker(|| query_one(CATALOG_OWNER))
        .ok_or_else(|| CrmError::broken_catalog("the crm_access catalog (crm.roles) is missing"))?;
    let (oid, unsafe_role) = row.split_once(' ').unwrap_or_default();
    let oid = oid.parse::<u32>().map_err(|_| CrmError::broken_catalog("cannot read the owner of crm.roles"))?;
    if unsafe_role == "true" {
        return Err(CrmError::prerequisite("the owner of the crm_access catalog is a superuser, a BYPASSRLS role or a login")
            .with_detail(format!("crm_access runs privileged catalog work as the owner of crm.roles, which must be the NOLOGIN role {CATALOG_ROLE} without SUPERUSER or BYPASSRLS."))
            .with_hint(format!("ALTER ROLE {CATALOG_ROLE} NOSUPERUSER NOBYPASSRLS NOLOGIN, or ALTER TABLE ... OWNER TO {CATALOG_ROLE} for every crm.* table.")));
    }
    CHECKED_ROLE.set(Some(pg_sys::Oid::from(oid)));
    Ok(pg_sys::Oid::from(oid))
}

/// Run `f` as the catalog role with a pinned search_path: for our own fixed statements over
/// crm.* only (see the module comment).
pub fn as_catalog_role<R>(f: impl FnOnce() -> CrmResult<R>) -> CrmResult<R> {
    let role = catalog_role()?;
    let _pin = pin_search_path();
    let _switch = UserSwitch::to(role, 0);
    f()
}
