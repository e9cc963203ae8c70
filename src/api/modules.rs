//! Modules are data (DESIGN §9, issue 25): custom modules and the relations between modules.
//! The standard modules and relations ship as rows (`standard`) and cannot be dropped.

use pgrx::prelude::*;
use pgrx::spi::SpiClient;

use super::admin::{check_module, valid_name};
use super::authorize::administer;
use crate::audit;
use crate::catalog::spi::{exists, one, Client};
use crate::error::{required, CrmError, CrmResult};

/// Create a module; with `parent`, related to it (its records hang under the parent's), and
/// with `controlled_by_parent`, governed by the parent's default and sharing rules.
#[pg_extern]
fn create_module(name: Option<&str>, parent: default!(Option<&str>, "NULL"), controlled_by_parent: default!(Option<bool>, "false")) {
    let name = required("name", name);
    let controlled = required("controlled_by_parent", controlled_by_parent);
    administer(audit!("create_module", name, parent, controlled), |c: Client| {
        valid_name("module", name)?;
        if exists(c, "SELECT 1 FROM crm.modules WHERE name = $1", &[name.into()])? {
            return Err(CrmError::duplicate("module", name));
        }
        if let Some(parent) = parent {
            check_module(c, parent)?;
        } else if controlled {
            return Err(CrmError::invalid(format!("module {name} cannot be controlled by its parent without one"))
                .with_hint("Pass the parent module: crm.create_module(name, parent, controlled_by_parent => true)."));
        }
        c.update(
            "INSERT INTO crm.modules (name, controlled_by) VALUES ($1, $2)",
            None,
            &[name.into(), parent.filter(|_| controlled).into()],
        )?;
        if let Some(parent) = parent {
            c.update("INSERT INTO crm.module_relations (parent, child) VALUES ($1, $2)", None, &[parent.into(), name.into()])?;
        }
        Ok(())
    })
}

/// Drop a custom module nothing names any more (its relations to its parents go with it).
#[pg_extern]
fn drop_module(name: Option<&str>) {
    let name = required("name", name);
    administer(audit!("drop_module", name), |c: Client| {
        check_module(c, name)?;
        // Held against a concurrent rule naming it, or a module created under it (see
        // catalog::modules::related_modules_held).
        c.update("SELECT 1 FROM crm.modules WHERE name = $1 FOR UPDATE", None, &[name.into()])?;
        c.update("SELECT 1 FROM crm.module_relations WHERE child = $1 OR parent = $1 FOR UPDATE", None, &[name.into()])?;
        if standard_module(c, name)? {
            return Err(CrmError::denied(format!("module {name} is one of crm_access's standard modules and cannot be dropped")));
        }
        if let Some(users) = users_of(c, name)? {
            return Err(CrmError::dependent(format!("module {name} is still in use: {users}"))
                .with_hint("Remove what names it first (crm.unprotect, crm.revoke_privileges, crm.drop_sharing_rule, crm.drop_restriction_rule, crm.drop_module of its related modules, ...)."));
        }
        // Its own place under its parents goes with it.
        c.update("DELETE FROM crm.module_relations WHERE child = $1", None, &[name.into()])?;
        c.update("DELETE FROM crm.sharing_defaults WHERE module = $1", None, &[name.into()])?;
        c.update("DELETE FROM crm.modules WHERE name = $1", None, &[name.into()])?;
        Ok(())
    })
}

/// Relate `child` to `parent`: a rule on a parent record may carry access to the child
/// records under it, and a private parent makes the child private.
#[pg_extern]
fn relate_modules(parent: Option<&str>, child: Option<&str>) {
    let parent = required("parent", parent);
    let child = required("child", child);
    administer(audit!("relate_modules", parent, child), |c: Client| {
        check_module(c, parent)?;
        check_module(c, child)?;
        if parent == child {
            return Err(CrmError::invalid(format!("module {parent} cannot be related to itself")));
        }
        if exists(c, "SELECT 1 FROM crm.module_relations WHERE parent = $1 AND child = $2", &[parent.into(), child.into()])? {
            return Err(CrmError::duplicate("module relation", &format!("{parent} -> {child}")));
        }
        if let Some(controller) = one::<String>(c, "SELECT controlled_by FROM crm.modules WHERE name = $1", &[child.into()])? {
            return Err(CrmError::invalid(format!("module {child} is controlled by {controller}, its one parent"))
                .with_hint("A module controlled by its parent has exactly one parent."));
        }
        c.update("INSERT INTO crm.module_relations (parent, child) VALUES ($1, $2)", None, &[parent.into(), child.into()])?;
        // Under a private parent the child is private too, as making the parent private
        // would have made it (red team of issue 25).
        c.update(
            "UPDATE crm.sharing_defaults SET level = 'private'
             WHERE module = $2 AND level <> 'private'
               AND NOT EXISTS (SELECT 1 FROM crm.sharing_defaults WHERE module = $1 AND level <> 'private')",
            None,
            &[parent.into(), child.into()],
        )?;
        Ok(())
    })
}

/// Undo `relate_modules`, while no rule carries access through the relation.
#[pg_extern]
fn unrelate_modules(parent: Option<&str>, child: Option<&str>) {
    let parent = required("parent", parent);
    let child = required("child", child);
    administer(audit!("unrelate_modules", parent, child), |c: Client| {
        // Locked first, then the rules looked for (see catalog::modules::related_modules_held).
        let standard = c
            .update("SELECT standard FROM crm.module_relations WHERE parent = $1 AND child = $2 FOR UPDATE", None, &[parent.into(), child.into()])?
            .first()
            .get_one::<bool>()
            .ok()
            .flatten();
        match standard {
            None => return Err(CrmError::undefined("module relation", &format!("{parent} -> {child}"))),
            Some(true) => {
                return Err(CrmError::denied(format!("the relation {parent} -> {child} is one of crm_access's standard relations and cannot be removed")))
            }
            Some(false) => {}
        }
        if exists(c, "SELECT 1 FROM crm.modules WHERE name = $1 AND controlled_by = $2", &[child.into(), parent.into()])? {
            return Err(CrmError::dependent(format!("module {child} is controlled by {parent}")));
        }
        let rules: Option<String> = one(
            c,
            "SELECT string_agg(id::text, ', ' ORDER BY id) FROM crm.sharing_rules WHERE module = $1 AND $2 = ANY (related_modules)",
            &[parent.into(), child.into()],
        )?;
        if let Some(rules) = rules {
            return Err(CrmError::dependent(format!("sharing rules of {parent} carry access to {child} through this relation: {rules}"))
                .with_hint("Drop those rules first (crm.drop_sharing_rule)."));
        }
        c.update("DELETE FROM crm.module_relations WHERE parent = $1 AND child = $2", None, &[parent.into(), child.into()])?;
        Ok(())
    })
}

fn standard_module(c: &SpiClient<'_>, name: &str) -> CrmResult<bool> {
    Ok(one::<bool>(c, "SELECT standard FROM crm.modules WHERE name = $1", &[name.into()])?.unwrap_or(false))
}

/// What still names a module, in words, or None.
fn users_of(c: &SpiClient<'_>, name: &str) -> CrmResult<Option<String>> {
    Ok(one::<String>(
        c,
        "SELECT string_agg(what, '; ' ORDER BY what) FROM (
             SELECT 'protected table ' || tbl::text AS what FROM crm.protected_tables WHERE module = $1
             UNION ALL SELECT 'privileges of profile ' || p.name FROM crm.profile_privileges x JOIN crm.profiles p ON p.id = x.profile_id WHERE x.module = $1 GROUP BY p.name
             UNION ALL SELECT 'privileges of permission set ' || s.name FROM crm.permission_set_privileges x JOIN crm.permission_sets s ON s.id = x.set_id WHERE x.module = $1 GROUP BY s.name
             UNION ALL SELECT 'sharing rule ' || id FROM crm.sharing_rules WHERE module = $1 OR $1 = ANY (related_modules)
             UNION ALL SELECT 'field access of profile ' || p.name FROM crm.field_access x JOIN crm.profiles p ON p.id = x.profile_id WHERE x.module = $1 GROUP BY p.name
             UNION ALL SELECT 'hidden field ' || field FROM crm.hidden_fields WHERE module = $1
             UNION ALL SELECT 'restriction rule ' || id FROM crm.restrictions WHERE module = $1
             UNION ALL SELECT 'related module ' || child FROM crm.module_relations WHERE parent = $1
             UNION ALL SELECT 'module ' || name || ' controlled by it' FROM crm.modules WHERE controlled_by = $1
             UNION ALL SELECT 'its org-wide default ' || level FROM crm.sharing_defaults WHERE module = $1 AND level <> 'private'
         ) u",
        &[name.into()],
    )?)
}
