//! `crm.explain_access` (why a user can or cannot reach a record) and `crm.who_can` (who
//! can, for access reviews). Both decide with the engine, the same one policies use, and
//! read the record's owner with row security off; so that they never leak a record, only
//! an administrator may ask about another user or about records they cannot read.

use pgrx::datum::DatumWithOid;
use pgrx::prelude::*;
use pgrx::spi::quote_identifier;
use pgrx::AnyElement;

use super::admin::{one, primary_key};
use super::authorize::require_admin_to;
use crate::catalog::{load, privileged};
use crate::error::{CrmError, CrmResult, OrRaise};
use crate::session::cache::{self, Loaded};
use crate::session::identity;
use crm_model::{Action, Decision};

/// A record's owner and, for a table linked to a parent, its parent record's owner.
type Owners = (i64, Option<i64>);

/// The owners of the record of `tbl` whose primary key is `id`, read as the extension owner.
fn record_owner(tbl: pg_sys::Oid, id: &AnyElement, linked: bool) -> CrmResult<(String, Option<Owners>)> {
    let owner = load::extension_owner()?;
    privileged::as_owner(owner, || {
        Spi::connect(|c| {
            let table = one::<String>(c, "SELECT $1::regclass::text", &[tbl.into()])?.unwrap_or_default();
            let column = one::<String>(c, "SELECT owner_column::text FROM crm.protected_tables WHERE tbl = $1", &[tbl.into()])?
                .ok_or_else(|| CrmError::undefined("protected table", &table))?;
            let Some((key, key_type)) = primary_key(c, tbl)? else {
                return Err(CrmError::not_supported(format!("{table} has no single-column primary key to find the record by")));
            };
            let parent = if linked { "crm_parent_owner" } else { "NULL::bigint" };
            let sql = format!("SELECT {}, {parent} FROM {table} WHERE {} = $1::{key_type}", quote_identifier(&column), quote_identifier(&key));
            let rows = c.select(&sql, Some(1), &[unsafe { DatumWithOid::new(id.datum(), id.oid()) }])?;
            if rows.is_empty() {
                return Ok((table, None));
            }
            let (owner, parent_owner) = rows.first().get_two::<i64, i64>()?;
            Ok((table, Some((owner.unwrap_or(i64::MIN), parent_owner))))
        })
    })
}

/// The engine's decision for a record, through its parent's owner when the table is linked.
fn decide(m: &Loaded, tbl: pg_sys::Oid, module: &str, user: Option<i64>, action: Action, (owner, parent_owner): Owners) -> Decision {
    match m.parent_module_of(tbl) {
        Some(parent) => m.model.decide_child(user, module, parent, action, owner, parent_owner),
        None => m.model.decide(user, module, action, owner),
    }
}

fn no_such_record(table: &str) -> CrmError {
    CrmError::not_found(format!("no record of {table} with that id is visible to you"))
}

#[pg_extern(
    sql = "CREATE FUNCTION crm.explain_access(tbl regclass, id anyelement, action text DEFAULT 'read', user_name text DEFAULT NULL)
           RETURNS text VOLATILE LANGUAGE c AS 'MODULE_PATHNAME', '@FUNCTION_NAME@';"
)]
fn explain_access(tbl: pg_sys::Oid, id: AnyElement, action: &str, user_name: Option<&str>) -> String {
    let action: Action = action.parse().map_err(|e: crm_model::UnknownWord| CrmError::invalid(e.to_string())).or_raise();
    let m = cache::current(true).or_raise();
    let module = m.module_of(tbl).map(str::to_string);
    let acting = identity::acting_user(&m).or_raise().ok().map(|u| u.owner_id);
    const REVIEW: &str = "review another user's access";
    let (user, privileged) = match user_name {
        Some(name) => {
            let Some(u) = m.model.user_by_name(name) else {
                require_admin_to(REVIEW).or_raise();
                CrmError::undefined("CRM user", name).raise()
            };
            let privileged = require_admin_to(REVIEW).is_ok();
            if Some(u.owner_id) != acting && !privileged {
                require_admin_to(REVIEW).or_raise();
            }
            (Some(u.owner_id), privileged)
        }
        None => (acting, require_admin_to(REVIEW).is_ok()),
    };
    let (table, owners) = record_owner(tbl, &id, m.parent_module_of(tbl).is_some()).or_raise();
    let Some(module) = module else { CrmError::undefined("protected table", &table).raise() };
    let Some(owners) = owners else { no_such_record(&table).raise() };
    // Someone who cannot read the record learns nothing about it, not even that it exists.
    if !privileged && user.is_some() && !decide(&m, tbl, &module, user, Action::Read, owners).allowed {
        no_such_record(&table).raise();
    }
    let d = decide(&m, tbl, &module, user, action, owners);
    format!("{}: {}", if d.allowed { "allowed" } else { "denied" }, d.reason)
}

#[pg_extern(
    sql = "CREATE FUNCTION crm.who_can(tbl regclass, id anyelement, action text DEFAULT 'read')
           RETURNS SETOF text VOLATILE LANGUAGE c AS 'MODULE_PATHNAME', '@FUNCTION_NAME@';"
)]
fn who_can(tbl: pg_sys::Oid, id: AnyElement, action: &str) -> SetOfIterator<'static, String> {
    require_admin_to("review who can access a record").or_raise();
    let action: Action = action.parse().map_err(|e: crm_model::UnknownWord| CrmError::invalid(e.to_string())).or_raise();
    let m = cache::current(true).or_raise();
    let (table, owners) = record_owner(tbl, &id, m.parent_module_of(tbl).is_some()).or_raise();
    let Some(module) = m.module_of(tbl).map(str::to_string) else { CrmError::undefined("protected table", &table).raise() };
    let Some(owners) = owners else { no_such_record(&table).raise() };
    let mut names: Vec<String> = m
        .model
        .users()
        .filter(|u| decide(&m, tbl, &module, Some(u.owner_id), action, owners).allowed)
        .map(|u| u.name.clone())
        .collect();
    names.sort();
    SetOfIterator::new(names)
}
