//! The two triggers that keep a child's copy of its parent record's owner
//! (`crm_parent_owner`), which `crm.link_parent` (`policy::link`, whose comment says how)
//! attaches: `crm.keep_parent_owner()` on the child, `crm.push_parent_owner()` on the parent.
//! Both take the copy lock and read under the latest snapshot (see `catalog::latest`).

use pgrx::prelude::*;
use pgrx::spi::quote_identifier;
use pgrx::PgTupleDesc;

use crate::catalog::tables::row_security_applies;
use super::rows::trigger_table;
use super::opened::{self, with_rows_opened};
use super::rows::{self, require_firing, same, text_of, value, with_value, Firing};
use super::{self as enforce};
use crate::catalog::latest::{self, lock_copies_of};
use crate::catalog::privileged;
use crate::catalog::tables::{primary_key_of, qualified_name};
use crate::error::{CrmError, CrmResult, OrRaise};
use crate::session::cache;
use crm_model::Action;

/// The column a child keeps its parent record's owner in.
pub const KEPT: &str = "crm_parent_owner";

/// The owner of the `parent` record whose key is `value` (of type `typ`), as the invoker can
/// read it under the latest snapshot; an error naming the record when not visible.
fn visible_parent_owner(parent: pg_sys::Oid, owner_column: &str, value: pg_sys::Datum, typ: pg_sys::Oid) -> CrmResult<i64> {
    let table = qualified_name(parent).ok_or_else(|| CrmError::broken_catalog("a parent table of crm.parent_links does not exist"))?;
    let (key, _) = primary_key_of(parent)
        .ok_or_else(|| CrmError::not_supported(format!("{table} has no single-column primary key for children to point at")))?;
    lock_copies_of(parent, false);
    let sql = format!("SELECT {} FROM {table} WHERE {} = $1", quote_identifier(owner_column), quote_identifier(&key));
    match privileged::as_invoker(|| latest::execute(&sql, &[(typ, value, false)], true))? {
        (0, _) => Err(CrmError::denied(format!("no {table} record with {key} = {} is visible to you", text_of(value, typ)))
            .with_hint("A record can be created under, or moved to, only a parent record you can read.")),
        (_, owner) => Ok(owner.unwrap_or(i64::MIN)),
    }
}

/// The RETURNING expression of a copy write of ours: whether the row as written (after the
/// table's own BEFORE triggers) differs from what we wrote in the columns access depends on:
/// the copy itself (not `kept`), the owner column or the link column (not as they were, `was`).
pub fn forged_check(owner_column: &str, link_column: &str, kept: &str) -> String {
    format!(
        "c.{KEPT} IS DISTINCT FROM {kept} OR c.{owner_column} IS DISTINCT FROM was.{owner_column} OR c.{link_column} IS DISTINCT FROM was.{link_column} AS forged"
    )
}

/// Refuse a copy write some of whose rows a BEFORE trigger of the table kept from being
/// written (returning NULL), counted by `left` (red team of issue 24, round 10: the child kept
/// a copy of its former parent owner, and access through it).
pub fn refuse_left(left: Option<i64>, table: &str) -> CrmResult<()> {
    if left.unwrap_or(0) > 0 {
        return Err(CrmError::denied(format!("a trigger or policy of {table} kept rows crm_access wrote from changing"))
            .with_detail("crm_access writes the owner column or crm_parent_owner of these rows itself, as the table's owner; the table's own BEFORE triggers and narrowing policies must let those writes through.")
            .with_hint("Have the table's BEFORE UPDATE triggers return the row, and its own policies let its owner update every row, for crm_access's writes."));
    }
    Ok(())
}

/// Refuse a copy write whose rows a trigger of the table changed (see `forged_check`).
pub fn refuse_forged(forged: Option<i64>, table: &str) -> CrmResult<()> {
    if forged.unwrap_or(0) > 0 {
        return Err(CrmError::denied(format!("a trigger of {table} changed the owner, the link or the copy of the parent's owner in rows crm_access wrote"))
            .with_detail("crm_access writes these columns of a linked table itself, as the table's owner; the table's own triggers may change other columns, never these.")
            .with_hint("Have the table's BEFORE triggers leave the owner column, the link column and crm_parent_owner as they find them."));
    }
    Ok(())
}

#[pg_trigger]
fn keep_parent_owner<'a>(trigger: &'a PgTrigger<'a>) -> Result<Option<PgHeapTuple<'a, AllocatedByPostgres>>, PgTriggerError> {
    let data = trigger.trigger_data();
    let rel = data.tg_relation;
    let tbl = trigger_table(trigger);
    let update = trigger.event().fired_by_update();
    let new = if update { data.tg_newtuple } else { data.tg_trigtuple };
    require_firing(trigger, "crm.keep_parent_owner()", Firing::BeforeWrite);
    if opened::rows_opened(tbl) {
        // Our own push and fill write the copy themselves.
        return Ok(trigger.new());
    }
    // SAFETY: the trigger's relation and tuples are valid for the whole call; attribute
    // numbers come from the relation's own descriptor.
    let kept: CrmResult<Option<pg_sys::HeapTuple>> = (|| unsafe {
        let m = cache::current(false)?;
        let Some(link) = m.link_of(tbl) else { return Ok(None) };
        let parent = pg_sys::Oid::from(link.parent);
        let desc = (*rel).rd_att;
        let Some((link_att, link_col)) = rows::column(rel, &link.column) else {
            return Err(CrmError::broken_catalog(format!("the link column {} of a child table is missing", link.column)));
        };
        let Some((kept_att, kept_col)) = rows::column(rel, KEPT) else { return Err(CrmError::broken_catalog(format!("{KEPT} is missing"))) };
        if kept_col.atttypid != pg_sys::INT8OID {
            return Err(CrmError::broken_catalog(format!("{KEPT} is not bigint")));
        }
        let bypass = !row_security_applies(tbl, pg_sys::InvalidOid);
        let link_value = value(new, desc, link_att);
        let link_changed = !update || !same(link_value, value(data.tg_trigtuple, desc, link_att), link_col);
        let copy = if link_value.1 {
            (pg_sys::Datum::from(0), true)
        } else if !link_changed {
            value(data.tg_trigtuple, desc, kept_att)
        } else if bypass && !update && !value(new, desc, kept_att).1 {
            // Only a writer who bypasses row security supplies the copy: pg_restore, which
            // loads the child's rows before, or after, the catalog the lookup needs.
            value(new, desc, kept_att)
        } else {
            let owner_column = m.owner_column_of(parent).unwrap_or_default().to_string();
            (pg_sys::Datum::from(visible_parent_owner(parent, &owner_column, link_value.0, link_col.atttypid)?), false)
        };
        if update && !bypass {
            if let Some((owner_att, owner_col)) = m.owner_column_of(tbl).and_then(|c| rows::column(rel, c)) {
                let (new_owner, old_owner) = (value(new, desc, owner_att), value(data.tg_trigtuple, desc, owner_att));
                if !same(new_owner, old_owner, owner_col) {
                    let owner = (!new_owner.1).then(|| new_owner.0.value() as i64);
                    enforce::check_assignment(tbl, Action::Edit, owner)?;
                }
            }
        }
        Ok(Some(with_value(new, desc, kept_att, copy)))
    })();
    match kept.or_raise() {
        // SAFETY: built by heap_modify_tuple_by_cols for this relation's descriptor.
        Some(tuple) => Ok(Some(unsafe { PgHeapTuple::from_heap_tuple(PgTupleDesc::from_pg_unchecked((*rel).rd_att), tuple) })),
        None => Ok(trigger.new()),
    }
}

#[pg_trigger]
fn push_parent_owner<'a>(trigger: &'a PgTrigger<'a>) -> Result<Option<PgHeapTuple<'a, AllocatedByPostgres>>, PgTriggerError> {
    require_firing(trigger, "crm.push_parent_owner()", Firing::AfterChangeStatement);
    let data = trigger.trigger_data();
    let parent = trigger_table(trigger);
    let data = data as *const pg_sys::TriggerData as *mut pg_sys::TriggerData;
    let update = trigger.event().fired_by_update();
    let pushed: CrmResult<()> = (|| {
        let m = cache::current(false)?;
        let children = m.children_of(parent);
        let (Some(owner), Some((key, _))) = (m.owner_column_of(parent), primary_key_of(parent)) else {
            return Ok(());
        };
        if children.is_empty() {
            return Ok(());
        }
        let (o, k) = (quote_identifier(owner), quote_identifier(&key));
        // The records of this statement whose owner (or key) changed; none: nothing to push.
        let changed = if update {
            format!("SELECT count(*) FROM crm_old o FULL JOIN crm_new n ON n.{k} = o.{k} WHERE o.{o} IS DISTINCT FROM n.{o}")
        } else {
            "SELECT count(*) FROM crm_old".to_string()
        };
        if latest::execute_in_trigger(data, &changed, &[], true)?.1 == Some(0) {
            return Ok(());
        }
        lock_copies_of(parent, true);
        for (child, link) in children {
            let Some(child_table) = qualified_name(child) else { continue };
            let l = quote_identifier(&link.column);
            let co = quote_identifier(m.owner_column_of(child).unwrap_or_default());
            // The new owners come from the statement's own transition tables: the parent
            // table itself is not read, so nothing of it is opened to the child's triggers.
            // A record that is gone (deleted, or its key changed) leaves its children NULL.
            // Each statement counts the rows the child table's own triggers changed in the
            // columns access depends on (`forged_check`), and is refused if any.
            let mut statements = vec![format!(
                "WITH u AS (UPDATE {child_table} AS c SET {KEPT} = NULL FROM crm_old AS o, {child_table} AS was
                            WHERE was.ctid = c.ctid AND c.{l} = o.{k} AND c.{KEPT} IS NOT NULL{}
                            RETURNING {})
                 SELECT count(*) FILTER (WHERE forged) FROM u",
                if update { format!(" AND NOT EXISTS (SELECT FROM crm_new AS n WHERE n.{k} = o.{k})") } else { String::new() },
                forged_check(&co, &l, "NULL")
            )];
            if update {
                statements.push(format!(
                    "WITH u AS (UPDATE {child_table} AS c SET {KEPT} = n.{o} FROM crm_new AS n, {child_table} AS was
                                WHERE was.ctid = c.ctid AND c.{l} = n.{k} AND c.{KEPT} IS DISTINCT FROM n.{o}
                                RETURNING {})
                     SELECT count(*) FILTER (WHERE forged) FROM u",
                    forged_check(&co, &l, &format!("n.{o}"))
                ));
            }
            // Then no row the statements were to write may be left as it was.
            let gone = if update { format!(" AND NOT EXISTS (SELECT FROM crm_new AS n WHERE n.{k} = o.{k})") } else { String::new() };
            let mut left = format!("SELECT (SELECT count(*) FROM {child_table} AS c JOIN crm_old AS o ON c.{l} = o.{k} WHERE c.{KEPT} IS NOT NULL{gone})");
            if update {
                left.push_str(&format!(" + (SELECT count(*) FROM {child_table} AS c JOIN crm_new AS n ON c.{l} = n.{k} WHERE c.{KEPT} IS DISTINCT FROM n.{o})"));
            }
            for sql in statements {
                let (_, forged) = with_rows_opened(&[child], || privileged::as_owner_of(child, || latest::execute_in_trigger(data, &sql, &[], false)))?;
                refuse_forged(forged, &child_table)?;
            }
            let (_, stale) = privileged::as_owner_of_unfiltered(child, || latest::execute_in_trigger(data, &left, &[], true))?;
            refuse_left(stale, &child_table)?;
        }
        Ok(())
    })();
    pushed.or_raise();
    Ok(None)
}
