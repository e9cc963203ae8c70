//! The role tree: one root, no cycles, and "strictly below" by tree position, never by
//! comparing path strings (so role H2 is not above H22).

use std::collections::BTreeSet;

use crate::catalog::Role;
use crate::grouped::ranges_hold;
use crate::RoleId;

/// Roles as positions in one sorted array, children in one flat array: 5,000 roles in three
/// B-trees (parents, children, names) with a vector and a string each were 10,000
/// allocations of every backend's model at xl-org scale.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "RoleTreeRecord")]
pub struct RoleTree {
    /// Ascending.
    ids: Vec<RoleId>,
    /// The position of each role's parent; `NO_PARENT` for the root.
    parents: Vec<u32>,
    names: Vec<compact_str::CompactString>,
    /// `children[child_starts[i]..child_starts[i + 1]]` are the positions of `ids[i]`'s children.
    child_starts: Vec<u32>,
    children: Vec<u32>,
}

const NO_PARENT: u32 = u32::MAX;

/// `RoleTree` as bytes hold it.
#[derive(serde::Serialize, serde::Deserialize)]
struct RoleTreeRecord {
    ids: Vec<RoleId>,
    parents: Vec<u32>,
    names: Vec<compact_str::CompactString>,
    child_starts: Vec<u32>,
    children: Vec<u32>,
}

#[cfg(test)]
impl From<RoleTree> for RoleTreeRecord {
    fn from(t: RoleTree) -> RoleTreeRecord {
        RoleTreeRecord { ids: t.ids, parents: t.parents, names: t.names, child_starts: t.child_starts, children: t.children }
    }
}

impl TryFrom<RoleTreeRecord> for RoleTree {
    type Error = &'static str;

    /// Only a tree: ids ascending, positions in range, each role its parent's child exactly
    /// once, every role reached from one root (walks up and down then end: bytes that are not
    /// a tree read as no model, never as a loop).
    fn try_from(r: RoleTreeRecord) -> Result<RoleTree, &'static str> {
        let n = r.ids.len();
        let shaped = r.parents.len() == n
            && r.names.len() == n
            && ranges_hold(&r.child_starts, n, r.children.len(), 0)
            && r.ids.windows(2).all(|w| w[0] < w[1])
            && r.parents.iter().all(|&p| p == NO_PARENT || (p as usize) < n)
            && r.children.iter().all(|&c| (c as usize) < n);
        if !shaped {
            return Err("the role tree's arrays do not hold together");
        }
        let tree = RoleTree { ids: r.ids, parents: r.parents, names: r.names, child_starts: r.child_starts, children: r.children };
        // Each child listed once, under its own parent, and as many as there are roles with a
        // parent: every such role is its parent's child exactly once (red team of 501bb0a: a
        // child listed twice stood in for a role missing from every list, which could then be
        // its own parent, and a decision walking up from it looped).
        let mut listed = vec![false; n];
        let consistent = (0..n).all(|i| tree.children_at(i).iter().all(|&c| tree.parents[c as usize] == i as u32))
            && tree.children.iter().all(|&c| !std::mem::replace(&mut listed[c as usize], true))
            && tree.children.len() == tree.parents.iter().filter(|&&p| p != NO_PARENT).count();
        let roots: Vec<usize> = (0..n).filter(|&i| tree.parents[i] == NO_PARENT).collect();
        let reached = match roots.as_slice() {
            [] => n == 0,
            [root] => tree.below_or_self_at(*root).len() == n,
            _ => false,
        };
        if consistent && reached {
            Ok(tree)
        } else {
            Err("the role tree is not a tree")
        }
    }
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
        let mut sorted: Vec<&Role> = roles.iter().collect();
        sorted.sort_by_key(|r| r.id);
        sorted.dedup_by_key(|r| r.id);
        let ids: Vec<RoleId> = sorted.iter().map(|r| r.id).collect();
        let at = |id: RoleId| ids.binary_search(&id).ok().map(|i| i as u32);
        // The first such role in the catalog's order is the one the error names.
        if let Some(r) = roles.iter().find(|r| r.parent.is_some_and(|p| at(p).is_none())) {
            return Err(RoleTreeError::MissingParent(r.name.clone()));
        }
        let parents: Vec<u32> = sorted.iter().map(|r| r.parent.and_then(at).unwrap_or(NO_PARENT)).collect();
        let mut pairs: Vec<(u32, u32)> =
            parents.iter().enumerate().filter(|(_, &p)| p != NO_PARENT).map(|(c, &p)| (p, c as u32)).collect();
        pairs.sort_unstable();
        let mut child_starts = Vec::with_capacity(ids.len() + 1);
        let mut children = Vec::with_capacity(pairs.len());
        let mut next = pairs.iter().peekable();
        for i in 0..ids.len() as u32 {
            child_starts.push(children.len() as u32);
            while let Some(&(_, c)) = next.next_if(|(p, _)| *p == i) {
                children.push(c);
            }
        }
        child_starts.push(children.len() as u32);
        let names = sorted.iter().map(|r| compact_str::CompactString::from(r.name.as_str())).collect();
        let tree = RoleTree { ids, parents, names, child_starts, children };
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

    fn at(&self, role: RoleId) -> Option<usize> {
        self.ids.binary_search(&role).ok()
    }

    fn children_at(&self, i: usize) -> &[u32] {
        &self.children[self.child_starts[i] as usize..self.child_starts[i + 1] as usize]
    }

    /// Positions at or below position `i`.
    fn below_or_self_at(&self, i: usize) -> Vec<usize> {
        let mut out = vec![i];
        let mut next = 0;
        // A tree's walk down meets each position once; `build` and the decode check that it is one.
        while next < out.len() && out.len() <= self.ids.len() {
            let at = out[next];
            out.extend(self.children_at(at).iter().map(|&c| c as usize));
            next += 1;
        }
        out
    }

    pub fn contains(&self, role: RoleId) -> bool {
        self.at(role).is_some()
    }

    pub fn name(&self, role: RoleId) -> &str {
        self.at(role).map(|i| self.names[i].as_str()).unwrap_or("?")
    }

    pub fn parent(&self, role: RoleId) -> Option<RoleId> {
        let p = self.parents[self.at(role)?];
        (p != NO_PARENT).then(|| self.ids[p as usize])
    }

    /// Every role strictly below `role`.
    pub fn strictly_below(&self, role: RoleId) -> BTreeSet<RoleId> {
        let mut out = self.below_or_self(role);
        out.remove(&role);
        out
    }

    fn below_or_self(&self, role: RoleId) -> BTreeSet<RoleId> {
        match self.at(role) {
            Some(i) => self.below_or_self_at(i).into_iter().map(|j| self.ids[j]).collect(),
            None => BTreeSet::from([role]),
        }
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

    fn read_back(t: &RoleTree, edit: impl FnOnce(&mut RoleTreeRecord)) -> Option<RoleTree> {
        let mut record = RoleTreeRecord::from(t.clone());
        edit(&mut record);
        postcard::from_bytes::<RoleTree>(&postcard::to_allocvec(&record).unwrap()).ok()
    }

    /// Walks up and down the tree end only on a tree (red team of 9f2c67e: a parent cycle in
    /// forged bytes made a decision loop forever).
    #[test]
    fn only_a_tree_reads_back() {
        let t = RoleTree::build(&[role(1, "A", None), role(2, "B", Some(1)), role(3, "C", Some(2)), role(4, "D", Some(1))]).unwrap();
        let back = read_back(&t, |_| ()).expect("a tree");
        assert!(back.is_strictly_above(1, 3) && back.parent(4) == Some(1) && back.name(3) == "C");
        assert!(read_back(&t, |r| r.parents[1] = 1).is_none(), "a role its own parent");
        assert!(read_back(&t, |r| (r.parents[1], r.parents[2]) = (2, 1)).is_none(), "two roles each other's parent");
        assert!(read_back(&t, |r| r.parents[0] = 3).is_none(), "no root");
        assert!(read_back(&t, |r| r.parents[3] = NO_PARENT).is_none(), "two roots");
        assert!(read_back(&t, |r| r.children[0] = 3).is_none(), "a child whose parent is another");
        assert!(read_back(&t, |r| r.children[1] = 9).is_none(), "a child out of range");
        assert!(read_back(&t, |r| r.parents[2] = 7).is_none(), "a parent out of range");
        assert!(read_back(&t, |r| r.child_starts[1] = 9).is_none(), "a range out of range");
        assert!(read_back(&t, |r| r.ids.swap(0, 1)).is_none(), "ids out of order");
        assert!(read_back(&t, |r| { r.names.pop(); }).is_none(), "a name missing");
        // 1 (root) with leaves 2 and 3: listing 2 twice in place of 3 leaves 3 in no list, free
        // to be its own parent, with as many children listed as roles with a parent and as
        // many positions walked down as roles.
        let leaves = RoleTree::build(&[role(1, "A", None), role(2, "B", Some(1)), role(3, "C", Some(1))]).unwrap();
        assert!(read_back(&leaves, |_| ()).is_some());
        assert!(read_back(&leaves, |r| (r.children[1], r.parents[2]) = (1, 2)).is_none(), "a child listed twice, another its own parent");
        assert!(read_back(&leaves, |r| r.children[1] = 1).is_none(), "a child listed twice, another in no list");
        assert!(read_back(&RoleTree::build(&[]).unwrap(), |_| ()).is_some(), "no roles");
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
