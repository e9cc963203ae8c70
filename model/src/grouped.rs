//! Values grouped by key as three flat arrays (keys, where each key's values start, the
//! values) rather than a map of vectors: at 20,000 users the per-key vectors' headers and the
//! map's nodes were a fifth of a decoded model's memory (issue 28, item 1). The groups of each
//! user and the users of each role are kept so.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};

/// `values[starts[i]..starts[i + 1]]` are the values of `keys[i]`: keys ascending, each with
/// at least one value, its values ascending and distinct.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Grouped<K, V> {
    keys: Vec<K>,
    starts: Vec<u32>,
    values: Vec<V>,
}

impl<K, V> Default for Grouped<K, V> {
    fn default() -> Self {
        // Not derived: a derive would ask `K: Default` and `V: Default`. One start, as `new`
        // leaves an empty grouping, so that bytes of either read back alike.
        Grouped { keys: Vec::new(), starts: vec![0], values: Vec::new() }
    }
}

/// Whether `starts` cuts `values` items into `groups` ranges, in order, each at least
/// `min_len` long: the range check every flat-array decode makes before it slices.
pub(crate) fn ranges_hold(starts: &[u32], groups: usize, values: usize, min_len: u32) -> bool {
    starts.len() == groups + 1
        && starts.first() == Some(&0)
        && starts.last().map(|&e| e as usize) == Some(values)
        && starts.windows(2).all(|w| w[0].checked_add(min_len).is_some_and(|least| least <= w[1]))
}

impl<K: Ord + Copy, V: Ord + Copy> Grouped<K, V> {
    /// Every (key, value) pair, in any order and possibly repeated.
    pub(crate) fn new(mut pairs: Vec<(K, V)>) -> Self {
        pairs.sort_unstable();
        pairs.dedup();
        Self::from_sorted(pairs.len(), pairs)
    }

    /// The same grouping with the pairs `gone` taken out and `added` put in (each in any
    /// order), in one pass over the pairs rather than a sort of them all: a commit that moves
    /// a few of 20,000 users (issue 28, item 2).
    pub(crate) fn changed(&self, mut gone: Vec<(K, V)>, mut added: Vec<(K, V)>) -> Self {
        gone.sort_unstable();
        added.sort_unstable();
        added.dedup();
        let mut kept = self.pairs().filter(|p| gone.binary_search(p).is_err()).peekable();
        let mut added = added.into_iter().peekable();
        let merged = std::iter::from_fn(|| match (kept.peek(), added.peek()) {
            (Some(k), Some(a)) if a < k => added.next(),
            (Some(k), Some(a)) if a == k => {
                added.next();
                kept.next()
            }
            (Some(_), _) => kept.next(),
            (None, _) => added.next(),
        });
        Self::from_sorted(self.values.len() + 1, merged)
    }

    /// Pairs ascending and distinct.
    fn from_sorted(capacity: usize, pairs: impl IntoIterator<Item = (K, V)>) -> Self {
        let mut out = Grouped { keys: Vec::new(), starts: Vec::new(), values: Vec::with_capacity(capacity) };
        for (k, v) in pairs {
            if out.keys.last() != Some(&k) {
                out.keys.push(k);
                out.starts.push(out.values.len() as u32);
            }
            out.values.push(v);
        }
        out.starts.push(out.values.len() as u32);
        out.values.shrink_to_fit();
        out
    }

    /// The values of `key`, ascending.
    pub(crate) fn of(&self, key: K) -> &[V] {
        match self.keys.binary_search(&key) {
            Ok(i) => self.at(i),
            Err(_) => &[],
        }
    }

    /// The keys with values, ascending.
    pub(crate) fn keys(&self) -> &[K] {
        &self.keys
    }

    /// Every value of every key (as many as there are pairs).
    pub(crate) fn values(&self) -> &[V] {
        &self.values
    }

    /// Every (key, values) group, by key.
    pub(crate) fn groups(&self) -> impl Iterator<Item = (K, &[V])> + '_ {
        self.keys.iter().enumerate().map(|(i, &k)| (k, self.at(i)))
    }

    /// Every (key, value) pair, by key then value.
    pub(crate) fn pairs(&self) -> impl Iterator<Item = (K, V)> + '_ {
        self.groups().flat_map(|(k, vs)| vs.iter().map(move |&v| (k, v)))
    }

    fn at(&self, i: usize) -> &[V] {
        &self.values[self.starts[i] as usize..self.starts[i + 1] as usize]
    }

    /// Parts that hold together as `new` builds them; `None` otherwise.
    fn checked(keys: Vec<K>, starts: Vec<u32>, mut values: Vec<V>) -> Option<Self> {
        if !(ranges_hold(&starts, keys.len(), values.len(), 1) && keys.windows(2).all(|w| w[0] < w[1])) {
            return None;
        }
        // A decode grows a vector past a cautious first guess at its length by doubling.
        values.shrink_to_fit();
        let out = Grouped { keys, starts, values };
        (0..out.keys.len()).all(|i| out.at(i).windows(2).all(|w| w[0] < w[1])).then_some(out)
    }

    #[cfg(test)]
    pub(crate) fn parts_mut(&mut self) -> (&mut Vec<K>, &mut Vec<u32>, &mut Vec<V>) {
        (&mut self.keys, &mut self.starts, &mut self.values)
    }
}

/// Read back only if the parts hold together (red team of 9f2c67e: a range past the values'
/// end panicked every decision for that user): anything else reads as no model.
impl<'de, K: Deserialize<'de> + Ord + Copy, V: Deserialize<'de> + Ord + Copy> Deserialize<'de> for Grouped<K, V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Record<K, V> {
            keys: Vec<K>,
            starts: Vec<u32>,
            values: Vec<V>,
        }
        let r = Record::<K, V>::deserialize(d)?;
        Grouped::checked(r.keys, r.starts, r.values).ok_or_else(|| D::Error::custom("a grouping's parts do not hold together"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_back(g: &Grouped<i64, i64>, edit: impl FnOnce(&mut Vec<i64>, &mut Vec<u32>, &mut Vec<i64>)) -> Option<Grouped<i64, i64>> {
        let mut g = g.clone();
        let (k, s, v) = g.parts_mut();
        edit(k, s, v);
        postcard::from_bytes(&postcard::to_allocvec(&g).unwrap()).ok()
    }

    #[test]
    fn groups_values_by_key() {
        let g = Grouped::new(vec![(11, 1), (10, 2), (10, 1), (10, 2)]);
        assert_eq!(g.keys(), [10, 11]);
        assert_eq!(g.of(10), [1, 2]);
        assert_eq!(g.of(11), [1]);
        assert!(g.of(12).is_empty());
        assert_eq!(g.pairs().collect::<Vec<_>>(), [(10, 1), (10, 2), (11, 1)]);
        assert_eq!(g.values(), [1, 2, 1]);
        let empty = Grouped::<i64, i64>::new(vec![]);
        assert!(empty.keys().is_empty() && empty.of(1).is_empty());
        assert_eq!(postcard::to_allocvec(&empty).unwrap(), postcard::to_allocvec(&Grouped::<i64, i64>::default()).unwrap());
    }

    #[test]
    fn changed_equals_grouping_the_changed_pairs_again() {
        let pairs = vec![(10, 1), (10, 2), (11, 1), (12, 3)];
        let g = Grouped::new(pairs.clone());
        let cases: [(Vec<(i64, i64)>, Vec<(i64, i64)>); 6] = [
            (vec![], vec![]),
            (vec![(10, 2)], vec![(11, 2)]),
            (vec![(12, 3)], vec![(9, 3)]),
            (vec![(11, 1), (10, 1)], vec![(13, 1), (13, 0), (13, 1)]),
            (vec![], vec![(10, 2), (12, 0)]),
            (vec![(10, 1), (10, 2), (11, 1), (12, 3)], vec![]),
        ];
        for (gone, added) in cases {
            let mut again: Vec<(i64, i64)> = pairs.iter().copied().filter(|p| !gone.contains(p)).collect();
            again.extend(added.iter().copied());
            let changed = g.changed(gone.clone(), added.clone());
            let expected = Grouped::new(again);
            assert_eq!(changed.pairs().collect::<Vec<_>>(), expected.pairs().collect::<Vec<_>>(), "{gone:?} {added:?}");
            assert_eq!(postcard::to_allocvec(&changed).unwrap(), postcard::to_allocvec(&expected).unwrap(), "{gone:?} {added:?}");
        }
    }

    #[test]
    fn only_parts_that_hold_together_read_back() {
        let g = Grouped::new(vec![(10, 1), (10, 2), (11, 1)]);
        let back = read_back(&g, |_, _, _| ()).expect("reads back");
        assert_eq!(back.pairs().collect::<Vec<_>>(), g.pairs().collect::<Vec<_>>());
        assert!(read_back(&Grouped::new(vec![]), |_, _, _| ()).is_some(), "nothing grouped");
        assert!(read_back(&g, |_, s, _| s[2] = 9).is_none(), "a range past the end");
        assert!(read_back(&g, |_, s, _| { s.pop(); }).is_none(), "a range missing");
        assert!(read_back(&g, |_, s, _| s[0] = 1).is_none(), "not starting at the start");
        assert!(read_back(&g, |k, _, _| k.reverse()).is_none(), "keys out of order");
        assert!(read_back(&g, |k, _, _| k[1] = 10).is_none(), "a key twice");
        assert!(read_back(&g, |_, s, _| s[1] = 0).is_none(), "a key without values");
        assert!(read_back(&g, |_, s, _| s[1] = 3).is_none(), "ranges out of order");
        assert!(read_back(&g, |_, _, v| v.swap(0, 1)).is_none(), "a key's values out of order");
        assert!(read_back(&g, |_, _, v| v[1] = 1).is_none(), "a key's value twice");
        assert!(ranges_hold(&[0, 0, 2], 2, 2, 0) && !ranges_hold(&[0, 0, 2], 2, 2, 1));
        assert!(!ranges_hold(&[0, u32::MAX], 1, 1, 1), "no overflow");
    }
}
