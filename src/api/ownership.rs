//! Records owned by a user or group across every protected table: needed before a user
//! or group may disappear, so that no record is left with an owner nobody can act as.

use pgrx::spi::{quote_identifier, SpiClient};

use super::admin::{one, Client};
use crate::error::{CrmError, CrmResult};

/// (table, quoted owner column) of every protected table.
fn protected_tables(c: &SpiClient<'_>) -> CrmResult<Vec<(String, String)>> {
    let rows = c.select("SELECT tbl::text, owner_column::text FROM crm.protected_tables ORDER BY tbl::text", None, &[])?;
    let mut out = Vec::new();
    for row in rows {
        let table: String = row.get(1)?.unwrap_or_default();
        let column: String = row.get(2)?.unwrap_or_default();
        out.push((table, quote_identifier(column)));
    }
    Ok(out)
}

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

/// Before `owner` (named `name`, a `kind`) goes away: refuse while it owns records, unless
/// `transfer_to` names an active user or a group to give them to.
pub fn release(c: Client, kind: &str, name: &str, owner_id: i64, transfer_to: Option<&str>) -> CrmResult<()> {
    let mut owned = Vec::new();
    for (table, column) in protected_tables(c)? {
        let n = one::<i64>(c, &format!("SELECT count(*) FROM {table} WHERE {column} = $1"), &[owner_id.into()])?.unwrap_or(0);
        if n > 0 {
            owned.push((table, column, n));
        }
    }
    if owned.is_empty() {
        return Ok(());
    }
    let Some(to) = transfer_to else {
        let list: Vec<String> = owned.iter().map(|(t, _, n)| format!("{n} in {t}")).collect();
        return Err(CrmError::dependent(format!("{kind} \"{name}\" still owns records: {}", list.join(", ")))
            .with_hint("Pass transfer_to => 'someone' to give them to another user or group."));
    };
    let (to_id, _, active) = self::owner(c, to)?;
    if to_id == owner_id || !active {
        return Err(CrmError::invalid(format!("cannot transfer records to \"{to}\""))
            .with_hint("Name another active user, or a group."));
    }
    for (table, column, _) in owned {
        c.update(&format!("UPDATE {table} SET {column} = $1 WHERE {column} = $2"), None, &[to_id.into(), owner_id.into()])?;
    }
    Ok(())
}
