//! `crm.explain_access` (why a user can or cannot reach a record) and `crm.who_can` (who
//! can, for access reviews). Both decide with the engine, the same one policies use, and
//! read the record's owner with row security off; so that they never leak a record, only
//! an administrator may ask about another user or about records they cannot read.

use pgrx::datum::DatumWithOid;
use pgrx::prelude::*;
use pgrx::spi::quote_identifier;
use pgrx::AnyElement;

use super::admin::one;
use super::authorize::require_admin_to;
use crate::catalog::{load, privileged};
use crate::error::{CrmError, CrmResult, OrRaise};
use crate::session::{cache, identity};
use crm_model::Action;

/// The owner of the record of `tbl` whose primary key is `id`, read as the extension owner.
fn record_owner(tbl: pg_sys::Oid, id: &AnyElement) -> CrmResult<(String, Option<i64>)> {
    let owner = load::extension_owner()?;
    privileged::as_owner(owner, || {
        Spi::connect(|c| {
            let table = one::<String>(c, "SELECT $1::regclass::text", &[tbl.into()])?.unwrap_or_default();
            let column = one::<String>(c, "SELECT owner_column::text FROM crm.protected_tables WHERE tbl = $1", &[tbl.into()])?
                .ok_or_else(|| CrmError::undefined("protected table", &table))?;
            let key = c.select(
                "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod) FROM pg_index i
                 JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
                 WHERE i.indrelid = $1 AND i.indisprimary AND i.indnatts = 1",
                Some(1),
                &[tbl.into()],
            )?;
            if key.is_empty() {
                return Err(CrmError::not_supported(format!("{table} has no single-column primary key to find the record by")));
            }
            let (key, key_type) = key.first().get_two::<String, String>()?;
            let (key, key_type) = (key.unwrap_or_default(), key_type.unwrap_or_default());
            let sql = format!("SELECT {} FROM {table} WHERE {} = $1::{key_type}", quote_identifier(&column), quote_identifier(&key));
            let rows = c.select(&sql, Some(1), &[unsafe { DatumWithOid::new(id.datum(), id.oid()) }])?;
            let found = if rows.is_empty() { None } else { Some(rows.first().get_one::<i64>()?) };
            Ok((table, found.map(|o| o.unwrap_or(i64::MIN))))
        })
    })
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
    let (table, owner) = record_owner(tbl, &id).or_raise();
    let Some(module) = module else { CrmError::undefined("protected table", &table).raise() };
    let Some(owner) = owner else { no_such_record(&table).raise() };
    // Someone who cannot read the record learns nothing about it, not even that it exists.
    if !privileged && user.is_some() && !m.model.decide(user, &module, Action::Read, owner).allowed {
        no_such_record(&table).raise();
    }
    let d = m.model.decide(user, &module, action, owner);
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
    let (table, owner) = record_owner(tbl, &id).or_raise();
    let Some(module) = m.module_of(tbl).map(str::to_string) else { CrmError::undefined("protected table", &table).raise() };
    let Some(owner) = owner else { no_such_record(&table).raise() };
    let mut names: Vec<String> = m
        .model
        .users()
        .filter(|u| m.model.decide(Some(u.owner_id), &module, action, owner).allowed)
        .map(|u| u.name.clone())
        .collect();
    names.sort();
    SetOfIterator::new(names)
}
