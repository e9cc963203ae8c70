//! Field access (DESIGN §3.2, seeds 001 and 004): which columns of a module's records a
//! user may see and change.
//!
//! Each profile may set a field `hidden`, `read_only` or `read_write`; a field a profile does
//! not mention is `read_write` for it; a user's profiles combine by union (the most open
//! wins). Global field access hides a field from every non-admin user, overriding profiles.
//! View All sees (Edit All sees and changes) every field that is not globally hidden.
//! Permission sets carry module privileges, not field access.

use std::fmt;
use std::str::FromStr;

use crate::access::Model;
use crate::vocabulary::UnknownWord;
use crate::OwnerId;

/// Ordered from closed to open, so that a union is a maximum.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldAccess {
    Hidden,
    ReadOnly,
    ReadWrite,
}

impl FieldAccess {
    pub const ALL: [FieldAccess; 3] = [FieldAccess::Hidden, FieldAccess::ReadOnly, FieldAccess::ReadWrite];

    pub fn as_str(self) -> &'static str {
        match self {
            FieldAccess::Hidden => "hidden",
            FieldAccess::ReadOnly => "read_only",
            FieldAccess::ReadWrite => "read_write",
        }
    }

    pub fn readable(self) -> bool {
        self != FieldAccess::Hidden
    }

    pub fn writable(self) -> bool {
        self == FieldAccess::ReadWrite
    }
}

impl FromStr for FieldAccess {
    type Err = UnknownWord;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        FieldAccess::ALL.iter().copied().find(|a| a.as_str() == s).ok_or_else(|| UnknownWord {
            kind: "field access",
            word: s.to_string(),
            expected: FieldAccess::ALL.map(FieldAccess::as_str).join(", "),
        })
    }
}

impl fmt::Display for FieldAccess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The fields of a module's records a user may not freely write (see `Model::unwritable_fields`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unwritable {
    /// Every field: a user whose role carries no profile (or who cannot act).
    Every,
    /// These fields, with the access the user has to each; any other field is read_write.
    These(Vec<(String, FieldAccess)>),
}

impl Unwritable {
    /// Whether writing `field` is restricted.
    pub fn includes(&self, field: &str) -> bool {
        match self {
            Unwritable::Every => true,
            Unwritable::These(fields) => fields.iter().any(|(name, _)| name == field),
        }
    }
}

impl Model {
    /// The fields of `module` that `user` may not freely write: every field when even the
    /// fields no one mentions are not writable for them, otherwise the mentioned fields with
    /// less than read_write for them (unmentioned fields are read_write).
    pub fn unwritable_fields(&self, user: OwnerId, module: &str) -> Unwritable {
        if !self.unmentioned_field_access(user, module).writable() {
            return Unwritable::Every;
        }
        Unwritable::These(
            self.fields_mentioned(module)
                .into_iter()
                .filter_map(|f| {
                    let a = self.field_access(user, module, &f);
                    (!a.writable()).then_some((f, a))
                })
                .collect(),
        )
    }

    /// Whether `field` of `module` is hidden from every non-admin user.
    pub fn globally_hidden(&self, module: &str, field: &str) -> bool {
        self.catalog.hidden_fields.iter().any(|(m, f)| m == module && f == field)
    }

    /// What `user` may do with `field` of `module` records (the records themselves are
    /// governed by the row rules). Anyone who cannot act sees nothing.
    pub fn field_access(&self, user: OwnerId, module: &str, field: &str) -> FieldAccess {
        self.access_to(user, module, Some(field))
    }

    /// What `user` may do with the fields of `module` that no profile and no global setting
    /// mentions.
    pub fn unmentioned_field_access(&self, user: OwnerId, module: &str) -> FieldAccess {
        self.access_to(user, module, None)
    }

    /// Every field of `module` that some profile or the global field access mentions.
    pub fn fields_mentioned(&self, module: &str) -> Vec<String> {
        let mut out: Vec<String> = self
            .catalog
            .profiles
            .iter()
            .filter_map(|p| p.fields.get(module))
            .flat_map(|f| f.keys().cloned())
            .chain(self.catalog.hidden_fields.iter().filter(|(m, _)| m == module).map(|(_, f)| f.clone()))
            .collect();
        out.sort();
        out.dedup();
        out
    }

    fn access_to(&self, user: OwnerId, module: &str, field: Option<&str>) -> FieldAccess {
        let Some(u) = self.users.get(&user).filter(|u| u.is_active) else { return FieldAccess::Hidden };
        if u.is_admin {
            return FieldAccess::ReadWrite;
        }
        if field.is_some_and(|f| self.globally_hidden(module, f)) {
            return FieldAccess::Hidden;
        }
        let p = self.privileges_of(u);
        if p.edit_all.is_some() {
            return FieldAccess::ReadWrite;
        }
        let from_profiles = self
            .profiles_of_role(u.role)
            .map(|p| p.fields.get(module).zip(field).and_then(|(f, name)| f.get(name)).copied().unwrap_or(FieldAccess::ReadWrite))
            .max()
            .unwrap_or(FieldAccess::Hidden);
        if p.view_all.is_some() {
            return from_profiles.max(FieldAccess::ReadOnly);
        }
        from_profiles
    }
}
