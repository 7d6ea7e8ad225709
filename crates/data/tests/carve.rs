//! `carve` cuts CIFAR-10 exactly as `semaug split` did for the shipped generator: the
//! seed-0 5 % labeled subset and the 500-per-class validation split listed in
//! `data/splits/cifar10/`, disjoint, with the rest as the pool.

use std::collections::HashSet;

use semaug_data::dataset::{carve, open_dataset, CarveSpec, Labeled, OpenOptions};

fn listed(name: &str) -> Vec<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/splits/cifar10/");
    let text = std::fs::read_to_string(format!("{path}{name}")).unwrap();
    text.lines().map(str::to_owned).collect()
}

fn sorted_ids(set: &semaug_data::dataset::Dataset) -> Vec<String> {
    let mut ids: Vec<String> = set.ids().map(str::to_owned).collect();
    ids.sort();
    ids
}

#[test]
fn cifar10_defaults_reproduce_the_shipped_split_lists() {
    let data = open_dataset(&semaug_testdata::cifar10_train(), &OpenOptions::default()).unwrap();
    let carved = carve(&data, &CarveSpec::default()).unwrap();
    assert_eq!(
        sorted_ids(&carved.labeled),
        listed("labeled-5pct-seed0.txt")
    );
    assert_eq!(sorted_ids(&carved.val), listed("val-500-seed0.txt"));
    assert_eq!(carved.pool.len(), 50_000 - 2_500 - 5_000);
    let labeled: HashSet<&str> = carved.labeled.ids().collect();
    assert!(carved.val.ids().all(|id| !labeled.contains(id)));
    assert!(carved.pool.ids().all(|id| !labeled.contains(id)));
    // k shots per class instead of a fraction: k of each class, still disjoint.
    let spec = CarveSpec {
        labeled: Labeled::Shots(3),
        val_per_class: 7,
        ..CarveSpec::default()
    };
    let shots = carve(&data, &spec).unwrap();
    assert_eq!(shots.labeled.class_counts(), vec![3; 10]);
    assert_eq!(shots.val.class_counts(), vec![7; 10]);
}
