//! What the catalog says of modules (DESIGN §9): their roles and relations, read from
//! crm.modules and crm.module_relations, or, before 0.4.0's schema, from `compat`.

use pgrx::spi::SpiClient;

use super::spi::one;
use crate::error::CrmResult;

/// What crm.modules says of `module`: (controlled by, the record table kind its actions
/// govern, whether conversations link to its records); before 0.4.0's schema, what the code
/// said (`catalog::compat`).
pub fn module_facts(c: &SpiClient<'_>, module: &str) -> CrmResult<(Option<String>, Option<String>, bool)> {
    if !super::compat::modules_are_data() {
        return Ok(super::compat::facts(module));
    }
    let row = c.select("SELECT controlled_by, holds, links_conversations FROM crm.modules WHERE name = $1", Some(1), &[module.into()])?;
    if row.is_empty() {
        return Ok((None, None, false));
    }
    let row = row.first();
    Ok((row.get::<String>(1)?, row.get::<String>(2)?, row.get::<bool>(3)?.unwrap_or(false)))
}

/// The module whose default and rules govern `module` when it is controlled by its parent.
/// The end of its chain of control, as the engine follows it (`Catalog::sharing_module`).
pub fn controlled_by(c: &SpiClient<'_>, module: &str) -> CrmResult<Option<String>> {
    let Some(parent) = module_facts(c, module)?.0 else { return Ok(None) };
    if !super::compat::modules_are_data() {
        return Ok(Some(parent));
    }
    // Bounded by the number of modules: a loop (only a direct write can make one) ends it.
    Ok(one::<String>(
        c,
        "WITH RECURSIVE up(name, depth) AS (
             SELECT $1::text, 0
             UNION ALL
             SELECT m.controlled_by, up.depth + 1 FROM up JOIN crm.modules m ON m.name = up.name
             WHERE m.controlled_by IS NOT NULL AND up.depth < (SELECT count(*) FROM crm.modules))
         SELECT name FROM up ORDER BY depth DESC LIMIT 1",
        &[parent.as_str().into()],
    )?
    .or(Some(parent)))
}

/// The modules whose records hang under `parent`'s (crm.module_relations), by name.
pub fn related_modules(c: &SpiClient<'_>, parent: &str) -> CrmResult<Vec<String>> {
    if !super::compat::modules_are_data() {
        let mut children: Vec<String> = super::compat::relations().into_iter().filter(|(p, _)| p == parent).map(|(_, c)| c).collect();
        children.sort();
        return Ok(children);
    }
    Ok(one::<Vec<String>>(c, "SELECT coalesce(array_agg(child ORDER BY child), '{}') FROM crm.module_relations WHERE parent = $1", &[parent.into()])?
        .unwrap_or_default())
}

/// The same, locking each relation row until the transaction ends (FOR SHARE): a rule that
/// names a related module holds the relation against a concurrent `unrelate_modules` or
/// `drop_module`, which lock it FOR UPDATE first and then look for such rules (red team of
/// issue 25: both committed, and the rule kept naming a module no longer related). A
/// relation removed meanwhile is not returned (READ COMMITTED rereads the row after waiting).
pub fn related_modules_held(c: &mut SpiClient<'_>, parent: &str) -> CrmResult<Vec<String>> {
    if !super::compat::modules_are_data() {
        return related_modules(c, parent);
    }
    let mut out: Vec<String> = c
        .update("SELECT child FROM crm.module_relations WHERE parent = $1 FOR SHARE", None, &[parent.into()])?
        .filter_map(|r| r.get::<String>(1).ok().flatten())
        .collect();
    out.sort();
    Ok(out)
}

