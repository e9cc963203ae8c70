//! Group membership: direct users, users of a role, users of a role and its subordinates,
//! and members of member groups, nested to any depth. Cycles are refused by the API; here
//! a visited set keeps a hand-made cycle from looping.

use std::collections::BTreeSet;

use crate::catalog::{GroupMember, Party};
use crate::grouped::Grouped;
use crate::users::Users;
use crate::roles::RoleTree;
use crate::{OwnerId, RoleId};

/// What `users_of` looks things up in.
pub(crate) struct UserIndex<'a> {
    pub tree: &'a RoleTree,
    pub users: &'a Users,
    pub members: &'a Members,
}

/// The users a party stands for, sorted and distinct.
pub(crate) fn users_of(party: Party, index: &UserIndex) -> Vec<OwnerId> {
    let UserIndex { tree, users, members } = index;
    let of_role = |r: &RoleId| users.of_role(*r);
    let mut out = Vec::new();
    let mut seen_groups = BTreeSet::new();
    let mut stack = vec![party];
    while let Some(p) = stack.pop() {
        match p {
            Party::User(u) => {
                if users.contains_key(&u) {
                    out.push(u);
                }
            }
            Party::Role(r) => out.extend(of_role(&r)),
            Party::RoleAndSubordinates(r) => {
                out.extend(of_role(&r));
                out.extend(tree.strictly_below(r).iter().flat_map(of_role));
            }
            Party::Group(g) => {
                if seen_groups.insert(g) {
                    stack.extend(members.of(g).iter().copied());
                }
            }
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// The member parties of each group, as flat arrays (`Grouped`): 2,000 groups each with
/// its own vector in a map were a tenth of an xl-org model's heap.
pub(crate) type Members = Grouped<OwnerId, Party>;

/// Group -> its member parties.
pub(crate) fn member_lists(members: &[GroupMember]) -> Members {
    Grouped::new(members.iter().map(|m| (m.group, m.member)).collect())
}
