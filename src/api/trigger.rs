//! The statement trigger on every catalog table; see `session::cache` for why a relcache
//! invalidation is the right signal.

use pgrx::prelude::*;

#[pg_trigger]
fn catalog_changed<'a>(trigger: &'a PgTrigger<'a>) -> Result<Option<PgHeapTuple<'a, AllocatedByPostgres>>, PgTriggerError> {
    // A past catalog rebuilt in a subtransaction that is rolled back changes nothing.
    if crate::session::cache::is_rebuilding() {
        return Ok(None);
    }
    let rel = trigger.relation()?;
    // SAFETY: queues an invalidation message for an open relation's oid; sent at commit.
    unsafe { pg_sys::CacheInvalidateRelcacheByRelid(rel.oid()) };
    // Its commit takes the commit lock, until those invalidations are sent; record shares in
    // a mode that lets shares commit together (`commits::shares_changed`).
    if rel.name() == "shares" && rel.namespace() == "crm" {
        crate::catalog::commits::shares_changed();
    } else {
        crate::catalog::commits::catalog_changed(rel.oid());
        if let Some((keyed, _)) = crate::catalog::commits::Keyed::of_table(rel.name()).filter(|_| rel.namespace() == "crm") {
            // A TRUNCATE removes every row, whatever the audit trigger's own read of them saw
            // (a REPEATABLE READ snapshot older than rows committed since, a row-security
            // policy hiding some from the truncating role; red team of bdf281e): counted as a
            // change seen otherwise, so the commit reads the whole table.
            let handed_over = matches!(trigger.level(), PgTriggerLevel::Statement) && !trigger.event().fired_by_truncate();
            crate::catalog::commits::keyed_changed(keyed, handed_over);
        }
    }
    Ok(None)
}

/// Called by `crm.catalog_altered()`, the event trigger after an `ALTER TABLE` of a crm
/// table: its triggers may have been disabled meanwhile (`DISABLE TRIGGER`, a data-only
/// `pg_restore --disable-triggers`), so what changed then reached none of them, and no
/// record of this transaction's changes can be trusted to be whole. Its commit compiles the
/// catalog (red team of issue 28, item 2: a commit reading only the users its triggers
/// named kept a change made with them off, and published a model the catalog did not hold).
#[pg_extern]
fn compile_at_commit() {
    crate::catalog::commits::altered();
}
