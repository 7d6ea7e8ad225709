//! `semaug judge train | check`: a classifier trained on real images that measures
//! whether images keep their labels: an augmented dataset's, per method (label
//! preservation), or a generator's samples per class and per learned concept against
//! samples from the null condition (class consistency). See `semaug_eval::judge`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};
use semaug_core::Condition;
use semaug_data::dataset::{open_dataset, Dataset, OpenOptions};
use semaug_data::writer::atomic::publish;
use semaug_data::writer::METADATA_FILE;
use semaug_eval::experiment::data::ImageStore;
use semaug_eval::{train_judge, Control, Judge, JudgeSettings, Progress, TrainConfig};
use semaug_ops::sample::sample_rows;
use serde::Serialize;

use super::model;
use crate::cli::{ClassifierArgs, Global, ModelArgs, SamplingArgs};
use crate::progress;
use crate::UsageError;

#[derive(Debug, Args)]
pub struct JudgeArgs {
    #[command(subcommand)]
    pub action: JudgeCommand,
}

#[derive(Debug, Subcommand)]
pub enum JudgeCommand {
    /// Train a judge on real labeled images (resumable) and check it on held-out ones.
    Train(JudgeTrainArgs),
    /// Judge an augmented dataset (per method) or a generator's samples (per class and
    /// concept, against samples from the null condition).
    Check(JudgeCheckArgs),
}

#[derive(Debug, Args)]
pub struct JudgeTrainArgs {
    /// Real labeled images (ImageFolder). They train only the judge: keep them apart from
    /// the images an experiment evaluates on.
    #[arg(long)]
    pub data: PathBuf,
    /// Output folder: judge.json, classifier.safetensors, checkpoints/ (rerun to resume).
    #[arg(long)]
    pub out: PathBuf,
    /// Held-out real images of the same classes to report the judge's own accuracy on.
    #[arg(long)]
    pub eval_data: Option<PathBuf>,
    /// Use at most this many images per class (the first in file order).
    #[arg(long)]
    pub per_class: Option<usize>,
    #[arg(long, default_value_t = 15)]
    pub epochs: usize,
    #[command(flatten)]
    pub classifier: ClassifierArgs,
}

#[derive(Debug, Args)]
pub struct JudgeCheckArgs {
    /// A judge folder written by `semaug judge train`.
    #[arg(long)]
    pub judge: PathBuf,
    /// An ImageFolder to judge (e.g. `semaug augment --out`); without it, samples of
    /// `--model` are judged.
    #[arg(long)]
    pub data: Option<PathBuf>,
    #[command(flatten)]
    pub generator: ModelArgs,
    /// Learned concepts (`semaug learn-concepts`): classes with a concept are sampled
    /// from it.
    #[arg(long)]
    pub concepts: Option<PathBuf>,
    /// Samples per class (and from the null condition) when judging a model.
    #[arg(long, default_value_t = 50)]
    pub per_class: usize,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    /// Also write the verdicts as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

pub fn run(global: &Global, args: JudgeArgs) -> anyhow::Result<()> {
    match args.action {
        JudgeCommand::Train(args) => train(global, &args),
        JudgeCommand::Check(args) => check(global, &args),
    }
}

fn train(global: &Global, args: &JudgeTrainArgs) -> anyhow::Result<()> {
    let classifier = &args.classifier;
    let arch = classifier.arch()?;
    let mut store = ImageStore::new(classifier.image_size);
    let data = capped(open(&args.data)?, args.per_class);
    let train = store.labeled(&data)?;
    let eval = match &args.eval_data {
        Some(dir) => {
            let eval = open(dir)?.with_classes(&data.classes).with_context(|| {
                format!(
                    "{}: its classes differ from {}",
                    dir.display(),
                    args.data.display()
                )
            })?;
            Some(store.labeled(&eval)?)
        }
        None => None,
    };
    let settings = JudgeSettings {
        arch,
        width: classifier.width,
        train: TrainConfig {
            epochs: args.epochs,
            batch_size: classifier.batch,
            lr: classifier.lr,
            seed: global.seed,
            ..TrainConfig::default()
        },
    };
    let bar = progress::bar(args.epochs as u64, "epochs", global.quiet);
    let judge = train_judge(
        &train,
        eval.as_ref(),
        &data.classes,
        &settings,
        &args.out,
        |p| {
            if let Progress::Epoch { record, .. } = p {
                bar.set(
                    record.epoch as u64,
                    format!(
                        "loss {:.3}, train accuracy {:.1} %",
                        record.train_loss,
                        100.0 * record.train_accuracy
                    ),
                );
            }
            Control::Continue
        },
    )?;
    bar.finish();
    let judge = judge.context("training stopped before the last epoch")?;
    if !global.quiet {
        println!(
            "judge: {} ({} training images)",
            args.out.display(),
            train.len()
        );
        if let (Some(n), Some(acc)) = (judge.card.eval_images, judge.card.eval_accuracy) {
            println!("accuracy on {n} held-out real images: {:.1} %", 100.0 * acc);
        }
    }
    Ok(())
}

/// The first `per_class` samples of each class, in file order.
fn capped(data: Dataset, per_class: Option<usize>) -> Dataset {
    let Some(cap) = per_class else { return data };
    let mut counts = vec![0usize; data.classes.len()];
    let keep: HashSet<String> = data
        .samples
        .iter()
        .filter(|s| {
            let Some(c) = s.class else { return false };
            counts[c] += 1;
            counts[c] <= cap
        })
        .map(|s| s.id.clone())
        .collect();
    data.filter(|s| keep.contains(&s.id))
}

/// One group of judged images: a method of an augmented dataset, or a generator's
/// condition of one class.
#[derive(Debug, Serialize)]
struct Verdict {
    name: String,
    images: usize,
    /// Fraction the judge assigns to the intended class.
    kept: f64,
    per_class: Vec<ClassVerdict>,
}

#[derive(Debug, Serialize)]
struct ClassVerdict {
    class: String,
    images: usize,
    kept: f64,
    /// For generated samples: how often samples from the null condition are judged to
    /// be this class (what `kept` must beat).
    null_rate: Option<f64>,
}

fn check(global: &Global, args: &JudgeCheckArgs) -> anyhow::Result<()> {
    let judge = Judge::load(&args.judge)?;
    let verdicts = match &args.data {
        Some(dir) => judge_dataset(&judge, dir)?,
        None => judge_model(global, args, &judge)?,
    };
    print_verdicts(&judge, &verdicts);
    if let Some(path) = &args.json {
        let json = serde_json::json!({
            "format": "semaug-judge-check/1",
            "judge": judge.card,
            "source": args.data.as_ref().map_or(args.generator.model.clone(), |d| d.display().to_string()),
            "verdicts": verdicts,
        });
        publish(
            path,
            (serde_json::to_string_pretty(&json)? + "\n").as_bytes(),
        )?;
    }
    Ok(())
}

/// An ImageFolder, grouped by the method of each file's `metadata.jsonl` record when
/// there is one (`semaug augment` output), else judged as one group.
fn judge_dataset(judge: &Judge, dir: &Path) -> anyhow::Result<Vec<Verdict>> {
    let data = open(dir)?;
    let classes = map_classes(judge, &data)?;
    let mut store = ImageStore::new(Some(judge.card.image_size.0));
    let images = store.labeled(&data)?;
    let intended: Vec<usize> = images.labels().iter().map(|&l| classes[l]).collect();
    let predicted = judge.predict(images.images().to_vec())?;
    let methods = methods_by_file(dir)?;
    let mut groups: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, sample) in data.samples.iter().enumerate() {
        let group = methods
            .get(&sample.id)
            .cloned()
            .unwrap_or_else(|| "(all)".into());
        groups.entry(group).or_default().push(i);
    }
    Ok(groups
        .into_iter()
        .map(|(name, members)| verdict(judge, name, &members, &intended, &predicted, None))
        .collect())
}

/// Each of the dataset's classes as the judge's class index (same names required).
fn map_classes(judge: &Judge, data: &Dataset) -> anyhow::Result<Vec<usize>> {
    data.classes
        .iter()
        .map(|name| {
            judge.class_index(name).ok_or_else(|| {
                UsageError(format!(
                    "{}: class `{name}` is not one of the judge's ({})",
                    data.root.display(),
                    judge.card.classes.join(", ")
                ))
                .into()
            })
        })
        .collect()
}

/// `file_name -> method label` from an augmented dataset's records; a method that
/// appears with several parameter sets is labelled with each set.
fn methods_by_file(dir: &Path) -> anyhow::Result<HashMap<String, String>> {
    let path = dir.join(METADATA_FILE);
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(HashMap::new());
    };
    let mut labels = HashMap::new();
    for (n, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let record: serde_json::Value = serde_json::from_str(line)
            .with_context(|| format!("{} line {}: not JSON", path.display(), n + 1))?;
        let field = |k: &str| record.get(k).and_then(|v| v.as_str()).map(str::to_owned);
        let (Some(file), Some(method)) = (field("file_name"), field("method")) else {
            continue;
        };
        let params = record.get("params").map(compact_params).unwrap_or_default();
        labels.insert(file, format!("{method} {params}").trim().to_string());
    }
    Ok(labels)
}

/// A method's parameters in one short line, e.g. `delta=0.5 steps=10`.
fn compact_params(params: &serde_json::Value) -> String {
    fn walk(v: &serde_json::Value, key: &str, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(map) => {
                for (k, v) in map {
                    walk(v, k, out);
                }
            }
            other => out.push(format!("{key}={other}")),
        }
    }
    let mut out = Vec::new();
    walk(params, "", &mut out);
    out.retain(|item| !item.starts_with("name="));
    out.join(" ")
}

/// Samples `--per-class` images for every judge class and as many from the null
/// condition, all from the same noises, so a class's samples differ from the null ones
/// by the condition alone.
fn judge_model(
    global: &Global,
    args: &JudgeCheckArgs,
    judge: &Judge,
) -> anyhow::Result<Vec<Verdict>> {
    let mut model = model::load(&args.generator)?;
    if let Some(path) = &args.concepts {
        model.attach_concepts(path)?;
    }
    let sampling = args.sampling.sampling()?;
    if args.per_class == 0 {
        return Err(UsageError("--per-class must be at least 1".into()).into());
    }
    let names = judge.card.classes.clone();
    let mut conditions = model.conditions(&names, global.quiet);
    conditions.push(Condition::Null);
    let generator = model.generator();
    let bar = progress::bar(conditions.len() as u64, "conditions", global.quiet);
    let mut images = Vec::new();
    for condition in &conditions {
        let rows = sample_rows(
            &generator,
            std::slice::from_ref(condition),
            args.per_class,
            &sampling,
            global.seed,
        )?;
        images.extend(rows.into_iter().flatten());
        bar.inc(1);
    }
    bar.finish();
    let n = args.per_class;
    let intended: Vec<usize> = (0..names.len())
        .flat_map(|c| std::iter::repeat_n(c, n))
        .collect();
    let classed = images.len() - n;
    let predicted = judge.predict(resized(images, judge.card.image_size))?;
    let null_predictions = &predicted[classed..];
    let null_rate: Vec<f64> = (0..names.len())
        .map(|c| null_predictions.iter().filter(|&&p| p == c).count() as f64 / n as f64)
        .collect();
    let name = format!(
        "{} ({} steps, {}, guidance {})",
        args.generator.model, sampling.steps, args.sampling.solver, sampling.guidance
    );
    let members: Vec<usize> = (0..classed).collect();
    let mut verdict = verdict(
        judge,
        name,
        &members,
        &intended,
        &predicted,
        Some(&null_rate),
    );
    for (class, condition) in verdict.per_class.iter_mut().zip(&conditions) {
        class.class = format!("{} [{}]", class.class, describe(condition));
    }
    Ok(vec![verdict])
}

fn describe(condition: &Condition) -> String {
    match condition {
        Condition::Null => "null: the model does not know it".into(),
        Condition::Class(k) => format!("class row {k}"),
        Condition::Concept(token) => format!("concept {token}"),
        other => format!("{other:?}"),
    }
}

/// Images at the judge's size (samples come at the generator's).
fn resized(images: Vec<image::RgbImage>, size: (u32, u32)) -> Vec<image::RgbImage> {
    images
        .into_iter()
        .map(|im| {
            if im.dimensions() == size {
                im
            } else {
                image::imageops::resize(&im, size.0, size.1, image::imageops::FilterType::Triangle)
            }
        })
        .collect()
}

fn verdict(
    judge: &Judge,
    name: String,
    members: &[usize],
    intended: &[usize],
    predicted: &[usize],
    null_rate: Option<&[f64]>,
) -> Verdict {
    let kept = |idx: &mut dyn Iterator<Item = &usize>| {
        let (mut n, mut ok) = (0usize, 0usize);
        for &i in idx {
            n += 1;
            ok += usize::from(intended[i] == predicted[i]);
        }
        (n, if n == 0 { 0.0 } else { ok as f64 / n as f64 })
    };
    let (images, overall) = kept(&mut members.iter());
    let per_class = judge
        .card
        .classes
        .iter()
        .enumerate()
        .filter_map(|(c, class)| {
            let (n, rate) = kept(&mut members.iter().filter(|&&i| intended[i] == c));
            (n > 0).then(|| ClassVerdict {
                class: class.clone(),
                images: n,
                kept: rate,
                null_rate: null_rate.map(|r| r[c]),
            })
        })
        .collect();
    Verdict {
        name,
        images,
        kept: overall,
        per_class,
    }
}

fn print_verdicts(judge: &Judge, verdicts: &[Verdict]) {
    let card = &judge.card;
    let own = card
        .eval_accuracy
        .map(|a| {
            format!(
                ", {:.1} % on {} held-out real images",
                100.0 * a,
                card.eval_images.unwrap_or(0)
            )
        })
        .unwrap_or_default();
    println!(
        "judge: {} classes, {:?}{own}",
        card.classes.len(),
        card.arch
    );
    for v in verdicts {
        println!(
            "\n{}: {} images, {:.1} % judged as their intended class",
            v.name,
            v.images,
            100.0 * v.kept
        );
        let with_null = v.per_class.iter().any(|c| c.null_rate.is_some());
        if with_null {
            println!("| class | samples | judged as the class | null samples judged as it |\n|---|---|---|---|");
        } else {
            println!("| class | images | judged as the class |\n|---|---|---|");
        }
        for c in &v.per_class {
            let null = c
                .null_rate
                .map(|r| format!(" {:.1} % |", 100.0 * r))
                .unwrap_or_default();
            println!(
                "| {} | {} | {:.1} % |{null}",
                c.class,
                c.images,
                100.0 * c.kept
            );
        }
    }
}

fn open(dir: &Path) -> anyhow::Result<Dataset> {
    open_dataset(dir, &OpenOptions::default())
        .with_context(|| format!("cannot open {}", dir.display()))
}
