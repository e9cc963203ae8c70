//! Writes through a secure view (DESIGN §3.2): `crm.secure_view_write()`, the INSTEAD OF
//! trigger of every `<table>_secure` view.
//!
//! A client may hold privileges on the view only, not on the table, so the write is passed
//! on to the table by a role that may write it: the table's owner, who is under the table's
//! row security (FORCE ROW LEVEL SECURITY); or, when the owner bypasses row security (a
//! superuser), crm_access_views, which owns the view and holds privileges on the table. Row
//! security applies to either for the acting user of the session (DESIGN §5), and so does
//! the field check (`fields`): the write reaches exactly the rows and fields the acting user
//! may write. Only the columns the writer changed are passed on; a hidden field reads NULL
//! in the view, so leaving it alone leaves it unchanged, and setting it is a change, refused.
//!
//! The trigger takes no arguments: the table comes from crm.secure_views, the registry of the
//! views crm.secure_view() made, so attached to any other view it refuses. Rows the writer
//! may read but not change count as not written (0 rows), as on the table itself. Errors
//! read like the table's own: the statement crm_access ran is not shown as their context.

use pgrx::pg_sys::panic::{CaughtError, ErrorReport};
use pgrx::prelude::*;
use pgrx::spi::quote_identifier;
use pgrx::{PgLogLevel, PgTryBuilder, PgTupleDesc};

use crate::catalog::tables::row_security_applies;
use super::rows::trigger_table;
use super::rows::{require_firing, same, value, Firing};
use crate::catalog::latest;
use crate::catalog::privileged::{self, ExtensionRole};
use crate::catalog::tables::{primary_key_of, qualified_name};
use crate::error::{CrmError, CrmResult, OrRaise};

/// The table a registered secure view shows.
fn table_of(view: pg_sys::Oid) -> CrmResult<pg_sys::Oid> {
    const TABLE_OF: &str = "SELECT tbl::oid::int8 FROM crm.secure_views WHERE view = $1";
    let (_, found) = privileged::as_invoker(|| latest::execute_now(TABLE_OF, &[(pg_sys::OIDOID, pg_sys::Datum::from(view), false)], true))?;
    found.map(|t| pg_sys::Oid::from(t as u32)).ok_or_else(|| {
        CrmError::prerequisite(format!("{} is not a secure view made by crm.secure_view()", qualified_name(view).unwrap_or_default()))
            .with_hint("crm.secure_view_write() is the trigger of the views crm.secure_view() creates.")
    })
}

/// The role the write runs as (see the module comment).
fn writer_of(tbl: pg_sys::Oid) -> CrmResult<pg_sys::Oid> {
    let enabled = |role: pg_sys::Oid| row_security_applies(tbl, role);
    let owner = privileged::relation_owner(tbl).ok_or_else(|| CrmError::broken_catalog("the table of a secure view is missing"))?;
    if enabled(owner) {
        return Ok(owner);
    }
    let views = privileged::extension_role(ExtensionRole::Views)?;
    if enabled(views) {
        return Ok(views);
    }
    Err(CrmError::prerequisite(format!("row security does not apply to writes through the secure view of {}", qualified_name(tbl).unwrap_or_default()))
        .with_hint("Protect the table with crm.protect() again."))
}

/// Run `f`; an error it raises is raised again with its code, message, detail and hint, but
/// without the context of the statements crm_access ran for the writer.
fn as_if_direct<R>(f: impl FnOnce() -> R + std::panic::UnwindSafe) -> R {
    PgTryBuilder::new(f)
        .catch_others(|e| match e {
            CaughtError::PostgresError(r) | CaughtError::ErrorReport(r) => {
                let mut report = ErrorReport::new(r.sql_error_code(), r.message().to_string(), "crm.secure_view_write");
                if let Some(d) = r.detail() {
                    report = report.set_detail(d);
                }
                if let Some(h) = r.hint() {
                    report = report.set_hint(h);
                }
                report.report(PgLogLevel::ERROR);
                unreachable!("ERROR does not return")
            }
            other => other.rethrow(),
        })
        .execute()
}

#[pg_trigger]
fn secure_view_write<'a>(trigger: &'a PgTrigger<'a>) -> Result<Option<PgHeapTuple<'a, AllocatedByPostgres>>, PgTriggerError> {
    require_firing(trigger, "crm.secure_view_write()", Firing::InsteadOfRow);
    let data = trigger.trigger_data();
    let rel = data.tg_relation;
    let view = trigger_table(trigger);
    let event = trigger.event();
    let (old, new) = (data.tg_trigtuple, if event.fired_by_update() { data.tg_newtuple } else { data.tg_trigtuple });
    let written: CrmResult<bool> = (|| {
        let tbl = table_of(view)?;
        let table = qualified_name(tbl).ok_or_else(|| CrmError::broken_catalog("the table of a secure view is missing"))?;
        let (key, _) = primary_key_of(tbl).ok_or_else(|| CrmError::not_supported(format!("{table} has no single-column primary key: its secure view is read-only")))?;
        let writer = writer_of(tbl)?;
        // The view's columns are the table's, by name and type.
        // SAFETY: the view's descriptor and the trigger's tuples are valid for the whole call.
        let (columns, key_value) = unsafe {
            let desc = (*rel).rd_att;
            let tupdesc = PgTupleDesc::from_pg_unchecked(desc);
            let mut columns = Vec::new();
            let mut key_value = None;
            for att in tupdesc.iter().filter(|a| !a.attisdropped) {
                let name = std::ffi::CStr::from_ptr(att.attname.data.as_ptr()).to_string_lossy().into_owned();
                let n = att.attnum as i32;
                let now = value(new, desc, n);
                let write = if event.fired_by_insert() {
                    !now.1
                } else {
                    event.fired_by_update() && !same(now, value(old, desc, n), att)
                };
                if name == key {
                    key_value = Some((value(old, desc, n), att.atttypid));
                }
                if write {
                    columns.push((name, att.atttypid, now));
                }
            }
            (columns, key_value)
        };
        if !event.fired_by_delete() {
            let names: Vec<&str> = columns.iter().map(|(n, _, _)| n.as_str()).collect();
            super::fields::check_view_write(tbl, &table, &names)?;
        }
        let args = |list: &[(String, pg_sys::Oid, (pg_sys::Datum, bool))]| -> Vec<latest::Arg> { list.iter().map(|(_, t, (d, null))| (*t, *d, *null)).collect() };
        let (sql, values) = if event.fired_by_insert() {
            if columns.is_empty() {
                (format!("INSERT INTO {table} DEFAULT VALUES"), Vec::new())
            } else {
                let names: Vec<String> = columns.iter().map(|(n, _, _)| quote_identifier(n)).collect();
                let params: Vec<String> = (1..=columns.len()).map(|i| format!("${i}")).collect();
                (format!("INSERT INTO {table} ({}) VALUES ({})", names.join(", "), params.join(", ")), args(&columns))
            }
        } else {
            let ((k, null), key_type) = key_value.ok_or_else(|| CrmError::broken_catalog("the key column is missing from a secure view"))?;
            let key = quote_identifier(&key);
            let (sql, mut values) = if event.fired_by_delete() {
                (format!("DELETE FROM {table} WHERE {key} = $1"), Vec::new())
            } else if columns.is_empty() {
                // Nothing changed: the row still counts only if the writer may edit it.
                (format!("SELECT FROM {table} WHERE {key} = $1 FOR UPDATE"), Vec::new())
            } else {
                let sets: Vec<String> = columns.iter().enumerate().map(|(i, (n, _, _))| format!("{} = ${}", quote_identifier(n), i + 1)).collect();
                (format!("UPDATE {table} SET {} WHERE {key} = ${}", sets.join(", "), columns.len() + 1), args(&columns))
            };
            values.push((key_type, k, null));
            (sql, values)
        };
        let run = std::panic::AssertUnwindSafe(move || latest::execute_now(&sql, &values, false));
        let (processed, _) = privileged::as_user(writer, || as_if_direct(run))?;
        Ok(processed > 0)
    })();
    if !written.or_raise() {
        return Ok(None);
    }
    Ok(if event.fired_by_delete() { trigger.old() } else { trigger.new() })
}
