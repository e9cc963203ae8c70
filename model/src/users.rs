//! The users by owner id, as one vector sorted by id: 20,000 users in a B-tree of
//! `(id, User)` entries were two thirds of a decoded model's heap (its nodes half full after
//! a decode, which inserts one entry at a time) and most of the time a backend took to read a
//! published model (issue 28, item 1).

use serde::{Deserialize, Serialize};

use crate::catalog::User;
use crate::grouped::Grouped;
use crate::{OwnerId, RoleId};

/// The users by id, with their positions ordered by name and grouped by role: positions
/// (`u32`) rather than ids, and one array per index rather than a vector per role, halve what
/// the indexes hold.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(try_from = "UsersRecord")]
pub(crate) struct Users {
    /// Ascending ids.
    rows: Vec<User>,
    /// Positions in `rows`, ordered by name.
    by_name: Vec<u32>,
    /// The positions of each role's users.
    by_role: Grouped<RoleId, u32>,
}

/// `Users` as bytes hold it.
#[derive(Serialize, Deserialize)]
struct UsersRecord {
    rows: Vec<User>,
    by_name: Vec<u32>,
    by_role: Grouped<RoleId, u32>,
}

/// Bytes whose users or indexes do not hold together (only a damaged or forged model): read
/// as no model at all, since every lookup here searches by id or follows a position.
#[derive(Debug)]
pub(crate) struct Inconsistent;

impl std::fmt::Display for Inconsistent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the users' indexes do not hold together")
    }
}

impl TryFrom<UsersRecord> for Users {
    type Error = Inconsistent;

    fn try_from(r: UsersRecord) -> Result<Users, Inconsistent> {
        let n = r.rows.len();
        // Each position exactly once (red team of 9f2c67e: indexes in range but not matching
        // the rows made a role's users or a name's user go missing).
        let permutation = |v: &[u32]| {
            let mut seen = vec![false; n];
            v.len() == n && v.iter().all(|&i| (i as usize) < n && !std::mem::replace(&mut seen[i as usize], true))
        };
        let ok = r.rows.windows(2).all(|w| w[0].owner_id < w[1].owner_id)
            && permutation(&r.by_name)
            && permutation(r.by_role.values())
            && r.by_name.windows(2).all(|w| r.rows[w[0] as usize].name <= r.rows[w[1] as usize].name)
            && r.by_role.groups().all(|(role, users)| users.iter().all(|&u| r.rows[u as usize].role == role));
        if ok {
            let mut r = r;
            // A decode grows a vector past a cautious first guess at its length (1 MiB of
            // elements) by doubling: a model of more users than that would keep up to twice
            // its users' memory.
            r.rows.shrink_to_fit();
            r.by_name.shrink_to_fit();
            Ok(Users { rows: r.rows, by_name: r.by_name, by_role: r.by_role })
        } else {
            Err(Inconsistent)
        }
    }
}

#[cfg(test)]
impl From<Users> for UsersRecord {
    fn from(u: Users) -> UsersRecord {
        UsersRecord { rows: u.rows, by_name: u.by_name, by_role: u.by_role }
    }
}

impl Users {
    /// `users` in any order, with distinct ids (the catalog's primary key).
    pub(crate) fn new(mut rows: Vec<User>) -> Users {
        rows.sort_unstable_by_key(|u| u.owner_id);
        debug_assert!(rows.windows(2).all(|w| w[0].owner_id < w[1].owner_id), "user ids are distinct");
        let mut by_name: Vec<u32> = (0..rows.len() as u32).collect();
        by_name.sort_by(|&a, &b| rows[a as usize].name.cmp(&rows[b as usize].name));
        let mut users = Users { rows, by_name, ..Users::default() };
        users.index_roles();
        users
    }

    fn index_roles(&mut self) {
        self.by_role = Grouped::new(self.rows.iter().enumerate().map(|(i, u)| (u.role, i as u32)).collect());
    }

    pub(crate) fn get(&self, id: &OwnerId) -> Option<&User> {
        self.rows.binary_search_by_key(id, |u| u.owner_id).ok().map(|i| &self.rows[i])
    }

    pub(crate) fn contains_key(&self, id: &OwnerId) -> bool {
        self.get(id).is_some()
    }

    pub(crate) fn len(&self) -> usize {
        self.rows.len()
    }

    /// In id order.
    pub(crate) fn values(&self) -> std::slice::Iter<'_, User> {
        self.rows.iter()
    }

    /// In ascending order.
    pub(crate) fn keys(&self) -> impl Iterator<Item = &OwnerId> + '_ {
        self.rows.iter().map(|u| &u.owner_id)
    }

    pub(crate) fn by_name(&self, name: &str) -> Option<&User> {
        let at = self.by_name.binary_search_by(|&i| self.rows[i as usize].name.as_str().cmp(name)).ok()?;
        Some(&self.rows[self.by_name[at] as usize])
    }

    /// The roles that have users, ascending.
    pub(crate) fn roles(&self) -> impl Iterator<Item = RoleId> + '_ {
        self.by_role.keys().iter().copied()
    }

    /// The ids of `role`'s users, ascending.
    pub(crate) fn of_role(&self, role: RoleId) -> impl Iterator<Item = OwnerId> + '_ {
        self.by_role.of(role).iter().map(|&i| self.rows[i as usize].owner_id)
    }

    /// The same users (ids and names) with other roles or flags: names keep their order,
    /// roles are grouped again.
    pub(crate) fn replace_same_names(&mut self, users: Vec<User>) {
        debug_assert!(users.len() == self.rows.len() && users.iter().zip(&self.rows).all(|(u, m)| u.owner_id == m.owner_id && u.name == m.name));
        let moved = users.iter().zip(&self.rows).any(|(u, m)| u.role != m.role);
        self.rows = users;
        if moved {
            self.index_roles();
        }
    }
}

impl std::ops::Index<&OwnerId> for Users {
    type Output = User;

    fn index(&self, id: &OwnerId) -> &User {
        self.get(id).expect("a user the model holds")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: OwnerId, name: &str, role: RoleId) -> User {
        User { owner_id: id, name: name.into(), role, is_admin: false, is_active: true }
    }

    fn read_back(users: &Users, edit: impl FnOnce(&mut UsersRecord)) -> Option<Users> {
        let mut record = UsersRecord::from(users.clone());
        edit(&mut record);
        postcard::from_bytes::<Users>(&postcard::to_allocvec(&record).unwrap()).ok()
    }

    #[test]
    fn indexes_find_users_by_id_name_and_role() {
        let users = Users::new(vec![user(5, "ann", 2), user(1, "zed", 1), user(3, "bob", 2)]);
        assert_eq!(users.keys().copied().collect::<Vec<_>>(), [1, 3, 5]);
        assert_eq!(users.by_name("bob").map(|u| u.owner_id), Some(3));
        assert!(users.by_name("bo").is_none());
        assert_eq!(users.of_role(2).collect::<Vec<_>>(), [3, 5]);
        assert_eq!(users.of_role(1).collect::<Vec<_>>(), [1]);
        assert!(users.of_role(7).next().is_none());
        assert!(users.get(&4).is_none());
        let mut moved = users.clone();
        moved.replace_same_names(vec![user(1, "zed", 2), user(3, "bob", 1), user(5, "ann", 2)]);
        assert_eq!(moved.of_role(2).collect::<Vec<_>>(), [1, 5]);
        assert_eq!(moved.of_role(1).collect::<Vec<_>>(), [3]);
        assert_eq!(moved.by_name("zed").map(|u| u.role), Some(2));
    }

    #[test]
    fn only_consistent_indexes_read_back() {
        let users = Users::new(vec![user(1, "a", 1), user(2, "b", 2)]);
        assert!(read_back(&users, |_| ()).is_some());
        assert!(read_back(&users, |r| r.rows.swap(0, 1)).is_none(), "ids out of order");
        assert!(read_back(&users, |r| r.by_name[1] = 2).is_none(), "a name's position out of range");
        assert!(read_back(&users, |r| r.by_name.pop().map(drop).unwrap_or(())).is_none(), "a name missing");
        assert!(read_back(&users, |r| r.by_role.parts_mut().2[0] = 9).is_none(), "a role's position out of range");
        assert!(read_back(&users, |r| r.by_role.parts_mut().1[1] = 5).is_none(), "a role's range out of range");
        assert!(read_back(&users, |r| { r.by_role.parts_mut().1.pop(); }).is_none(), "a role's range missing");
        assert!(read_back(&users, |r| r.by_role.parts_mut().0.swap(0, 1)).is_none(), "roles out of order");
        let users = Users::new(vec![user(1, "a", 1), user(2, "b", 2), user(3, "c", 2)]);
        assert!(read_back(&users, |_| ()).is_some());
        assert!(read_back(&users, |r| r.by_name.reverse()).is_none(), "names out of order");
        assert!(read_back(&users, |r| r.by_name[2] = 1).is_none(), "a name twice, another missing");
        assert!(read_back(&users, |r| *r.by_role.parts_mut().2 = vec![1, 0, 2]).is_none(), "a role's users not of that role");
        assert!(read_back(&users, |r| *r.by_role.parts_mut().2 = vec![0, 2, 1]).is_none(), "a role's users out of order");
        assert!(read_back(&users, |r| r.rows[0].role = 2).is_none(), "a user's role not its index's");
        assert!(read_back(&users, |r| { let (k, s, _) = r.by_role.parts_mut(); (*k, *s) = (vec![1, 2, 3], vec![0, 1, 3, 3]) }).is_none(), "a role without users");
    }
}
