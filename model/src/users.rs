//! The users by owner id, as one vector sorted by id: 20,000 users in a B-tree of
//! `(id, User)` entries were two thirds of a decoded model's heap (its nodes half full after
//! a decode, which inserts one entry at a time) and most of the time a backend took to read a
//! published model (issue 28, item 1). Their names sit in one buffer: a name held in each
//! user (24 bytes inline) made a user 48 bytes, half of them the name's slot.

use serde::ser::SerializeStruct;
use serde::{Deserialize, Serialize, Serializer};

use crate::catalog::User;
use crate::grouped::Grouped;
use crate::{OwnerId, RoleId};

/// A user as the model holds it: what `catalog::User` says, with its name in `Users::names`
/// (24 bytes).
#[derive(Clone, Copy, Debug)]
struct Row {
    owner_id: OwnerId,
    role: RoleId,
    /// Where its name starts in `Users::names`; it ends where the next user's starts.
    name_start: u32,
    is_admin: bool,
    is_active: bool,
}

/// A user the model holds, as decisions read it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UserRef<'a> {
    pub owner_id: OwnerId,
    pub name: &'a str,
    pub role: RoleId,
    pub is_admin: bool,
    pub is_active: bool,
}

impl UserRef<'_> {
    /// The user as the catalog holds it.
    pub fn to_user(self) -> User {
        User { owner_id: self.owner_id, name: self.name.into(), role: self.role, is_admin: self.is_admin, is_active: self.is_active }
    }
}

/// A `Row` as bytes hold it: its name's length rather than its start (a byte for most names,
/// where a start takes three).
#[derive(Clone, Copy, Serialize, Deserialize)]
struct RowRecord {
    owner_id: OwnerId,
    role: RoleId,
    name_len: u32,
    is_admin: bool,
    is_active: bool,
}

/// The users by id, with their positions ordered by name and grouped by role: positions
/// (`u32`) rather than ids, and one array per index rather than a vector per role, halve what
/// the indexes hold.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(try_from = "UsersRecord")]
pub(crate) struct Users {
    /// Ascending ids.
    rows: Vec<Row>,
    /// The users' names, in the order of `rows`.
    names: String,
    /// Positions in `rows`, ordered by name.
    by_name: Vec<u32>,
    /// The positions of each role's users.
    by_role: Grouped<RoleId, u32>,
}

/// `Users` as bytes hold it.
#[derive(Deserialize)]
#[cfg_attr(test, derive(Serialize))]
struct UsersRecord {
    rows: Vec<RowRecord>,
    names: String,
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
        // The names' lengths add up to the buffer, each name starting at a character boundary:
        // a slice elsewhere would panic. (The starts, sums of lengths, are in order and within
        // the buffer, so they fit a `u32` once the buffer does.)
        // Names are not empty (nor, below, the same twice: the catalog's names are unique
        // and not empty, and a name must find one user).
        let mut at: u64 = 0;
        let mut empty = false;
        let rows: Vec<Row> = r
            .rows
            .into_iter()
            .map(|x| {
                let name_start = at as u32;
                at = at.saturating_add(u64::from(x.name_len));
                empty |= x.name_len == 0;
                Row { owner_id: x.owner_id, role: x.role, name_start, is_admin: x.is_admin, is_active: x.is_active }
            })
            .collect();
        let names_hold = !empty
            && at == r.names.len() as u64
            && u32::try_from(r.names.len()).is_ok()
            && rows.iter().all(|u| r.names.is_char_boundary(u.name_start as usize));
        if !(names_hold && rows.windows(2).all(|w| w[0].owner_id < w[1].owner_id)) {
            return Err(Inconsistent);
        }
        let mut users = Users { rows, names: r.names, by_name: r.by_name, by_role: r.by_role };
        let ok = permutation(&users.by_name)
            && permutation(users.by_role.values())
            && users.by_name.windows(2).all(|w| users.name_at(w[0] as usize) < users.name_at(w[1] as usize))
            && users.by_role.groups().all(|(role, at)| at.iter().all(|&u| users.rows[u as usize].role == role));
        if ok {
            // A decode grows a vector past a cautious first guess at its length (1 MiB of
            // elements) by doubling: a model of more users than that would keep up to twice
            // its users' memory.
            users.rows.shrink_to_fit();
            users.names.shrink_to_fit();
            users.by_name.shrink_to_fit();
            Ok(users)
        } else {
            Err(Inconsistent)
        }
    }
}

impl Users {
    fn records(&self) -> impl ExactSizeIterator<Item = RowRecord> + '_ {
        (0..self.rows.len()).map(|i| {
            let Row { owner_id, role, is_admin, is_active, .. } = self.rows[i];
            RowRecord { owner_id, role, name_len: self.name_at(i).len() as u32, is_admin, is_active }
        })
    }
}

/// As `UsersRecord`, written straight from the users (no copy of them).
impl Serialize for Users {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        struct Records<'a>(&'a Users);
        impl Serialize for Records<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_seq(self.0.records())
            }
        }
        let mut record = s.serialize_struct("UsersRecord", 4)?;
        record.serialize_field("rows", &Records(self))?;
        record.serialize_field("names", &self.names)?;
        record.serialize_field("by_name", &self.by_name)?;
        record.serialize_field("by_role", &self.by_role)?;
        record.end()
    }
}

#[cfg(test)]
impl From<Users> for UsersRecord {
    fn from(u: Users) -> UsersRecord {
        UsersRecord { rows: u.records().collect(), names: u.names, by_name: u.by_name, by_role: u.by_role }
    }
}

impl Users {
    /// `users` in any order, with distinct ids (the catalog's primary key).
    pub(crate) fn new(mut users: Vec<User>) -> Users {
        users.sort_unstable_by_key(|u| u.owner_id);
        debug_assert!(users.windows(2).all(|w| w[0].owner_id < w[1].owner_id), "user ids are distinct");
        let mut names = String::with_capacity(users.iter().map(|u| u.name.len()).sum());
        let rows = users
            .iter()
            .map(|u| {
                let name_start = u32::try_from(names.len()).expect("users' names within 4 GiB");
                names.push_str(&u.name);
                Row { owner_id: u.owner_id, role: u.role, name_start, is_admin: u.is_admin, is_active: u.is_active }
            })
            .collect();
        let mut users = Users { rows, names, ..Users::default() };
        let mut by_name: Vec<u32> = (0..users.rows.len() as u32).collect();
        by_name.sort_by(|&a, &b| users.name_at(a as usize).cmp(users.name_at(b as usize)));
        users.by_name = by_name;
        users.index_roles();
        users
    }

    fn index_roles(&mut self) {
        self.by_role = Grouped::new(self.rows.iter().enumerate().map(|(i, u)| (u.role, i as u32)).collect());
    }

    fn name_at(&self, i: usize) -> &str {
        let end = self.rows.get(i + 1).map_or(self.names.len(), |next| next.name_start as usize);
        &self.names[self.rows[i].name_start as usize..end]
    }

    fn at(&self, i: usize) -> UserRef<'_> {
        let Row { owner_id, role, is_admin, is_active, .. } = self.rows[i];
        UserRef { owner_id, name: self.name_at(i), role, is_admin, is_active }
    }

    pub(crate) fn get(&self, id: &OwnerId) -> Option<UserRef<'_>> {
        self.rows.binary_search_by_key(id, |u| u.owner_id).ok().map(|i| self.at(i))
    }

    /// A user the model holds (one a decision or a compile already found).
    pub(crate) fn held(&self, id: &OwnerId) -> UserRef<'_> {
        self.get(id).expect("a user the model holds")
    }

    pub(crate) fn contains_key(&self, id: &OwnerId) -> bool {
        self.rows.binary_search_by_key(id, |u| u.owner_id).is_ok()
    }

    pub(crate) fn len(&self) -> usize {
        self.rows.len()
    }

    /// In id order.
    pub(crate) fn values(&self) -> impl ExactSizeIterator<Item = UserRef<'_>> + '_ {
        (0..self.rows.len()).map(|i| self.at(i))
    }

    /// In ascending order.
    pub(crate) fn keys(&self) -> impl Iterator<Item = &OwnerId> + '_ {
        self.rows.iter().map(|u| &u.owner_id)
    }

    pub(crate) fn by_name(&self, name: &str) -> Option<UserRef<'_>> {
        let at = self.by_name.binary_search_by(|&i| self.name_at(i as usize).cmp(name)).ok()?;
        Some(self.at(self.by_name[at] as usize))
    }

    /// The roles that have users, ascending.
    pub(crate) fn roles(&self) -> impl Iterator<Item = RoleId> + '_ {
        self.by_role.keys().iter().copied()
    }

    /// The ids of `role`'s users, ascending.
    pub(crate) fn of_role(&self, role: RoleId) -> impl Iterator<Item = OwnerId> + '_ {
        self.by_role.of(role).iter().map(|&i| self.rows[i as usize].owner_id)
    }

    /// Whether every one of `rows` is a user held by the same name (distinct ids).
    pub(crate) fn hold_by_name(&self, rows: &[User]) -> bool {
        rows.iter().all(|u| self.get(&u.owner_id).is_some_and(|m| m.name == &*u.name))
    }

    /// Users `rows`, each held by the same name (`hold_by_name`), with other roles or flags;
    /// every other user as it is. Only the moved users are grouped by role again, not all of
    /// them: a commit that changed a few users of 20,000 (issue 28, item 2).
    pub(crate) fn set_in_place(&mut self, rows: &[User]) {
        let (mut gone, mut added) = (Vec::new(), Vec::new());
        for u in rows {
            let i = self.rows.binary_search_by_key(&u.owner_id, |r| r.owner_id).expect("a user the model holds");
            debug_assert_eq!(self.name_at(i), &*u.name);
            let row = &mut self.rows[i];
            if row.role != u.role {
                gone.push((row.role, i as u32));
                added.push((u.role, i as u32));
            }
            (row.role, row.is_admin, row.is_active) = (u.role, u.is_admin, u.is_active);
        }
        if !gone.is_empty() {
            self.by_role = self.by_role.changed(gone, added);
        }
    }

    /// The same users (ids and names, in id order) with other roles or flags: names keep
    /// their order, roles are grouped again.
    pub(crate) fn replace_same_names(&mut self, users: Vec<User>) {
        debug_assert!(users.len() == self.rows.len() && users.iter().zip(self.values()).all(|(u, m)| u.owner_id == m.owner_id && u.name == m.name));
        let mut moved = false;
        for (row, u) in self.rows.iter_mut().zip(users) {
            moved |= row.role != u.role;
            (row.role, row.is_admin, row.is_active) = (u.role, u.is_admin, u.is_active);
        }
        if moved {
            self.index_roles();
        }
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
        let mut in_place = users.clone();
        let rows = [user(1, "zed", 2), user(3, "bob", 1)];
        assert!(in_place.hold_by_name(&rows) && !in_place.hold_by_name(&[user(1, "zod", 2)]) && !in_place.hold_by_name(&[user(4, "x", 1)]));
        in_place.set_in_place(&rows);
        let bytes = |u: &Users| postcard::to_allocvec(u).unwrap();
        assert_eq!(bytes(&in_place), bytes(&moved), "set in place as replaced whole");
        assert_eq!(in_place.of_role(1).collect::<Vec<_>>(), [3]);
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
        assert!(read_back(&users, |r| r.rows[2].name_len = 9).is_none(), "a name past the buffer's end");
        assert!(read_back(&users, |r| r.rows[0].name_len = u32::MAX).is_none(), "lengths past the buffer's end");
        assert!(read_back(&users, |r| r.names.push('x')).is_none(), "a buffer longer than its names");
        assert!(read_back(&users, |r| (r.rows[1].name_len, r.rows[2].name_len) = (0, 2)).is_none(), "names out of order");
        assert!(read_back(&users, |r| (r.names, r.rows[2].name_len) = ("aéc".into(), 2)).is_none(), "a name cut inside a character");
        assert!(read_back(&users, |r| (r.names, r.rows[2].name_len) = ("abé".into(), 2)).is_some(), "names of other characters");
        assert!(read_back(&Users::new(vec![]), |r| r.names = "a".into()).is_none(), "names without users");
        // The same name twice (in either order of its users), or an empty name: a name must
        // find one user (review of c1de35c).
        assert!(read_back(&users, |r| (r.names, r.rows[1].name_len) = ("aac".into(), 1)).is_none(), "a name twice");
        assert!(read_back(&users, |r| (r.names, r.rows[1].name_len, r.by_name) = ("aac".into(), 1, vec![1, 0, 2])).is_none(), "a name twice, the other way");
        assert!(read_back(&users, |r| (r.names, r.rows[0].name_len) = ("bc".into(), 0)).is_none(), "an empty name");
    }
}
