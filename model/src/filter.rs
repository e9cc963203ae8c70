//! Row filters as data (DESIGN §6): what a scope lets through, over the named columns of the
//! row a policy function is given. The engine computes a `Filter`; the extension's planner
//! turns it into an expression PostgreSQL can match to indexes, and the run-time fallback
//! evaluates the same value with `admits`. One description of each scope, two readers.
//!
//! Evaluation follows SQL's three-valued logic, so that a row with a NULL where the planner's
//! expression would compare it is refused exactly as the expression refuses it.

/// A column of the filtered row, by the name of the policy function's argument that carries it.
pub type Column = &'static str;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Filter {
    /// Every row (`true`) or none (`false`).
    Const(bool),
    /// `column = value` on a bigint column.
    Eq(Column, i64),
    /// `column = ANY('{ids}')` on a bigint column; `ids` sorted and distinct, never empty.
    In(Column, Vec<i64>),
    /// `column @> '{value}'` on a bigint[] column.
    Contains(Column, i64),
    /// A boolean column.
    Is(Column),
    /// The named column's value, as text, is one of `values` (sorted, distinct, never empty);
    /// NULL never is. The column is a column of the protected table itself, named by a
    /// restriction rule (DESIGN §9), not a policy function's argument; the planner turns the
    /// texts into constants of the column's type, so that `column = ANY('{...}')` can use an
    /// index on it.
    OneOf(String, Vec<String>),
    Not(Box<Filter>),
    /// Two or more parts, none of them constant.
    And(Vec<Filter>),
    /// Two or more parts, none of them constant.
    Or(Vec<Filter>),
}

/// One column's value in a row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Value<'a> {
    Id(Option<i64>),
    Ids(Option<&'a [i64]>),
    Flag(Option<bool>),
    /// A column's value as text (`column::text`).
    Text(Option<&'a str>),
}

/// A row a filter can be evaluated on: its columns by name. A column the row does not have
/// reads as NULL, so a filter over the wrong row type refuses rather than admits.
pub trait Row {
    fn value(&self, column: &str) -> Option<Value<'_>>;
}

impl Filter {
    /// `column = ANY(ids)`; `false` for no ids. `ids` must be sorted and distinct (scopes are).
    /// One id stays a list: the plans PostgreSQL shows for a policy keep one shape.
    pub fn any_of_ids(column: Column, ids: &[i64]) -> Filter {
        debug_assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids sorted and distinct");
        match ids {
            [] => Filter::Const(false),
            _ => Filter::In(column, ids.to_vec()),
        }
    }

    /// `a OR b OR ...`, folded: `false` when empty, `true` if any part is.
    pub fn or(parts: impl IntoIterator<Item = Filter>) -> Filter {
        Self::combine(parts, true)
    }

    /// `a AND b AND ...`, folded: `true` when empty, `false` if any part is.
    pub fn and(parts: impl IntoIterator<Item = Filter>) -> Filter {
        Self::combine(parts, false)
    }

    /// `NOT f`, folded for constants.
    pub fn negate(f: Filter) -> Filter {
        match f {
            Filter::Const(b) => Filter::Const(!b),
            f => Filter::Not(Box::new(f)),
        }
    }

    /// `absorbing` is the constant that decides the whole (true for OR, false for AND).
    fn combine(parts: impl IntoIterator<Item = Filter>, absorbing: bool) -> Filter {
        let mut kept = Vec::new();
        for p in parts {
            match p {
                Filter::Const(b) if b == absorbing => return Filter::Const(absorbing),
                Filter::Const(_) => {}
                // `a OR (b OR c)` is `a OR b OR c`: one flat list, as PostgreSQL shows its own.
                Filter::Or(inner) if absorbing => kept.extend(inner),
                Filter::And(inner) if !absorbing => kept.extend(inner),
                p => kept.push(p),
            }
        }
        match kept.len() {
            0 => Filter::Const(!absorbing),
            1 => kept.pop().expect("one part"),
            _ if absorbing => Filter::Or(kept),
            _ => Filter::And(kept),
        }
    }

    /// Whether the row passes: the filter is true for it (NULL, like false, refuses).
    pub fn admits(&self, row: &impl Row) -> bool {
        self.eval(row) == Some(true)
    }

    /// The filter's SQL value for the row: `None` is NULL.
    pub fn eval(&self, row: &impl Row) -> Option<bool> {
        match self {
            Filter::Const(b) => Some(*b),
            Filter::Eq(c, v) => match row.value(c) {
                Some(Value::Id(id)) => id.map(|id| id == *v),
                _ => None,
            },
            Filter::In(c, ids) => match row.value(c) {
                Some(Value::Id(id)) => id.map(|id| ids.binary_search(&id).is_ok()),
                _ => None,
            },
            Filter::Contains(c, v) => match row.value(c) {
                Some(Value::Ids(ids)) => ids.map(|ids| ids.contains(v)),
                _ => None,
            },
            Filter::Is(c) => match row.value(c) {
                Some(Value::Flag(flag)) => flag,
                _ => None,
            },
            Filter::OneOf(c, values) => match row.value(c) {
                Some(Value::Text(text)) => text.map(|t| values.binary_search_by(|v| v.as_str().cmp(t)).is_ok()),
                _ => None,
            },
            Filter::Not(f) => f.eval(row).map(|b| !b),
            Filter::And(parts) => Self::kleene(parts, row, false),
            Filter::Or(parts) => Self::kleene(parts, row, true),
        }
    }

    /// AND (`absorbing` false) or OR (`absorbing` true) of the parts' values, as SQL has it:
    /// the absorbing value decides, otherwise NULL if any part is NULL.
    fn kleene(parts: &[Filter], row: &impl Row, absorbing: bool) -> Option<bool> {
        let mut result = Some(!absorbing);
        for p in parts {
            match p.eval(row) {
                Some(b) if b == absorbing => return Some(absorbing),
                None => result = None,
                Some(_) => {}
            }
        }
        result
    }

    /// `column::text` is one of `values`; `false` for none.
    pub fn one_of(column: &str, values: &[String]) -> Filter {
        let mut values = values.to_vec();
        values.sort();
        values.dedup();
        match values.is_empty() {
            true => Filter::Const(false),
            false => Filter::OneOf(column.to_string(), values),
        }
    }

    /// The columns the filter reads, each once, in the order first read.
    pub fn columns(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.visit_columns(&mut |c| {
            if !out.contains(&c) {
                out.push(c);
            }
        });
        out
    }

    fn visit_columns<'a>(&'a self, f: &mut impl FnMut(&'a str)) {
        match self {
            Filter::Const(_) => {}
            Filter::Eq(c, _) | Filter::In(c, _) | Filter::Contains(c, _) | Filter::Is(c) => f(c),
            Filter::OneOf(c, _) => f(c),
            Filter::Not(p) => p.visit_columns(f),
            Filter::And(parts) | Filter::Or(parts) => parts.iter().for_each(|p| p.visit_columns(f)),
        }
    }
}

impl From<bool> for Filter {
    fn from(b: bool) -> Filter {
        Filter::Const(b)
    }
}

/// The row of a record policy: the owner (of the record, or of its parent record).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Owned(pub Option<i64>);

/// The column record filters read: the policy function's `owner` argument.
pub const OWNER: Column = "owner";

impl Row for Owned {
    fn value(&self, column: &str) -> Option<Value<'_>> {
        (column == OWNER).then_some(Value::Id(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A row of one nullable id, one nullable array and one nullable flag.
    struct R(Option<i64>, Option<Vec<i64>>, Option<bool>);

    impl Row for R {
        fn value(&self, column: &str) -> Option<Value<'_>> {
            match column {
                "id" => Some(Value::Id(self.0)),
                "ids" => Some(Value::Ids(self.1.as_deref())),
                "flag" => Some(Value::Flag(self.2)),
                "region" => Some(Value::Text(self.2.map(|b| if b { "EU" } else { "US" }))),
                _ => None,
            }
        }
    }

    #[test]
    fn nulls_refuse_as_sql_does() {
        let null = R(None, None, None);
        for f in [Filter::Eq("id", 1), Filter::In("id", vec![1, 2]), Filter::Contains("ids", 1), Filter::Is("flag"), Filter::one_of("region", &["EU".into()])] {
            assert_eq!(f.eval(&null), None, "{f:?}");
            // NOT NULL is NULL: a negated test on a NULL column still refuses the row.
            assert_eq!(Filter::negate(f.clone()).eval(&null), None, "{f:?}");
            assert!(!Filter::negate(f).admits(&null));
        }
        // NULL OR true is true, NULL AND false is false; otherwise NULL stays NULL.
        assert_eq!(Filter::Or(vec![Filter::Eq("id", 1), Filter::Is("flag")]).eval(&R(None, None, Some(true))), Some(true));
        assert_eq!(Filter::And(vec![Filter::Eq("id", 1), Filter::Is("flag")]).eval(&R(None, None, Some(false))), Some(false));
        assert_eq!(Filter::And(vec![Filter::Eq("id", 1), Filter::Is("flag")]).eval(&R(None, None, Some(true))), None);
    }

    #[test]
    fn a_column_the_row_lacks_refuses() {
        let row = R(Some(1), Some(vec![1]), Some(true));
        assert!(!Filter::Eq("owner", 1).admits(&row));
        assert!(!Filter::negate(Filter::Eq("owner", 2)).admits(&row));
        assert!(Filter::Eq("id", 1).admits(&row));
    }

    #[test]
    fn constructors_fold_constants_and_keep_the_meaning() {
        assert_eq!(Filter::or([]), Filter::Const(false));
        assert_eq!(Filter::and([]), Filter::Const(true));
        assert_eq!(Filter::or([Filter::Is("flag"), Filter::Const(true)]), Filter::Const(true));
        assert_eq!(Filter::and([Filter::Is("flag"), Filter::Const(false)]), Filter::Const(false));
        assert_eq!(Filter::or([Filter::Const(false), Filter::Is("flag")]), Filter::Is("flag"));
        assert_eq!(Filter::any_of_ids("id", &[]), Filter::Const(false));
        assert_eq!(Filter::any_of_ids("id", &[4]), Filter::In("id", vec![4]));
        assert_eq!(Filter::negate(Filter::Const(true)), Filter::Const(false));
        let parts = || [Filter::Eq("id", 1), Filter::Contains("ids", 2), Filter::Const(false), Filter::Is("flag")];
        for id in [None, Some(1), Some(2)] {
            for ids in [None, Some(vec![]), Some(vec![2])] {
                for flag in [None, Some(false), Some(true)] {
                    let row = R(id, ids.clone(), flag);
                    let values: Vec<Option<bool>> = parts().iter().map(|p| p.eval(&row)).collect();
                    let any = if values.contains(&Some(true)) { Some(true) } else if values.contains(&None) { None } else { Some(false) };
                    let all = if values.contains(&Some(false)) { Some(false) } else if values.contains(&None) { None } else { Some(true) };
                    assert_eq!(Filter::or(parts()).eval(&row), any);
                    assert_eq!(Filter::and(parts()).eval(&row), all);
                }
            }
        }
    }

    #[test]
    fn nested_lists_of_one_kind_are_flattened() {
        let (a, b, c) = (Filter::Eq("a", 1), Filter::Is("b"), Filter::Eq("c", 2));
        assert_eq!(Filter::or([Filter::or([a.clone(), b.clone()]), c.clone()]), Filter::Or(vec![a.clone(), b.clone(), c.clone()]));
        assert_eq!(Filter::and([a.clone(), Filter::and([b.clone(), c.clone()])]), Filter::And(vec![a.clone(), b.clone(), c.clone()]));
        assert_eq!(Filter::and([Filter::or([a.clone(), b.clone()]), c.clone()]), Filter::And(vec![Filter::Or(vec![a, b]), c]));
    }

    #[test]
    fn text_values_match_exactly() {
        let allowed = Filter::one_of("region", &["US".into(), "EU".into(), "EU".into()]);
        assert_eq!(allowed, Filter::OneOf("region".into(), vec!["EU".into(), "US".into()]));
        assert!(allowed.admits(&R(None, None, Some(true))));
        assert!(Filter::one_of("region", &["EU".into()]).admits(&R(None, None, Some(true))));
        // Text is compared as it is: no case folding, no trimming.
        assert!(!Filter::one_of("region", &["eu".into(), "EU ".into()]).admits(&R(None, None, Some(true))));
        assert_eq!(Filter::one_of("region", &[]), Filter::Const(false));
        // A column of another kind, or one the row lacks, refuses.
        assert!(!Filter::one_of("flag", &["true".into()]).admits(&R(None, None, Some(true))));
        assert!(!Filter::one_of("nowhere", &["EU".into()]).admits(&R(None, None, Some(true))));
        assert_eq!(Filter::or([Filter::one_of("region", &["EU".into()]), Filter::Is("flag")]).columns(), vec!["region", "flag"]);
    }

    #[test]
    fn columns_are_listed_once() {
        let f = Filter::or([Filter::Eq("a", 1), Filter::and([Filter::Is("b"), Filter::In("a", vec![1, 2])])]);
        assert_eq!(f.columns(), vec!["a", "b"]);
    }
}
