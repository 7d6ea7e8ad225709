//! Stable Diffusion 1.x and SD3 pipeline folders through `augment` and `learn-concepts`.

use std::fs;

use semaug_data::writer::read_imagefolder;

use crate::common::{augment, s, semaug};
use crate::{fixture, photos, FAST};

fn args<'a>(model: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut all = vec!["--model", model];
    all.extend_from_slice(&FAST);
    all.extend_from_slice(extra);
    all
}

#[test]
fn stable_diffusion_folder_augments_with_class_prompts() {
    let dir = tempfile::tempdir().unwrap();
    let data = photos(dir.path(), &["cat", "dog"]);
    let out = dir.path().join("out");
    let model = fixture("sd-tiny");
    let prompt = [
        "--prompt",
        "a photo of a {class}",
        "--method",
        "splice:strength=0.5",
    ];
    augment(&data, &out, &args(s(&model), &prompt)).assert_success();
    let records = read_imagefolder(&out).unwrap();
    assert_eq!(records.len(), 2);
    for (record, image) in &records {
        // sd-tiny works at 64x64 pixels.
        assert_eq!(image.dimensions(), (64, 64), "{}", record.file_name);
        assert_eq!(record.method, "splice");
    }
    let run = fs::read_to_string(out.join(".semaug/run.json")).unwrap();
    assert!(
        run.contains("a photo of a {class}"),
        "prompt not in the run settings: {run}"
    );
    // Another prompt is another dataset: the folder refuses to mix them.
    let other = [
        "--prompt",
        "a painting of a {class}",
        "--method",
        "splice:strength=0.5",
    ];
    let outcome = augment(&data, &out, &args(s(&model), &other));
    assert_ne!(outcome.code, 0, "a changed prompt resumed the run");
}

#[test]
fn stable_diffusion_3_folder_augments() {
    let dir = tempfile::tempdir().unwrap();
    let data = photos(dir.path(), &["cat"]);
    let out = dir.path().join("out");
    let model = fixture("sd3-tiny");
    let extra = [
        "--method",
        "perturb:delta=0.2",
        "--method",
        "splice:strength=0.6",
    ];
    augment(&data, &out, &args(s(&model), &extra)).assert_success();
    let records = read_imagefolder(&out).unwrap();
    assert_eq!(records.len(), 2);
    assert!(records
        .iter()
        .all(|(r, _)| r.model.as_deref() == Some(s(&model))));
}

#[test]
fn concepts_learned_for_stable_diffusion_condition_its_augmentations() {
    let dir = tempfile::tempdir().unwrap();
    let data = photos(dir.path(), &["cat"]);
    let model = fixture("sd-tiny");
    let concepts = dir.path().join("learned_embeds.safetensors");
    let learn = [
        "learn-concepts",
        "--data",
        s(&data),
        "--model",
        s(&model),
        "--out",
        s(&concepts),
        "--steps",
        "2",
        "--batch",
        "1",
        "--init",
        "animal",
    ];
    semaug(&learn).assert_success();
    let out = dir.path().join("out");
    let extra = [
        "--concepts",
        s(&concepts),
        "--method",
        "splice:strength=0.5",
    ];
    augment(&data, &out, &args(s(&model), &extra)).assert_success();
    let run = fs::read_to_string(out.join(".semaug/run.json")).unwrap();
    assert!(
        run.contains("<cat>"),
        "the class was not conditioned on its concept: {run}"
    );
    assert_eq!(read_imagefolder(&out).unwrap().len(), 1);
}

#[test]
fn flags_that_do_not_fit_the_model_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let data = photos(dir.path(), &["cat"]);
    let out = dir.path().join("out");
    let sd = fixture("sd-tiny");
    let cases: [Vec<&str>; 3] = [
        // The embedded model has class labels, not prompts.
        vec!["--prompt", "a photo of a {class}", "--method", "splice"],
        // A prompt must say where the class goes.
        vec![
            "--model",
            s(&sd),
            "--prompt",
            "a photo",
            "--method",
            "splice",
        ],
        // This build has no CUDA.
        vec!["--model", s(&sd), "--device", "cuda", "--method", "splice"],
    ];
    for extra in cases {
        let outcome = augment(&data, &out, &extra);
        let line = outcome.assert_error_line(2);
        assert!(
            line.contains("--prompt") || line.contains("--device"),
            "{line}"
        );
        assert!(!out.exists(), "{extra:?} wrote {}", out.display());
    }
}
