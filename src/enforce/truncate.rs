//! TRUNCATE is not subject to row security and fires no row triggers, so a protected table
//! carries a statement trigger that lets it through only for someone who may delete every
//! record of the table (a CRM administrator, or everyone under a public read-write-delete
//! default), or who bypasses row security anyway (a superuser); and that, on a parent table,
//! empties its children's copies of its owners.

use pgrx::prelude::*;

use crm_model::Filter;

use crate::catalog::tables::row_security_applies;
use super::rows::trigger_table;
use super::{self as enforce};
use super::opened;
use crate::catalog::tables::qualified_name;
use super::opened::with_rows_opened;
use super::parent_owner::{forged_check, refuse_forged, refuse_left, KEPT};
use pgrx::spi::quote_identifier;
use crate::catalog::latest::{self, lock_copies_of};
use crate::catalog::privileged;
use crate::error::{CrmError, CrmResult, OrRaise};
use crate::session::cache;
use crm_model::Action;

#[pg_trigger]
fn check_truncate<'a>(trigger: &'a PgTrigger<'a>) -> Result<Option<PgHeapTuple<'a, AllocatedByPostgres>>, PgTriggerError> {
    let tbl = trigger_table(trigger);
    let checked = row_security_applies(tbl, pg_sys::InvalidOid) && !opened::rows_opened(tbl);
    // Every record, by its owner and by the restriction rules that apply (red team of issue 25).
    let everything = || {
        *enforce::access(tbl, Action::Delete, false).or_raise() == Filter::Const(true)
            && *enforce::restrictions::restriction(tbl, false).or_raise() == Filter::Const(true)
    };
    if checked && !everything() {
        let table = qualified_name(tbl).unwrap_or_default();
        CrmError::denied(format!("TRUNCATE {table} would delete records you may not delete"))
            .with_detail("TRUNCATE ignores row security, so it needs delete access to every record of the table.")
            .with_hint("Use DELETE, which removes exactly the records you may delete, or ask a CRM administrator.")
            .about(Some(&table), Some("truncate"), Some("not every record may be deleted"))
            .raise();
    }
    forget_parents(tbl).or_raise();
    // Every record goes, and so do their shares (TRUNCATE fires no delete trigger).
    super::shares::forget_all(tbl).or_raise();
    Ok(None)
}

/// Every record of `tbl` goes: when it is the parent table of linked children, their copies
/// of its owners go with them, whoever truncates (a superuser's reload included). TRUNCATE
/// fires no delete trigger, so the children would otherwise keep reaching through parents
/// that no longer exist (red team round 7). A parent inserted again does not bring them
/// back: `crm.link_parent` refills every copy.
fn forget_parents(tbl: pg_sys::Oid) -> CrmResult<()> {
    let m = cache::current(false)?;
    let children = m.children_of(tbl);
    if children.is_empty() {
        return Ok(());
    }
    lock_copies_of(tbl, true);
    for (child, link) in children {
        let Some(child_table) = qualified_name(child) else { continue };
        let (co, l) = (quote_identifier(m.owner_column_of(child).unwrap_or_default()), quote_identifier(&link.column));
        let sql = format!(
            "WITH u AS (UPDATE {child_table} AS c SET {KEPT} = NULL FROM {child_table} AS was
                        WHERE was.ctid = c.ctid AND c.{KEPT} IS NOT NULL RETURNING {})
             SELECT count(*) FILTER (WHERE forged) FROM u",
            forged_check(&co, &l, "NULL")
        );
        let (_, forged) = with_rows_opened(&[child], || privileged::as_owner_of(child, || latest::execute(&sql, &[], false)))?;
        refuse_forged(forged, &child_table)?;
        let left = format!("SELECT count(*) FROM {child_table} WHERE {KEPT} IS NOT NULL");
        let (_, stale) = privileged::as_owner_of_unfiltered(child, || latest::execute(&left, &[], true))?;
        refuse_left(stale, &child_table)?;
    }
    Ok(())
}
