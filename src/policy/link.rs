//! Parent links between protected tables (an opportunity's account, DESIGN §3.1):
//! `crm.link_parent` makes one (`link`), `crm.unlink_parent` takes it apart (`unlink`).
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
use pgrx::spi::quote_identifier;

use crate::enforce::opened::{with_protection_changing, with_rows_opened};
use crate::enforce::parent_owner::{self, KEPT};
use super::protect::{attach_policies, check_protection, detach_parent_if_lonely, drop_trigger, lock_parent};
use super::trigger_names::{push_triggers, KEEP_PARENT_OWNER, PUSH_PARENT_OWNER, PUSH_PARENT_OWNER_DELETE};
use crate::catalog::latest::{self, lock_copies_of};
use crate::catalog::privileged;
use crate::catalog::spi::{as_caller, on_catalog, one};
use crate::catalog::tables::{check_caller_owns_plain_table, columns, has_index_led_by, primary_key};
use crate::error::{CrmError, CrmResult};
use crate::session::cache;


/// The type of a live column, if there is one.
fn column_type(tbl: pg_sys::Oid, name: &str) -> Option<pg_sys::Oid> {
    columns(tbl).into_iter().find(|c| c.name == name).map(|c| c.typid)
}

/// The type of a column, or an "undefined column" error.
fn column(tbl: pg_sys::Oid, table: &str, name: &str) -> CrmResult<pg_sys::Oid> {
    column_type(tbl, name).ok_or_else(|| CrmError::undefined_column(table, name))
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
        let link_type = column(child_oid, &child, parent_column)?;
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
                // Kept by an earlier link (or made by the owner): checked, not made again.
                let kept = match column_type(child_oid, KEPT) {
                    Some(t) => t,
                    None => {
                        c.update(&format!("ALTER TABLE {child} ADD COLUMN {KEPT} bigint"), None, &[])?;
                        pg_sys::INT8OID
                    }
                };
                if kept != pg_sys::INT8OID {
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
    let previous = on_catalog(|c| {
        let previous = one::<pg_sys::Oid>(c, "SELECT parent::oid FROM crm.parent_links WHERE child = $1", &[child_oid.into()])?;
        c.update(
            "INSERT INTO crm.parent_links VALUES ($1, $2, $3)
             ON CONFLICT (child) DO UPDATE SET parent_column = excluded.parent_column, parent = excluded.parent",
            None,
            &[child_oid.into(), parent_column.into(), parent_oid.into()],
        )?;
        Ok(previous)
    })?;
    // Linked to another parent than before: the former one may have no child left.
    if let Some(previous) = previous.filter(|&p| p != parent_oid) {
        detach_parent_if_lonely(previous)?;
    }
    // Every existing child gets its parent's owner, whoever can see it, and a child without
    // a parent gets none: the copy may be left from an earlier link (to another parent or by
    // another column) or written by anyone while the table was unlinked (red team round 6).
    // Under the latest snapshot, as a pusher writes (`catalog::latest`): a row committed
    // while this call waited for its locks counts too, in REPEATABLE READ as well (round 7).
    // Read as the caller (who owns both tables, or is a superuser, and reaches every parent
    // record), then written as the child table's owner (`privileged::as_owner_of`) from the
    // values read: the parent table is never opened, so no code of the child's owner (a
    // narrowing policy's subquery, say) reads it past its row security (red team of issue 24).
    lock_copies_of(parent_oid, true);
    let (keys, owners) = privileged::as_invoker(|| latest::text_and_ids(&format!("SELECT p.{pk}::text, p.{po} FROM {parent} p WHERE p.{pk} IS NOT NULL")))?;
    let key_type = type_name(column(parent_oid, &parent, &key)?);
    let child_owner_column = quote_identifier(m.owner_column_of(child_oid).unwrap_or_default());
    let fill = format!(
        "WITH p AS (SELECT x.k::{key_type} AS k, x.o FROM unnest($1::text[], $2::int8[]) AS x(k, o)),
              u AS (UPDATE {child} AS c SET {KEPT} = p.o FROM {child} AS was LEFT JOIN p ON p.k = was.{pc}
                    WHERE was.ctid = c.ctid AND c.{KEPT} IS DISTINCT FROM p.o
                    RETURNING {})
         SELECT count(*) FILTER (WHERE forged) FROM u",
        parent_owner::forged_check(&child_owner_column, &pc, "p.o")
    );
    let args = [(pg_sys::TEXTARRAYOID, keys.into_datum().unwrap_or(pg_sys::Datum::from(0)), false), (pg_sys::INT8ARRAYOID, owners.into_datum().unwrap_or(pg_sys::Datum::from(0)), false)];
    let (_, forged) = with_rows_opened(&[child_oid], || privileged::as_owner_of(child_oid, || latest::execute(&fill, &args, false)))?;
    parent_owner::refuse_forged(forged, &child)?;
    let left = format!(
        "WITH p AS (SELECT x.k::{key_type} AS k, x.o FROM unnest($1::text[], $2::int8[]) AS x(k, o))
         SELECT count(*) FROM {child} AS c LEFT JOIN p ON p.k = c.{pc} WHERE c.{KEPT} IS DISTINCT FROM p.o"
    );
    let (_, stale) = privileged::as_owner_of_unfiltered(child_oid, || latest::execute(&left, &args, true))?;
    parent_owner::refuse_left(stale, &child)?;
    let child_owner = m.owner_column_of(child_oid).unwrap_or_default().to_string();
    with_protection_changing(child_oid, || as_caller(|c| attach_policies(c, child_oid, &child, &child_owner, true)))?;
    check_protection(child_oid)?;
    check_protection(parent_oid)
}

/// Undo `link` for `child`; the caller is an authorised admin. The catalog row goes first, so
/// that the guard no longer asks for the linked form; then the child's trigger and its
/// policies' parent branches; the parent loses its push triggers if it has no child left.
/// The copy column and the indexes stay: dropping a column is the table owner's call.
pub fn unlink(child_oid: pg_sys::Oid) -> CrmResult<()> {
    let m = cache::current(true)?;
    let child = as_caller(|c| check_caller_owns_plain_table(c, child_oid, "unlink"))?;
    if let Some(parent) = m.link_of(child_oid).map(|l| pg_sys::Oid::from(l.parent)) {
        lock_parent(parent)?;
    }
    let parent = on_catalog(|c| {
        let gone = c.update("DELETE FROM crm.parent_links WHERE child = $1 RETURNING parent::oid", None, &[child_oid.into()])?;
        Ok(if gone.is_empty() { None } else { gone.first().get_one::<pg_sys::Oid>()? })
    })?
    .ok_or_else(|| CrmError::undefined("parent link of table", &child).with_hint("crm.link_parent() makes one."))?;
    let owner = m.owner_column_of(child_oid).unwrap_or_default().to_string();
    with_protection_changing(child_oid, || {
        as_caller(|c| {
            drop_trigger(c, child_oid, &child, KEEP_PARENT_OWNER)?;
            attach_policies(c, child_oid, &child, &owner, false)
        })
    })?;
    detach_parent_if_lonely(parent)?;
    check_protection(child_oid)
}
