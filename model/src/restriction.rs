//! Restriction rules (DESIGN §9): for the users a rule applies to, a module's records are
//! reachable only if a column's value, as text, is one of the rule's values, on top of
//! everything else. Several rules for one user on one module combine by OR; administrators
//! are exempt, View All and Edit All are not.
//!
//! A restriction reads the record's own columns, not its owner, so it is a filter of its
//! own (`restriction_filter`), which a policy of its own applies beside the owner scope; a
//! record's decision is refined by the same rules (`restrict`).

use crate::catalog::{RestrictionRule, Restricted};
use crate::users::UserRef;
use crate::decision::{Decision, Reason};
use crate::filter::{Filter, Row};
use crate::{Model, OwnerId};

impl Model {
    /// The restriction rules of `module` that apply to `user` (none for an administrator, or a
    /// user who cannot act: they reach nothing anyway).
    pub fn restrictions_of(&self, user: OwnerId, module: &str) -> Vec<&RestrictionRule> {
        let Some(u) = self.users.get(&user).filter(|u| u.is_active && !u.is_admin) else { return Vec::new() };
        self.catalog.restriction_rules.iter().filter(|r| r.module == module && self.applies_to(r.applies_to, u)).collect()
    }

    fn applies_to(&self, who: Restricted, u: UserRef<'_>) -> bool {
        match who {
            Restricted::Role(r) => u.role == r,
            Restricted::RoleAndSubordinates(r) => u.role == r || self.tree.is_strictly_above(r, u.role),
            Restricted::Group(g) => self.groups_of(u.owner_id).any(|x| x == g),
            Restricted::PermissionSet(s) => self.set_holders.get(&s).is_some_and(|h| h.binary_search(&u.owner_id).is_ok()),
        }
    }

    /// Which records of `module` `user` may reach at all, by their own columns: every record
    /// when no rule applies, else those some applying rule allows. Nothing for a user who
    /// cannot act (fail closed; the owner scope refuses them too).
    pub fn restriction_filter(&self, user: OwnerId, module: &str) -> Filter {
        if !self.users.get(&user).is_some_and(|u| u.is_active) {
            return Filter::Const(false);
        }
        let rules = self.restrictions_of(user, module);
        if rules.is_empty() {
            return Filter::Const(true);
        }
        Filter::or(rules.into_iter().map(|r| Filter::one_of(&r.column, &r.allowed)))
    }

    /// `decided` (a decision on a `module` record), refused when the record's columns (`row`)
    /// fall outside every restriction rule that applies to `user`.
    pub fn restrict(&self, user: Option<OwnerId>, module: &str, decided: Decision, row: &impl Row) -> Decision {
        let Some(user) = user.filter(|_| decided.allowed) else { return decided };
        let rules = self.restrictions_of(user, module);
        if rules.is_empty() || Filter::or(rules.iter().map(|r| Filter::one_of(&r.column, &r.allowed))).admits(row) {
            return decided;
        }
        let rules = rules.iter().map(|r| format!("rule {} for {} ({} in {})", r.id, self.describe_restricted(r.applies_to), r.column, r.allowed.join(", ")));
        Decision::deny(Reason::Restricted { rules: rules.collect::<Vec<_>>().join("; ") })
    }

    /// "role X", "role X and subordinates", "group G", "permission set S".
    pub fn describe_restricted(&self, who: Restricted) -> String {
        match who {
            Restricted::Role(r) => format!("role {}", self.tree.name(r)),
            Restricted::RoleAndSubordinates(r) => format!("role {} and subordinates", self.tree.name(r)),
            Restricted::Group(g) => format!("group {}", self.owner_name(g).unwrap_or("?")),
            Restricted::PermissionSet(s) => {
                format!("permission set {}", self.catalog.permission_sets.iter().find(|p| p.id == s).map_or("?", |p| p.name.as_str()))
            }
        }
    }
}
