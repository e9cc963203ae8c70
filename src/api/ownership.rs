//! Records owned by a user or group across every protected table: needed before a user
//! or group may disappear, so that no record is left with an owner nobody can act as.
//!
//! The records are counted as the caller, through row security: a count the caller's row
//! security filtered could miss records, so the caller must reach every row of every
//! protected table (a CRM admin does, a superuser does); anyone else is refused before
//! anything is read. They are moved as each table's owner (DESIGN §5), so the owner's
//! triggers run as the owner, never as the (possibly superuser) caller.

use pgrx::pg_sys;
use pgrx::spi::SpiClient;

use crate::catalog::tables::row_security_applies;
use crate::catalog::latest;
use crate::catalog::privileged::as_owner_of;
use crate::catalog::spi::{as_caller, on_catalog, one};
use crate::enforce::opened::with_rows_opened;
use crate::enforce::parent_owner::{refuse_forged, refuse_left, KEPT};
use crate::catalog::tables::qualified_name;
use crate::error::{CrmError, CrmResult};
use crate::enforce;
use crate::session::cache;
use crm_model::Action;

/// A user's or group's owner id, its kind and whether it may receive records.
pub fn owner(c: &SpiClient<'_>, name: &str) -> CrmResult<(i64, String, bool)> {
    let row = c.select(
        "SELECT o.id, o.kind, coalesce(u.is_active, true) FROM crm.owners o LEFT JOIN crm.users u ON u.owner_id = o.id WHERE o.name = $1",
        Some(1),
        &[name.into()],
    )?;
    if row.is_empty() {
        return Err(CrmError::undefined("CRM user or group", name).with_hint("See crm.user_directory and crm.groups."));
    }
    let row = row.first();
    Ok((row.get(1)?.unwrap_or_default(), row.get(2)?.unwrap_or_default(), row.get(3)?.unwrap_or(false)))
}

/// Whether row security lets the caller read and edit every row of `tbl`.
fn reaches_every_row(tbl: pg_sys::Oid) -> CrmResult<bool> {
    if !row_security_applies(tbl, pg_sys::InvalidOid) {
        return Ok(true);
    }
    let all = |action| Ok::<_, CrmError>(*enforce::access(tbl, action, true)? == crm_model::Filter::Const(true));
    Ok(all(Action::Read)? && all(Action::Edit)?)
}

/// Before `owner_id` (a `kind` named `name`) goes away: refuse while it owns records, unless
/// `transfer_to` names an active user or a group to give them to.
pub fn release(kind: &str, name: &str, owner_id: i64, transfer_to: Option<&str>) -> CrmResult<()> {
    let m = cache::current(true)?;
    let mut tables = Vec::new();
    // By name, so that messages list the tables in a stable order.
    for (&oid, (_, column)) in &m.model.catalog().protected_tables {
        let oid = pg_sys::Oid::from(oid);
        let Some(table) = qualified_name(oid) else { continue };
        if !reaches_every_row(oid)? {
            return Err(CrmError::denied(format!("cannot look for the records of {kind} \"{name}\": not every record of {table} is visible to you"))
                .with_hint("Act as a CRM administrator, or connect as a superuser."));
        }
        tables.push((table, oid, pgrx::spi::quote_identifier(column)));
    }
    tables.sort_by(|a, b| (&a.0, a.1.to_u32()).cmp(&(&b.0, b.1.to_u32())));
    // Checked first, whether or not there are records to move: a wrong name is an error now.
    let to = match transfer_to {
        Some(to) => {
            let (to_id, _, active) = on_catalog(|c| owner(c, to))?;
            if to_id == owner_id || !active {
                return Err(CrmError::invalid(format!("cannot transfer records to \"{to}\"")).with_hint("Name another active user, or a group."));
            }
            Some(to_id)
        }
        None => None,
    };
    let owned = as_caller(|c| {
        let mut owned = Vec::new();
        for (table, oid, column) in &tables {
            let n = one::<i64>(c, &format!("SELECT count(*) FROM {table} WHERE {column} = $1"), &[owner_id.into()])?.unwrap_or(0);
            if n > 0 {
                owned.push((table.clone(), *oid, column.clone(), n));
            }
        }
        Ok(owned)
    })?;
    if owned.is_empty() {
        return Ok(());
    }
    let Some(to_id) = to else {
        let list: Vec<String> = owned.iter().map(|(t, _, _, n)| format!("{n} in {t}")).collect();
        return Err(CrmError::dependent(format!("{kind} \"{name}\" still owns records: {}", list.join(", ")))
            .with_hint("Pass transfer_to => 'someone' to give them to another user or group."));
    };
    // The caller reaches every record (checked above); the move is written as each table's
    // owner, as a foreign-key cascade would (`privileged::as_owner_of`), with the table's
    // crm_access checks open for this one statement: the owner's triggers run as the owner.
    let args = [(pg_sys::INT8OID, pg_sys::Datum::from(to_id), false), (pg_sys::INT8OID, pg_sys::Datum::from(owner_id), false)];
    for (table, oid, column, _) in owned {
        // The table's own triggers may not move the records elsewhere, nor change a copy of a
        // parent's owner (counted by RETURNING, refused if any).
        let kept = if m.link_of(oid).is_some() { format!(" OR c.{KEPT} IS DISTINCT FROM was.{KEPT}") } else { String::new() };
        let sql = format!(
            "WITH u AS (UPDATE {table} AS c SET {column} = $1 FROM {table} AS was WHERE was.ctid = c.ctid AND c.{column} = $2
                        RETURNING c.{column} IS DISTINCT FROM $1{kept} AS forged)
             SELECT count(*) FILTER (WHERE forged) FROM u"
        );
        let (_, forged) = with_rows_opened(&[oid], || as_owner_of(oid, || latest::execute_now(&sql, &args, false)))?;
        refuse_forged(forged, &table)?;
        let left = format!("SELECT count(*) FROM {table} WHERE {column} = $1");
        let (_, stale) = crate::catalog::privileged::as_owner_of_unfiltered(oid, || latest::execute(&left, &args[1..], true))?;
        refuse_left(stale, &table)?;
    }
    Ok(())
}
