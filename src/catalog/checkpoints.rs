//! Checkpoints of the catalog (`crm.audit_checkpoints`): the audited tables as a catalog
//! commit left them, taken every `crm.audit_checkpoint_every` entries, so that a past catalog
//! is rebuilt from the first checkpoint after the moment asked about rather than from now
//! (`history::catalog_at`), reading no more entries than lie between two checkpoints (issue
//! 24, finding 8: every entry after the moment made the rebuild slower).
//!
//! A checkpoint is taken by the commit that makes it due, while it holds the commit lock
//! (`commits`), after dating its entries: every earlier catalog commit is then visible and no
//! later one has begun, so the checkpoint holds exactly the entries dated up to its own. It
//! needs a snapshot taken after the lock, which a READ COMMITTED transaction's next statement
//! gets; a REPEATABLE READ or SERIALIZABLE one sees the catalog as its start found it, so it
//! leaves the checkpoint to the next commit.

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

/// Take a checkpoint if `crm.audit_checkpoint_every` entries were appended since the last
/// one. Called by a committing catalog transaction holding the commit lock, with its entries
/// dated.
pub fn take_if_due() -> CrmResult<()> {
    let every = i64::from(EVERY.get());
    // SAFETY: reads the transaction's isolation level.
    if every <= 0 || unsafe { pg_sys::XactIsoLevel } >= pg_sys::XACT_REPEATABLE_READ as i32 {
        return Ok(());
    }
    on_catalog(|c| {
        let due = c
            .select(
                "SELECT (SELECT max(id) FROM crm.audit_log) - coalesce((SELECT max(last_id) FROM crm.audit_checkpoints), 0) >= $1",
                Some(1),
                &[every.into()],
            )?
            .first()
            .get_one::<bool>()?
            .unwrap_or(false);
        if !due {
            return Ok(());
        }
        let tables = all_table_keys(c)?;
        let mut names: Vec<&String> = tables.keys().collect();
        names.sort();
        // Table names come from the catalog's own registry of its tables.
        let catalog = names
            .iter()
            .map(|t| format!("jsonb_build_object({}, (SELECT coalesce(jsonb_agg(to_jsonb(x)), '[]') FROM crm.{} x))", quote_literal(t), quote_identifier(t)))
            .collect::<Vec<_>>()
            .join(" || ");
        c.update(
            &format!(
                "INSERT INTO crm.audit_checkpoints (at, last_id, catalog)
                 SELECT max(at), max(id), {catalog} FROM crm.audit_log"
            ),
            None,
            &[],
        )?;
        Ok(())
    })
}

/// A checkpoint: its moment, and each audited table's rows then.
pub struct Checkpoint {
    pub at: TimestampWithTimeZone,
    pub tables: serde_json::Map<String, Value>,
}

/// The first checkpoint at or after `at` that holds every one of `tables` (one taken before
/// a table was added to the catalog cannot stand for it).
pub fn first_at_or_after<'a>(
    c: &pgrx::spi::SpiClient<'_>,
    at: TimestampWithTimeZone,
    tables: impl Iterator<Item = &'a String>,
) -> CrmResult<Option<Checkpoint>> {
    let names: Vec<String> = tables.cloned().collect();
    let row = c.select(
        "SELECT at, catalog FROM crm.audit_checkpoints WHERE at >= $1 AND catalog ?& $2 ORDER BY at, id LIMIT 1",
        Some(1),
        &[at.into(), names.into()],
    )?;
    if row.is_empty() {
        return Ok(None);
    }
    let row = row.first();
    let (Some(at), Some(JsonB(Value::Object(tables)))) = (row.get::<TimestampWithTimeZone>(1)?, row.get::<JsonB>(2)?) else {
        return Ok(None);
    };
    Ok(Some(Checkpoint { at, tables }))
}
