//! Users and roles over time: moving a user, deleting a user or a role without leaving
//! records or users behind. Every change applies at the next statement.

use pgrx::prelude::*;

use super::admin::{role_id, user_id};
use super::authorize::{administer, require_admin};
use super::ownership;
use super::sharing::{check_role_unreferenced, check_user_unreferenced};
use crate::audit;
use super::authorize::audited;
use crate::catalog::spi::{on_catalog, one, Client};
use crate::error::{CrmError, OrRaise, required};

#[pg_extern]
fn set_user_role(name: Option<&str>, role: Option<&str>) {
    let name = required("name", name);
    let role = required("role", role);
    administer(audit!("set_user_role", name, role), |c: Client| {
        let (user, role) = (user_id(c, name)?, role_id(c, role)?);
        c.update("UPDATE crm.users SET role_id = $2 WHERE owner_id = $1", None, &[user.into(), role.into()])?;
        Ok(())
    })
}

#[pg_extern]
fn delete_user(name: Option<&str>, transfer_to: default!(Option<&str>, "NULL")) {
    let name = required("name", name);
    require_admin().or_raise();
    audited(audit!("delete_user", name, transfer_to), || {
        let user = on_catalog(|c| {
            let user = user_id(c, name)?;
            check_user_unreferenced(c, user, name)?;
            Ok(user)
        })?;
        // The records move as the caller (see `ownership`), the catalog row goes as the catalog role.
        ownership::release("user", name, user, transfer_to)?;
        on_catalog(|c| {
            c.update("DELETE FROM crm.owners WHERE id = $1", None, &[user.into()])?;
            Ok(())
        })
    })
    .or_raise()
}

/// Users of the role move to `transfer_role`; its subordinate roles move up to its parent.
#[pg_extern]
fn delete_role(name: Option<&str>, transfer_role: default!(Option<&str>, "NULL")) {
    let name = required("name", name);
    administer(audit!("delete_role", name, transfer_role), |c: Client| {
        let role = role_id(c, name)?;
        let parent = one::<i64>(c, "SELECT parent_id FROM crm.roles WHERE id = $1", &[role.into()])?;
        let Some(parent) = parent else {
            return Err(CrmError::invalid(format!("role \"{name}\" is the root role and cannot be deleted")));
        };
        check_role_unreferenced(c, role, name)?;
        let users = one::<i64>(c, "SELECT count(*) FROM crm.users WHERE role_id = $1", &[role.into()])?.unwrap_or(0);
        if users > 0 {
            let Some(to) = transfer_role else {
                let noun = if users == 1 { "user" } else { "users" };
                return Err(CrmError::dependent(format!("role \"{name}\" still has {users} {noun}"))
                    .with_hint("Pass transfer_role => 'another role' to move them."));
            };
            let to = role_id(c, to)?;
            if to == role {
                return Err(CrmError::invalid("cannot move users to the role being deleted"));
            }
            c.update("UPDATE crm.users SET role_id = $2 WHERE role_id = $1", None, &[role.into(), to.into()])?;
        }
        c.update("UPDATE crm.roles SET parent_id = $2 WHERE parent_id = $1", None, &[role.into(), parent.into()])?;
        c.update("DELETE FROM crm.role_profiles WHERE role_id = $1", None, &[role.into()])?;
        c.update("DELETE FROM crm.roles WHERE id = $1", None, &[role.into()])?;
        Ok(())
    })
}
