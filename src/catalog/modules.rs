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
pub fn controlled_by(c: &SpiClient<'_>, module: &str) -> CrmResult<Option<String>> {
    Ok(module_facts(c, module)?.0)
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

