//! Class-balanced subsets, k-shot, splits, exclusion and class selection, on datasets
//! built in memory (selection never touches pixels).

// A failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::path::PathBuf;

use semaug_core::seeds::{label, Stream};
use semaug_data::dataset::{Dataset, DatasetError, Sample, Source};

/// Classes a, b, c, d with the given sizes; samples interleaved across classes so that
/// "keeps the original order" is not the same as "sorted by class".
fn dataset(sizes: &[usize]) -> Dataset {
    let classes: Vec<String> = (0..sizes.len())
        .map(|c| ((b'a' + c as u8) as char).to_string())
        .collect();
    let mut samples = Vec::new();
    let longest = sizes.iter().copied().max().unwrap_or(0);
    for i in 0..longest {
        for (c, &n) in sizes.iter().enumerate() {
            if i < n {
                samples.push(sample(&format!("{}/{i:03}.png", classes[c]), Some(c)));
            }
        }
    }
    Dataset {
        root: PathBuf::from("root"),
        classes,
        samples,
        skipped: Vec::new(),
        masks_dir: None,
    }
}

fn sample(id: &str, class: Option<usize>) -> Sample {
    Sample {
        id: id.to_owned(),
        class,
        source: Source::File(PathBuf::from("root").join(id)),
        mask: None,
    }
}

fn id_set(d: &Dataset) -> HashSet<String> {
    d.ids().map(str::to_owned).collect()
}

/// True when `part`'s ids appear in `whole` in the same relative order.
fn is_ordered_subsequence(part: &Dataset, whole: &Dataset) -> bool {
    let mut rest = whole.ids();
    part.ids().all(|id| rest.any(|w| w == id))
}

#[test]
fn fraction_is_balanced_rounded_and_at_least_one() {
    let full = dataset(&[10, 7, 3, 1]);
    let sub = full.subset_fraction(0.5, 42).unwrap();
    // round(5) = 5, round(3.5) = 4, round(1.5) = 2, round(0.5) = 1 (and at least 1).
    assert_eq!(sub.class_counts(), [5, 4, 2, 1]);
    assert!(is_ordered_subsequence(&sub, &full));
    assert_eq!(
        full.subset_fraction(0.01, 42).unwrap().class_counts(),
        [1, 1, 1, 1]
    );
    assert_eq!(full.subset_fraction(1.0, 42).unwrap().len(), full.len());
    for bad in [0.0, -0.5, 1.5, f64::NAN] {
        assert!(matches!(
            full.subset_fraction(bad, 0),
            Err(DatasetError::OutOfRange { .. })
        ));
    }
}

#[test]
fn subsets_follow_the_documented_rule_and_the_seed() {
    let full = dataset(&[40, 30]);
    let sub = full.subset_fraction(0.25, 7).unwrap();
    for (c, n) in [(0usize, 10usize), (1, 8)] {
        let mut ids: Vec<&str> = full
            .samples
            .iter()
            .filter(|s| s.class == Some(c))
            .map(|s| s.id.as_str())
            .collect();
        ids.sort_unstable();
        Stream::new(7, c as u64, label("subset"), 0).shuffle(&mut ids);
        let want: HashSet<String> = ids[..n].iter().map(|s| s.to_string()).collect();
        let got: HashSet<String> = sub
            .samples
            .iter()
            .filter(|s| s.class == Some(c))
            .map(|s| s.id.clone())
            .collect();
        assert_eq!(got, want, "class {c}");
    }
    assert_eq!(
        id_set(&full.subset_fraction(0.25, 7).unwrap()),
        id_set(&sub)
    );
    assert_ne!(
        id_set(&full.subset_fraction(0.25, 8).unwrap()),
        id_set(&sub)
    );
}

#[test]
fn subsets_do_not_depend_on_sample_order_and_nest() {
    let full = dataset(&[50, 20, 9]);
    let mut reversed = full.clone();
    reversed.samples.reverse();
    let a = full.subset_fraction(0.3, 3).unwrap();
    assert_eq!(
        id_set(&a),
        id_set(&reversed.subset_fraction(0.3, 3).unwrap())
    );
    let bigger = full.subset_fraction(0.6, 3).unwrap();
    assert!(id_set(&a).is_subset(&id_set(&bigger)));
}

#[test]
fn k_shot_takes_k_per_class_or_refuses_small_classes() {
    let full = dataset(&[10, 7, 3, 1]);
    let err = full.subset_k_shot(3, 1, false).unwrap_err();
    assert!(
        matches!(&err, DatasetError::TooFewInClass { class, have: 1, want: 3 } if class == "d"),
        "{err}"
    );
    let lenient = full.subset_k_shot(3, 1, true).unwrap();
    assert_eq!(lenient.class_counts(), [3, 3, 3, 1]);
    let strict = dataset(&[10, 7, 3]).subset_k_shot(3, 1, false).unwrap();
    assert_eq!(strict.class_counts(), [3, 3, 3]);
    // k-shot and fraction share the shuffle: 3 of 10 is the same as 30 %.
    let ten = dataset(&[10]);
    assert_eq!(
        id_set(&ten.subset_k_shot(3, 5, false).unwrap()),
        id_set(&ten.subset_fraction(0.3, 5).unwrap())
    );
}

#[test]
fn splits_are_disjoint_cover_everything_and_keep_order() {
    let full = dataset(&[12, 9, 5]);
    let (train, val) = full.split_per_class(2, 11).unwrap();
    assert_eq!(val.class_counts(), [2, 2, 2]);
    assert_eq!(train.class_counts(), [10, 7, 3]);
    let (t, v) = (id_set(&train), id_set(&val));
    assert!(t.is_disjoint(&v));
    assert_eq!(&t | &v, id_set(&full));
    assert!(is_ordered_subsequence(&train, &full) && is_ordered_subsequence(&val, &full));
    let (train2, _) = full.split_per_class(2, 11).unwrap();
    assert_eq!(id_set(&train2), t);
    assert_eq!(id_set(&full.exclude(val.ids())), t);

    let (train, val) = full.split_fraction(0.2, 11).unwrap();
    assert_eq!(val.class_counts(), [2, 2, 1]); // round(2.4), round(1.8), round(1.0)
    assert_eq!(train.len() + val.len(), full.len());
    assert!(id_set(&train).is_disjoint(&id_set(&val)));

    let err = full.split_per_class(5, 0).unwrap_err();
    assert!(
        matches!(&err, DatasetError::SplitTooLarge { class, have: 5, .. } if class == "c"),
        "{err}"
    );
    assert!(matches!(
        full.split_fraction(1.0, 0),
        Err(DatasetError::OutOfRange { .. })
    ));
    // Every class keeps a training sample, however large the fraction.
    let (train, _) = dataset(&[2, 1]).split_fraction(0.99, 0).unwrap();
    assert_eq!(train.class_counts(), [1, 1]);
}

#[test]
fn with_classes_reindexes_in_the_given_order() {
    let full = dataset(&[3, 2, 4]);
    let picked = full.with_classes(&["c", "a"]).unwrap();
    assert_eq!(picked.classes, ["c", "a"]);
    assert_eq!(picked.class_counts(), [4, 3]);
    for s in &picked.samples {
        let name = &picked.classes[s.class.unwrap()];
        assert!(
            s.id.starts_with(&format!("{name}/")),
            "{} labelled {name}",
            s.id
        );
    }
    assert!(matches!(
        full.with_classes(&["zebra"]),
        Err(DatasetError::UnknownClass { .. })
    ));
    assert!(matches!(
        full.with_classes(&["a", "a"]),
        Err(DatasetError::DuplicateClass { .. })
    ));
}

#[test]
fn unlabeled_data_is_one_group() {
    let mut full = dataset(&[]);
    full.samples = (0..20)
        .map(|i| sample(&format!("{i:02}.png"), None))
        .collect();
    let sub = full.subset_fraction(0.25, 2).unwrap();
    assert_eq!(sub.len(), 5);
    assert_eq!(full.subset_k_shot(8, 2, false).unwrap().len(), 8);
    let (train, val) = full.split_per_class(4, 2).unwrap();
    assert_eq!((train.len(), val.len()), (16, 4));
}
