//! Attaching and removing the crm_access policies on a CRM table.
//!
//! Policies are RESTRICTIVE, with one permissive `true` base policy: any other policy a
//! DBA adds to the table can narrow access further but never widen it. FORCE ROW LEVEL
//! SECURITY makes the table owner subject to them too.

use pgrx::prelude::*;
use pgrx::spi::{quote_identifier, quote_literal, SpiClient};
use pgrx::PgRelation;

use crate::api::admin::{check_record_module, exists, has_index_led_by, one, primary_key};
use crate::api::authorize::administer;
use crate::error::{CrmError, CrmResult};

const POLICIES: [&str; 5] = ["crm_base", "crm_read", "crm_create", "crm_edit", "crm_delete"];

fn table_text(c: &SpiClient<'_>, tbl: pg_sys::Oid) -> CrmResult<String> {
    Ok(one::<String>(c, "SELECT $1::regclass::text", &[tbl.into()])?.unwrap_or_default())
}

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

/// Leads and contacts can be linked to conversations, which keep the record's owner
/// (DESIGN §3.5): a change of owner or a deletion must reach them at once.
fn keep_linked_owner(c: &mut SpiClient<'_>, tbl: pg_sys::Oid, table: &str, module: &str, owner_column: &str) -> CrmResult<()> {
    let key = if matches!(module, "Leads" | "Contacts") { primary_key(c, tbl)? } else { None };
    let Some((key, _)) = key else {
        for t in ["crm_linked_owner_update", "crm_linked_owner_delete"] {
            if exists(c, "SELECT 1 FROM pg_trigger WHERE tgrelid = $1 AND tgname = $2", &[tbl.into(), t.into()])? {
                c.update(&format!("DROP TRIGGER {t} ON {table}"), None, &[])?;
            }
        }
        return Ok(());
    };
    let owner = quote_identifier(owner_column);
    let args = format!("{}, {}", quote_literal(&key), quote_literal(owner_column));
    c.update(
        &format!(
            "CREATE OR REPLACE TRIGGER crm_linked_owner_update AFTER UPDATE OF {owner} ON {table} FOR EACH ROW
                 WHEN (OLD.{owner} IS DISTINCT FROM NEW.{owner}) EXECUTE FUNCTION crm.push_linked_owner({args});
             CREATE OR REPLACE TRIGGER crm_linked_owner_delete AFTER DELETE ON {table} FOR EACH ROW
                 EXECUTE FUNCTION crm.push_linked_owner({args});"
        ),
        None,
        &[],
    )?;
    Ok(())
}

#[pg_extern]
fn protect(tbl: PgRelation, module: &str, owner_column: default!(&str, "'owner_id'")) {
    let (oid, relkind) = (tbl.oid(), unsafe { (*tbl.rd_rel).relkind as u8 });
    // ALTER TABLE refuses a relation this session holds open.
    drop(tbl);
    administer(|c: &mut SpiClient<'_>| {
        check_record_module(c, module, "protected tables")?;
        let table = table_text(c, oid)?;
        if !matches!(relkind, b'r' | b'p') {
            return Err(CrmError::datatype_mismatch(format!("{table} is not a table")).with_hint("Only tables and partitioned tables can be protected."));
        }
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
        let linked = one::<i32>(c, "SELECT 1 FROM crm.parent_links WHERE child = $1", &[oid.into()])?.is_some();
        attach_policies(c, oid, &table, owner_column, linked)?;
        c.update(
            "INSERT INTO crm.protected_tables VALUES ($1, $2, $3)
             ON CONFLICT (tbl) DO UPDATE SET module = excluded.module, owner_column = excluded.owner_column",
            None,
            &[oid.into(), module.into(), owner_column.into()],
        )?;
        keep_linked_owner(c, oid, &table, module, owner_column)?;
        c.update(
            &format!(
                "CREATE OR REPLACE TRIGGER crm_field_check BEFORE UPDATE ON {table} FOR EACH ROW
                     WHEN (crm.field_changes({lit}::regclass, OLD, NEW)) EXECUTE FUNCTION crm.check_field_writes();
                 CREATE OR REPLACE TRIGGER crm_field_check_insert BEFORE INSERT ON {table} FOR EACH ROW
                     WHEN (crm.field_values({lit}::regclass, NEW)) EXECUTE FUNCTION crm.check_field_writes();",
                lit = quote_literal(&table)
            ),
            None,
            &[],
        )?;
        if !has_index_led_by(c, oid, owner_column)? {
            let owner = quote_identifier(owner_column);
            pgrx::notice!("{table} has no index led by {owner}: users who see few rows will still scan the whole table; consider CREATE INDEX ON {table} ({owner})");
        }
        Ok(())
    })
}

#[pg_extern]
fn unprotect(tbl: PgRelation) {
    let oid = tbl.oid();
    drop(tbl);
    administer(|c: &mut SpiClient<'_>| {
        let table = table_text(c, oid)?;
        let registered = one::<i32>(c, "SELECT 1 FROM crm.protected_tables WHERE tbl = $1", &[oid.into()])?;
        if registered.is_none() {
            return Err(CrmError::undefined("protected table", &table));
        }
        if exists(c, "SELECT 1 FROM crm.conversations WHERE linked_table = $1", &[oid.into()])? {
            return Err(CrmError::dependent(format!("conversations are linked to records of {table}"))
                .with_hint(format!("Unlink them first: UPDATE crm.conversations SET linked_table = NULL, linked_id = NULL WHERE linked_table = {}::regclass", quote_literal(&table))));
        }
        keep_linked_owner(c, oid, &table, "", "")?;
        c.update(&format!("DROP TRIGGER IF EXISTS crm_field_check ON {table}; DROP TRIGGER IF EXISTS crm_field_check_insert ON {table}"), None, &[])?;
        drop_policies(c, oid, &table)?;
        c.update(&format!("ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY; ALTER TABLE {table} DISABLE ROW LEVEL SECURITY"), None, &[])?;
        c.update("DELETE FROM crm.protected_tables WHERE tbl = $1", None, &[oid.into()])?;
        Ok(())
    })
}
