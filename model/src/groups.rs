//! Group membership: direct users, users of a role, users of a role and its subordinates,
//! and members of member groups, nested to any depth. Cycles are refused by the API; here
//! a visited set keeps a hand-made cycle from looping.

use std::collections::{BTreeMap, BTreeSet};

use crate::catalog::{GroupMember, Party};
use crate::users::Users;
use crate::roles::RoleTree;
use crate::{OwnerId, RoleId};

/// What `users_of` looks things up in.
pub(crate) struct UserIndex<'a> {
    pub tree: &'a RoleTree,
    pub users: &'a Users,
    pub members: &'a BTreeMap<OwnerId, Vec<Party>>,
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
                    stack.extend(members.get(&g).into_iter().flatten().copied());
                }
            }
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// Group -> its member parties.
pub(crate) fn member_lists(members: &[GroupMember]) -> BTreeMap<OwnerId, Vec<Party>> {
    let mut out: BTreeMap<OwnerId, Vec<Party>> = BTreeMap::new();
    for m in members {
        out.entry(m.group).or_default().push(m.member);
    }
    out
}
