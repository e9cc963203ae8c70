//! Catalog administration (DESIGN §4): roles, profiles, users, identity mapping, defaults.
//! Each function authorises the caller, validates every name and value with a clear
//! error, and only then writes; an error anywhere aborts the whole call.

use crm_model::{Action, SharingLevel};
use pgrx::prelude::*;
use pgrx::spi::SpiClient;

use super::authorize::administer;
use crate::audit;
use crate::catalog::spi::{exists, find, insert_returning_id, one, Client};
use crate::error::{CrmError, CrmResult, required};

/// Modules made private with Accounts (seed 004, DESIGN §3.1).

/// The longest name of a role, profile, user, group or permission set, in characters.
const NAME_LIMIT: usize = 200;

/// A new name: not blank, not longer than `NAME_LIMIT`, and without control characters
/// (which would hide in error messages and logs).
pub fn valid_name(kind: &str, name: &str) -> CrmResult<()> {
    if name.trim().is_empty() {
        return Err(CrmError::invalid(format!("a {kind} name must not be empty")));
    }
    if name.chars().count() > NAME_LIMIT {
        return Err(CrmError::invalid(format!("a {kind} name must not be longer than {NAME_LIMIT} characters"))
            .with_hint("Choose a shorter name."));
    }
    if name.chars().any(char::is_control) {
        return Err(CrmError::invalid(format!("a {kind} name must not contain control characters"))
            .with_hint("Use printable characters only."));
    }
    // A name that reads like another in a listing misleads whoever reviews access (red team of
    // issue 25: "Accounts" followed by a zero-width or ideographic space, or spelled backwards
    // behind a right-to-left override, read as Accounts).
    if name.starts_with(char::is_whitespace) || name.ends_with(char::is_whitespace) {
        return Err(CrmError::invalid(format!("a {kind} name must not begin or end with a space")).with_hint("Trim the name."));
    }
    if name.chars().any(invisible) {
        return Err(CrmError::invalid(format!("a {kind} name must not contain invisible or direction-changing characters"))
            .with_hint("Use letters, digits, punctuation and spaces only."));
    }
    Ok(())
}

/// Unicode format characters (category Cf: zero-width spaces and joiners, direction marks and
/// overrides, the byte-order mark, tags) and separators other than the space, which show as
/// nothing or change how the rest of a name reads.
fn invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}' | '\u{180B}'..='\u{180F}'
        | '\u{200B}'..='\u{200F}' | '\u{2028}'..='\u{202E}' | '\u{2060}'..='\u{206F}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}'
        | '\u{FEFF}' | '\u{FFA0}' | '\u{FFF9}'..='\u{FFFB}' | '\u{E0000}'..='\u{E0FFF}')
}

pub fn role_id(c: &SpiClient<'_>, name: &str) -> CrmResult<i64> {
    find(c, "SELECT id FROM crm.roles WHERE name = $1", "role", name, "See crm.roles for existing roles.")
}

pub fn profile_id(c: &SpiClient<'_>, name: &str) -> CrmResult<i64> {
    find(c, "SELECT id FROM crm.profiles WHERE name = $1", "profile", name, "See crm.profiles for existing profiles.")
}

pub fn user_id(c: &SpiClient<'_>, name: &str) -> CrmResult<i64> {
    find(c, "SELECT owner_id FROM crm.users u JOIN crm.owners o ON o.id = u.owner_id WHERE o.name = $1", "CRM user", name, "See crm.user_directory for existing users.")
}

pub fn check_module(c: &SpiClient<'_>, module: &str) -> CrmResult<()> {
    if exists(c, "SELECT 1 FROM crm.modules WHERE name = $1", &[module.into()])? {
        return Ok(());
    }
    let known: Option<String> = one(c, "SELECT string_agg(name, ', ' ORDER BY name) FROM crm.modules", &[])?;
    Err(CrmError::undefined("module", module).with_hint(format!("Modules are: {}.", known.unwrap_or_default())))
}

/// A module whose records have owners: every module but the message module, whose
/// conversations follow the message permissions instead (DESIGN §3.5).
pub fn check_record_module(c: &SpiClient<'_>, module: &str, what: &str) -> CrmResult<()> {
    check_module(c, module)?;
    if crate::catalog::modules::module_facts(c, module)?.1.as_deref() == Some("conversations") {
        return Err(CrmError::invalid(format!("{what} do not apply to {module}: conversations have no owner"))
            .with_hint("Who sees which conversation follows the message permissions: see crm.set_message_permissions()."));
    }
    Ok(())
}

fn check_db_role(c: &SpiClient<'_>, db_role: &str) -> CrmResult<()> {
    if exists(c, "SELECT 1 FROM pg_roles WHERE rolname = $1", &[db_role.into()])? {
        return Ok(());
    }
    Err(CrmError::undefined("database role", db_role).with_hint("Create it first with CREATE ROLE."))
}

pub fn actions(actions: Vec<Option<String>>) -> CrmResult<Vec<Action>> {
    if actions.is_empty() {
        return Err(CrmError::invalid("the list of actions is empty").with_hint("Name one or more of: read, create, edit, delete, import, export."));
    }
    actions
        .into_iter()
        .map(|a| {
            let a = a.ok_or_else(|| CrmError::invalid("the list of actions contains NULL"))?;
            a.parse::<Action>().map_err(|e| CrmError::invalid(e.to_string()))
        })
        .collect()
}

#[pg_extern]
fn create_role(name: Option<&str>, parent: Option<&str>) {
    let name = required("name", name);
    administer(audit!("create_role", name, parent), |c: Client| {
        valid_name("role", name)?;
        if exists(c, "SELECT 1 FROM crm.roles WHERE name = $1", &[name.into()])? {
            return Err(CrmError::duplicate("role", name));
        }
        let parent_id = match parent {
            Some(p) => Some(role_id(c, p)?),
            None => {
                let root: Option<String> = one(c, "SELECT name FROM crm.roles WHERE parent_id IS NULL", &[])?;
                if let Some(root) = root {
                    return Err(CrmError::invalid(format!("role \"{root}\" is already the root role"))
                        .with_hint("The hierarchy has exactly one root: give the new role a parent."));
                }
                None
            }
        };
        c.update("INSERT INTO crm.roles (name, parent_id) VALUES ($1, $2)", None, &[name.into(), parent_id.into()])?;
        Ok(())
    })
}

#[pg_extern]
fn move_role(name: Option<&str>, new_parent: Option<&str>) {
    let name = required("name", name);
    let new_parent = required("new_parent", new_parent);
    administer(audit!("move_role", name, new_parent), |c: Client| {
        let (id, parent) = (role_id(c, name)?, role_id(c, new_parent)?);
        let cycle = exists(
            c,
            "WITH RECURSIVE below AS (SELECT id FROM crm.roles WHERE id = $1
                                      UNION SELECT r.id FROM crm.roles r JOIN below b ON r.parent_id = b.id)
             SELECT 1 FROM below WHERE id = $2",
            &[id.into(), parent.into()],
        )?;
        if cycle {
            return Err(CrmError::invalid(format!("moving role \"{name}\" under \"{new_parent}\" would make a cycle"))
                .with_hint(format!("\"{new_parent}\" is \"{name}\" or one of its subordinate roles.")));
        }
        c.update("UPDATE crm.roles SET parent_id = $2 WHERE id = $1", None, &[id.into(), parent.into()])?;
        Ok(())
    })
}

#[pg_extern]
fn create_profile(name: Option<&str>, view_all: default!(Option<bool>, false), edit_all: default!(Option<bool>, false)) {
    let name = required("name", name);
    let view_all = required("view_all", view_all);
    let edit_all = required("edit_all", edit_all);
    administer(audit!("create_profile", name, view_all, edit_all), |c: Client| {
        valid_name("profile", name)?;
        if exists(c, "SELECT 1 FROM crm.profiles WHERE name = $1", &[name.into()])? {
            return Err(CrmError::duplicate("profile", name));
        }
        c.update("INSERT INTO crm.profiles (name, view_all, edit_all) VALUES ($1, $2, $3)", None, &[name.into(), view_all.into(), edit_all.into()])?;
        Ok(())
    })
}

/// Grant or revoke module actions in `table` (crm.profile_privileges or
/// crm.permission_set_privileges, whose first column is `id_column`) for holder `id`.
pub fn change_grants(c: Client, table: &str, id_column: &str, id: i64, module: &str, list: Vec<Option<String>>, grant: bool) -> CrmResult<()> {
    check_module(c, module)?;
    for a in actions(list)? {
        let sql = if grant {
            format!("INSERT INTO {table} VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
        } else {
            format!("DELETE FROM {table} WHERE {id_column} = $1 AND module = $2 AND action = $3")
        };
        c.update(&sql, None, &[id.into(), module.into(), a.as_str().into()])?;
    }
    Ok(())
}

fn change_privileges(profile: &str, module: &str, list: Vec<Option<String>>, grant: bool) {
    let actions = &list;
    administer(audit!(if grant { "grant_privileges" } else { "revoke_privileges" }, profile, module, actions), |c: Client| {
        let id = profile_id(c, profile)?;
        change_grants(c, "crm.profile_privileges", "profile_id", id, module, list, grant)
    })
}

#[pg_extern]
fn grant_privileges(profile: Option<&str>, module: Option<&str>, actions: Option<Vec<Option<String>>>) {
    let profile = required("profile", profile);
    let module = required("module", module);
    let actions = required("actions", actions);
    change_privileges(profile, module, actions, true)
}

#[pg_extern]
fn revoke_privileges(profile: Option<&str>, module: Option<&str>, actions: Option<Vec<Option<String>>>) {
    let profile = required("profile", profile);
    let module = required("module", module);
    let actions = required("actions", actions);
    change_privileges(profile, module, actions, false)
}

#[pg_extern]
fn attach_profile(role: Option<&str>, profile: Option<&str>) {
    let role = required("role", role);
    let profile = required("profile", profile);
    administer(audit!("attach_profile", role, profile), |c: Client| {
        let (r, p) = (role_id(c, role)?, profile_id(c, profile)?);
        c.update("INSERT INTO crm.role_profiles VALUES ($1, $2) ON CONFLICT DO NOTHING", None, &[r.into(), p.into()])?;
        Ok(())
    })
}

#[pg_extern]
fn detach_profile(role: Option<&str>, profile: Option<&str>) {
    let role = required("role", role);
    let profile = required("profile", profile);
    administer(audit!("detach_profile", role, profile), |c: Client| {
        let (r, p) = (role_id(c, role)?, profile_id(c, profile)?);
        c.update("DELETE FROM crm.role_profiles WHERE role_id = $1 AND profile_id = $2", None, &[r.into(), p.into()])?;
        Ok(())
    })
}

#[pg_extern]
fn create_user(name: Option<&str>, role: Option<&str>, is_admin: default!(Option<bool>, false)) -> i64 {
    let name = required("name", name);
    let role = required("role", role);
    let is_admin = required("is_admin", is_admin);
    administer(audit!("create_user", name, role, is_admin), |c: Client| {
        valid_name("user", name)?;
        let role = role_id(c, role)?;
        if exists(c, "SELECT 1 FROM crm.owners WHERE name = $1", &[name.into()])? {
            return Err(CrmError::duplicate("CRM user or group", name).with_hint("Users and groups share one namespace."));
        }
        let id = insert_returning_id(c, "INSERT INTO crm.owners (name, kind) VALUES ($1, 'user') RETURNING id", &[name.into()])?;
        c.update("INSERT INTO crm.users (owner_id, role_id, is_admin) VALUES ($1, $2, $3)", None, &[id.into(), role.into(), is_admin.into()])?;
        Ok(id)
    })
}

#[pg_extern]
fn set_user_active(name: Option<&str>, active: Option<bool>) {
    let name = required("name", name);
    let active = required("active", active);
    administer(audit!("set_user_active", name, active), |c: Client| {
        let id = user_id(c, name)?;
        c.update("UPDATE crm.users SET is_active = $2 WHERE owner_id = $1", None, &[id.into(), active.into()])?;
        if !active {
            // A disabled user's conversations become unassigned, in this transaction (§3.5).
            c.update("UPDATE crm.conversations SET assigned_to = NULL WHERE assigned_to = $1", None, &[id.into()])?;
        }
        Ok(())
    })
}

#[pg_extern]
fn map_db_role(user_name: Option<&str>, db_role: Option<&str>) {
    let user_name = required("user_name", user_name);
    let db_role = required("db_role", db_role);
    administer(audit!("map_db_role", user_name, db_role), |c: Client| {
        let id = user_id(c, user_name)?;
        check_db_role(c, db_role)?;
        c.update(
            "INSERT INTO crm.db_role_map VALUES ($1, $2) ON CONFLICT (db_role) DO UPDATE SET user_id = excluded.user_id",
            None,
            &[db_role.into(), id.into()],
        )?;
        Ok(())
    })
}

#[pg_extern]
fn unmap_db_role(db_role: Option<&str>) {
    let db_role = required("db_role", db_role);
    administer(audit!("unmap_db_role", db_role), |c: Client| {
        if !exists(c, "SELECT 1 FROM crm.db_role_map WHERE db_role = $1", &[db_role.into()])? {
            return Err(CrmError::undefined("mapping of database role", db_role));
        }
        c.update("DELETE FROM crm.db_role_map WHERE db_role = $1", None, &[db_role.into()])?;
        Ok(())
    })
}

#[pg_extern]
fn trust_role(db_role: Option<&str>) {
    let db_role = required("db_role", db_role);
    administer(audit!("trust_role", db_role), |c: Client| {
        check_db_role(c, db_role)?;
        c.update("INSERT INTO crm.trusted_roles VALUES ($1) ON CONFLICT (db_role) DO UPDATE SET db_role_oid = NULL", None, &[db_role.into()])?;
        Ok(())
    })
}

#[pg_extern]
fn distrust_role(db_role: Option<&str>) {
    let db_role = required("db_role", db_role);
    administer(audit!("distrust_role", db_role), |c: Client| {
        if !exists(c, "SELECT 1 FROM crm.trusted_roles WHERE db_role = $1", &[db_role.into()])? {
            return Err(CrmError::undefined("trusted role", db_role));
        }
        c.update("DELETE FROM crm.trusted_roles WHERE db_role = $1", None, &[db_role.into()])?;
        Ok(())
    })
}

#[pg_extern]
fn set_sharing_default(module: Option<&str>, level: Option<&str>) {
    let module = required("module", module);
    let level = required("level", level);
    administer(audit!("set_sharing_default", module, level), |c: Client| {
        check_record_module(c, module, "org-wide defaults")?;
        let level = level.parse::<SharingLevel>().map_err(|e| CrmError::invalid(e.to_string()))?;
        if let Some(governing) = crate::catalog::modules::controlled_by(c, module)? {
            return Err(CrmError::invalid(format!("{module} follow the org-wide default of {governing}"))
                .with_hint(format!("Set the default of {governing} instead.")));
        }
        // A private module makes its related modules private too, in this transaction (§3.1, §9).
        let mut modules = vec![module.to_string()];
        if level == SharingLevel::Private {
            modules.extend(crate::catalog::modules::related_modules(c, module)?);
        }
        for m in modules {
            c.update(
                "INSERT INTO crm.sharing_defaults VALUES ($1, $2) ON CONFLICT (module) DO UPDATE SET level = excluded.level",
                None,
                &[m.into(), level.as_str().into()],
            )?;
        }
        Ok(())
    })
}
