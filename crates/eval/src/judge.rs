//! A judge: a classifier trained on real images, kept on disk, that measures whether
//! generated or augmented images still show the class they are labelled with (label
//! preservation of a method, class consistency of a generator, the pull of a learned
//! concept). It is a measuring instrument, like the Inception network behind FID: the
//! images it is trained on never reach the generator or the classifiers of an experiment.

use std::path::{Path, PathBuf};

use candle_core::Device;
use image::RgbImage;
use serde::{Deserialize, Serialize};

use crate::data::{LabeledImages, TrainSet};
use crate::error::EvalError;
use crate::evaluate::{evaluate, Evaluation};
use crate::models::{Arch, Classifier};
use crate::trainer::{Control, Progress, TrainConfig, Trainer};

/// The card format written next to the weights.
pub const JUDGE_FORMAT: &str = "semaug-judge/1";
const CARD_FILE: &str = "judge.json";
const WEIGHTS_FILE: &str = "classifier.safetensors";
const CHECKPOINTS_DIR: &str = "checkpoints";

/// What a judge is and how well it judges real images.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JudgeCard {
    pub format: String,
    pub classes: Vec<String>,
    pub arch: Arch,
    /// First-stage channels, when not the preset's.
    pub width: Option<usize>,
    /// Width and height of the images it takes.
    pub image_size: (u32, u32),
    pub train_images: usize,
    pub epochs: usize,
    pub seed: u64,
    /// Accuracy on the held-out real images it was checked on, if any.
    pub eval_images: Option<usize>,
    pub eval_accuracy: Option<f64>,
    pub eval_balanced_accuracy: Option<f64>,
}

/// A trained judge.
#[derive(Debug)]
pub struct Judge {
    pub card: JudgeCard,
    classifier: Classifier,
}

/// Settings of [`train_judge`]: the trainer's, plus the architecture.
#[derive(Debug, Clone)]
pub struct JudgeSettings {
    pub arch: Arch,
    /// First-stage channels instead of the preset's (narrower = faster).
    pub width: Option<usize>,
    pub train: TrainConfig,
}

/// Trains a judge on `train` (classical crop + flip augmentation), checks it on `eval`,
/// and writes weights and card to `dir`; epochs are checkpointed in `dir/checkpoints`,
/// so an interrupted call resumes. `progress` may stop the run (then nothing is written
/// but the checkpoints, and the result is `Ok(None)`).
pub fn train_judge(
    train: &LabeledImages,
    eval: Option<&LabeledImages>,
    classes: &[String],
    settings: &JudgeSettings,
    dir: &Path,
    progress: impl FnMut(&Progress) -> Control,
) -> Result<Option<Judge>, EvalError> {
    check_classes(classes, train.num_classes())?;
    let classifier = new_classifier(
        settings.arch,
        settings.width,
        classes.len(),
        settings.train.seed,
    )?;
    let trainer = Trainer::new(&classifier, settings.train.clone())?
        .with_checkpoints(dir.join(CHECKPOINTS_DIR));
    let outcome = trainer.run(&TrainSet::real_only(train.clone()), None, progress)?;
    if outcome.stopped {
        return Ok(None);
    }
    let checked = eval
        .map(|e| evaluate(&classifier, e, settings.train.eval_batch_size))
        .transpose()?;
    let card = JudgeCard {
        format: JUDGE_FORMAT.to_string(),
        classes: classes.to_vec(),
        arch: settings.arch,
        width: settings.width,
        image_size: train.image_size(),
        train_images: train.len(),
        epochs: settings.train.epochs,
        seed: settings.train.seed,
        eval_images: eval.map(LabeledImages::len),
        eval_accuracy: checked.as_ref().map(Evaluation::accuracy),
        eval_balanced_accuracy: checked.as_ref().map(Evaluation::balanced_accuracy),
    };
    std::fs::create_dir_all(dir).map_err(|e| io_error(dir, &e))?;
    classifier.save(&dir.join(WEIGHTS_FILE))?;
    write_card(dir, &card)?;
    Ok(Some(Judge { card, classifier }))
}

impl Judge {
    /// Reads a judge written by [`train_judge`].
    pub fn load(dir: &Path) -> Result<Self, EvalError> {
        let card_path = dir.join(CARD_FILE);
        let text = std::fs::read_to_string(&card_path).map_err(|e| EvalError::Weights {
            path: card_path.clone(),
            detail: format!("{e}; train one there first with `semaug judge train`"),
        })?;
        let card: JudgeCard = serde_json::from_str(&text).map_err(|e| EvalError::Weights {
            path: card_path.clone(),
            detail: format!("not a judge card: {e}"),
        })?;
        if card.format != JUDGE_FORMAT {
            return Err(EvalError::Weights {
                path: card_path,
                detail: format!(
                    "format {:?}, this semaug reads {JUDGE_FORMAT:?}",
                    card.format
                ),
            });
        }
        check_classes(&card.classes, card.classes.len())?;
        let classifier = new_classifier(card.arch, card.width, card.classes.len(), card.seed)?;
        classifier.load(&dir.join(WEIGHTS_FILE))?;
        Ok(Self { card, classifier })
    }

    /// The judge's verdicts on `images`, each meant to show class `intended[i]`; images
    /// of another size than the judge's are an error (resize them first).
    pub fn judge(
        &self,
        images: Vec<RgbImage>,
        intended: Vec<usize>,
    ) -> Result<Evaluation, EvalError> {
        if let Some(im) = images
            .iter()
            .find(|im| im.dimensions() != self.card.image_size)
        {
            return Err(EvalError::Data {
                what: "images to judge",
                detail: format!(
                    "{:?} pixels, the judge takes {:?}",
                    im.dimensions(),
                    self.card.image_size
                ),
            });
        }
        let set = LabeledImages::new(images, intended, self.card.classes.len())?;
        evaluate(&self.classifier, &set, 256)
    }

    /// The class the judge sees in each image (no intended class needed).
    pub fn predict(&self, images: Vec<RgbImage>) -> Result<Vec<usize>, EvalError> {
        let n = images.len();
        // The intended labels only feed the loss and the confusion matrix, unused here.
        Ok(self.judge(images, vec![0; n])?.predictions)
    }

    /// The index of class `name`, if the judge knows it.
    pub fn class_index(&self, name: &str) -> Option<usize> {
        self.card.classes.iter().position(|c| c == name)
    }
}

fn new_classifier(
    arch: Arch,
    width: Option<usize>,
    classes: usize,
    seed: u64,
) -> Result<Classifier, EvalError> {
    let mut config = arch.config(classes);
    if let Some(width) = width {
        config = config.with_first_width(width);
    }
    Classifier::new(&config, seed, &Device::Cpu)
}

fn check_classes(classes: &[String], expected: usize) -> Result<(), EvalError> {
    if classes.len() < 2 || classes.len() != expected {
        return Err(EvalError::Data {
            what: "judge classes",
            detail: format!(
                "{} class names for {expected} classes; a judge needs at least 2",
                classes.len()
            ),
        });
    }
    Ok(())
}

fn write_card(dir: &Path, card: &JudgeCard) -> Result<(), EvalError> {
    let path = dir.join(CARD_FILE);
    let tmp: PathBuf = dir.join(format!("{CARD_FILE}.tmp-{}", std::process::id()));
    let text = serde_json::to_string_pretty(card).map_err(|e| EvalError::Weights {
        path: path.clone(),
        detail: e.to_string(),
    })?;
    std::fs::write(&tmp, text + "\n").map_err(|e| io_error(&tmp, &e))?;
    std::fs::rename(&tmp, &path).map_err(|e| io_error(&path, &e))
}

fn io_error(path: &Path, e: &std::io::Error) -> EvalError {
    EvalError::Weights {
        path: path.to_owned(),
        detail: e.to_string(),
    }
}
