//! Group membership: direct users, users of a role, users of a role and its subordinates,
//! and members of member groups, nested to any depth. Cycles are refused by the API; here
//! a visited set keeps a hand-made cycle from looping.

use std::collections::{BTreeMap, BTreeSet};

use crate::catalog::{GroupMember, Party, User};
use crate::roles::RoleTree;
use crate::OwnerId;

/// The users a party stands for.
pub(crate) fn users_of(
    party: Party,
    tree: &RoleTree,
    users: &BTreeMap<OwnerId, User>,
    members: &BTreeMap<OwnerId, Vec<Party>>,
) -> BTreeSet<OwnerId> {
    let mut out = BTreeSet::new();
    let mut seen_groups = BTreeSet::new();
    let mut stack = vec![party];
    while let Some(p) = stack.pop() {
        match p {
            Party::User(u) => {
                if users.contains_key(&u) {
                    out.insert(u);
                }
            }
            Party::Role(r) => out.extend(users.values().filter(|u| u.role == r).map(|u| u.owner_id)),
            Party::RoleAndSubordinates(r) => {
                let mut roles = tree.strictly_below(r);
                roles.insert(r);
                out.extend(users.values().filter(|u| roles.contains(&u.role)).map(|u| u.owner_id));
            }
            Party::Group(g) => {
                if seen_groups.insert(g) {
                    stack.extend(members.get(&g).into_iter().flatten().copied());
                }
            }
        }
    }
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
