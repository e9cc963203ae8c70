//! TRUNCATE is not subject to row security and fires no row triggers, so a protected table
//! carries a statement trigger that lets it through only for someone who may delete every
//! record of the table (a CRM administrator, or everyone under a public read-write-delete
//! default), or who bypasses row security anyway (a superuser).

use pgrx::prelude::*;

use crm_model::Filter;

use crate::catalog::tables::row_security_applies;
use super::rows::trigger_table;
use super::{self as enforce};
use super::opened;
use crate::catalog::tables::qualified_name;
use crate::error::{CrmError, OrRaise};
use crm_model::Action;

#[pg_trigger]
fn check_truncate<'a>(trigger: &'a PgTrigger<'a>) -> Result<Option<PgHeapTuple<'a, AllocatedByPostgres>>, PgTriggerError> {
    let tbl = trigger_table(trigger);
    if !row_security_applies(tbl, pg_sys::InvalidOid) || opened::rows_opened(tbl) {
        return Ok(None);
    }
    if *enforce::access(tbl, Action::Delete, false).or_raise() != Filter::Const(true) {
        let table = qualified_name(tbl).unwrap_or_default();
        CrmError::denied(format!("TRUNCATE {table} would delete records you may not delete"))
            .with_detail("TRUNCATE ignores row security, so it needs delete access to every record of the table.")
            .with_hint("Use DELETE, which removes exactly the records you may delete, or ask a CRM administrator.")
            .about(Some(&table), Some("truncate"), Some("not every record may be deleted"))
            .raise();
    }
    Ok(None)
}
