//! Deterministic, class-balanced subsets and train/validation splits.
//!
//! Every selection works per class the same way: sort the class's sample ids, shuffle
//! them with `Stream::new(seed, class index, label(purpose), 0)`, take the first n, then
//! keep the dataset's original order. A class's choice depends only on the seed, its
//! index and its own files, and a smaller fraction picks a prefix of a larger one.
//! Unlabeled samples form one group keyed by `u64::MAX`.

use std::collections::{BTreeMap, HashSet};

use semaug_core::seeds::{label, Stream};

use super::{Dataset, DatasetError};

/// The stream key of the unlabeled group.
const UNLABELED: u64 = u64::MAX;

impl Dataset {
    /// `round(fraction * n_c)` samples of each class (at least 1 of a non-empty class).
    /// `fraction` must be in (0, 1].
    pub fn subset_fraction(&self, fraction: f64, seed: u64) -> Result<Dataset, DatasetError> {
        check_fraction(
            "subset fraction",
            "(0, 1]",
            fraction,
            fraction > 0.0 && fraction <= 1.0,
        )?;
        let chosen = self.pick(label("subset"), seed, |n| {
            ((fraction * n as f64).round() as usize).clamp(1, n)
        });
        Ok(self.keep_ids(&chosen))
    }

    /// `k` samples of each class. A class with fewer than `k` is an error, unless
    /// `lenient`, when all of its samples are taken.
    pub fn subset_k_shot(
        &self,
        k: usize,
        seed: u64,
        lenient: bool,
    ) -> Result<Dataset, DatasetError> {
        if !lenient {
            self.check_class_sizes(k, |have, want| have < want)?;
        }
        let chosen = self.pick(label("subset"), seed, |n| k.min(n));
        Ok(self.keep_ids(&chosen))
    }

    /// (train, validation) with `n_val` samples of each class held out; errors when a
    /// class has no more than `n_val` samples (it would leave nothing to train on).
    pub fn split_per_class(
        &self,
        n_val: usize,
        seed: u64,
    ) -> Result<(Dataset, Dataset), DatasetError> {
        if let Err(DatasetError::TooFewInClass { class, have, .. }) =
            self.check_class_sizes(n_val + 1, |have, want| have > 0 && have < want)
        {
            return Err(DatasetError::SplitTooLarge { class, have, n_val });
        }
        let val = self.pick(label("split"), seed, |n| n_val.min(n));
        Ok(self.split_by(&val))
    }

    /// (train, validation) with `round(fraction * n_c)` samples of each class held out,
    /// at most `n_c - 1` so every class keeps a training sample. `fraction` in [0, 1).
    pub fn split_fraction(
        &self,
        fraction: f64,
        seed: u64,
    ) -> Result<(Dataset, Dataset), DatasetError> {
        check_fraction(
            "validation fraction",
            "[0, 1)",
            fraction,
            (0.0..1.0).contains(&fraction),
        )?;
        let val = self.pick(label("split"), seed, |n| {
            ((fraction * n as f64).round() as usize).min(n.saturating_sub(1))
        });
        Ok(self.split_by(&val))
    }

    /// Ids of the samples chosen per group: shuffle the sorted ids, take `count(n)`.
    fn pick(&self, purpose: u64, seed: u64, count: impl Fn(usize) -> usize) -> HashSet<String> {
        let mut groups: BTreeMap<u64, Vec<&str>> = BTreeMap::new();
        for sample in &self.samples {
            let key = sample.class.map_or(UNLABELED, |c| c as u64);
            groups.entry(key).or_default().push(&sample.id);
        }
        let mut chosen = HashSet::new();
        for (key, mut ids) in groups {
            ids.sort_unstable();
            Stream::new(seed, key, purpose, 0).shuffle(&mut ids);
            let n = count(ids.len());
            chosen.extend(ids[..n].iter().map(|id| id.to_string()));
        }
        chosen
    }

    fn keep_ids(&self, ids: &HashSet<String>) -> Dataset {
        self.filter(|s| ids.contains(&s.id))
    }

    fn split_by(&self, val: &HashSet<String>) -> (Dataset, Dataset) {
        (self.filter(|s| !val.contains(&s.id)), self.keep_ids(val))
    }

    /// The first class whose size `too_small(have, want)` is an error.
    fn check_class_sizes(
        &self,
        want: usize,
        too_small: impl Fn(usize, usize) -> bool,
    ) -> Result<(), DatasetError> {
        let counts = self.class_counts();
        let unlabeled = self.samples.iter().filter(|s| s.class.is_none()).count();
        let named = self.classes.iter().map(String::as_str).zip(counts);
        let all = named.chain((unlabeled > 0).then_some(("(unlabeled)", unlabeled)));
        for (class, have) in all {
            if too_small(have, want) {
                return Err(DatasetError::TooFewInClass {
                    class: class.to_owned(),
                    have,
                    want,
                });
            }
        }
        Ok(())
    }
}

fn check_fraction(
    what: &'static str,
    range: &'static str,
    value: f64,
    ok: bool,
) -> Result<(), DatasetError> {
    if ok {
        Ok(())
    } else {
        Err(DatasetError::OutOfRange { what, range, value })
    }
}
