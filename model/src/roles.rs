//! The role tree: one root, no cycles, and "strictly below" by tree position, never by
//! comparing path strings (so role H2 is not above H22).

use std::collections::{BTreeMap, BTreeSet};

use crate::catalog::Role;
use crate::RoleId;

#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct RoleTree {
    parent: BTreeMap<RoleId, Option<RoleId>>,
    children: BTreeMap<RoleId, Vec<RoleId>>,
    names: BTreeMap<RoleId, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoleTreeError {
    #[error("the role hierarchy has {0} root roles; it must have exactly one")]
    RootCount(usize),
    #[error("role {0} has a parent that does not exist")]
    MissingParent(String),
    #[error("the role hierarchy has a cycle through role {0}")]
    Cycle(String),
}

impl RoleTree {
    pub fn build(roles: &[Role]) -> Result<RoleTree, RoleTreeError> {
        let mut tree = RoleTree::default();
        for r in roles {
            tree.parent.insert(r.id, r.parent);
            tree.names.insert(r.id, r.name.clone());
            tree.children.entry(r.id).or_default();
        }
        for r in roles {
            if let Some(p) = r.parent {
                tree.children.get_mut(&p).ok_or_else(|| RoleTreeError::MissingParent(r.name.clone()))?.push(r.id);
            }
        }
        let roots = roles.iter().filter(|r| r.parent.is_none()).count();
        if !roles.is_empty() && roots != 1 {
            return Err(RoleTreeError::RootCount(roots));
        }
        // With one root and every parent present, a role not reachable from the root sits on a cycle.
        let reachable = roles.iter().find(|r| r.parent.is_none()).map(|r| tree.below_or_self(r.id)).unwrap_or_default();
        if let Some(r) = roles.iter().find(|r| !reachable.contains(&r.id)) {
            return Err(RoleTreeError::Cycle(r.name.clone()));
        }
        Ok(tree)
    }

    pub fn contains(&self, role: RoleId) -> bool {
        self.parent.contains_key(&role)
    }

    pub fn name(&self, role: RoleId) -> &str {
        self.names.get(&role).map(String::as_str).unwrap_or("?")
    }

    pub fn parent(&self, role: RoleId) -> Option<RoleId> {
        self.parent.get(&role).copied().flatten()
    }

    /// Every role strictly below `role`.
    pub fn strictly_below(&self, role: RoleId) -> BTreeSet<RoleId> {
        let mut out = self.below_or_self(role);
        out.remove(&role);
        out
    }

    fn below_or_self(&self, role: RoleId) -> BTreeSet<RoleId> {
        let mut out = BTreeSet::new();
        let mut stack = vec![role];
        while let Some(r) = stack.pop() {
            if out.insert(r) {
                stack.extend(self.children.get(&r).into_iter().flatten().copied());
            }
        }
        out
    }

    /// Every role at or above one of `roles`: the roles whose subtree holds one of them.
    pub fn at_or_above(&self, roles: impl IntoIterator<Item = RoleId>) -> BTreeSet<RoleId> {
        let mut out = BTreeSet::new();
        for r in roles {
            let mut at = Some(r);
            // A role already there has its ancestors there too.
            while let Some(role) = at.filter(|&x| out.insert(x)) {
                at = self.parent(role);
            }
        }
        out
    }

    /// Whether `upper` is a strict ancestor of `lower`, found by walking up from `lower`.
    pub fn is_strictly_above(&self, upper: RoleId, lower: RoleId) -> bool {
        let mut cur = self.parent(lower);
        while let Some(r) = cur {
            if r == upper {
                return true;
            }
            cur = self.parent(r);
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(id: RoleId, name: &str, parent: Option<RoleId>) -> Role {
        Role { id, name: name.into(), parent }
    }

    #[test]
    fn prefix_named_roles_are_not_related() {
        // H2 and H22 are siblings under H1: neither is above the other, whatever their names.
        let t = RoleTree::build(&[role(1, "H1", None), role(2, "H2", Some(1)), role(22, "H22", Some(1)), role(3, "H3", Some(2))]).unwrap();
        assert!(!t.is_strictly_above(2, 22));
        assert!(!t.is_strictly_above(22, 2));
        assert!(t.is_strictly_above(2, 3));
        assert!(t.is_strictly_above(1, 3));
        assert_eq!(t.strictly_below(2), BTreeSet::from([3]));
        assert!(t.strictly_below(22).is_empty());
        assert_eq!(t.at_or_above([3, 22]), BTreeSet::from([1, 2, 3, 22]));
        assert_eq!(t.at_or_above([2]), BTreeSet::from([1, 2]));
        assert!(t.at_or_above([]).is_empty());
    }

    #[test]
    fn a_role_is_not_above_itself() {
        let t = RoleTree::build(&[role(1, "CEO", None)]).unwrap();
        assert!(!t.is_strictly_above(1, 1));
        assert!(t.strictly_below(1).is_empty());
    }

    #[test]
    fn deep_chain() {
        let roles: Vec<Role> = (1..=200).map(|i| role(i, &format!("R{i}"), if i == 1 { None } else { Some(i - 1) })).collect();
        let t = RoleTree::build(&roles).unwrap();
        assert_eq!(t.strictly_below(1).len(), 199);
        assert!(t.is_strictly_above(1, 200));
        assert!(!t.is_strictly_above(200, 1));
        assert_eq!(t.strictly_below(150), (151..=200).collect());
    }

    #[test]
    fn invalid_trees_are_refused() {
        let cases: &[(&[Role], RoleTreeError)] = &[
            (&[role(1, "A", None), role(2, "B", None)], RoleTreeError::RootCount(2)),
            (&[role(1, "A", Some(2)), role(2, "B", Some(1))], RoleTreeError::RootCount(0)),
            (&[role(1, "A", None), role(2, "B", Some(3)), role(3, "C", Some(2))], RoleTreeError::Cycle("B".into())),
            (&[role(1, "A", None), role(2, "B", Some(9))], RoleTreeError::MissingParent("B".into())),
        ];
        for (roles, expected) in cases {
            assert_eq!(RoleTree::build(roles).unwrap_err(), *expected);
        }
    }
}
