//! The judge: trained on separable synthetic classes it judges held-out images right,
//! agrees with their labels and disagrees with wrong ones, reloads to the same verdicts,
//! resumes after a stop, and refuses what it cannot judge.

mod common;

use semaug_eval::{
    train_judge, Arch, Control, EvalError, Judge, JudgeSettings, LabeledImages, Progress,
    TrainConfig,
};

use common::striped_set;

fn classes() -> Vec<String> {
    ["north", "east", "south", "west"]
        .map(String::from)
        .to_vec()
}

fn settings(epochs: usize) -> JudgeSettings {
    JudgeSettings {
        arch: Arch::Resnet20,
        width: Some(8),
        train: TrainConfig {
            epochs,
            batch_size: 32,
            lr: 0.05,
            warmup_epochs: 1,
            ..TrainConfig::default()
        },
    }
}

fn parts(set: &LabeledImages) -> (Vec<image::RgbImage>, Vec<usize>) {
    (set.images().to_vec(), set.labels().to_vec())
}

#[test]
fn judges_held_out_images_and_reloads_to_the_same_verdicts() {
    let dir = tempfile::tempdir().unwrap();
    let (train, held_out) = (striped_set(60, 16, 1), striped_set(25, 16, 2));
    let judge = train_judge(
        &train,
        Some(&held_out),
        &classes(),
        &settings(6),
        dir.path(),
        |_| Control::Continue,
    )
    .unwrap()
    .expect("not stopped");
    let accuracy = judge.card.eval_accuracy.unwrap();
    assert!(accuracy > 0.95, "held-out accuracy {accuracy}");
    assert_eq!(judge.card.eval_images, Some(100));
    assert_eq!(judge.card.image_size, (16, 16));

    // Labels that match the images are agreed with; shifted labels are not.
    let (images, labels) = parts(&held_out);
    let agree = judge
        .judge(images.clone(), labels.clone())
        .unwrap()
        .accuracy();
    let shifted: Vec<usize> = labels.iter().map(|l| (l + 1) % 4).collect();
    let disagree = judge.judge(images.clone(), shifted).unwrap().accuracy();
    assert!(
        agree > 0.95 && disagree < 0.05,
        "agree {agree}, shifted {disagree}"
    );

    let reloaded = Judge::load(dir.path()).unwrap();
    assert_eq!(reloaded.card, judge.card);
    assert_eq!(
        reloaded.predict(images.clone()).unwrap(),
        judge.predict(images).unwrap()
    );
    assert_eq!(reloaded.class_index("south"), Some(2));
    assert_eq!(reloaded.class_index("up"), None);
}

#[test]
fn a_stopped_judge_writes_no_card_and_resumes_from_its_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let train = striped_set(30, 16, 3);
    let stop_after_first_epoch = |p: &Progress| match p {
        Progress::Epoch { .. } => Control::Stop,
        Progress::Step { .. } => Control::Continue,
    };
    let stopped = train_judge(
        &train,
        None,
        &classes(),
        &settings(2),
        dir.path(),
        stop_after_first_epoch,
    );
    assert!(stopped.unwrap().is_none());
    assert!(Judge::load(dir.path()).is_err(), "no card before the end");

    let mut epochs = Vec::new();
    let judge = train_judge(&train, None, &classes(), &settings(2), dir.path(), |p| {
        if let Progress::Epoch { record, .. } = p {
            epochs.push(record.epoch);
        }
        Control::Continue
    })
    .unwrap()
    .expect("not stopped");
    assert_eq!(
        epochs,
        vec![2],
        "the second call trains only the missing epoch"
    );
    assert_eq!(judge.card.eval_accuracy, None);
    assert!(Judge::load(dir.path()).is_ok());
}

#[test]
fn refuses_what_it_cannot_judge() {
    let missing = tempfile::tempdir().unwrap();
    let err = Judge::load(missing.path()).unwrap_err().to_string();
    assert!(
        err.contains("judge.json") && err.contains("semaug judge train"),
        "{err}"
    );

    let dir = tempfile::tempdir().unwrap();
    let train = striped_set(10, 16, 4);
    let three_names = &classes()[..3];
    let err = train_judge(&train, None, three_names, &settings(1), dir.path(), |_| {
        Control::Continue
    })
    .unwrap_err();
    assert!(matches!(err, EvalError::Data { .. }), "{err}");

    let judge = train_judge(&train, None, &classes(), &settings(1), dir.path(), |_| {
        Control::Continue
    })
    .unwrap()
    .unwrap();
    let big = striped_set(1, 24, 5);
    let (images, labels) = parts(&big);
    let err = judge.judge(images, labels).unwrap_err().to_string();
    assert!(
        err.contains("(24, 24)") && err.contains("(16, 16)"),
        "{err}"
    );
}
