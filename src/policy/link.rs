//! Parent links between protected tables (an opportunity's account, DESIGN §3.1).
//!
//! `crm.link_parent(child, parent_column, parent)` makes the child keep its parent record's
//! owner in an indexed `crm_parent_owner` column, so that rules carrying access to related
//! modules stay an indexed constant filter. Two generic triggers keep it, both running as
//! the invoker; neither takes an argument nor builds a function body, so no identifier of
//! anyone's choosing ever reaches generated code:
//! - `crm.keep_parent_owner()` (BEFORE INSERT OR UPDATE on the child) copies the owner
//!   from the parent row as the writer sees it, so it cannot be forged, refuses to create a
//!   child under, or move it to, a parent the writer cannot read, and checks owner changes
//!   (which the edit policy lets through for users who reach the child through its parent);
//! - `crm.push_parent_owner()` (AFTER UPDATE and AFTER DELETE on the parent, once per
//!   statement, over its transition tables) rewrites the copy in every child of a record
//!   whose owner changed, as the invoker, with the policies of the child opened for that one
//!   statement (see `opened`), so a new parent owner reaches rows the invoker cannot see. The
//!   new owners come from the transition tables: the parent is not read, so nothing of it is
//!   opened. Once per statement, so that a bulk transfer re-plans once, not per row.
//!
//! Both take the copy lock and read under the latest snapshot (see `catalog::latest`).

use std::ffi::CStr;

use pgrx::prelude::*;
use pgrx::spi::{quote_identifier, SpiClient};
use pgrx::PgTupleDesc;

use super::enforce;
use super::opened::{self, with_protection_changing, with_rows_opened};
use super::rows::{self, require_firing, same, text_of, value, with_value, Firing};
use super::protect::{attach_policies, check_protection};
use super::trigger_names::{push_triggers, KEEP_PARENT_OWNER, PUSH_PARENT_OWNER, PUSH_PARENT_OWNER_DELETE};
use crate::catalog::spi::{as_caller, on_catalog};
use crate::catalog::latest::{self, lock_copies_of};
use crate::catalog::privileged;
use crate::catalog::tables::{check_caller_owns_plain_table, has_index_led_by, primary_key, primary_key_of, qualified_name};
use crate::error::{CrmError, CrmResult, OrRaise};
use crate::session::cache;
use crm_model::Action;

/// The column a child keeps its parent record's owner in.
const KEPT: &str = "crm_parent_owner";

/// The type of a column and its attribute number, or an "undefined column" error.
fn column(c: &SpiClient<'_>, tbl: pg_sys::Oid, table: &str, name: &str) -> CrmResult<pg_sys::Oid> {
    let row = c.select(
        "SELECT atttypid FROM pg_attribute WHERE attrelid = $1 AND attname = $2 AND attnum > 0 AND NOT attisdropped",
        Some(1),
        &[tbl.into(), name.into()],
    )?;
    if row.is_empty() {
        return Err(CrmError::undefined_column(table, name));
    }
    Ok(row.first().get_one::<pg_sys::Oid>()?.unwrap_or(pg_sys::InvalidOid))
}

fn type_name(t: pg_sys::Oid) -> String {
    // SAFETY: format_type_be returns a palloc'd string for any type oid.
    unsafe { CStr::from_ptr(pg_sys::format_type_be(t)).to_string_lossy().into_owned() }
}

/// Link `child` to `parent` (see the module comment); the caller is an authorised admin.
pub fn link(child_oid: pg_sys::Oid, parent_column: &str, parent_oid: pg_sys::Oid) -> CrmResult<()> {
    let m = cache::current(true)?;
    let (child, parent, key, parent_owner) = as_caller(|c| {
        let child = check_caller_owns_plain_table(c, child_oid, "link")?;
        let parent = check_caller_owns_plain_table(c, parent_oid, "link")?;
        let protected = |t: pg_sys::Oid, name: &str| {
            m.owner_column_of(t).map(str::to_string).ok_or_else(|| {
                CrmError::undefined("protected table", name).with_hint("Protect it first with crm.protect().")
            })
        };
        protected(child_oid, &child)?;
        let parent_owner = protected(parent_oid, &parent)?;
        if child_oid == parent_oid {
            return Err(CrmError::invalid(format!("{child} cannot be its own parent")));
        }
        let Some((key, key_type)) = primary_key(c, parent_oid)? else {
            return Err(CrmError::not_supported(format!("{parent} has no single-column primary key for children to point at")));
        };
        let link_type = column(c, child_oid, &child, parent_column)?;
        if link_type != key_type {
            return Err(CrmError::datatype_mismatch(format!(
                "{child}.{parent_column} is {}, but the key of {parent} is {}",
                type_name(link_type),
                type_name(key_type)
            )));
        }
        Ok((child, parent, key, parent_owner))
    })?;
    let (pc, pk, po) = (quote_identifier(parent_column), quote_identifier(&key), quote_identifier(&parent_owner));
    with_protection_changing(child_oid, || {
        with_protection_changing(parent_oid, || {
            as_caller(|c| {
                // A parent's change of owner (or deletion) finds its children by this column.
                if !has_index_led_by(c, child_oid, parent_column)? {
                    c.update(&format!("CREATE INDEX ON {child} ({pc})"), None, &[])?;
                }
                c.update(&format!("ALTER TABLE {child} ADD COLUMN IF NOT EXISTS {KEPT} bigint"), None, &[])?;
                if column(c, child_oid, &child, KEPT)? != pg_sys::INT8OID {
                    return Err(CrmError::datatype_mismatch(format!("{child}.{KEPT} exists and is not bigint"))
                        .with_hint(format!("crm_access keeps the parent record's owner in {KEPT}; rename or drop that column first.")));
                }
                if !has_index_led_by(c, child_oid, KEPT)? {
                    c.update(&format!("CREATE INDEX ON {child} ({KEPT})"), None, &[])?;
                }
                c.update(
                    &format!(
                        "CREATE OR REPLACE TRIGGER {KEEP_PARENT_OWNER} BEFORE INSERT OR UPDATE ON {child}
                             FOR EACH ROW EXECUTE FUNCTION crm.keep_parent_owner();
                         {}",
                        push_triggers(&parent, PUSH_PARENT_OWNER, PUSH_PARENT_OWNER_DELETE, "crm.push_parent_owner")
                    ),
                    None,
                    &[],
                )?;
                Ok(())
            })
        })
    })?;
    on_catalog(|c| {
        c.update(
            "INSERT INTO crm.parent_links VALUES ($1, $2, $3)
             ON CONFLICT (child) DO UPDATE SET parent_column = excluded.parent_column, parent = excluded.parent",
            None,
            &[child_oid.into(), parent_column.into(), parent_oid.into()],
        )?;
        Ok(())
    })?;
    // Every existing child gets its parent's owner, whoever can see it.
    with_rows_opened(&[child_oid, parent_oid], || {
        as_caller(|c| {
            c.update(&format!("UPDATE {child} AS c SET {KEPT} = p.{po} FROM {parent} p WHERE p.{pk} = c.{pc}"), None, &[])?;
            Ok(())
        })
    })?;
    let child_owner = m.owner_column_of(child_oid).unwrap_or_default().to_string();
    with_protection_changing(child_oid, || as_caller(|c| attach_policies(c, child_oid, &child, &child_owner, true)))?;
    check_protection(child_oid)?;
    check_protection(parent_oid)
}

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

#[pg_trigger]
fn keep_parent_owner<'a>(trigger: &'a PgTrigger<'a>) -> Result<Option<PgHeapTuple<'a, AllocatedByPostgres>>, PgTriggerError> {
    let data = trigger.trigger_data();
    let rel = data.tg_relation;
    // SAFETY: the trigger's relation is open for the whole call.
    let tbl = unsafe { (*rel).rd_id };
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
        let bypass = pg_sys::check_enable_rls(tbl, pg_sys::InvalidOid, true) != pg_sys::CheckEnableRlsResult::RLS_ENABLED as i32;
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
    // SAFETY: the trigger's relation is open for the whole call.
    let parent = unsafe { (*data.tg_relation).rd_id };
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
            // The new owners come from the statement's own transition tables: the parent
            // table itself is not read, so nothing of it is opened to the child's triggers.
            // A record that is gone (deleted, or its key changed) leaves its children NULL.
            let mut statements = vec![format!(
                "UPDATE {child_table} AS c SET {KEPT} = NULL FROM crm_old AS o
                 WHERE c.{l} = o.{k} AND c.{KEPT} IS NOT NULL{}",
                if update { format!(" AND NOT EXISTS (SELECT FROM crm_new AS n WHERE n.{k} = o.{k})") } else { String::new() }
            )];
            if update {
                statements.push(format!(
                    "UPDATE {child_table} AS c SET {KEPT} = n.{o} FROM crm_new AS n
                     WHERE c.{l} = n.{k} AND c.{KEPT} IS DISTINCT FROM n.{o}"
                ));
            }
            for sql in statements {
                with_rows_opened(&[child], || privileged::as_invoker(|| latest::execute_in_trigger(data, &sql, &[], false)))?;
            }
        }
        Ok(())
    })();
    pushed.or_raise();
    Ok(None)
}
