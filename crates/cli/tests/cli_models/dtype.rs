//! `--dtype`: half-precision weights for a pretrained model (run here on the CPU with the
//! tiny SD fixture), part of the run's fingerprint; anything but f32/f16/bf16 is a usage
//! error, and so is half precision for `learn-concepts`.

use semaug_data::writer::read_imagefolder;

use crate::common::{augment, s, semaug};
use crate::{fixture, photos, FAST};

/// `augment` of `data` into `out` with sd-tiny, one splice per image, weights as `dtype`.
fn splice_args<'a>(model: &'a str, dtype: &'a str) -> Vec<&'a str> {
    let mut args = vec!["--model", model, "--dtype", dtype];
    args.extend_from_slice(&FAST);
    args.extend_from_slice(&["--method", "splice:strength=0.6"]);
    args
}

#[test]
fn half_precision_weights_augment_close_to_f32_and_are_part_of_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let data = photos(dir.path(), &["cat"]);
    let model = fixture("sd-tiny");
    let (half, full) = (dir.path().join("f16"), dir.path().join("f32"));
    augment(&data, &half, &splice_args(s(&model), "f16")).assert_success();
    augment(&data, &full, &splice_args(s(&model), "f32")).assert_success();
    let (half_records, full_records) = (
        read_imagefolder(&half).unwrap(),
        read_imagefolder(&full).unwrap(),
    );
    assert_eq!(half_records.len(), 1);
    let (a, b) = (&half_records[0].1, &full_records[0].1);
    assert_eq!(a.dimensions(), b.dimensions());
    // f16 changes the image by ~2e-3 of its norm (the models crate measures it), a tenth
    // of one 8-bit level on average: rounding to bytes flips few pixels, by one level.
    let levels: u64 = a
        .as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(x, y)| u64::from(x.abs_diff(*y)))
        .sum();
    let mean = levels as f64 / a.as_raw().len() as f64;
    println!("mean |f16 - f32| = {mean:.3} levels");
    assert!(
        mean < 1.0,
        "f16 output is {mean:.2} levels from f32 on average"
    );
    // Other bytes: resuming the f16 folder in f32 is refused instead of mixing them.
    let outcome = augment(&data, &half, &splice_args(s(&model), "f32"));
    assert_ne!(outcome.code, 0, "an f32 run resumed the f16 folder");
}

#[test]
fn dtype_must_be_f32_f16_or_bf16_and_f32_for_learning_concepts() {
    let dir = tempfile::tempdir().unwrap();
    let data = photos(dir.path(), &["cat"]);
    let out = dir.path().join("out");
    let model = fixture("sd-tiny");
    for bad in ["f64", "nonsense"] {
        let line = augment(&data, &out, &splice_args(s(&model), bad))
            .assert_usage_error()
            .to_string();
        assert!(line.contains(bad), "{line}");
    }
    assert!(!out.exists(), "a usage error wrote output");
    let concepts = dir.path().join("concepts.safetensors");
    let args = [
        "learn-concepts",
        "--data",
        s(&data),
        "--model",
        s(&model),
        "--dtype",
        "f16",
        "--out",
        s(&concepts),
    ];
    let line = semaug(&args).assert_usage_error().to_string();
    assert!(line.contains("--dtype"), "{line}");
    assert!(!concepts.exists());
}
