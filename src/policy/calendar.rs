//! Row security for calendar events (DESIGN §3.4): `crm.can_see_event(action, owner_id,
//! invitees, is_public)` on `crm.events`, specialised at plan time into
//! `owner_id = 7 OR invitees @> '{7}' OR (is_public AND owner_id = ANY('{...}'))` (or a
//! constant), and `crm.knows_events()`, a constant saying whether the acting user sees the
//! calendar at all. The `crm.calendar` view shows every event's slot to those who know of
//! events, and its details where `can_see_event('read', ...)` holds.

use std::rc::Rc;

use crm_model::{Action, Event, EventScope};
use pgrx::prelude::*;
use pgrx::{pg_sys, Internal, PgList};

use super::enforce::{model, parse_action};
use super::nodes::{all_of, any_of, array_contains, bool_const, copy, int8_const, int8_eq, owner_in};
use super::simplify::{answer, const_value, declined, simplify_request};
use crate::error::{CrmError, CrmResult, OrRaise};
use crate::session::identity;

/// Which events the acting user may `action` (for read: whose details). Reads by someone who
/// cannot act reach nothing; writes by them are refused with an error.
pub fn event_access(action: Action, planning: bool) -> CrmResult<Rc<EventScope>> {
    let Some(m) = model(action, planning)? else { return Ok(Rc::new(EventScope::Nothing)) };
    match identity::acting_user(&m)? {
        Ok(u) => Ok(Rc::new(m.model.event_scope(u.owner_id, action))),
        Err(_) if action == Action::Read => Ok(Rc::new(EventScope::Nothing)),
        Err(reason) => Err(CrmError::cannot_act(&reason, action, "events")),
    }
}

#[pg_extern(
    sql = "CREATE FUNCTION crm.can_see_event(action text, owner_id bigint, invitees bigint[], is_public boolean)
           RETURNS boolean STABLE PARALLEL SAFE LANGUAGE c SUPPORT crm.can_see_event_support AS 'MODULE_PATHNAME', '@FUNCTION_NAME@';",
    requires = [can_see_event_support]
)]
fn can_see_event(action: Option<&str>, owner_id: Option<i64>, invitees: Option<Vec<Option<i64>>>, is_public: Option<bool>) -> bool {
    let (Some(action), Some(owner)) = (action, owner_id) else { return false };
    event_access(parse_action(action), false).or_raise().admits(&Event {
        owner,
        invitees: invitees.unwrap_or_default().into_iter().flatten().collect(),
        public: is_public.unwrap_or(false),
    })
}

#[pg_extern(
    sql = "CREATE FUNCTION crm.knows_events() RETURNS boolean
           STABLE PARALLEL SAFE LANGUAGE c SUPPORT crm.knows_events_support AS 'MODULE_PATHNAME', '@FUNCTION_NAME@';",
    requires = [knows_events_support]
)]
fn knows_events() -> bool {
    *event_access(Action::Read, false).or_raise() != EventScope::Nothing
}

#[pg_extern(immutable, parallel_safe)]
fn knows_events_support(request: Internal) -> Internal {
    // SAFETY: PostgreSQL calls a support function with a valid SupportRequest node, and the
    // FuncExpr it names (and its argument list) live in the planner's memory for this call;
    // the nodes built here are allocated there too.
    unsafe {
        let Some(_) = simplify_request(request) else { return declined() };
        answer(Some(bool_const(*event_access(Action::Read, true).or_raise() != EventScope::Nothing)))
    }
}

#[pg_extern(immutable, parallel_safe)]
fn can_see_event_support(request: Internal) -> Internal {
    // SAFETY: PostgreSQL calls a support function with a valid SupportRequest node, and the
    // FuncExpr it names (and its argument list) live in the planner's memory for this call;
    // the nodes built here are allocated there too.
    unsafe {
        let Some(fcall) = simplify_request(request) else { return declined() };
        let args = PgList::<pg_sys::Node>::from_pg((*fcall).args);
        let Some(action) = args.get_ptr(0).and_then(|a| const_value::<String>(a)).and_then(|a| a.parse::<Action>().ok()) else {
            return declined();
        };
        let (Some(owner), Some(invitees), Some(public)) = (args.get_ptr(1), args.get_ptr(2), args.get_ptr(3)) else { return declined() };
        let expr = match &*event_access(action, true).or_raise() {
            EventScope::Nothing => bool_const(false),
            EventScope::All => bool_const(true),
            EventScope::Filter { user, invited, public_owners } => {
                let mut branches = PgList::<pg_sys::Node>::new();
                branches.push(int8_eq(copy(owner), int8_const(*user)));
                if *invited {
                    branches.push(array_contains(copy(invitees), *user));
                }
                if !public_owners.is_empty() {
                    let mut both = PgList::<pg_sys::Node>::new();
                    both.push(copy(public));
                    both.push(owner_in(owner, public_owners));
                    branches.push(all_of(both));
                }
                any_of(branches)
            }
        };
        answer(Some(expr))
    }
}
