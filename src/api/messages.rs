//! The message module's functions (DESIGN §3.5, §4): message permissions for profiles and
//! permission sets (admins only), and assigning and archiving conversations, which the
//! engine decides for the acting user before anything is written.

use crm_model::{Action, Conversation, MessagePermission, User};
use pgrx::prelude::*;
use pgrx::spi::SpiClient;

use super::admin::profile_id;
use super::authorize::administer;
use crate::audit;
use crate::catalog::spi::{find, on_catalog, Client};
use crate::error::{CrmError, CrmResult, OrRaise, required};
use crate::session::cache::Loaded;

/// Validated, distinct, in the canonical order (mine, all, new, archive).
fn permissions(levels: Vec<Option<String>>) -> CrmResult<Vec<&'static str>> {
    let mut out = Vec::new();
    for level in levels {
        let level = level.ok_or_else(|| CrmError::invalid("message permissions must not be NULL"))?;
        let p = level.parse::<MessagePermission>().map_err(|e| CrmError::invalid(e.to_string()))?;
        out.push(p);
    }
    out.sort();
    out.dedup();
    Ok(out.into_iter().map(MessagePermission::as_str).collect())
}

fn set_permissions(c: Client, table: &str, id: i64, levels: Vec<Option<String>>) -> CrmResult<()> {
    let levels = permissions(levels)?;
    c.update(&format!("UPDATE {table} SET message_permissions = $2 WHERE id = $1"), None, &[id.into(), levels.into()])?;
    Ok(())
}

/// Replaces the profile's message permissions; an empty array removes them all.
#[pg_extern]
fn set_message_permissions(profile: Option<&str>, levels: Option<Vec<Option<String>>>) {
    let profile = required("profile", profile);
    let levels = required("levels", levels);
    administer(audit!("set_message_permissions", profile, levels), |c: Client| {
        let id = profile_id(c, profile)?;
        set_permissions(c, "crm.profiles", id, levels)
    })
}

#[pg_extern]
fn set_permission_set_message_permissions(set: Option<&str>, levels: Option<Vec<Option<String>>>) {
    let set = required("set", set);
    let levels = required("levels", levels);
    administer(audit!("set_permission_set_message_permissions", set, levels), |c: Client| {
        let id = find(c, "SELECT id FROM crm.permission_sets WHERE name = $1", "permission set", set, "See crm.permission_sets.")?;
        set_permissions(c, "crm.permission_sets", id, levels)
    })
}

/// The conversation, locked until the end of the transaction: the decision taken on it must
/// still hold when it is written.
fn conversation(c: &mut SpiClient<'_>, id: i64) -> CrmResult<Option<Conversation>> {
    let rows = c.update(
        "SELECT assigned_to, linked_owner, is_new, archived_by FROM crm.conversations WHERE id = $1 FOR UPDATE",
        Some(1),
        &[id.into()],
    )?;
    if rows.is_empty() {
        return Ok(None);
    }
    let row = rows.first();
    Ok(Some(Conversation {
        assigned_to: row.get::<i64>(1)?,
        linked_owner: row.get::<i64>(2)?,
        is_new: row.get::<bool>(3)?.unwrap_or(false),
        archived_by: row.get::<Vec<Option<i64>>>(4)?.unwrap_or_default().into_iter().flatten().collect(),
    }))
}

fn not_visible(id: i64) -> CrmError {
    CrmError::not_found(format!("no conversation with id {id} is visible to you"))
}

/// The acting user, who must be able to read and `action` conversation `id`; then `f`
/// writes as the catalog role. Someone who cannot read it learns nothing of it.
fn act_on(id: i64, action: Action, what: &str, f: impl FnOnce(&Loaded, &User, &mut SpiClient<'_>) -> CrmResult<()>) -> CrmResult<()> {
    let (m, me) = super::identity::acting(action, "conversations")?;
    on_catalog(|c| {
        let conv = conversation(c, id)?.ok_or_else(|| not_visible(id))?;
        let read = m.model.decide_conversation(Some(me.owner_id), Action::Read, &conv);
        if !read.allowed {
            return Err(not_visible(id));
        }
        let d = m.model.decide_conversation(Some(me.owner_id), action, &conv);
        if !d.allowed {
            return Err(CrmError::denied(format!("CRM user \"{}\" may not {what} conversation {id}", me.name)).with_detail(d.reason.to_string()));
        }
        f(&m, &me, c)
    })
}

/// Assigns conversation `id` to a user, or unassigns it (NULL); needs edit on it.
#[pg_extern]
fn assign_conversation(id: Option<i64>, user_name: Option<&str>) {
    let id = required("id", id);
    act_on(id, Action::Edit, "assign", |m, _, c| {
        let to = match user_name {
            None => None,
            Some(name) => {
                let u = m.model.user_by_name(name).ok_or_else(|| {
                    CrmError::undefined("CRM user", name).with_hint("Conversations are assigned to users; see crm.user_directory.")
                })?;
                if !u.is_active {
                    return Err(CrmError::prerequisite(format!("CRM user \"{name}\" is disabled and cannot be assigned conversations"))
                        .with_hint("Enable the user with crm.set_user_active(), or assign the conversation to someone else."));
                }
                Some(u.owner_id)
            }
        };
        c.update("UPDATE crm.conversations SET assigned_to = $2 WHERE id = $1", None, &[id.into(), to.into()])?;
        Ok(())
    })
    .or_raise()
}

fn archive(id: i64, archived: bool) {
    let what = if archived { "archive" } else { "unarchive" };
    act_on(id, Action::Edit, what, |m, me, c| {
        if !m.model.may_archive(me.owner_id) {
            return Err(CrmError::denied(format!("CRM user \"{}\" may not {what} conversations", me.name))
                .with_detail("No profile or permission set grants the archive message permission.")
                .with_hint("An administrator can grant it with crm.set_message_permissions()."));
        }
        let sql = if archived {
            "UPDATE crm.conversations SET archived_by = archived_by || $2 WHERE id = $1 AND NOT archived_by @> ARRAY[$2]"
        } else {
            "UPDATE crm.conversations SET archived_by = array_remove(archived_by, $2) WHERE id = $1"
        };
        c.update(sql, None, &[id.into(), me.owner_id.into()])?;
        Ok(())
    })
    .or_raise()
}

/// Archives conversation `id` for the acting user only; needs edit on it and `archive`.
#[pg_extern]
fn archive_conversation(id: Option<i64>) {
    let id = required("id", id);
    archive(id, true)
}

#[pg_extern]
fn unarchive_conversation(id: Option<i64>) {
    let id = required("id", id);
    archive(id, false)
}
