//! Running SQL with the right rights (DESIGN §5). Nothing here ever runs as a superuser.
//!
//! Three contexts, each with `search_path` pinned to `pg_catalog, pg_temp`, so that a
//! caller's own functions, operators or tables can never be picked up by our queries (the
//! temporary schema is never searched for functions or operators):
//! - **the invoker** (`as_invoker`): reads of users' tables (counting a departing user's
//!   records, reading a record for `explain_access`) and the DDL of `protect`, with the
//!   caller's own privileges and row security;
//! - **the owner of the table written** (`as_owner_of`), in a security-restricted operation:
//!   writes into a user's table on someone's behalf (transfers, parent-owner pushes, refills,
//!   the copies a TRUNCATE empties), as PostgreSQL's foreign-key cascades write, so a table
//!   owner's trigger, CHECK or index expression runs as that owner, never as the caller;
//! - **the catalog role** (`as_catalog_role`): `crm_access_catalog`, NOLOGIN, neither
//!   SUPERUSER nor BYPASSRLS, owns the crm.* tables. Only our fixed statements over crm.*
//!   run as it: nothing a caller chose (no user table, type, cast or operator) is reached;
//! - **the views role** (`as_role(Views, ..)`): `crm_access_views`, the same kind of role,
//!   owns the secure views and holds privileges on their tables (granted by each table's
//!   owner). Only the DDL of `crm.secure_view` and the writes of `crm.secure_view_write` run
//!   as it; row policies still apply to it, for the acting user of the session.

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
        // too would be a double pop, so only the normal path restores. Everything set inside
        // is undone, a session-level SET included, as PostgreSQL's security-restricted
        // operations do: a table owner's code run inside must leave nothing in the caller's
        // session (red team of issue 24: a search_path it set stayed, and the next statement's
        // operator resolution ran its code as the superuser caller).
        if !std::thread::panicking() {
            // SAFETY: pops the nest level pushed in `pin_search_path`.
            unsafe { pg_sys::AtEOXact_GUC(false, self.level) };
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

/// The extension's two roles (created by sql/catalog.sql), each found through an object it
/// owns, not by name, so that a role created (or renamed) to that name later is never taken
/// for it. If one has been made a superuser, a BYPASSRLS role or a login, nothing runs as
/// it: the separation would be void.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum ExtensionRole {
    /// Owns crm.roles and every other crm.* table.
    Catalog,
    /// Owns every secure view; the one role granted crm.secure_view_write().
    Views,
}

impl ExtensionRole {
    fn query(self) -> &'static CStr {
        match self {
            ExtensionRole::Catalog => c"SELECT r.oid::text || ' ' || (r.rolsuper OR r.rolbypassrls OR r.rolcanlogin)::text
                FROM pg_catalog.pg_class c JOIN pg_catalog.pg_roles r ON r.oid = c.relowner
                WHERE c.oid = 'crm.roles'::pg_catalog.regclass",
            // The one role besides its (superuser) owner that may run crm.secure_view_write(),
            // so that only it can attach that trigger to a view: only a superuser can grant
            // that. Before 0.3.0's script has run (its upgrade chain), the role owned it.
            ExtensionRole::Views => c"SELECT r.oid::text || ' ' || (r.rolsuper OR r.rolbypassrls OR r.rolcanlogin)::text
                FROM pg_catalog.pg_proc p, pg_catalog.aclexplode(p.proacl) a JOIN pg_catalog.pg_roles r ON r.oid = a.grantee
                WHERE p.oid = 'crm.secure_view_write()'::pg_catalog.regprocedure AND a.privilege_type = 'EXECUTE'
                  AND (a.grantee <> p.proowner OR NOT r.rolsuper)
                ORDER BY a.grantee = p.proowner LIMIT 1",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ExtensionRole::Catalog => CATALOG_ROLE,
            ExtensionRole::Views => VIEWS_ROLE,
        }
    }
}

/// The role that owns the secure views (created by sql/catalog.sql).
pub const VIEWS_ROLE: &str = "crm_access_views";

thread_local! {
    /// The roles as last checked; forgotten on any change of roles or of the catalog (see
    /// `session::cache`), so a role altered to SUPERUSER is refused at the next use.
    static CHECKED: std::cell::Cell<[Option<pg_sys::Oid>; 2]> = const { std::cell::Cell::new([None, None]) };
}

pub fn forget_checked_roles() {
    CHECKED.set([None, None]);
}

/// The extension's roles as last checked (none before the first check).
pub fn checked_roles() -> Vec<pg_sys::Oid> {
    CHECKED.get().into_iter().flatten().collect()
}

pub fn extension_role(which: ExtensionRole) -> CrmResult<pg_sys::Oid> {
    let slot = which as usize;
    if let Some(role) = CHECKED.get()[slot] {
        return Ok(role);
    }
    let name = which.name();
    let row = as_invoker(|| query_one(which.query()))
        .ok_or_else(|| CrmError::broken_catalog(format!("the object that identifies {name} is missing")))?;
    let (oid, unsafe_role) = row.split_once(' ').unwrap_or_default();
    let oid = oid.parse::<u32>().map_err(|_| CrmError::broken_catalog(format!("cannot read the oid of {name}")))?;
    if unsafe_role == "true" {
        return Err(CrmError::prerequisite(format!("the role {name} of crm_access is a superuser, a BYPASSRLS role or a login"))
            .with_detail(format!("crm_access runs privileged work as {name}, which must be NOLOGIN, without SUPERUSER or BYPASSRLS."))
            .with_hint(format!("ALTER ROLE {name} NOSUPERUSER NOBYPASSRLS NOLOGIN.")));
    }
    let mut checked = CHECKED.get();
    checked[slot] = Some(pg_sys::Oid::from(oid));
    CHECKED.set(checked);
    Ok(pg_sys::Oid::from(oid))
}

/// Run `f` as the catalog role with a pinned search_path: for our own fixed statements over
/// crm.* only (see the module comment).
pub fn as_catalog_role<R>(f: impl FnOnce() -> CrmResult<R>) -> CrmResult<R> {
    as_role(ExtensionRole::Catalog, f)
}

/// Run `f` as one of the extension's roles with a pinned search_path.
pub fn as_role<R>(which: ExtensionRole, f: impl FnOnce() -> CrmResult<R>) -> CrmResult<R> {
    let role = extension_role(which)?;
    let _pin = pin_search_path();
    let _switch = UserSwitch::to(role, 0);
    f()
}

/// The owner of relation `tbl`, if it exists.
pub fn relation_owner(tbl: pg_sys::Oid) -> Option<pg_sys::Oid> {
    // SAFETY: a relcache lookup, released before returning; rd_rel is valid while open.
    unsafe {
        let rel = pg_sys::RelationIdGetRelation(tbl);
        if rel.is_null() {
            return None;
        }
        let owner = (*(*rel).rd_rel).relowner;
        pg_sys::RelationClose(rel);
        Some(owner)
    }
}

/// Run `f` as `role` (a table's owner, or one of the extension's roles; never a superuser:
/// the caller checks that row security applies to it) with a pinned search_path, inside a
/// security-restricted operation: code of that role that runs meanwhile (the table's
/// triggers) can neither SET ROLE nor leave temporary objects behind in the caller's session.
pub fn as_user<R>(role: pg_sys::Oid, f: impl FnOnce() -> CrmResult<R>) -> CrmResult<R> {
    // SAFETY: superuser_arg only reads the role's catalog row.
    if unsafe { pg_sys::superuser_arg(role) } {
        return Err(CrmError::prerequisite("crm_access never runs a write on anyone's behalf as a superuser"));
    }
    let _pin = pin_search_path();
    let _switch = UserSwitch::to(role, pg_sys::SECURITY_RESTRICTED_OPERATION);
    f()
}

/// Run `f` as the owner of `tbl`, in a security-restricted operation with a pinned
/// search_path: crm_access's writes into a user's table on someone else's behalf (a departing
/// user's records, copies of a parent's owner) run as PostgreSQL's own foreign-key cascades
/// do, so the table owner's code inside them (triggers, index expressions, defaults) runs as
/// that owner, with nothing of the caller's: never as a superuser who administers, nor as an
/// extension role. A table owned by a superuser is written as that superuser, whose code it is.
pub fn as_owner_of<R>(tbl: pg_sys::Oid, f: impl FnOnce() -> CrmResult<R>) -> CrmResult<R> {
    let owner = relation_owner(tbl).ok_or_else(|| CrmError::broken_catalog("a table crm_access writes is missing"))?;
    for which in [ExtensionRole::Catalog, ExtensionRole::Views] {
        if extension_role(which)? == owner {
            return Err(CrmError::prerequisite(format!("a user's table is owned by {}", which.name()))
                .with_hint("Tables crm_access protects belong to their application's owner, never to crm_access's roles."));
        }
    }
    let _pin = pin_search_path();
    let _switch = UserSwitch::to(owner, pg_sys::SECURITY_RESTRICTED_OPERATION);
    f()
}

/// Run `f`, a read-only check of ours, as the owner of `tbl` with no row security at all (as
/// PostgreSQL's foreign-key checks read): the owner's own narrowing policies must not hide the
/// rows a check counts (red team of issue 24, round 11). No code of the owner runs in a read of
/// the table (no trigger, no policy; index expressions are not evaluated by reads).
pub fn as_owner_of_unfiltered<R>(tbl: pg_sys::Oid, f: impl FnOnce() -> CrmResult<R>) -> CrmResult<R> {
    let owner = relation_owner(tbl).ok_or_else(|| CrmError::broken_catalog("a table crm_access writes is missing"))?;
    let _pin = pin_search_path();
    let _switch = UserSwitch::to(owner, pg_sys::SECURITY_RESTRICTED_OPERATION | pg_sys::SECURITY_NOFORCE_RLS);
    f()
}
