//! Protecting a CRM table (DESIGN §4): `crm.protect`, `crm.unprotect`, `crm.link_parent`
//! and `crm.unlink_parent`. Only the table's owner (or a superuser) who is also a CRM
//! administrator may change a table's protection (DESIGN §5); the DDL (`policy::protect`,
//! `policy::link`) runs as the caller, the catalog rows are written as the catalog role.

use pgrx::prelude::*;
use pgrx::spi::{quote_identifier, quote_literal};
use pgrx::PgRelation;

use super::admin::check_record_module;
use super::authorize::require_admin;
use crate::audit;
use super::authorize::audited;
use crate::catalog::spi::{as_caller, exists, on_catalog, one};
use crate::catalog::tables::{check_caller_owns_plain_table, existing, has_index_led_by, primary_key};
use crate::error::{CrmError, CrmResult, OrRaise, required};
use crate::enforce::opened::with_protection_changing;
use crate::policy::{link, protect};

#[pg_extern]
fn protect(tbl: Option<PgRelation>, module: Option<&str>, owner_column: default!(Option<&str>, "'owner_id'")) {
    let tbl = required("tbl", tbl);
    let module = required("module", module);
    let owner_column = required("owner_column", owner_column);
    let oid = tbl.oid();
    // ALTER TABLE refuses a relation this session holds open.
    drop(tbl);
    require_admin().or_raise();
    let tbl = existing(oid).or_raise();
    audited(audit!("protect", tbl, module, owner_column), || protect_table(oid, module, owner_column)).or_raise()
}

fn protect_table(oid: pg_sys::Oid, module: &str, owner_column: &str) -> CrmResult<()> {
    // Serialised with a concurrent crm.add_restriction_rule on the module, which holds its row
    // FOR SHARE (red team of issue 25); the rules are then read under the latest snapshot.
    let as_data = crate::catalog::compat::modules_are_data();
    if as_data {
        crate::catalog::spi::on_catalog(|c| {
            c.update("SELECT 1 FROM crm.modules WHERE name = $1 FOR UPDATE", None, &[module.into()])?;
            Ok(())
        })?;
    }
    let (table, linked) = as_caller(|c| {
        check_record_module(c, module, "protected tables")?;
        let table = check_caller_owns_plain_table(c, oid, "protect")?;
        let column = one::<String>(
            c,
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute
             WHERE attrelid = $1 AND attname = $2 AND attnum > 0 AND NOT attisdropped",
            &[oid.into(), owner_column.into()],
        )?;
        match column {
            Some(ty) if ty == "bigint" => {}
            Some(ty) => {
                return Err(CrmError::datatype_mismatch(format!("owner column \"{owner_column}\" of {table} is {ty}, not bigint"))
                    .with_hint(format!("Owner ids are bigint: ALTER TABLE {table} ALTER COLUMN {} TYPE bigint.", quote_identifier(owner_column))))
            }
            None => return Err(CrmError::undefined_column(&table, owner_column)),
        }
        // The restriction rules of the module read their columns on every table of it (an
        // older schema, during an update running older releases' scripts, has none).
        if as_data {
            let problems = one::<String>(
                c,
                "SELECT string_agg(format('restriction rule %s: %s', id, crm.restriction_column_problem($1, column_name)), '; ' ORDER BY id)
                 FROM crm.restrictions WHERE module = $2 AND crm.restriction_column_problem($1, column_name) IS NOT NULL",
                &[oid.into(), module.into()],
            )?;
            if let Some(problems) = problems {
                return Err(CrmError::prerequisite(format!("{table} cannot hold {module} records: {problems}"))
                    .with_hint("Every protected table of a module has the columns its restriction rules read (see crm.restriction_rules)."));
            }
            let (_, late) = crate::catalog::latest::execute(
                "SELECT count(*) FROM crm.restrictions WHERE module = $2 AND crm.restriction_column_problem($1, column_name) IS NOT NULL",
                &[(pg_sys::OIDOID, oid.into(), false), (pg_sys::TEXTOID, module.into_datum().expect("text"), false)],
                true,
            )?;
            if late.unwrap_or(0) > 0 {
                return Err(CrmError::serialization(format!("a restriction rule of {module} was added while {table} was being protected"))
                    .with_hint("Run the call again."));
            }
        }
        let linked = exists(c, "SELECT 1 FROM crm.parent_links WHERE child = $1", &[oid.into()])?;
        Ok((table, linked))
    })?;
    with_protection_changing(oid, || {
        as_caller(|c| {
            protect::attach_policies(c, oid, &table, owner_column, linked)?;
            protect::attach_triggers(c, oid, &table, module)?;
            if !has_index_led_by(c, oid, owner_column)? {
                let owner = quote_identifier(owner_column);
                pgrx::notice!("{table} has no index led by {owner}: users who see few rows will still scan the whole table; consider CREATE INDEX ON {table} ({owner})");
            }
            Ok(())
        })
    })?;
    let key = as_caller(|c| primary_key(c, oid))?.map(|(k, _)| k);
    on_catalog(|c| {
        c.update(
            "INSERT INTO crm.protected_tables VALUES ($1, $2, $3, $4)
             ON CONFLICT (tbl) DO UPDATE SET module = excluded.module, owner_column = excluded.owner_column, key_column = excluded.key_column",
            None,
            &[oid.into(), module.into(), owner_column.into(), key.into()],
        )?;
        Ok(())
    })?;
    protect::check_protection(oid)
}

#[pg_extern]
fn unprotect(tbl: Option<PgRelation>) {
    let tbl = required("tbl", tbl);
    let oid = tbl.oid();
    drop(tbl);
    require_admin().or_raise();
    let tbl = existing(oid).or_raise();
    audited(audit!("unprotect", tbl), || unprotect_table(oid)).or_raise()
}

fn unprotect_table(oid: pg_sys::Oid) -> CrmResult<()> {
    let table = existing(oid)?;
    // Read as the catalog role: conversations are under row security for everyone else.
    let parent = on_catalog(|c| {
        if !exists(c, "SELECT 1 FROM crm.protected_tables WHERE tbl = $1", &[oid.into()])? {
            return Err(CrmError::undefined("protected table", &table));
        }
        if exists(c, "SELECT 1 FROM crm.conversations WHERE linked_table = $1", &[oid.into()])? {
            return Err(CrmError::dependent(format!("conversations are linked to records of {table}"))
                .with_hint(format!("Unlink them first: UPDATE crm.conversations SET linked_table = NULL, linked_id = NULL WHERE linked_table = {}::regclass", quote_literal(&table))));
        }
        let children = one::<String>(c, "SELECT string_agg(child::text, ', ' ORDER BY child::text) FROM crm.parent_links WHERE parent = $1", &[oid.into()])?;
        if let Some(children) = children {
            return Err(CrmError::dependent(format!("{table} is the parent table of {children}")).with_hint("Unprotect those tables first."));
        }
        one::<pg_sys::Oid>(c, "SELECT parent::oid FROM crm.parent_links WHERE child = $1", &[oid.into()])
    })?;
    as_caller(|c| {
        check_caller_owns_plain_table(c, oid, "unprotect")?;
        Ok(())
    })?;
    if let Some(parent) = parent {
        protect::lock_parent(parent)?;
    }
    // The catalog row goes first: from then on the table is not protected, and taking its
    // protection apart is no longer something the event trigger refuses.
    on_catalog(|c| {
        c.update("DELETE FROM crm.protected_tables WHERE tbl = $1", None, &[oid.into()])?;
        Ok(())
    })?;
    with_protection_changing(oid, || as_caller(|c| protect::detach(c, oid, &table)))?;
    if let Some(parent) = parent {
        protect::detach_parent_if_lonely(parent)?;
    }
    Ok(())
}

#[pg_extern]
fn link_parent(child: Option<PgRelation>, parent_column: Option<&str>, parent: Option<PgRelation>) {
    let child = required("child", child);
    let parent_column = required("parent_column", parent_column);
    let parent = required("parent", parent);
    let (child_oid, parent_oid) = (child.oid(), parent.oid());
    // ALTER TABLE refuses a relation this session holds open.
    drop(child);
    drop(parent);
    require_admin().or_raise();
    let (child, parent) = (existing(child_oid).or_raise(), existing(parent_oid).or_raise());
    audited(audit!("link_parent", child, parent_column, parent), || link::link(child_oid, parent_column, parent_oid)).or_raise();
}

#[pg_extern]
fn unlink_parent(child: Option<PgRelation>) {
    let child = required("child", child);
    let child_oid = child.oid();
    // ALTER TABLE refuses a relation this session holds open.
    drop(child);
    require_admin().or_raise();
    let child = existing(child_oid).or_raise();
    audited(audit!("unlink_parent", child), || link::unlink(child_oid)).or_raise();
}
