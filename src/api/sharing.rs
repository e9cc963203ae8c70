//! Groups and sharing rules (DESIGN §3 steps 7a, 7d, 7e; seed 004).

use pgrx::prelude::*;
use pgrx::spi::SpiClient;

use super::admin::{check_record_module, valid_name, role_id, user_id};
use super::authorize::{administer, require_admin};
use super::ownership;
use crate::audit;
use super::authorize::audited;
use crate::catalog::spi::{exists, find, insert_returning_id, on_catalog, one, Client};
use crate::error::{CrmError, CrmResult, OrRaise, required};

const MEMBER_KINDS: &str = "user, role, role_and_subordinates, group";
const RULE_KINDS: &str = "role, role_and_subordinates, group";

pub fn group_id(c: &SpiClient<'_>, name: &str) -> CrmResult<i64> {
    find(c, "SELECT g.owner_id FROM crm.groups g JOIN crm.owners o ON o.id = g.owner_id WHERE o.name = $1", "group", name, "See crm.groups for existing groups.")
}

/// The id a (kind, name) pair names, checking the kind against `allowed`.
fn party(c: &SpiClient<'_>, kind: &str, name: &str, allowed: &str) -> CrmResult<i64> {
    match kind {
        "user" if allowed == MEMBER_KINDS => user_id(c, name),
        "user" => Err(CrmError::invalid("sharing rules cannot name users").with_hint("Share with a role, a role and its subordinates, or a group that holds the user.")),
        "role" | "role_and_subordinates" => role_id(c, name),
        "group" => group_id(c, name),
        other => Err(CrmError::invalid(format!("unknown kind \"{other}\"; expected one of: {allowed}"))),
    }
}

#[pg_extern]
fn create_group(name: Option<&str>) -> i64 {
    let name = required("name", name);
    administer(audit!("create_group", name), |c: Client| {
        valid_name("group", name)?;
        if exists(c, "SELECT 1 FROM crm.owners WHERE name = $1", &[name.into()])? {
            return Err(CrmError::duplicate("CRM user or group", name).with_hint("Users and groups share one namespace."));
        }
        let id = insert_returning_id(c, "INSERT INTO crm.owners (name, kind) VALUES ($1, 'group') RETURNING id", &[name.into()])?;
        c.update("INSERT INTO crm.groups VALUES ($1)", None, &[id.into()])?;
        Ok(id)
    })
}

#[pg_extern]
fn add_group_member(group_name: Option<&str>, member_kind: Option<&str>, member: Option<&str>) {
    let group_name = required("group_name", group_name);
    let member_kind = required("member_kind", member_kind);
    let member = required("member", member);
    administer(audit!("add_group_member", group_name, member_kind, member), |c: Client| {
        let group = group_id(c, group_name)?;
        let id = party(c, member_kind, member, MEMBER_KINDS)?;
        if member_kind == "group" {
            let cycle = exists(
                c,
                "WITH RECURSIVE inside(g) AS (SELECT $1::bigint
                     UNION SELECT m.member_id FROM crm.group_members m JOIN inside ON m.group_id = inside.g WHERE m.member_kind = 'group')
                 SELECT 1 FROM inside WHERE g = $2",
                &[id.into(), group.into()],
            )?;
            if cycle {
                return Err(CrmError::invalid(format!("adding group \"{member}\" to group \"{group_name}\" would make a cycle"))
                    .with_hint(format!("\"{member}\" is \"{group_name}\" or already contains it.")));
            }
        }
        c.update("INSERT INTO crm.group_members VALUES ($1, $2, $3) ON CONFLICT DO NOTHING", None, &[group.into(), member_kind.into(), id.into()])?;
        Ok(())
    })
}

#[pg_extern]
fn remove_group_member(group_name: Option<&str>, member_kind: Option<&str>, member: Option<&str>) {
    let group_name = required("group_name", group_name);
    let member_kind = required("member_kind", member_kind);
    let member = required("member", member);
    administer(audit!("remove_group_member", group_name, member_kind, member), |c: Client| {
        let group = group_id(c, group_name)?;
        let id = party(c, member_kind, member, MEMBER_KINDS)?;
        let removed = c.update(
            "DELETE FROM crm.group_members WHERE group_id = $1 AND member_kind = $2 AND member_id = $3",
            None,
            &[group.into(), member_kind.into(), id.into()],
        )?;
        if removed.is_empty() {
            return Err(CrmError::undefined(&format!("member {member_kind} \"{member}\" of group"), group_name));
        }
        Ok(())
    })
}

/// Refuse to remove something a sharing rule, a restriction rule or a group still names.
fn check_unreferenced(c: &mut SpiClient<'_>, kinds: &[&str], id: i64, what: &str) -> CrmResult<()> {
    // Held first, so that a restriction rule added meanwhile (which holds what it names FOR
    // SHARE, see `restrictions`) is seen here, or finds it gone.
    let table = if kinds.contains(&"role") { "crm.roles WHERE id = $1" } else { "crm.owners WHERE id = $1" };
    c.update(&format!("SELECT 1 FROM {table} FOR UPDATE"), None, &[id.into()])?;
    let rules = one::<String>(
        c,
        "SELECT string_agg(id::text, ', ' ORDER BY id) FROM crm.sharing_rules
         WHERE (source_kind = ANY($1) AND source_id = $2) OR (target_kind = ANY($1) AND target_id = $2)",
        &[kinds.to_vec().into(), id.into()],
    )?;
    if let Some(rules) = rules {
        return Err(CrmError::dependent(format!("{what} is used by sharing rule {rules}")).with_hint("Drop those rules first (crm.drop_sharing_rule)."));
    }
    check_unrestricting(c, kinds, id, what)?;
    let groups = one::<String>(
        c,
        "SELECT string_agg(DISTINCT o.name, ', ') FROM crm.group_members m JOIN crm.owners o ON o.id = m.group_id
         WHERE m.member_kind = ANY($1) AND m.member_id = $2",
        &[kinds.to_vec().into(), id.into()],
    )?;
    if let Some(groups) = groups {
        return Err(CrmError::dependent(format!("{what} is a member of group {groups}")).with_hint("Remove it from those groups first (crm.remove_group_member)."));
    }
    // The records shared with it are shared with nobody once it is gone: its shares go with it
    // (a share being made meanwhile holds the row, so it has committed by now, and goes too).
    c.update("DELETE FROM crm.shares WHERE kind = ANY($1) AND target_id = $2", None, &[kinds.to_vec().into(), id.into()])?;
    Ok(())
}

/// Refuse to remove something a restriction rule names (kinds as the rules write them).
pub fn check_unrestricting(c: &SpiClient<'_>, kinds: &[&str], id: i64, what: &str) -> CrmResult<()> {
    let rules = one::<String>(
        c,
        "SELECT string_agg(id::text, ', ' ORDER BY id) FROM crm.restrictions WHERE kind = ANY($1) AND target_id = $2",
        &[kinds.to_vec().into(), id.into()],
    )?;
    match rules {
        Some(rules) => Err(CrmError::dependent(format!("{what} is named by restriction rule {rules}")).with_hint("Drop those rules first (crm.drop_restriction_rule).")),
        None => Ok(()),
    }
}

pub fn check_role_unreferenced(c: &mut SpiClient<'_>, role: i64, name: &str) -> CrmResult<()> {
    check_unreferenced(c, &["role", "role_and_subordinates"], role, &format!("role \"{name}\""))
}

pub fn check_user_unreferenced(c: &mut SpiClient<'_>, user: i64, name: &str) -> CrmResult<()> {
    check_unreferenced(c, &["user"], user, &format!("user \"{name}\""))
}

#[pg_extern]
fn drop_group(name: Option<&str>, transfer_to: default!(Option<&str>, "NULL")) {
    let name = required("name", name);
    require_admin().or_raise();
    audited(audit!("drop_group", name, transfer_to), || {
        let group = on_catalog(|c| {
            let group = group_id(c, name)?;
            check_unreferenced(c, &["group"], group, &format!("group \"{name}\""))?;
            Ok(group)
        })?;
        // The records move as the caller (see `ownership`), the catalog row goes as the catalog role.
        ownership::release("group", name, group, transfer_to)?;
        on_catalog(|c| {
            c.update("DELETE FROM crm.owners WHERE id = $1", None, &[group.into()])?;
            Ok(())
        })
    })
    .or_raise()
}

#[pg_extern]
fn add_sharing_rule(module: Option<&str>, source_kind: Option<&str>, source: Option<&str>, target_kind: Option<&str>, target: Option<&str>, access: Option<&str>, related_modules: default!(Option<Vec<Option<String>>>, "'{}'")) -> i64 {
    let module = required("module", module);
    let source_kind = required("source_kind", source_kind);
    let source = required("source", source);
    let target_kind = required("target_kind", target_kind);
    let target = required("target", target);
    let access = required("access", access);
    let related_modules = required("related_modules", related_modules);
    administer(audit!("add_sharing_rule", module, source_kind, source, target_kind, target, access, related_modules), |c: Client| {
        check_record_module(c, module, "sharing rules")?;
        if let Some(governing) = crate::catalog::modules::controlled_by(c, module)? {
            return Err(CrmError::invalid(format!("{module} follow the sharing rules of {governing}"))
                .with_hint(format!("Add the rule to {governing} instead.")));
        }
        let source_id = party(c, source_kind, source, RULE_KINDS)?;
        let target_id = party(c, target_kind, target, RULE_KINDS)?;
        if !matches!(access, "read" | "read_write") {
            return Err(CrmError::invalid(format!("unknown access \"{access}\"; expected one of: read, read_write"))
                .with_hint("Sharing rules never grant delete."));
        }
        let allowed = if related_modules.is_empty() {
            Vec::new()
        } else {
            crate::catalog::modules::related_modules_held(c, module)?
        };
        let mut related = Vec::new();
        for m in related_modules {
            let m = m.ok_or_else(|| CrmError::invalid("the list of related modules contains NULL"))?;
            if !allowed.contains(&m) {
                let hint = if allowed.is_empty() {
                    format!("{module} has no related modules.")
                } else {
                    format!("The related modules of {module} are: {}.", allowed.join(", "))
                };
                return Err(CrmError::invalid(format!("{m} is not a related module of {module}")).with_hint(hint));
            }
            // Once each: a list repeating a module changes nothing but the catalog's size (red
            // team of issue 24: 320,000 repeats made every later checkpoint fail).
            if !related.contains(&m) {
                related.push(m);
            }
        }
        insert_returning_id(
            c,
            "INSERT INTO crm.sharing_rules (module, source_kind, source_id, target_kind, target_id, access, related_modules)
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
            &[module.into(), source_kind.into(), source_id.into(), target_kind.into(), target_id.into(), access.into(), related.into()],
        )
    })
}

#[pg_extern]
fn drop_sharing_rule(id: Option<i64>) {
    let id = required("id", id);
    administer(audit!("drop_sharing_rule", id), |c: Client| {
        if c.update("DELETE FROM crm.sharing_rules WHERE id = $1", None, &[id.into()])?.is_empty() {
            return Err(CrmError::undefined("sharing rule", &id.to_string()).with_hint("See crm.sharing_rule_directory."));
        }
        Ok(())
    })
}
