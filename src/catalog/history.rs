//! The catalog as it stood at a past moment (DESIGN §8), rebuilt from the audit log.
//!
//! Every change since the log began is in `crm.audit_log` with the rows it removed and added
//! (`catalog::audit`), so undoing the entries after the moment, newest first, gives back the
//! catalog of that moment. The undo runs on the catalog tables themselves, inside a
//! subtransaction that is always rolled back: the usual loader reads the result, and
//! nothing of it survives (no other session ever sees it; the caller throws this session's
//! cached model away afterwards, `session::cache::rebuilding`). Entries are dated as their
//! transaction commits, one catalog commit at a time (`commits`), and undone in that order.

use pgrx::datum::TimestampWithTimeZone;
use pgrx::prelude::*;
use pgrx::spi::quote_identifier;
use pgrx::{JsonB, PgTryBuilder};
use serde_json::Value;

use super::audit;
use super::load::{self, LoadedCatalog};
use super::spi::on_catalog;
use crate::error::{CrmError, CrmResult};

/// The catalog tables an entry may name (those crm.catalog_tables declares audited), with
/// the columns of their primary keys, and the columns holding table names (a table dropped
/// since cannot be named again: its rows are left out).
fn table_keys(c: &pgrx::spi::SpiClient<'_>, table: &str) -> CrmResult<Option<(Vec<String>, Vec<String>)>> {
    let row = c.select(
        "SELECT array_agg(a.attname::text ORDER BY a.attnum) FILTER (WHERE a.attnum = ANY (i.indkey)),
                coalesce(array_agg(a.attname::text) FILTER (WHERE a.atttypid = 'regclass'::regtype), '{}')
         FROM pg_class t JOIN pg_index i ON i.indrelid = t.oid AND i.indisprimary
         JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum > 0 AND NOT a.attisdropped
         WHERE t.relnamespace = 'crm'::regnamespace AND t.relname = $1
           AND EXISTS (SELECT 1 FROM crm.catalog_tables r WHERE r.tbl = t.oid AND r.audited)
         GROUP BY t.oid",
        Some(1),
        &[table.into()],
    )?;
    if row.is_empty() {
        return Ok(None);
    }
    let row = row.first();
    Ok(Some((row.get::<Vec<String>>(1)?.unwrap_or_default(), row.get::<Vec<String>>(2)?.unwrap_or_default())))
}

/// The earliest moment the log can answer for: since it began (installation or update to
/// 0.3.0), and not before what was pruned.
fn earliest(c: &pgrx::spi::SpiClient<'_>) -> CrmResult<Option<TimestampWithTimeZone>> {
    // The first start: a restore adds its own, later, beside the one it restores.
    let row = c.select(
        "SELECT greatest((SELECT min(at) FROM crm.audit_log_start),
                         (SELECT max((details->'args'->>'before')::timestamptz) FROM crm.audit_log WHERE operation = 'prune_audit_log'))",
        Some(1),
        &[],
    )?;
    Ok(row.first().get_one::<TimestampWithTimeZone>()?)
}

/// The catalog as of `at`.
pub fn catalog_at(at: TimestampWithTimeZone) -> CrmResult<LoadedCatalog> {
    rewind(at, None)
}

/// What `rewind` shows each entry: its id and time, and the catalog just before it.
pub type Step<'a> = &'a mut dyn FnMut(i64, TimestampWithTimeZone, &LoadedCatalog) -> CrmResult<()>;

/// Rewind the catalog to `since`, entry by entry, newest first: `step` sees each entry (its
/// id and time) with the catalog as it stood just before it. Returns the catalog of `since`.
pub fn rewind(since: TimestampWithTimeZone, mut step: Option<Step<'_>>) -> CrmResult<LoadedCatalog> {
    let entries = on_catalog(|c| {
        let Some(from) = earliest(c)? else {
            return Err(CrmError::prerequisite("the audit log holds no start to rebuild the catalog from"));
        };
        if since < from {
            return Err(CrmError::invalid(format!("the audit log does not reach back to {since}"))
                .with_detail("Before its first entry the log was not kept yet (crm_access 0.3.0), or it has been pruned since.")
                .with_hint("SELECT min(at) FROM crm.audit_log_start shows how far back it reaches."));
        }
        let rows = c.select("SELECT id, at, details->'changes' FROM crm.audit_log WHERE at > $1 ORDER BY at DESC, id DESC", None, &[since.into()])?;
        let mut entries = Vec::new();
        for r in rows {
            let (Some(id), Some(at)) = (r.get::<i64>(1)?, r.get::<TimestampWithTimeZone>(2)?) else { continue };
            if let Some(JsonB(Value::Array(changes))) = r.get::<JsonB>(3)? {
                entries.push((id, at, changes));
            }
        }
        Ok(entries)
    })?;
    in_rolled_back_subtransaction(|| {
        // The undo passes through states that foreign keys (and their cascades) would refuse
        // or alter: a cascaded delete is logged after the delete that caused it, an update
        // is undone as a delete and an insert. Replica mode fires no trigger of ours nor any
        // foreign-key action or check for what is left of this subtransaction, which is
        // rolled back with the setting; the end state is one that satisfied them.
        // SAFETY: sets a setting of this session, for the current subtransaction only, with
        // constant arguments; as a superuser context because only superusers may set it, for
        // crm_access's own statements here.
        unsafe {
            pg_sys::set_config_option(
                c"session_replication_role".as_ptr(),
                c"replica".as_ptr(),
                pg_sys::GucContext::PGC_SUSET,
                pg_sys::GucSource::PGC_S_SESSION,
                pg_sys::GucAction::GUC_ACTION_LOCAL,
                true,
                pgrx::PgLogLevel::ERROR as i32,
                false,
            );
        }
        audit::suppressed(|| -> CrmResult<()> {
            let mut tables = Tables::new();
            for (id, at, changes) in &entries {
                on_catalog(|c| {
                    for change in changes.iter().rev() {
                        undo(c, &mut tables, change)?;
                    }
                    Ok(())
                })?;
                if let Some(step) = step.as_mut() {
                    step(*id, *at, &load::load()?)?;
                }
            }
            Ok(())
        })?;
        load::load()
    })
}

/// Undo one statement's change: remove the rows it added, put back the rows it removed.
/// Each catalog table's key and name-holding columns (`table_keys`), looked up once per rewind.
type Tables = std::collections::HashMap<String, Option<(Vec<String>, Vec<String>)>>;

fn undo(c: &mut pgrx::spi::SpiClient<'_>, tables: &mut Tables, change: &Value) -> CrmResult<()> {
    let table = change["table"].as_str().unwrap_or_default();
    // A prune's own entry counts the log's rows it removed: no catalog change to undo (the
    // moments it made unanswerable are refused by `earliest`).
    if table == "audit_log" {
        return Ok(());
    }
    if !tables.contains_key(table) {
        let found = table_keys(c, table)?;
        tables.insert(table.to_string(), found);
    }
    let Some((keys, regclasses)) = tables[table].clone() else {
        return Err(CrmError::broken_catalog(format!("an audit entry names \"{}\", which is not a catalog table", crate::error::shown(table))));
    };
    let qualified = format!("crm.{}", quote_identifier(table));
    let rows = |side: &str| change[side].as_array().cloned().unwrap_or_default();
    for row in rows("new") {
        let key: serde_json::Map<String, Value> = keys.iter().filter_map(|k| row.get(k).map(|v| (k.clone(), v.clone()))).collect();
        c.update(&format!("DELETE FROM {qualified} x WHERE to_jsonb(x) @> $1"), None, &[JsonB(Value::Object(key)).into()])?;
    }
    for row in rows("old") {
        // A table dropped since cannot be named again (nor can it matter now).
        let mut gone = false;
        for col in &regclasses {
            if let Some(name) = row.get(col).and_then(Value::as_str) {
                gone |= c.select("SELECT to_regclass($1)", Some(1), &[name.into()])?.first().get_one::<pg_sys::Oid>()?.is_none();
            }
        }
        if !gone {
            c.update(&format!("INSERT INTO {qualified} SELECT * FROM jsonb_populate_record(NULL::{qualified}, $1)"), None, &[JsonB(row).into()])?;
        }
    }
    Ok(())
}

/// Run `f` in a subtransaction that is rolled back whatever happens; an error `f` raises is
/// raised again once the subtransaction is gone.
fn in_rolled_back_subtransaction<R>(f: impl FnOnce() -> CrmResult<R>) -> CrmResult<R> {
    // SAFETY: the standard pattern of PL/pgSQL's exception blocks: begin an internal
    // subtransaction, keep the caller's memory context and resource owner, and give them
    // back after rolling it back, on success and on error alike.
    unsafe {
        let context = pg_sys::CurrentMemoryContext;
        let owner = pg_sys::CurrentResourceOwner;
        pg_sys::BeginInternalSubTransaction(std::ptr::null());
        pg_sys::MemoryContextSwitchTo(context);
        let restore = move || {
            pg_sys::RollbackAndReleaseCurrentSubTransaction();
            pg_sys::MemoryContextSwitchTo(context);
            pg_sys::CurrentResourceOwner = owner;
        };
        let result = PgTryBuilder::new(std::panic::AssertUnwindSafe(f))
            .catch_others(|e| {
                restore();
                e.rethrow()
            })
            .execute();
        restore();
        result
    }
}
