//! Row security for calendar events (DESIGN §3.4): `crm.can_see_event(action, owner_id,
//! invitees, is_public)` on `crm.events`, specialised at plan time into
//! `owner_id = 7 OR invitees @> '{7}' OR (is_public AND owner_id = ANY('{...}'))` (or a
//! constant), and `crm.knows_events()`, a constant saying whether the acting user sees the
//! calendar at all. The `crm.calendar` view shows every event's slot to those who know of
//! events, and its details where `can_see_event('read', ...)` holds.

use std::rc::Rc;

use crm_model::{Action, Event, Filter};
use pgrx::prelude::*;

use super::{acting_filter, parse_action};
use crate::error::{CrmResult, OrRaise};

/// Which events the acting user may `action` (for read: whose details), over
/// `crm.can_see_event`'s row arguments. Reads by someone who cannot act reach nothing;
/// writes by them are refused with an error.
pub fn event_access(action: Action, planning: bool) -> CrmResult<Rc<Filter>> {
    acting_filter(action, planning, "events", |m, user| m.event_filter(user, action))
}

/// Whether the acting user sees the calendar at all (every event's slot). Whoever may read
/// some event's details may read their own, so only "nothing" means no calendar.
pub fn sees_calendar(planning: bool) -> bool {
    *event_access(Action::Read, planning).or_raise() != Filter::Const(false)
}

#[pg_extern(
    sql = "CREATE FUNCTION crm.can_see_event(action text, owner_id bigint, invitees bigint[], is_public boolean)
           RETURNS boolean STABLE PARALLEL SAFE LANGUAGE c SUPPORT crm.can_see_event_support AS 'MODULE_PATHNAME', '@FUNCTION_NAME@';",
    requires = [planner::support::can_see_event_support]
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
    requires = [planner::support::knows_events_support]
)]
fn knows_events() -> bool {
    sees_calendar(false)
}
