//! The catalog as it stood at a past moment (DESIGN §8), rebuilt from the audit log.
//!
//! Every change since the log began is in `crm.audit_log` with the rows it removed and added
//! (`catalog::audit`), so undoing the entries after the moment gives back the catalog of that
//! moment: all at once for one moment (`catalog_at`), newest first when every step between
//! matters (`rewind`, for `access_changes`). The undo runs on the catalog tables themselves, inside a
//! subtransaction that is always rolled back: the usual loader reads the result, and
//! nothing of it survives (no other session ever sees it; the caller throws this session's
//! cached model away afterwards, `session::cache::rebuilding`). Entries are dated as their
//! transaction commits, one catalog commit at a time (`commits`), and undone in that order.

use pgrx::datum::TimestampWithTimeZone;
use pgrx::prelude::*;
use pgrx::spi::{quote_identifier, quote_literal};
use pgrx::{JsonB, PgTryBuilder};
use serde_json::Value;

use super::{audit, checkpoints};
use super::load::{self, LoadedCatalog};
use super::spi::on_catalog;
use crate::error::{CrmError, CrmResult};

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

/// Refuse a moment the log does not reach back to.
fn check_reach(c: &pgrx::spi::SpiClient<'_>, since: TimestampWithTimeZone) -> CrmResult<()> {
    let Some(from) = earliest(c)? else {
        return Err(CrmError::prerequisite("the audit log holds no start to rebuild the catalog from"));
    };
    if since < from {
        return Err(CrmError::invalid(format!("the audit log does not reach back to {since}"))
            .with_detail("Before its first entry the log was not kept yet (crm_access 0.3.0), or it has been pruned since.")
            .with_hint("SELECT min(at) FROM crm.audit_log_start shows how far back it reaches."));
    }
    Ok(())
}

/// The catalog tables an entry may name (those crm.catalog_tables declares audited), with
/// the columns of their primary keys, and the columns holding table names (a table dropped
/// since cannot be named again: its rows are left out).
pub(super) type Tables = std::collections::HashMap<String, (Vec<String>, Vec<String>)>;

pub(super) fn all_table_keys(c: &pgrx::spi::SpiClient<'_>) -> CrmResult<Tables> {
    let rows = c.select(
        "SELECT t.relname::text,
                array_agg(a.attname::text ORDER BY a.attnum) FILTER (WHERE a.attnum = ANY (i.indkey)),
                coalesce(array_agg(a.attname::text) FILTER (WHERE a.atttypid = 'regclass'::regtype), '{}')
         FROM pg_class t JOIN pg_index i ON i.indrelid = t.oid AND i.indisprimary
         JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum > 0 AND NOT a.attisdropped
         WHERE t.relnamespace = 'crm'::regnamespace
           AND EXISTS (SELECT 1 FROM crm.catalog_tables r WHERE r.tbl = t.oid AND r.audited)
         GROUP BY t.oid",
        None,
        &[],
    )?;
    let mut tables = std::collections::HashMap::new();
    for r in rows {
        let Some(name) = r.get::<String>(1)? else { continue };
        tables.insert(name, (r.get::<Vec<String>>(2)?.unwrap_or_default(), r.get::<Vec<String>>(3)?.unwrap_or_default()));
    }
    Ok(tables)
}

fn not_a_catalog_table(table: &str) -> CrmError {
    CrmError::broken_catalog(format!("an audit entry names \"{}\", which is not a catalog table", crate::error::shown(table)))
}

/// What a catalog table needs put back: its key and name-holding columns, the keys of the
/// rows changed since the moment, and the images of those that existed then.
struct PutBack {
    table: String,
    key_columns: Vec<String>,
    regclasses: Vec<String>,
    keys: Vec<Value>,
    images: Vec<Value>,
}

/// The catalog as of `at`.
///
/// Each catalog row changed since `at` stood then as the first change after `at` found it:
/// the image it removed, or nothing when it added the row. So one pass over the later entries
/// finds, per row, the first change that touched it, and each table is put back with two
/// statements (remove the rows touched, insert their images of then): no statement per
/// entry, no scan of a table per row. The pass starts from the first checkpoint at or after
/// `at` (`checkpoints`), whose copies then replace the tables changed since the moment, so it
/// reads no more entries than lie between two checkpoints; without one, from the catalog as
/// it is now (issue 24, finding 8).
///
/// With it, what `also` reads of the catalog tables as they stood at `at` (record shares, which
/// the loaded catalog leaves out), before the rebuild is rolled back.
pub fn catalog_at<R>(at: TimestampWithTimeZone, also: impl FnOnce() -> CrmResult<R>) -> CrmResult<(LoadedCatalog, R)> {
    in_rolled_back_subtransaction(|| {
        // The pass's estimate (set-returning functions over JSON) has it compiled by JIT,
        // which costs more than the pass itself at any size the log reaches.
        set_local(c"jit", c"off");
        let (tables, checkpoint, changes) = on_catalog(|c| {
            check_reach(c, at)?;
            let tables = all_table_keys(c)?;
            let checkpoint = checkpoints::first_at_or_after(c, at, tables.keys())?;
            let changes = first_changes(c, &tables, at, checkpoint.as_ref().map(|k| k.at))?;
            Ok((tables, checkpoint, changes))
        })?;
        set_local(c"session_replication_role", c"replica");
        audit::suppressed(|| {
            on_catalog(|c| match &checkpoint {
                None => changes.iter().try_for_each(|t| put_back(c, t)),
                Some(k) => {
                    let mut names: Vec<&String> = tables.keys().collect();
                    names.sort();
                    names.into_iter().try_for_each(|table| {
                        let (key_columns, regclasses) = &tables[table];
                        let first = changes.iter().find(|t| &t.table == table);
                        // Unchanged between the moment and now: as it is.
                        if first.is_none() && !k.changed_since.contains(table) {
                            return Ok(());
                        }
                        replace(c, table, regclasses, rows_then(key_columns, k.tables.get(table), first))
                    })
                }
            })
        })?;
        let loaded = load::load()?;
        Ok((loaded, also()?))
    })
}

/// A row's key, as a string that compares equal exactly when the key columns' values do.
fn key_text(key_columns: &[String], row: &Value) -> String {
    Value::from(key_columns.iter().map(|k| row.get(k).cloned().unwrap_or(Value::Null)).collect::<Vec<_>>()).to_string()
}

/// A table's rows at the moment: its rows at the checkpoint, but for those changed between,
/// which stood as their first change found them.
fn rows_then(key_columns: &[String], at_checkpoint: Option<&Value>, first: Option<&PutBack>) -> Vec<Value> {
    let touched: std::collections::HashSet<String> = first.iter().flat_map(|t| t.keys.iter().map(|k| key_text(key_columns, k))).collect();
    let kept = at_checkpoint.and_then(Value::as_array).into_iter().flatten().filter(|row| !touched.contains(&key_text(key_columns, row))).cloned();
    kept.chain(first.iter().flat_map(|t| t.images.iter().cloned())).collect()
}

/// The first change after `at` (and not after `upto`) of each catalog row, by table.
fn first_changes(
    c: &mut pgrx::spi::SpiClient<'_>,
    tables: &Tables,
    at: TimestampWithTimeZone,
    upto: Option<TimestampWithTimeZone>,
) -> CrmResult<Vec<PutBack>> {
    let key_columns: serde_json::Map<String, Value> = tables.iter().map(|(t, (keys, _))| (t.clone(), Value::from(keys.clone()))).collect();
    // Entries in commit order, a statement's changes in order, the rows it removed before
    // those it added. A prune's own entry counts the log's rows it removed: no catalog change.
    let rows = c.select(
        "SELECT DISTINCT ON (tbl, key) tbl, key, side = 0, row FROM (
             SELECT ch.change->>'table' AS tbl, s.side, r.row, e.at, e.id, ch.ord,
                    (SELECT jsonb_object_agg(k, r.row->k) FROM jsonb_array_elements_text($2->(ch.change->>'table')) k) AS key
             FROM crm.audit_log e
             CROSS JOIN LATERAL jsonb_array_elements(CASE WHEN jsonb_typeof(e.details->'changes') = 'array'
                                                           THEN e.details->'changes' ELSE '[]' END) WITH ORDINALITY ch(change, ord)
             CROSS JOIN LATERAL (VALUES (0, ch.change->'old'), (1, ch.change->'new')) s(side, rows)
             CROSS JOIN LATERAL jsonb_array_elements(CASE WHEN jsonb_typeof(s.rows) = 'array' THEN s.rows ELSE '[]' END) r(row)
             WHERE e.at > $1 AND ($3::timestamptz IS NULL OR e.at <= $3) AND ch.change->>'table' IS DISTINCT FROM 'audit_log'
         ) t ORDER BY tbl, key, at, id, ord, side",
        None,
        &[at.into(), JsonB(Value::Object(key_columns)).into(), upto.into()],
    )?;
    let mut out: Vec<PutBack> = Vec::new();
    for r in rows {
        let table = r.get::<String>(1)?.unwrap_or_default();
        let Some((key_columns, regclasses)) = tables.get(&table) else { return Err(not_a_catalog_table(&table)) };
        if out.last().is_none_or(|t| t.table != table) {
            out.push(PutBack { table, key_columns: key_columns.clone(), regclasses: regclasses.clone(), keys: Vec::new(), images: Vec::new() });
        }
        let t = out.last_mut().expect("pushed above");
        if let Some(JsonB(key)) = r.get::<JsonB>(2)? {
            t.keys.push(key);
        }
        if r.get::<bool>(3)? == Some(true) {
            if let Some(JsonB(image)) = r.get::<JsonB>(4)? {
                t.images.push(image);
            }
        }
    }
    Ok(out)
}

/// Remove a table's rows changed since the moment, and insert the images of those that
/// existed then. Key and column names come from the catalog tables' own definitions.
fn put_back(c: &mut pgrx::spi::SpiClient<'_>, t: &PutBack) -> CrmResult<()> {
    let qualified = format!("crm.{}", quote_identifier(&t.table));
    let key_of_row = t.key_columns.iter().map(|k| format!("{}, x.{}", quote_literal(k), quote_identifier(k))).collect::<Vec<_>>().join(", ");
    c.update(
        &format!("DELETE FROM {qualified} x WHERE jsonb_build_object({key_of_row}) IN (SELECT jsonb_array_elements($1))"),
        None,
        &[JsonB(Value::from(t.keys.clone())).into()],
    )?;
    insert(c, &t.table, &t.regclasses, t.images.clone())
}

/// Replace every row of a table with `rows`.
fn replace(c: &mut pgrx::spi::SpiClient<'_>, table: &str, regclasses: &[String], rows: Vec<Value>) -> CrmResult<()> {
    c.update(&format!("DELETE FROM crm.{}", quote_identifier(table)), None, &[])?;
    insert(c, table, regclasses, rows)
}

/// Insert row images into a table; one naming a table dropped since cannot be named again
/// (nor can it matter now), by name or by oid (a table's name reads as its oid once it is
/// dropped). Names are looked up in pg_class rather than read as `regclass`, which needs the
/// privilege to use their schema, which the catalog role lacks.
fn insert(c: &mut pgrx::spi::SpiClient<'_>, table: &str, regclasses: &[String], rows: Vec<Value>) -> CrmResult<()> {
    let qualified = format!("crm.{}", quote_identifier(table));
    // A checkpoint's copy carries each name's oid (`checkpoints`): that, when there is one.
    let oid = |name: &str| {
        format!(
            "CASE WHEN e.row->'__crm_oids' ? col THEN (SELECT c.oid FROM pg_catalog.pg_class c WHERE c.oid = (e.row->'__crm_oids'->>col)::oid)
                  WHEN {name} ~ '^[0-9]+$' THEN (SELECT c.oid FROM pg_catalog.pg_class c WHERE c.oid = ({name})::oid)
                  ELSE (SELECT CASE WHEN pg_catalog.cardinality(p) = 1 THEN pg_catalog.to_regclass({name})::oid
                                    ELSE (SELECT c.oid FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                                          WHERE n.nspname = p[1] AND c.relname = p[2] AND pg_catalog.cardinality(p) = 2) END
                        FROM pg_catalog.parse_ident({name}) p) END"
        )
    };
    c.update(
        &format!(
            "INSERT INTO {qualified} SELECT * FROM jsonb_populate_recordset(NULL::{qualified}, (
                 SELECT coalesce(jsonb_agg(r.row || r.oids), '[]') FROM (
                     SELECT e.row, (SELECT coalesce(jsonb_object_agg(col, {found}::text), '{{}}')
                                    FROM unnest($2::text[]) col WHERE e.row->>col IS NOT NULL) AS oids,
                            NOT EXISTS (SELECT FROM unnest($2::text[]) col WHERE e.row->>col IS NOT NULL AND {found} IS NULL) AS alive
                     FROM jsonb_array_elements($1) e(row)) r
                 WHERE r.alive))",
            found = oid("e.row->>col")
        ),
        None,
        &[JsonB(Value::from(rows)).into(), regclasses.to_vec().into()],
    )?;
    Ok(())
}

/// What `rewind` shows each entry: its id and time, and the catalog just before it.
pub type Step<'a> = &'a mut dyn FnMut(i64, TimestampWithTimeZone, &LoadedCatalog) -> CrmResult<()>;

/// Rewind the catalog to `since`, entry by entry, newest first: `step` sees each entry (its
/// id and time) with the catalog as it stood just before it. Returns the catalog of `since`.
/// Each entry costs a load of the catalog; for the catalog of one moment, `catalog_at`.
pub fn rewind(since: TimestampWithTimeZone, step: Step<'_>) -> CrmResult<LoadedCatalog> {
    let (entries, tables) = on_catalog(|c| {
        check_reach(c, since)?;
        let rows = c.select("SELECT id, at, details->'changes' FROM crm.audit_log WHERE at > $1 ORDER BY at DESC, id DESC", None, &[since.into()])?;
        let mut entries = Vec::new();
        for r in rows {
            let (Some(id), Some(at)) = (r.get::<i64>(1)?, r.get::<TimestampWithTimeZone>(2)?) else { continue };
            if let Some(JsonB(Value::Array(changes))) = r.get::<JsonB>(3)? {
                entries.push((id, at, changes));
            }
        }
        Ok((entries, all_table_keys(c)?))
    })?;
    in_rolled_back_subtransaction(|| {
        set_local(c"session_replication_role", c"replica");
        audit::suppressed(|| -> CrmResult<()> {
            for (id, at, changes) in &entries {
                on_catalog(|c| changes.iter().rev().try_for_each(|change| undo(c, &tables, change)))?;
                step(*id, *at, &load::load()?)?;
            }
            Ok(())
        })?;
        load::load()
    })
}

/// Set `name` for the rest of the current subtransaction (rolled back with it).
///
/// Replica mode: the undo passes through states that foreign keys (and their cascades) would
/// refuse or alter: a cascaded delete is logged after the delete that caused it, an update is
/// undone as a delete and an insert. Replica mode fires no trigger of ours nor any
/// foreign-key action or check for what is left of the subtransaction, which is rolled back
/// with the setting; the end state is one that satisfied them.
fn set_local(name: &std::ffi::CStr, value: &std::ffi::CStr) {
    // SAFETY: sets a setting of this session, for the current subtransaction only, with
    // constant arguments; as a superuser context because only superusers may set
    // session_replication_role, for crm_access's own statements here.
    unsafe {
        pg_sys::set_config_option(
            name.as_ptr(),
            value.as_ptr(),
            pg_sys::GucContext::PGC_SUSET,
            pg_sys::GucSource::PGC_S_SESSION,
            pg_sys::GucAction::GUC_ACTION_LOCAL,
            true,
            pgrx::PgLogLevel::ERROR as i32,
            false,
        );
    }
}

/// Undo one statement's change: remove the rows it added, put back the rows it removed.
fn undo(c: &mut pgrx::spi::SpiClient<'_>, tables: &Tables, change: &Value) -> CrmResult<()> {
    let table = change["table"].as_str().unwrap_or_default();
    // A prune's own entry counts the log's rows it removed: no catalog change to undo (the
    // moments it made unanswerable are refused by `earliest`).
    if table == "audit_log" {
        return Ok(());
    }
    let Some((key_columns, regclasses)) = tables.get(table) else { return Err(not_a_catalog_table(table)) };
    let rows = |side: &str| change[side].as_array().cloned().unwrap_or_default();
    let key = |row: &Value| Value::Object(key_columns.iter().map(|k| (k.clone(), row.get(k).cloned().unwrap_or(Value::Null))).collect());
    let images = rows("old");
    put_back(
        c,
        &PutBack {
            table: table.to_string(),
            key_columns: key_columns.clone(),
            regclasses: regclasses.clone(),
            keys: rows("new").iter().chain(&images).map(key).collect(),
            images,
        },
    )
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
