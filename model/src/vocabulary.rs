//! The fixed words of the model: actions and org-wide sharing levels.

use std::fmt;
use std::str::FromStr;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Read,
    Create,
    Edit,
    Delete,
    Import,
    Export,
}

impl Action {
    pub const ALL: [Action; 6] =
        [Action::Read, Action::Create, Action::Edit, Action::Delete, Action::Import, Action::Export];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Read => "read",
            Action::Create => "create",
            Action::Edit => "edit",
            Action::Delete => "delete",
            Action::Import => "import",
            Action::Export => "export",
        }
    }

    /// Read, edit and delete are decided per record; the others per module.
    pub fn is_record_level(self) -> bool {
        matches!(self, Action::Read | Action::Edit | Action::Delete)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SharingLevel {
    Private,
    PublicRead,
    PublicReadWrite,
    PublicReadWriteDelete,
}

impl SharingLevel {
    pub const ALL: [SharingLevel; 4] = [
        SharingLevel::Private,
        SharingLevel::PublicRead,
        SharingLevel::PublicReadWrite,
        SharingLevel::PublicReadWriteDelete,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SharingLevel::Private => "private",
            SharingLevel::PublicRead => "public_read",
            SharingLevel::PublicReadWrite => "public_read_write",
            SharingLevel::PublicReadWriteDelete => "public_read_write_delete",
        }
    }

    /// Whether this default alone opens every record of the module for `action`.
    pub fn opens(self, action: Action) -> bool {
        match action {
            Action::Read => self != SharingLevel::Private,
            Action::Edit => {
                matches!(self, SharingLevel::PublicReadWrite | SharingLevel::PublicReadWriteDelete)
            }
            Action::Delete => self == SharingLevel::PublicReadWriteDelete,
            _ => false,
        }
    }
}

/// A word that is not one of the allowed ones; the message lists what is allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} \"{word}\"; expected one of: {expected}")]
pub struct UnknownWord {
    pub kind: &'static str,
    pub word: String,
    pub expected: String,
}

fn parse_word<T: Copy>(kind: &'static str, s: &str, all: &[T], name: fn(T) -> &'static str) -> Result<T, UnknownWord> {
    all.iter().copied().find(|v| name(*v) == s).ok_or_else(|| UnknownWord {
        kind,
        word: s.to_string(),
        expected: all.iter().map(|v| name(*v)).collect::<Vec<_>>().join(", "),
    })
}

impl FromStr for Action {
    type Err = UnknownWord;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_word("action", s, &Action::ALL, Action::as_str)
    }
}

impl FromStr for SharingLevel {
    type Err = UnknownWord;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_word("sharing level", s, &SharingLevel::ALL, SharingLevel::as_str)
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for SharingLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip() {
        for a in Action::ALL {
            assert_eq!(a.as_str().parse::<Action>().unwrap(), a);
        }
        for l in SharingLevel::ALL {
            assert_eq!(l.as_str().parse::<SharingLevel>().unwrap(), l);
        }
    }

    #[test]
    fn unknown_word_lists_the_allowed_ones() {
        let e = "Read".parse::<Action>().unwrap_err();
        assert_eq!(e.to_string(), "unknown action \"Read\"; expected one of: read, create, edit, delete, import, export");
    }

    #[test]
    fn defaults_open_exactly_what_their_name_says() {
        use Action::*;
        use SharingLevel::*;
        let cases = [
            (Private, [false, false, false]),
            (PublicRead, [true, false, false]),
            (PublicReadWrite, [true, true, false]),
            (PublicReadWriteDelete, [true, true, true]),
        ];
        for (level, [r, e, d]) in cases {
            assert_eq!([level.opens(Read), level.opens(Edit), level.opens(Delete)], [r, e, d], "{level}");
            assert!(!level.opens(Create) && !level.opens(Export), "{level}");
        }
    }
}
