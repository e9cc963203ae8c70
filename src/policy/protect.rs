//! The DDL of a protected table: its policies and triggers, attached and taken apart
//! (`crm.protect` and `crm.unprotect` in `api::protect` decide when).
//!
//! Policies are RESTRICTIVE, with one permissive base policy, `crm.installed()` (true
//! wherever crm_access is installed; a table restored where it is not admits nobody): any
//! other policy a DBA adds to the table can narrow access further but never widen it. FORCE
//! ROW LEVEL SECURITY makes the table owner subject to them too.
//!
//! Once protected, the event trigger of sql/guard.sql refuses any other
//! change that would weaken the protection, and `check_protection` is the one definition
//! of "weakened" that both use.

use pgrx::prelude::*;
use pgrx::spi::{quote_identifier, quote_literal, SpiClient};

use super::trigger_names::{
    SHARES_FOLLOW_DELETE, SHARES_FOLLOW_UPDATE,
    push_triggers, FIELD_CHECK, FIELD_CHECK_INSERT, KEEP_PARENT_OWNER, LINKED_OWNER_DELETE, LINKED_OWNER_UPDATE, PUSH_PARENT_OWNER,
    PUSH_PARENT_OWNER_DELETE, TRUNCATE_CHECK,
};
use crate::catalog::latest;
use crate::catalog::spi::{as_caller, exists, one};
use crate::enforce::opened::with_protection_changing;
use crate::catalog::tables::existing;
use crate::error::{CrmError, CrmResult};

/// The permissive base of every crm_access policy set (`USING (crm.installed())`): true, and
/// only where crm_access is installed. A protected table dumped on its own and restored into
/// a database without crm_access keeps its FORCE'd row security but loses this policy with
/// the restrictive ones, so it admits no row to anyone but superusers and BYPASSRLS roles
/// (issue 27), where `USING (true)` admitted every row. A C function the planner folds to
/// `true` while planning: it costs nothing at run time.
#[pg_extern(sql = "CREATE FUNCTION crm.installed() RETURNS boolean IMMUTABLE PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', '@FUNCTION_NAME@';")]
fn installed() -> bool {
    true
}

const POLICIES: [&str; 6] = ["crm_base", "crm_read", "crm_create", "crm_edit", "crm_delete", "crm_restrict"];

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
    // Record shares reach a record by its key (DESIGN §9): a single-column primary key of a
    // type whose text is its equality. Before 0.4.0 (an update running older scripts) there is
    // no function for them; the update to 0.4.0 adds the branches.
    let key = match crate::catalog::tables::primary_key(c, tbl)? {
        Some((k, typ)) if shareable_key(c, tbl, &k, typ)? => Some(quote_identifier(&k)),
        _ => None,
    };
    let (shared_read, shared_edit, shared_write) = match &key {
        Some(k) => (
            format!(" OR crm.shared({lit}::regclass, 'read', {k})"),
            format!(" OR crm.shared({lit}::regclass, 'edit', {k})"),
            format!("crm.shared_write({lit}::regclass, {k}, {owner}) OR "),
        ),
        None => Default::default(),
    };
    // A share of a parent record reaches its children (DESIGN §9), by the link column, where
    // the child's own shares could (its triggers refuse a receiver's change of owner) and the
    // link column compares as the parent's key does.
    let link = if linked { link_column(c, tbl)? } else { None };
    let parent_shared = match (&key, if linked { parent_link(c, tbl)? } else { None }) {
        (Some(_), Some(link)) => Some(quote_identifier(&link)),
        _ => None,
    };
    let (parent_read, parent_edit, parent_check) = match &parent_shared {
        Some(pc) => (
            format!(" OR crm.parent_shared({lit}::regclass, 'read', {pc})"),
            format!(" OR crm.parent_shared({lit}::regclass, 'edit', {pc})"),
            format!("crm.parent_shared({lit}::regclass, 'edit', {pc}) OR "),
        ),
        None => Default::default(),
    };
    let (via_read, via_edit) = (via("read") + &shared_read + &parent_read, via("edit") + &shared_edit + &parent_edit);
    // In WITH CHECK the parent branch comes first: can_assign raises for an owner the user
    // may not give records to, and a user who reaches the row through its parent may edit
    // it without owning it. Owner changes on linked tables are checked by their trigger.
    // So do the share branches, before both.
    let edit_check = if linked {
        format!("{shared_write}{parent_check}crm.can_via_parent({lit}::regclass, 'edit', crm_parent_owner) OR crm.can_assign({lit}::regclass, 'edit', {owner})")
    } else {
        format!("{shared_write}crm.can_assign({lit}::regclass, 'edit', {owner})")
    };
    // The update from 0.1.0 protects its tables again before crm.installed() exists (its
    // script is frozen); the update to 0.3.0 then makes the base policy its own.
    let base = if one::<bool>(c, "SELECT to_regprocedure('crm.installed()') IS NOT NULL", &[])?.unwrap_or(false) { "crm.installed()" } else { "true" };
    // Restriction rules read the table's own columns, so their policy is given the whole row
    // (`relname.*`, the name a policy expression knows its table by). Before 0.4.0 (an update
    // running older scripts) there is no function for it; the update to 0.4.0 adds the policy.
    let restrict = match one::<String>(c, "SELECT quote_ident(relname::text) FROM pg_class WHERE oid = $1 AND to_regprocedure('crm.within_restrictions(regclass, anyelement)') IS NOT NULL", &[tbl.into()])? {
        Some(rel) => format!(
            "CREATE POLICY crm_restrict ON {table} AS RESTRICTIVE FOR ALL
                 USING (crm.within_restrictions({lit}::regclass, {rel}.*)) WITH CHECK (crm.within_restrictions({lit}::regclass, {rel}.*));"
        ),
        None => String::new(),
    };
    // A record's shares follow it: its owner changes only by its writer's own rights, and
    // its shares go with its owner, its key or the record (`enforce::shares`).
    // A linked record's parent too: a receiver may not move it (`shares_follow_record`).
    let moved = match &link {
        Some(l) => format!(" OR OLD.{l} IS DISTINCT FROM NEW.{l}", l = quote_identifier(l)),
        None => String::new(),
    };
    let follow = match &key {
        Some(k) => format!(
            "CREATE OR REPLACE TRIGGER {SHARES_FOLLOW_UPDATE} AFTER UPDATE ON {table} FOR EACH ROW
                 WHEN (OLD.{owner} IS DISTINCT FROM NEW.{owner} OR OLD.{k} IS DISTINCT FROM NEW.{k}{moved})
                 EXECUTE FUNCTION crm.shares_follow_record();
             CREATE OR REPLACE TRIGGER {SHARES_FOLLOW_DELETE} AFTER DELETE ON {table}
                 REFERENCING OLD TABLE AS crm_old FOR EACH STATEMENT EXECUTE FUNCTION crm.shares_follow_record();"
        ),
        None => {
            drop_trigger(c, tbl, table, SHARES_FOLLOW_UPDATE)?;
            drop_trigger(c, tbl, table, SHARES_FOLLOW_DELETE)?;
            String::new()
        }
    };
    drop_policies(c, tbl, table)?;
    c.update(
        &format!(
            "ALTER TABLE {table} ENABLE ROW LEVEL SECURITY;
             ALTER TABLE {table} FORCE ROW LEVEL SECURITY;
             CREATE POLICY crm_base ON {table} AS PERMISSIVE FOR ALL USING ({base}) WITH CHECK ({base});
             CREATE POLICY crm_read ON {table} AS RESTRICTIVE FOR SELECT
                 USING (crm.can({lit}::regclass, 'read', {owner}){via_read});
             CREATE POLICY crm_create ON {table} AS RESTRICTIVE FOR INSERT
                 WITH CHECK (crm.can_assign({lit}::regclass, 'create', {owner}));
             CREATE POLICY crm_edit ON {table} AS RESTRICTIVE FOR UPDATE
                 USING (crm.can({lit}::regclass, 'edit', {owner}){via_edit})
                 WITH CHECK ({edit_check});
             CREATE POLICY crm_delete ON {table} AS RESTRICTIVE FOR DELETE
                 USING (crm.can({lit}::regclass, 'delete', {owner}));
             {restrict}
             {follow}"
        ),
        None,
        &[],
    )?;
    Ok(())
}

/// Whether records of `tbl` can be shared by key `column` of type `typ`: a type whose text is
/// its equality (`enforce::restrictions::Kind`), under a deterministic collation, and the
/// functions for shares exist (0.4.0 and later).
pub fn shareable_key(c: &SpiClient<'_>, tbl: pg_sys::Oid, column: &str, typ: pg_sys::Oid) -> CrmResult<bool> {
    if crate::enforce::restrictions::Kind::of(typ).is_none() {
        return Ok(false);
    }
    // Asked apart: an older schema (an update running older releases' scripts) has neither
    // the functions nor the column check.
    let functions = "SELECT to_regprocedure('crm.shared(regclass, text, anyelement)') IS NOT NULL
                            AND to_regprocedure('crm.shares_follow_record()') IS NOT NULL";
    if !one::<bool>(c, functions, &[])?.unwrap_or(false) {
        return Ok(false);
    }
    Ok(one::<bool>(c, "SELECT crm.restriction_column_problem($1, $2) IS NULL", &[tbl.into(), column.into()])?.unwrap_or(false))
}

/// The link column of child table `tbl` when shares of its parent's records can reach its rows
/// by it: the parent's key is shareable, and so is the link column (same type; its collation
/// must be deterministic too, or `link = ANY(keys)` would match more parents than were shared).
fn parent_link(c: &SpiClient<'_>, tbl: pg_sys::Oid) -> CrmResult<Option<String>> {
    let Some((parent, column)) = link_of(c, tbl)? else { return Ok(None) };
    if !one::<bool>(c, "SELECT to_regprocedure('crm.parent_shared(regclass, text, anyelement)') IS NOT NULL", &[])?.unwrap_or(false) {
        return Ok(None);
    }
    let Some((key, typ)) = crate::catalog::tables::primary_key(c, parent)? else { return Ok(None) };
    if !shareable_key(c, parent, &key, typ)? || !shareable_key(c, tbl, &column, typ)? {
        return Ok(None);
    }
    Ok(Some(column))
}

/// Child table `tbl`'s parent table and link column.
fn link_of(c: &SpiClient<'_>, tbl: pg_sys::Oid) -> CrmResult<Option<(pg_sys::Oid, String)>> {
    Ok(c.select("SELECT parent::oid, parent_column::text FROM crm.parent_links WHERE child = $1", Some(1), &[tbl.into()])?
        .first()
        .get_two::<pg_sys::Oid, String>()
        .ok()
        .and_then(|(p, col)| p.zip(col)))
}

/// Child table `tbl`'s link column.
fn link_column(c: &SpiClient<'_>, tbl: pg_sys::Oid) -> CrmResult<Option<String>> {
    Ok(link_of(c, tbl)?.map(|(_, column)| column))
}

pub(super) fn drop_trigger(c: &mut SpiClient<'_>, tbl: pg_sys::Oid, table: &str, name: &str) -> CrmResult<()> {
    if exists(c, "SELECT 1 FROM pg_trigger WHERE tgrelid = $1 AND tgname = $2", &[tbl.into(), name.into()])? {
        c.update(&format!("DROP TRIGGER {name} ON {table}"), None, &[])?;
    }
    Ok(())
}

/// The triggers every protected table carries: field checks (whose WHEN conditions are
/// specialised per statement, see `fields`), the TRUNCATE check, and on Leads and Contacts
/// tables, which conversations link to, the push of a new owner to those conversations.
pub fn attach_triggers(c: &mut SpiClient<'_>, tbl: pg_sys::Oid, table: &str, module: &str) -> CrmResult<()> {
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
    if crate::catalog::modules::module_facts(c, module)?.2 {
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

/// Take a table's protection apart: its triggers, its policies, row security. The caller
/// has already removed the catalog row, so the event trigger lets this through.
pub fn detach(c: &mut SpiClient<'_>, tbl: pg_sys::Oid, table: &str) -> CrmResult<()> {
    for t in [LINKED_OWNER_UPDATE, LINKED_OWNER_DELETE, FIELD_CHECK, FIELD_CHECK_INSERT, TRUNCATE_CHECK, KEEP_PARENT_OWNER, SHARES_FOLLOW_UPDATE, SHARES_FOLLOW_DELETE] {
        drop_trigger(c, tbl, table, t)?;
    }
    drop_policies(c, tbl, table)?;
    c.update(&format!("ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY; ALTER TABLE {table} DISABLE ROW LEVEL SECURITY"), None, &[])?;
    Ok(())
}

/// A parent table left without children (its last child unprotected, unlinked or linked to
/// another parent) loses the triggers that push its new owners to them, when the caller may
/// drop them (an owner of the parent); otherwise they stay, and push to no child.
pub fn detach_parent_if_lonely(parent: pg_sys::Oid) -> CrmResult<()> {
    if !lock_parent(parent)? {
        return Ok(());
    }
    // Under the latest snapshot: a link committed while the lock was awaited counts, in
    // REPEATABLE READ as well (red team round 7).
    let (children, _) = latest::execute("SELECT 1 FROM crm.parent_links WHERE parent = $1", &[(pg_sys::OIDOID, parent.into(), false)], true)?;
    if children > 0 {
        return Ok(());
    }
    with_protection_changing(parent, || {
        as_caller(|c| {
            let table = existing(parent)?;
            for t in [PUSH_PARENT_OWNER, PUSH_PARENT_OWNER_DELETE] {
                drop_trigger(c, parent, &table, t)?;
            }
            Ok(())
        })
    })
}

/// Take, when the caller owns `parent`, the lock a concurrent `link_parent`'s CREATE TRIGGER
/// takes on it, so that the two never race on its triggers; whether it was taken. Callers
/// take it before any lock on a child, in the order a writer of the parent that then reads
/// the child takes its own (red team round 7: the other order deadlocked with one).
pub fn lock_parent(parent: pg_sys::Oid) -> CrmResult<bool> {
    as_caller(|c| {
        if !exists(c, "SELECT 1 FROM pg_class WHERE oid = $1 AND pg_has_role(relowner, 'USAGE')", &[parent.into()])? {
            return Ok(false);
        }
        c.update(&format!("LOCK TABLE {} IN SHARE ROW EXCLUSIVE MODE", existing(parent)?), None, &[])?;
        Ok(true)
    })
}
