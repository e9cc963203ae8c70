//! TRUNCATE is not subject to row security and fires no row triggers, so a protected table
//! carries a statement trigger that lets it through only for someone who may delete every
//! record of the table (a CRM administrator, or everyone under a public read-write-delete
//! default), or who bypasses row security anyway (a superuser).

use pgrx::prelude::*;

use super::enforce::{self, Access};
use super::opened;
use crate::catalog::tables::qualified_name;
use crate::error::{CrmError, OrRaise};
use crm_model::Action;

#[pg_trigger]
fn check_truncate<'a>(trigger: &'a PgTrigger<'a>) -> Result<Option<PgHeapTuple<'a, AllocatedByPostgres>>, PgTriggerError> {
    // SAFETY: the trigger's relation is open for the whole call.
    let tbl = unsafe { (*trigger.trigger_data().tg_relation).rd_id };
    // SAFETY: reads the relation's row security flags and the caller's role attributes.
    let bypass = unsafe { pg_sys::check_enable_rls(tbl, pg_sys::InvalidOid, true) } != pg_sys::CheckEnableRlsResult::RLS_ENABLED as i32;
    if bypass || opened::rows_opened(tbl) {
        return Ok(None);
    }
    if !matches!(enforce::access(tbl, Action::Delete, false).or_raise(), Access::All) {
        let table = qualified_name(tbl).unwrap_or_default();
        CrmError::denied(format!("TRUNCATE {table} would delete records you may not delete"))
            .with_detail("TRUNCATE ignores row security, so it needs delete access to every record of the table.")
            .with_hint("Use DELETE, which removes exactly the records you may delete, or ask a CRM administrator.")
            .about(Some(&table), Some("truncate"), Some("not every record may be deleted"))
            .raise();
    }
    Ok(None)
}
