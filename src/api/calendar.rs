//! Calendar functions for the acting user (DESIGN §4): inviting users to an event one may
//! edit, and sharing one's own calendar. Not administration: each acts only on what the
//! acting user owns or may edit, decided by the engine before anything is written.

use crm_model::{Action, Event, User, UserRef};
use pgrx::prelude::*;

use crate::audit;
use super::authorize::audited;
use crate::catalog::spi::on_catalog;
use crate::error::{CrmError, CrmResult, OrRaise, required};
use super::identity::acting;
use crate::session::cache::Loaded;

/// An active user other than `me`, by name.
fn other_user<'m>(m: &'m Loaded, me: &User, name: &str) -> CrmResult<UserRef<'m>> {
    let u = m.model.user_by_name(name).ok_or_else(|| CrmError::undefined("CRM user", name).with_hint("See crm.user_directory."))?;
    if !u.is_active {
        return Err(CrmError::prerequisite(format!("CRM user \"{name}\" is disabled")));
    }
    if u.owner_id == me.owner_id {
        return Err(CrmError::invalid("that is you"));
    }
    Ok(u)
}

fn change_invitees(event_id: i64, user_name: &str, invite: bool) -> CrmResult<()> {
    let (m, me) = acting(Action::Edit, "events")?;
    let invitee = m.model.user_by_name(user_name).ok_or_else(|| CrmError::undefined("CRM user", user_name).with_hint("See crm.user_directory."))?;
    if invite && !invitee.is_active {
        return Err(CrmError::prerequisite(format!("CRM user \"{user_name}\" is disabled and cannot be invited")));
    }
    on_catalog(|c| {
        // Locked: the decision taken on the event must still hold when it is written.
        let row = c.update("SELECT owner_id, invitees, is_public FROM crm.events WHERE id = $1 FOR UPDATE", Some(1), &[event_id.into()])?;
        let not_found = || CrmError::not_found(format!("no event with id {event_id} is visible to you"));
        if row.is_empty() {
            return Err(not_found());
        }
        let row = row.first();
        let event = Event {
            owner: row.get::<i64>(1)?.unwrap_or_default(),
            invitees: row.get::<Vec<Option<i64>>>(2)?.unwrap_or_default().into_iter().flatten().collect(),
            public: row.get::<bool>(3)?.unwrap_or(false),
        };
        if !m.model.decide_event(Some(me.owner_id), Action::Read, &event).allowed {
            return Err(not_found());
        }
        let d = m.model.decide_event(Some(me.owner_id), Action::Edit, &event);
        if !d.allowed {
            let what = if invite { "invite users to" } else { "uninvite users from" };
            return Err(CrmError::denied(format!("CRM user \"{}\" may not {what} event {event_id}", me.name)).with_detail(d.reason.to_string()));
        }
        let sql = if invite {
            "UPDATE crm.events SET invitees = invitees || $2 WHERE id = $1 AND NOT invitees @> ARRAY[$2]"
        } else {
            "UPDATE crm.events SET invitees = array_remove(invitees, $2) WHERE id = $1"
        };
        c.update(sql, None, &[event_id.into(), invitee.owner_id.into()])?;
        Ok(())
    })
}

#[pg_extern]
fn invite(event_id: Option<i64>, user_name: Option<&str>) {
    let event_id = required("event_id", event_id);
    let user_name = required("user_name", user_name);
    change_invitees(event_id, user_name, true).or_raise()
}

#[pg_extern]
fn uninvite(event_id: Option<i64>, user_name: Option<&str>) {
    let event_id = required("event_id", event_id);
    let user_name = required("user_name", user_name);
    change_invitees(event_id, user_name, false).or_raise()
}

/// The acting user, who must be able to edit Activities (their own events): sharing a
/// calendar changes the catalog, so it is logged and reaches every session, and a login
/// whose user has no calendar must not be able to flood the log with it (issue 24, finding 8).
fn calendar_owner(what: &str) -> CrmResult<(std::rc::Rc<Loaded>, User)> {
    let (m, me) = acting(Action::Edit, what)?;
    if m.model.event_scope(me.owner_id, Action::Edit) == crm_model::EventScope::Nothing {
        return Err(CrmError::denied(format!("CRM user \"{}\" may not edit Activities, so has no calendar to share", me.name))
            .with_hint("Calendar sharing needs the edit privilege on Activities (crm.grant_privileges)."));
    }
    Ok((m, me))
}

/// Shares the acting user's calendar (the details of their public events) with a user. A
/// share that exists already changes nothing: nothing is written, logged or invalidated.
#[pg_extern]
fn share_calendar(with_user: Option<&str>) {
    let with_user = required("with_user", with_user);
    audited(audit!("share_calendar", with_user), || {
        let (m, me) = calendar_owner("calendar shares")?;
        let with = other_user(&m, &me, with_user)?.owner_id;
        if m.model.catalog().calendar_shares.iter().any(|&(o, w)| o == me.owner_id && w == with) {
            return Ok(());
        }
        on_catalog(|c| {
            c.update("INSERT INTO crm.calendar_shares VALUES ($1, $2) ON CONFLICT DO NOTHING", None, &[me.owner_id.into(), with.into()])?;
            Ok(())
        })
    })
    .or_raise()
}

#[pg_extern]
fn unshare_calendar(with_user: Option<&str>) {
    let with_user = required("with_user", with_user);
    audited(audit!("unshare_calendar", with_user), || {
        let (m, me) = calendar_owner("calendar shares")?;
        let with = m.model.user_by_name(with_user).ok_or_else(|| CrmError::undefined("CRM user", with_user))?.owner_id;
        if !m.model.catalog().calendar_shares.iter().any(|&(o, w)| o == me.owner_id && w == with) {
            return Ok(());
        }
        on_catalog(|c| {
            c.update("DELETE FROM crm.calendar_shares WHERE owner_id = $1 AND with_user = $2", None, &[me.owner_id.into(), with.into()])?;
            Ok(())
        })
    })
    .or_raise()
}
