//! `crm.access_review` (DESIGN §8): what a user can reach in every module, and why.

use pgrx::prelude::*;

use super::authorize::require_admin_to;
use crate::error::{required, CrmError, OrRaise};
use crate::session::{cache, identity};

/// One row per module and action: how far `user_name` reaches ('all', 'owners', 'none'),
/// over how many owners' records, and what grants it. Administrators may review anyone;
/// every user may review themselves.
#[pg_extern(stable)]
fn access_review(
    user_name: Option<&str>,
) -> TableIterator<'static, (name!(module, String), name!(action, String), name!(reach, String), name!(owners, i64), name!(reasons, Vec<String>))> {
    let user_name = required("user_name", user_name);
    let m = cache::current(true).or_raise();
    let own = matches!(identity::acting_user(&m).or_raise(), Ok(u) if u.name == user_name);
    if !own {
        require_admin_to("review another user's access").or_raise();
    }
    let Some(user) = m.model.user_by_name(user_name) else {
        CrmError::undefined("CRM user", user_name).with_hint("See crm.user_directory.").raise()
    };
    let lines: Vec<_> = m
        .model
        .access_review(user.owner_id)
        .into_iter()
        .map(|r| (r.module, r.action.to_string(), r.reach.as_str().to_string(), r.owners as i64, r.reasons))
        .collect();
    TableIterator::new(lines)
}
