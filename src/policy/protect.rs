//! Attaching and removing the crm_access policies on a CRM table.
//!
//! Policies are RESTRICTIVE, with one permissive `true` base policy: any other policy a
//! DBA adds to the table can narrow access further but never widen it. FORCE ROW LEVEL
//! SECURITY makes the table owner subject to them too.
//!
//! Only the table's owner (or a superuser) who is also a CRM administrator may protect or
//! unprotect it (DESIGN §5); the DDL runs as the caller, the catalog rows are written as the
//! catalog role. Once protected, the event trigger of sql/guard.sql refuses any other
//! change that would weaken the protection, and `check_protection` is the one definition
//! of "weakened" that both use.

use pgrx::prelude::*;
use pgrx::spi::{quote_identifier, quote_literal, SpiClient};
use pgrx::PgRelation;

use super::opened::with_protection_changing;
use super::trigger_names::{push_triggers, FIELD_CHECK, FIELD_CHECK_INSERT, KEEP_PARENT_OWNER, LINKED_OWNER_DELETE, LINKED_OWNER_UPDATE, TRUNCATE_CHECK};
use crate::api::admin::{check_record_module, exists, one};
use crate::api::authorize::{as_caller, on_catalog, require_admin};
use crate::catalog::tables::{check_caller_owns_plain_table, existing, has_index_led_by, primary_key};
use crate::error::{CrmError, CrmResult, OrRaise, required};

const POLICIES: [&str; 5] = ["crm_base", "crm_read", "crm_create", "crm_edit", "crm_delete"];

fn drop_policies(c: &mut SpiClient<'_>, tbl: pg_sys::Oid, table: &str) -> CrmResult<()> {
    for p in POLICIES {
        if one::<i32>(c, "SELECT 1 FROM pg_policy WHERE polrelid = $1 AND polname = $2", &[tbl.into(), p.into()])?.is_some() {
            c.update(&format!("DROP POLICY {p} ON {table}"), None, &[])?;
        }
    }
    Ok(())
}

/// (Re)create the policies. A table linked to a parent (`linked`) may also be reached
/// through its parent record's owner, kept in `crm_parent_owner`: read and edit become
/// `owner = ANY(...) OR crm_parent_owner = ANY(...)` once simplified, both indexed.
pub fn attach_policies(c: &mut SpiClient<'_>, tbl: pg_sys::Oid, table: &str, owner_column: &str, linked: bool) -> CrmResult<()> {
    let owner = quote_identifier(owner_column);
    let lit = quote_literal(table);
    let via = |action: &str| {
        if linked { format!(" OR crm.can_via_parent({lit}::regclass, '{action}', crm_parent_owner)") } else { String::new() }
    };
    let (via_read, via_edit) = (via("read"), via("edit"));
    // In WITH CHECK the parent branch comes first: can_assign raises for an owner the user
    // may not give records to, and a user who reaches the row through its parent may edit
    // it without owning it. Owner changes on linked tables are checked by their trigger.
    let edit_check = if linked {
        format!("crm.can_via_parent({lit}::regclass, 'edit', crm_parent_owner) OR crm.can_assign({lit}::regclass, 'edit', {owner})")
    } else {
        format!("crm.can_assign({lit}::regclass, 'edit', {owner})")
    };
    drop_policies(c, tbl, table)?;
    c.update(
        &format!(
            "ALTER TABLE {table} ENABLE ROW LEVEL SECURITY;
             ALTER TABLE {table} FORCE ROW LEVEL SECURITY;
             CREATE POLICY crm_base ON {table} AS PERMISSIVE FOR ALL USING (true) WITH CHECK (true);
             CREATE POLICY crm_read ON {table} AS RESTRICTIVE FOR SELECT
                 USING (crm.can({lit}::regclass, 'read', {owner}){via_read});
             CREATE POLICY crm_create ON {table} AS RESTRICTIVE FOR INSERT
                 WITH CHECK (crm.can_assign({lit}::regclass, 'create', {owner}));
             CREATE POLICY crm_edit ON {table} AS RESTRICTIVE FOR UPDATE
                 USING (crm.can({lit}::regclass, 'edit', {owner}){via_edit})
                 WITH CHECK ({edit_check});
             CREATE POLICY crm_delete ON {table} AS RESTRICTIVE FOR DELETE
                 USING (crm.can({lit}::regclass, 'delete', {owner}));"
        ),
        None,
        &[],
    )?;
    Ok(())
}

fn drop_trigger(c: &mut SpiClient<'_>, tbl: pg_sys::Oid, table: &str, name: &str) -> CrmResult<()> {
    if exists(c, "SELECT 1 FROM pg_trigger WHERE tgrelid = $1 AND tgname = $2", &[tbl.into(), name.into()])? {
        c.update(&format!("DROP TRIGGER {name} ON {table}"), None, &[])?;
    }
    Ok(())
}

/// The triggers every protected table carries: field checks (whose WHEN conditions are
/// specialised per statement, see `fields`), the TRUNCATE check, and on Leads and Contacts
/// tables, which conversations link to, the push of a new owner to those conversations.
fn attach_triggers(c: &mut SpiClient<'_>, tbl: pg_sys::Oid, table: &str, module: &str) -> CrmResult<()> {
    let lit = quote_literal(table);
    c.update(
        &format!(
            "CREATE OR REPLACE TRIGGER {FIELD_CHECK} BEFORE UPDATE ON {table} FOR EACH ROW
                 WHEN (crm.field_changes({lit}::regclass, OLD, NEW)) EXECUTE FUNCTION crm.check_field_writes();
             CREATE OR REPLACE TRIGGER {FIELD_CHECK_INSERT} BEFORE INSERT ON {table} FOR EACH ROW
                 WHEN (crm.field_values({lit}::regclass, NEW)) EXECUTE FUNCTION crm.check_field_writes();
             CREATE OR REPLACE TRIGGER {TRUNCATE_CHECK} BEFORE TRUNCATE ON {table} FOR EACH STATEMENT
                 EXECUTE FUNCTION crm.check_truncate();"
        ),
        None,
        &[],
    )?;
    if matches!(module, "Leads" | "Contacts") {
        c.update(&push_triggers(table, LINKED_OWNER_UPDATE, LINKED_OWNER_DELETE, "crm.push_linked_owner"), None, &[])?;
    } else {
        drop_trigger(c, tbl, table, LINKED_OWNER_UPDATE)?;
        drop_trigger(c, tbl, table, LINKED_OWNER_DELETE)?;
    }
    Ok(())
}

/// Refuse unless `tbl` carries its whole protection (sql/guard.sql defines what that is).
pub fn check_protection(tbl: pg_sys::Oid) -> CrmResult<()> {
    let problems = as_caller(|c| one::<String>(c, "SELECT crm.protection_problems($1)", &[tbl.into()]))?;
    match problems {
        None => Ok(()),
        Some(p) => Err(CrmError::prerequisite(format!("the protection of {} is incomplete: {p}", existing(tbl)?))
            .with_hint("Something changed the table while it was being protected; run the call again.")),
    }
}

#[pg_extern]
fn protect(tbl: Option<PgRelation>, module: Option<&str>, owner_column: default!(Option<&str>, "'owner_id'")) {
    let tbl = required("tbl", tbl);
    let module = required("module", module);
    let owner_column = required("owner_column", owner_column);
    let oid = tbl.oid();
    // ALTER TABLE refuses a relation this session holds open.
    drop(tbl);
    require_admin().or_raise();
    protect_table(oid, module, owner_column).or_raise()
}

fn protect_table(oid: pg_sys::Oid, module: &str, owner_column: &str) -> CrmResult<()> {
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
        let linked = exists(c, "SELECT 1 FROM crm.parent_links WHERE child = $1", &[oid.into()])?;
        Ok((table, linked))
    })?;
    with_protection_changing(oid, || {
        as_caller(|c| {
            attach_policies(c, oid, &table, owner_column, linked)?;
            attach_triggers(c, oid, &table, module)?;
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
    check_protection(oid)
}

#[pg_extern]
fn unprotect(tbl: Option<PgRelation>) {
    let tbl = required("tbl", tbl);
    let oid = tbl.oid();
    drop(tbl);
    require_admin().or_raise();
    unprotect_table(oid).or_raise()
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
    // The catalog row goes first: from then on the table is not protected, and taking its
    // protection apart is no longer something the event trigger refuses.
    on_catalog(|c| {
        c.update("DELETE FROM crm.protected_tables WHERE tbl = $1", None, &[oid.into()])?;
        Ok(())
    })?;
    with_protection_changing(oid, || {
        as_caller(|c| {
            for t in [LINKED_OWNER_UPDATE, LINKED_OWNER_DELETE, FIELD_CHECK, FIELD_CHECK_INSERT, TRUNCATE_CHECK, KEEP_PARENT_OWNER] {
                drop_trigger(c, oid, &table, t)?;
            }
            drop_policies(c, oid, &table)?;
            c.update(&format!("ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY; ALTER TABLE {table} DISABLE ROW LEVEL SECURITY"), None, &[])?;
            Ok(())
        })
    })?;
    // A parent left without children loses its push trigger, when the caller may drop it.
    if let Some(parent) = parent {
        with_protection_changing(parent, || {
            as_caller(|c| {
                let lonely = !exists(c, "SELECT 1 FROM crm.parent_links WHERE parent = $1", &[parent.into()])?;
                let owns = exists(c, "SELECT 1 FROM pg_class WHERE oid = $1 AND pg_has_role(relowner, 'USAGE')", &[parent.into()])?;
                if lonely && owns {
                    for t in [super::trigger_names::PUSH_PARENT_OWNER, super::trigger_names::PUSH_PARENT_OWNER_DELETE] {
                        drop_trigger(c, parent, &existing(parent)?, t)?;
                    }
                }
                Ok(())
            })
        })?;
    }
    Ok(())
}
