//! Checkpoints of the catalog (`crm.audit_checkpoints`, `crm.audit_checkpoint_tables`): the
//! audited tables as a catalog commit left them, taken every `crm.audit_checkpoint_every`
//! entries, so that a past catalog is rebuilt from the first checkpoint after the moment asked
//! about rather than from now (`history::catalog_at`), reading no more entries than lie
//! between two checkpoints (issue 24, finding 8: every entry after the moment made the
//! rebuild slower). A checkpoint copies only the tables changed since the one before (and
//! every table at least every `REFRESH` checkpoints): copying the whole catalog made the
//! commit that took it wait most of a second at 2,000 users.
//!
//! A checkpoint is taken by the commit that makes it due, while it holds the commit lock
//! (`commits`), after dating its entries: every earlier catalog commit is then visible and no
//! later one has begun, so the checkpoint holds exactly the entries dated up to its own. It
//! needs a snapshot taken after the lock, which a READ COMMITTED transaction's next statement
//! gets; a REPEATABLE READ or SERIALIZABLE one sees the catalog as its start found it, so it
//! leaves the checkpoint to the next commit. No checkpoint is taken while a transaction is
//! prepared (two-phase commit) in the database: its entries are dated at PREPARE, without the
//! lock, and a checkpoint taken before it commits would miss its change for good (red team
//! of issue 24, round 13).

use pgrx::datum::TimestampWithTimeZone;
use pgrx::prelude::*;
use pgrx::spi::{quote_identifier, quote_literal};
use pgrx::{GucContext, GucFlags, GucRegistry, GucSetting, JsonB};
use serde_json::Value;

use super::history::all_table_keys;
use super::spi::on_catalog;
use crate::error::CrmResult;

pub static EVERY: GucSetting<i32> = GucSetting::<i32>::new(1000);

pub fn init() {
    // Superuser-only: a checkpoint costs its commit a copy of the catalog.
    GucRegistry::define_int_guc(
        c"crm.audit_checkpoint_every",
        c"Take a checkpoint of the catalog every this many audit entries (0: never).",
        c"A past catalog (crm.who_could, crm.explain_access at a moment) is rebuilt from the first checkpoint after the moment.",
        &EVERY,
        0,
        1_000_000,
        GucContext::Suset,
        GucFlags::default(),
    );
}

/// A table is copied again at least every this many checkpoints, changed or not: a change
/// the log missed (a superuser's write with the log's triggers disabled) is not kept in
/// past catalogs longer than that.
const REFRESH: i64 = 10;

thread_local! {
    /// The newest entry when this session's last checkpoint failed: it tries again only once
    /// `crm.audit_checkpoint_every` more entries have been appended.
    static FAILED_AT: std::cell::Cell<i64> = const { std::cell::Cell::new(i64::MIN) };
}

thread_local! {
    /// The newest entry a checkpoint covered when this session last looked: it only grows, so
    /// entries fewer than `crm.audit_checkpoint_every` past it are not due without looking.
    static COVERED: std::cell::Cell<i64> = const { std::cell::Cell::new(0) };
}

/// Whether a checkpoint may be due for a commit whose newest audit entry is `newest`: a commit
/// of record shares alone then takes the commit lock exclusively, so that shares too leave at
/// most `crm.audit_checkpoint_every` entries between checkpoints (red team of issue 26, round
/// 3: share commits never took one, and a point-in-time review read every entry since). A
/// hint: `take_if_due` decides under the lock.
pub fn due(newest: i64) -> bool {
    let every = i64::from(EVERY.get());
    // SAFETY: reads the transaction's isolation level.
    if every <= 0 || unsafe { pg_sys::XactIsoLevel } >= pg_sys::XACT_REPEATABLE_READ as i32 {
        return false;
    }
    if newest.saturating_sub(FAILED_AT.get()) < every || newest - COVERED.get() < every {
        return false;
    }
    let covered = super::spi::with_snapshot(|| {
        on_catalog(|c| super::spi::one::<i64>(c, "SELECT last_id FROM crm.audit_checkpoints ORDER BY id DESC LIMIT 1", &[]))
    });
    let covered = covered.ok().flatten().unwrap_or(0);
    COVERED.set(COVERED.get().max(covered));
    newest - covered >= every
}

/// Take a checkpoint if `crm.audit_checkpoint_every` entries were appended since the last
/// one. Called by a committing catalog transaction holding the commit lock, with its entries
/// dated. A checkpoint is an index into the log, not part of the change: one that cannot be
/// taken (a catalog table grown past what one JSON value holds) is given up with a warning,
/// in a subtransaction, and the commit goes on; past catalogs are then rebuilt from the next
/// checkpoint (red team of issue 24, round 13: it failed the commit, and every later one).
pub fn take_if_due() -> CrmResult<()> {
    let every = i64::from(EVERY.get());
    // SAFETY: reads the transaction's isolation level.
    if every <= 0 || unsafe { pg_sys::XactIsoLevel } >= pg_sys::XACT_REPEATABLE_READ as i32 {
        return Ok(());
    }
    let Some(newest) = on_catalog(|c| {
        Ok(c.select(
            "SELECT max(id) FROM crm.audit_log
             HAVING max(id) - coalesce((SELECT max(last_id) FROM crm.audit_checkpoints), 0) >= $1
                AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_prepared_xacts p WHERE p.database = pg_catalog.current_database())",
            Some(1),
            &[every.into()],
        )?
        .first()
        .get_one::<i64>()
        .ok()
        .flatten())
    })?
    else {
        return Ok(());
    };
    if newest.saturating_sub(FAILED_AT.get()) < every {
        return Ok(());
    }
    if let Err(problem) = super::spi::best_effort(|| on_catalog(take)) {
        FAILED_AT.set(newest);
        pgrx::warning!(
            "crm_access: no checkpoint of the catalog was taken: {problem}; past catalogs are rebuilt from the next one (this session tries again after {every} more audit entries)"
        );
    }
    Ok(())
}

fn take(c: &mut pgrx::spi::SpiClient<'_>) -> CrmResult<()> {
    let tables = all_table_keys(c)?;
    let names: Vec<String> = tables.keys().cloned().collect();
    let changed = changed_since_last(c)?;
    let id = c
        .update(
            "INSERT INTO crm.audit_checkpoints (at, last_id) SELECT max(at), max(id) FROM crm.audit_log RETURNING id",
            Some(1),
            &[],
        )?
        .first()
        .get_one::<i64>()?
        .unwrap_or_default();
    // The tables changed since the last checkpoint, those never copied, and those last
    // copied REFRESH checkpoints ago or more.
    let stale: Vec<String> = c
        .select(
            "SELECT t FROM unnest($1::text[]) t
             WHERE t = ANY ($2) OR NOT EXISTS (SELECT FROM crm.audit_checkpoint_tables v WHERE v.tbl = t AND v.checkpoint_id > $3 - $4)",
            None,
            &[names.into(), changed.into(), id.into(), REFRESH.into()],
        )?
        .filter_map(|r| r.get::<String>(1).ok().flatten())
        .collect();
    for table in stale {
        // A row naming a table keeps its oid beside the name (`history::insert` prefers
        // it): a table renamed since the checkpoint is still found (red team, round 13).
        let oids = tables.get(&table).map(|(_, regclasses)| regclasses.clone()).unwrap_or_default();
        let row = if oids.is_empty() {
            "to_jsonb(x)".to_string()
        } else {
            let pairs = oids.iter().map(|col| format!("{}, x.{}::oid", quote_literal(col), quote_identifier(col))).collect::<Vec<_>>().join(", ");
            format!("to_jsonb(x) || jsonb_build_object('__crm_oids', jsonb_build_object({pairs}))")
        };
        // Table and column names come from the catalog's own registry of its tables.
        c.update(
            &format!(
                "INSERT INTO crm.audit_checkpoint_tables (checkpoint_id, tbl, rows)
                 SELECT $1, $2, coalesce(jsonb_agg({row}), '[]') FROM crm.{} x",
                quote_identifier(&table)
            ),
            None,
            &[id.into(), table.into()],
        )?;
    }
    Ok(())
}

/// The tables the entries after the last checkpoint changed (every entry, without one).
fn changed_since_last(c: &pgrx::spi::SpiClient<'_>) -> CrmResult<Vec<String>> {
    Ok(c.select(
        "SELECT DISTINCT ch->>'table' FROM crm.audit_log e
         CROSS JOIN LATERAL jsonb_array_elements(CASE WHEN jsonb_typeof(e.details->'changes') = 'array'
                                                       THEN e.details->'changes' ELSE '[]' END) ch
         WHERE e.at > coalesce((SELECT max(at) FROM crm.audit_checkpoints), '-infinity') AND ch->>'table' IS NOT NULL",
        None,
        &[],
    )?
    .filter_map(|r| r.get::<String>(1).ok().flatten())
    .collect())
}

/// A checkpoint: its moment, each audited table's rows then, and the tables that may have
/// changed since (copied by a later checkpoint, or changed after the last one).
pub struct Checkpoint {
    pub at: TimestampWithTimeZone,
    pub tables: std::collections::HashMap<String, Value>,
    pub changed_since: std::collections::HashSet<String>,
}

/// The first checkpoint at or after `at` that holds every one of `tables` (one taken before
/// a table was added to the catalog cannot stand for it).
pub fn first_at_or_after<'a>(
    c: &pgrx::spi::SpiClient<'_>,
    at: TimestampWithTimeZone,
    tables: impl Iterator<Item = &'a String>,
) -> CrmResult<Option<Checkpoint>> {
    let names: Vec<String> = tables.cloned().collect();
    let found = c.select("SELECT id, at FROM crm.audit_checkpoints WHERE at >= $1 ORDER BY at, id LIMIT 1", Some(1), &[at.into()])?;
    if found.is_empty() {
        return Ok(None);
    }
    let found = found.first();
    let (Some(id), Some(checkpoint_at)) = (found.get::<i64>(1)?, found.get::<TimestampWithTimeZone>(2)?) else { return Ok(None) };
    let mut copies = std::collections::HashMap::new();
    for r in c.select(
        "SELECT DISTINCT ON (tbl) tbl, rows FROM crm.audit_checkpoint_tables
         WHERE checkpoint_id <= $1 AND tbl = ANY ($2) ORDER BY tbl, checkpoint_id DESC",
        None,
        &[id.into(), names.clone().into()],
    )? {
        if let (Some(table), Some(JsonB(rows))) = (r.get::<String>(1)?, r.get::<JsonB>(2)?) {
            copies.insert(table, rows);
        }
    }
    if names.iter().any(|t| !copies.contains_key(t)) {
        return Ok(None);
    }
    let mut changed_since: std::collections::HashSet<String> = changed_since_last(c)?.into_iter().collect();
    for r in c.select("SELECT DISTINCT tbl FROM crm.audit_checkpoint_tables WHERE checkpoint_id > $1", None, &[id.into()])? {
        if let Some(table) = r.get::<String>(1)? {
            changed_since.insert(table);
        }
    }
    Ok(Some(Checkpoint { at: checkpoint_at, tables: copies, changed_since }))
}
