//! Record shares (DESIGN §9, issue 26): one record shared with a user, a group, a role or a
//! role and its subordinates, for reading or reading and editing, perhaps until an instant.
//!
//! Shares are not part of the compiled model: they change far more often than the catalog,
//! and a share must not recompile the model in every backend. The model answers the two
//! questions enforcement needs of them, independently, so that tests can hold each to the
//! other: top-down, whose shares reach a user (`share_parties`: the receivers a policy's
//! lookup of shared records names), and bottom-up, whether one share reaches a user
//! (`receives_share`, which a record's decision uses).
//!
//! As for sharing rules, a share reaches its receivers and every user above one of them
//! ("shared below"). It grants read, or read and edit (never delete), and never beyond the
//! module privileges: a share to a user without read on the module grants nothing.

use std::collections::BTreeSet;

use crate::catalog::{Party, RuleAccess};
use crate::decision::{Decision, Reason};
use crate::groups::{users_of, UserIndex};
use crate::{Action, Model, OwnerId, RoleId};

/// One share of one record (the record itself is the caller's to find).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordShare {
    pub id: i64,
    pub receiver: Party,
    pub access: RuleAccess,
    /// The instant the share stops counting, as PostgreSQL's timestamptz (microseconds since
    /// 2000-01-01 UTC): it counts for a moment strictly before it.
    pub until: Option<i64>,
    /// The user who shared the record.
    pub shared_by: OwnerId,
}

impl RecordShare {
    /// Whether the share counts for `action` at the moment `at` (same units as `until`).
    pub fn grants(&self, action: Action, at: i64) -> bool {
        self.access.covers(action) && self.until.is_none_or(|until| at < until)
    }
}

/// The receivers whose shares reach a user, by kind; each list sorted and distinct.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShareParties {
    pub users: Vec<OwnerId>,
    pub groups: Vec<OwnerId>,
    pub roles: Vec<RoleId>,
    pub roles_and_subordinates: Vec<RoleId>,
}

impl ShareParties {
    pub fn contains(&self, receiver: Party) -> bool {
        let (list, id) = match receiver {
            Party::User(id) => (&self.users, id),
            Party::Group(id) => (&self.groups, id),
            Party::Role(id) => (&self.roles, id),
            Party::RoleAndSubordinates(id) => (&self.roles_and_subordinates, id),
        };
        list.binary_search(&id).is_ok()
    }
}

impl Model {
    /// Whose shares reach `user`: the user and every user below them; the groups of any of
    /// those; their roles; and every role whose subtree holds one of their roles. Nothing for
    /// an unknown or disabled user.
    pub fn share_parties(&self, user: OwnerId) -> ShareParties {
        let Some(u) = self.users.get(&user).filter(|u| u.is_active) else { return ShareParties::default() };
        let mut users: Vec<OwnerId> = std::iter::once(u.owner_id).chain(self.subordinates(u)).collect();
        users.sort_unstable();
        users.dedup();
        let mut groups: Vec<OwnerId> = users.iter().flat_map(|&v| self.groups_of(v)).collect();
        groups.sort_unstable();
        groups.dedup();
        let held: BTreeSet<RoleId> = users.iter().map(|v| self.users.held(v).role).collect();
        let roles: Vec<RoleId> = held.iter().copied().collect();
        // A role's subtree holds a held role exactly when the role is that role or above it.
        let above = self.tree.at_or_above(held.iter().copied());
        ShareParties { users, groups, roles, roles_and_subordinates: above.into_iter().collect() }
    }

    /// Whether `user` may share or unshare a record owned by `owner` (DESIGN §9): its owner, a
    /// member of the group that owns it, a user above its owner in the role hierarchy, or an
    /// administrator; active users only.
    pub fn may_share(&self, user: OwnerId, owner: OwnerId) -> bool {
        let Some(u) = self.users.get(&user).filter(|u| u.is_active) else { return false };
        if u.is_admin || user == owner {
            return true;
        }
        if self.groups.contains_key(&owner) {
            return self.groups_of(user).any(|g| g == owner);
        }
        self.users.get(&owner).is_some_and(|o| self.tree.is_strictly_above(u.role, o.role))
    }

    /// Whether a share can give `user` `action` on a `module` record at all: an active user who
    /// holds the module privilege (shares never go beyond it) and does not reach every record
    /// already (an administrator, View All for reads, Edit All); only read and edit.
    pub fn shares_apply(&self, user: OwnerId, module: &str, action: Action) -> bool {
        let Some(u) = self.users.get(&user).filter(|u| u.is_active) else { return false };
        if !matches!(action, Action::Read | Action::Edit) || u.is_admin || !self.defaults.contains_key(module) {
            return false;
        }
        let p = self.privileges_of(u);
        let everything = p.edit_all.is_some() || (action == Action::Read && p.view_all.is_some());
        !everything && p.granted(module, action)
    }

    /// Whether a share of a `parent` record reaches its child records of `child` (DESIGN §9):
    /// `child` is a directly related module of `parent`, as a rule's related modules.
    pub fn shares_reach_children(&self, parent: &str, child: &str) -> bool {
        self.catalog.module_relations.iter().any(|(p, c)| p == parent && c == child)
    }

    /// Whether a share to `receiver` reaches `user`: `user` is one of the users it names, or is
    /// above one of them. Computed from the receivers up, independently of `share_parties`.
    pub fn receives_share(&self, user: OwnerId, receiver: Party) -> bool {
        let Some(u) = self.users.get(&user).filter(|u| u.is_active) else { return false };
        let index = UserIndex { tree: &self.tree, users: &self.users, members: &self.members };
        users_of(receiver, &index).iter().any(|&v| v == u.owner_id || self.tree.is_strictly_above(u.role, self.users.held(&v).role))
    }

    /// A `module` record's decision with its shares, at the moment `at`: the decision without
    /// them, unless it denies only because no record-level rule reaches the record, and a
    /// share that counts for `action` at `at` reaches the user.
    pub fn decide_with_shares(&self, user: Option<OwnerId>, module: &str, action: Action, owner: OwnerId, shares: &[RecordShare], at: i64) -> Decision {
        let decided = self.decide(user, module, action, owner);
        let (Some(user), false, Reason::NoRecordAccess { .. }) = (user, decided.allowed, &decided.reason) else { return decided };
        match shares.iter().find(|s| s.grants(action, at) && self.receives_share(user, s.receiver)) {
            Some(s) => Decision::allow(Reason::SharedRecord {
                by: self.owner_name(s.shared_by).unwrap_or("?").to_string(),
                with: self.describe(s.receiver),
                access: s.access,
                until: s.until,
                through: None,
            }),
            None => decided,
        }
    }

    /// A child record's decision with shares: its own (`decide_child`, then its own shares),
    /// else a share of its parent record, which reaches the child records of the parent's
    /// directly related modules with the same access (DESIGN §9, as a rule's related modules).
    pub fn decide_child_with_shares(
        &self,
        user: Option<OwnerId>,
        (child_module, parent_module): (&str, &str),
        action: Action,
        (owner, parent_owner): (OwnerId, Option<OwnerId>),
        (own_shares, parent_shares): (&[RecordShare], &[RecordShare]),
        at: i64,
    ) -> Decision {
        let decided = self.decide_child(user, child_module, parent_module, action, owner, parent_owner);
        let (Some(user), false, Reason::NoRecordAccess { .. }) = (user, decided.allowed, &decided.reason) else { return decided };
        let related = self.shares_reach_children(parent_module, child_module);
        let through_parent = parent_shares.iter().filter(|_| related);
        let own = own_shares.iter().map(|s| (s, false));
        match own.chain(through_parent.map(|s| (s, true))).find(|(s, _)| s.grants(action, at) && self.receives_share(user, s.receiver)) {
            Some((s, via_parent)) => Decision::allow(Reason::SharedRecord {
                by: self.owner_name(s.shared_by).unwrap_or("?").to_string(),
                with: self.describe(s.receiver),
                access: s.access,
                until: s.until,
                through: via_parent.then(|| parent_module.to_string()),
            }),
            None => decided,
        }
    }
}

/// A PostgreSQL timestamptz (microseconds since 2000-01-01 00:00 UTC) as PostgreSQL writes it
/// in UTC, to the second: `2026-12-31 23:59:59+00`.
/// A permission set as reasons name it: "permission set X", with " until <time>" if it ends.
pub(crate) fn set_source(name: &str, until: Option<i64>) -> String {
    match until {
        Some(t) => format!("permission set {name} until {}", timestamp_text(t)),
        None => format!("permission set {name}"),
    }
}

pub(crate) fn timestamp_text(micros: i64) -> String {
    let secs = micros.div_euclid(1_000_000);
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Days since 1970-01-01 (2000-01-01 is day 10957), then the civil date (H. Hinnant's
    // days_from_civil inverse).
    let z = days + 10_957 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}+00", rest / 3600, rest % 3600 / 60, rest % 60)
}

#[cfg(test)]
mod tests {
    use super::timestamp_text;

    #[test]
    fn instants_read_as_postgresql_writes_them_in_utc() {
        assert_eq!(timestamp_text(0), "2000-01-01 00:00:00+00");
        // SELECT extract(epoch FROM '2026-12-31 23:59:59.5+00'::timestamptz - '2000-01-01+00') * 1e6
        assert_eq!(timestamp_text(852_076_799_500_000), "2026-12-31 23:59:59+00");
        assert_eq!(timestamp_text(68_169_600_000_000), "2002-02-28 00:00:00+00");
        assert_eq!(timestamp_text(68_256_000_000_000), "2002-03-01 00:00:00+00");
        assert_eq!(timestamp_text(-86_400_000_000), "1999-12-31 00:00:00+00");
    }
}
