//! Permission sets (seed 002): named privileges added to the profiles' union (DESIGN §3
//! step 3), assigned to users directly or to groups (every member holds them).

use pgrx::datum::TimestampWithTimeZone;
use pgrx::prelude::*;
use pgrx::spi::SpiClient;

use super::admin::{change_grants, valid_name, user_id};
use super::authorize::administer;
use super::sharing::group_id;
use crate::audit;
use crate::catalog::spi::{exists, find, Client};
use crate::error::{CrmError, CrmResult, OrRaise, required};

pub(super) fn set_id(c: &SpiClient<'_>, name: &str) -> CrmResult<i64> {
    find(c, "SELECT id FROM crm.permission_sets WHERE name = $1", "permission set", name, "See crm.permission_sets.")
}

fn assignee(c: &SpiClient<'_>, kind: &str, name: &str) -> CrmResult<i64> {
    match kind {
        "user" => user_id(c, name),
        "group" => group_id(c, name),
        other => Err(CrmError::invalid(format!("unknown kind \"{other}\"; expected one of: user, group"))),
    }
}

#[pg_extern]
fn create_permission_set(name: Option<&str>, view_all: default!(Option<bool>, false), edit_all: default!(Option<bool>, false)) {
    let name = required("name", name);
    let view_all = required("view_all", view_all);
    let edit_all = required("edit_all", edit_all);
    administer(audit!("create_permission_set", name, view_all, edit_all), |c: Client| {
        valid_name("permission set", name)?;
        if exists(c, "SELECT 1 FROM crm.permission_sets WHERE name = $1", &[name.into()])? {
            return Err(CrmError::duplicate("permission set", name));
        }
        c.update("INSERT INTO crm.permission_sets (name, view_all, edit_all) VALUES ($1, $2, $3)", None, &[name.into(), view_all.into(), edit_all.into()])?;
        Ok(())
    })
}

fn change(set: &str, module: &str, list: Vec<Option<String>>, grant: bool) {
    let actions = &list;
    administer(audit!(if grant { "grant_permission_set_privileges" } else { "revoke_permission_set_privileges" }, set, module, actions), |c: Client| {
        let id = set_id(c, set)?;
        change_grants(c, "crm.permission_set_privileges", "set_id", id, module, list, grant)
    })
}

#[pg_extern]
fn grant_permission_set_privileges(set: Option<&str>, module: Option<&str>, actions: Option<Vec<Option<String>>>) {
    let set = required("set", set);
    let module = required("module", module);
    let actions = required("actions", actions);
    change(set, module, actions, true)
}

#[pg_extern]
fn revoke_permission_set_privileges(set: Option<&str>, module: Option<&str>, actions: Option<Vec<Option<String>>>) {
    let set = required("set", set);
    let module = required("module", module);
    let actions = required("actions", actions);
    change(set, module, actions, false)
}

#[pg_extern]
fn assign_permission_set(set: Option<&str>, kind: Option<&str>, name: Option<&str>, until: default!(Option<TimestampWithTimeZone>, "NULL")) {
    let set = required("set", set);
    let kind = required("kind", kind);
    let name = required("name", name);
    let until = until.map(|u| future("until", u).or_raise());
    // Logged as its text, which the log's readers (and a past catalog's rebuild) read back.
    let until_text = until.map(|u| u.to_string());
    administer(audit!("assign_permission_set", set, kind, name, until_text), |c: Client| {
        let (s, who) = (set_id(c, set)?, assignee(c, kind, name)?);
        // Assigning again sets the end anew (NULL: none), as editing an expiry does.
        c.update(
            "INSERT INTO crm.permission_set_assignments (set_id, owner_id, until) VALUES ($1, $2, $3)
             ON CONFLICT (set_id, owner_id) DO UPDATE SET until = excluded.until
             WHERE crm.permission_set_assignments.until IS DISTINCT FROM excluded.until",
            None,
            &[s.into(), who.into(), until.into()],
        )?;
        Ok(())
    })
}

/// An end of access (`until`): finite and after the current statement's start, since a
/// grant counts only for statements that start before it (DESIGN §9).
pub(super) fn future(what: &str, until: TimestampWithTimeZone) -> CrmResult<TimestampWithTimeZone> {
    if !until.is_finite() {
        return Err(CrmError::invalid(format!("{what} must be a finite moment")).with_hint("Pass NULL for access that does not end."));
    }
    if pg_sys::TimestampTz::from(until) <= crate::session::plans::decision_moment() {
        return Err(CrmError::invalid(format!("{what} must be in the future"))
            .with_detail("A grant counts for the statements that start before its end; this one started after it."));
    }
    Ok(until)
}

#[pg_extern]
fn unassign_permission_set(set: Option<&str>, kind: Option<&str>, name: Option<&str>) {
    let set = required("set", set);
    let kind = required("kind", kind);
    let name = required("name", name);
    administer(audit!("unassign_permission_set", set, kind, name), |c: Client| {
        let (s, who) = (set_id(c, set)?, assignee(c, kind, name)?);
        if c.update("DELETE FROM crm.permission_set_assignments WHERE set_id = $1 AND owner_id = $2", None, &[s.into(), who.into()])?.is_empty() {
            return Err(CrmError::undefined(&format!("assignment to {kind} \"{name}\" of permission set"), set));
        }
        Ok(())
    })
}

#[pg_extern]
fn drop_permission_set(name: Option<&str>) {
    let name = required("name", name);
    administer(audit!("drop_permission_set", name), |c: Client| {
        let id = set_id(c, name)?;
        // Held first, so that a restriction rule added meanwhile is seen (see `restrictions`).
        c.update("SELECT 1 FROM crm.permission_sets WHERE id = $1 FOR UPDATE", None, &[id.into()])?;
        super::sharing::check_unrestricting(c, &["permission_set"], id, &format!("permission set \"{name}\""))?;
        c.update("DELETE FROM crm.permission_sets WHERE id = $1", None, &[id.into()])?;
        Ok(())
    })
}
