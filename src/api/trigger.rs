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
        if rel.name() == "users" && rel.namespace() == "crm" {
            crate::catalog::commits::users_changed(matches!(trigger.level(), PgTriggerLevel::Statement));
        }
    }
    Ok(None)
}
