//! `crm.access_review` and `crm.access_changes` (DESIGN §8): what a user can reach in every
//! module and why, and what they gained and lost since a moment.

use crm_model::{Catalog, Model};
use pgrx::datum::TimestampWithTimeZone;
use pgrx::prelude::*;

use super::authorize::require_admin_to;
use crate::catalog::history;
use crate::catalog::load::{self, LoadedCatalog};
use crate::error::{required, CrmError, CrmResult, OrRaise};
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

/// What `user_name` gained and lost, per module and record action, at each catalog change
/// since `since` (rebuilt from the audit log), with the entry that caused it, and at each end
/// of a grant (`until`, DESIGN §9), with none; administrators only.
#[pg_extern]
fn access_changes(
    user_name: Option<&str>,
    since: Option<TimestampWithTimeZone>,
) -> TableIterator<
    'static,
    (name!(at, TimestampWithTimeZone), name!(module, String), name!(action, String), name!(gained, Vec<i64>), name!(lost, Vec<i64>), name!(audit_id, Option<i64>)),
> {
    let user_name = required("user_name", user_name);
    let since = required("since", since);
    require_admin_to("review another user's access changes").or_raise();
    let m = cache::current(true).or_raise();
    let Some(user) = m.model.user_by_name(user_name).map(|u| u.owner_id) else {
        CrmError::undefined("CRM user", user_name).with_hint("See crm.user_directory.").raise()
    };
    let now = crate::session::plans::decision_moment();
    let since_at: i64 = since.into();
    let compile = |c: &Catalog, at: i64| Model::compile_at(c.clone(), at).map_err(|e| CrmError::broken_catalog(e.to_string()));
    let mut rows = Vec::new();
    // Newest first: the catalog after the entry being looked at, and until when it held.
    let mut newer = (load::load().or_raise().catalog, now);
    let ends = |rows: &mut Vec<_>, (catalog, to): &(Catalog, i64), from: i64| -> CrmResult<()> {
        let mut instants: Vec<i64> = catalog.permission_set_assignments.iter().filter_map(|a| a.2).filter(|&u| from < u && u <= *to && since_at < u).collect();
        instants.sort_unstable_by(|a, b| b.cmp(a));
        instants.dedup();
        for u in instants {
            let (after, before) = (compile(catalog, u)?, compile(catalog, u - 1)?);
            for c in after.reach_changes(&before, user) {
                rows.push((moment(u)?, c.module, c.action.to_string(), c.gained, c.lost, None));
            }
        }
        Ok(())
    };
    let mut step = |id: i64, at: TimestampWithTimeZone, before: &LoadedCatalog| -> CrmResult<()> {
        let at_us: i64 = at.into();
        ends(&mut rows, &newer, at_us)?;
        let (after, older) = (compile(&newer.0, at_us)?, compile(&before.catalog, at_us)?);
        for c in after.reach_changes(&older, user) {
            rows.push((at, c.module, c.action.to_string(), c.gained, c.lost, Some(id)));
        }
        newer = (before.catalog.clone(), at_us);
        Ok(())
    };
    crate::session::cache::rebuilding(|| history::rewind(since, &mut step)).or_raise();
    ends(&mut rows, &newer, since_at).or_raise();
    rows.reverse();
    TableIterator::new(rows)
}

fn moment(at: i64) -> CrmResult<TimestampWithTimeZone> {
    TimestampWithTimeZone::try_from(at).map_err(|e| CrmError::broken_catalog(format!("an end of access out of range: {e:?}")))
}
