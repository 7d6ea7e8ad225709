//! `semaug eval lowdata | ratio | fewshot`: the paper's experiments (section 4) as
//! commands. Each maps its arguments onto a `semaug_eval::experiment::ExperimentConfig`
//! and its data in one place, runs the experiment with a progress bar, prints the table
//! and says where `results.json`, `results.md` and `results.png` are.
//!
//! Data: `--data DIR` is carved like `semaug split` (labeled fraction, validation split
//! of `--val-per-class` per class, `--seed`), so CIFAR-10 at the defaults gets exactly the
//! 5 % subset the shipped generator saw labels for, and is evaluated on the 500-per-class
//! split neither saw. `--train DIR` takes an already-split labeled folder and needs
//! `--eval-data`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::Context;
use clap::{Args, Subcommand};
use semaug_core::Generator;
use semaug_data::dataset::{open_dataset, Dataset, OpenOptions};
use semaug_data::image_io::Limits;
use semaug_eval::experiment::methods::parse_methods;
use semaug_eval::experiment::report::{self, RESULTS_JSON, RESULTS_MD, RESULTS_PNG};
use semaug_eval::experiment::synthetic::SyntheticSource;
use semaug_eval::experiment::{
    carve, split_methods, CarveSpec, Event, Experiment, ExperimentConfig, ExperimentData,
    ExperimentError, FixedGenerator, Kind, Labeled, Observer, Selection,
};
use semaug_models::concepts::{learn, ConceptConfig, ConceptInit};
use semaug_models::embedded::EmbeddedGenerator;
use semaug_models::flow_training::TrainImages;
use semaug_models::pretrained::LoadedModel;
use semaug_ops::augment::Backend;
use semaug_ops::method::Method;
use semaug_ops::spec::MethodSpec;

use super::model;
use crate::cli::{ClassifierArgs, Global, ModelArgs, SamplingDefaults};
use crate::progress::{self, Progress};
use crate::UsageError;

#[derive(Debug, Args)]
pub struct EvalArgs {
    #[command(subcommand)]
    pub experiment: EvalCommand,
}

#[derive(Debug, Subcommand)]
pub enum EvalCommand {
    /// Low-data classification (the paper's Table 1): every method on one labeled
    /// subset, N seeds; prints the table, writes results.json/.md and a bar chart.
    Lowdata(LowdataArgs),
    /// Accuracy as the synthetic fraction of the training inputs grows (Figure 2).
    Ratio(RatioArgs),
    /// Few-shot accuracy against labeled images per class (Figures 3 and 6), with the
    /// area under each curve and its gain over `classical`.
    Fewshot(FewshotArgs),
}

#[derive(Debug, Args)]
pub struct LowdataArgs {
    #[command(flatten)]
    pub data: SplitData,
    /// Methods, comma-separated (or `;`-separated): baselines vanilla, classical, cutout,
    /// mixup, cutmix, randaugment, and any `semaug augment` method spec, e.g.
    /// `classical,mixup,perturb:delta=0.3,splice:strength=0.5`.
    #[arg(long)]
    pub methods: Option<String>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Args)]
pub struct RatioArgs {
    #[command(flatten)]
    pub data: SplitData,
    /// The generative method whose synthetic images are mixed in.
    #[arg(long, default_value = "perturb:delta=0.3")]
    pub method: String,
    /// Fractions of the training inputs replaced by synthetic images.
    #[arg(long, value_delimiter = ',', default_value = "0,0.1,0.2,0.4,0.6,0.8,1")]
    pub ratios: Vec<f64>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Args)]
pub struct FewshotArgs {
    /// Labeled images (ImageFolder or CIFAR binary) the k-shot subsets are drawn from.
    #[arg(long)]
    pub data: PathBuf,
    /// Masks tree parallel to --data (for `inpaint:region=foreground|background`).
    #[arg(long)]
    pub masks: Option<PathBuf>,
    /// Evaluation images with the same classes (default: --val-per-class of each class
    /// of --data, held out before any subset is drawn).
    #[arg(long)]
    pub eval_data: Option<PathBuf>,
    #[arg(long, default_value_t = 20)]
    pub val_per_class: usize,
    /// Labeled images per class.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4,8,16")]
    pub shots: Vec<usize>,
    /// Methods (see `eval lowdata --help`); default classical, real-guidance, da-fusion.
    #[arg(long)]
    pub methods: Option<String>,
    /// Learn a concept token for every class the generator does not know from each
    /// k-shot subset's own images (this many steps; the novel-concept setting).
    #[arg(long)]
    pub learn_concepts: Option<u64>,
    #[command(flatten)]
    pub run: RunArgs,
}

/// Where lowdata and ratio take their images from.
#[derive(Debug, Args)]
pub struct SplitData {
    /// The full dataset (ImageFolder or CIFAR binary), carved like `semaug split`.
    #[arg(long, required_unless_present = "train")]
    pub data: Option<PathBuf>,
    /// Or an already-split labeled training folder (needs --eval-data).
    #[arg(long, conflicts_with = "data")]
    pub train: Option<PathBuf>,
    /// Fraction of each class that keeps its label.
    #[arg(long, default_value_t = 0.05)]
    pub fraction: f64,
    /// Validation images per class, outside the labeled subset: the default evaluation
    /// split.
    #[arg(long, default_value_t = 500)]
    pub val_per_class: usize,
    /// Evaluate on this labeled ImageFolder instead (same class names).
    #[arg(long)]
    pub eval_data: Option<PathBuf>,
    /// Masks tree parallel to the training images (for masked methods).
    #[arg(long)]
    pub masks: Option<PathBuf>,
}

/// Settings every experiment shares.
#[derive(Debug, Args)]
// The experiments word the shared sampling flags their own way.
#[command(
    mut_arg("steps", |a| a.help("ODE steps for generative methods that do not set `steps`")),
    mut_arg("solver", |a| a.help("ODE solver for generative methods that do not set `solver`")),
    mut_arg("guidance", |a| {
        a.help("Guidance scale for generative methods that do not set `guidance`")
    }),
)]
pub struct RunArgs {
    /// Output folder: results.json, results.md, results.png, runs/, synthetic/ (rerun
    /// the same command to resume; finished runs are skipped).
    #[arg(long)]
    pub out: PathBuf,
    /// Classifier seeds 0..N (default 5; ratio 3; fewshot 8).
    #[arg(long)]
    pub seeds: Option<u64>,
    #[arg(long, default_value_t = 30)]
    pub epochs: usize,
    #[command(flatten)]
    pub classifier: ClassifierArgs,
    /// Model selection: `holdout[:FRACTION]` (default holdout:0.1; fewshot: last),
    /// `last`, or `eval` (DA-Fusion's protocol: selects on the evaluation split).
    #[arg(long)]
    pub selection: Option<String>,
    /// Minimum optimiser steps per run (tiny subsets train more epochs; fewshot 500).
    #[arg(long)]
    pub min_steps: Option<u64>,
    #[command(flatten)]
    pub generator: ModelArgs,
    /// Learned concepts (`semaug learn-concepts`) to condition classes on.
    #[arg(long)]
    pub concepts: Option<PathBuf>,
    /// Take generative methods' images from this augmented folder (`semaug augment
    /// --out`) instead of generating them.
    #[arg(long)]
    pub synthetic: Option<PathBuf>,
    /// Synthetic images generated per real training image.
    #[arg(long, default_value_t = 1)]
    pub per_image: usize,
    /// Probability a drawn training sample is replaced by a synthetic variant.
    #[arg(long, default_value_t = 0.5)]
    pub alpha: f32,
    /// Images per generator batch (speed only).
    #[arg(long, default_value_t = 16)]
    pub gen_batch: usize,
    #[command(flatten)]
    pub sampling: SamplingDefaults,
}

pub fn run(global: &Global, args: EvalArgs) -> anyhow::Result<()> {
    match args.experiment {
        EvalCommand::Lowdata(a) => {
            let mut config = ExperimentConfig::new(Kind::Lowdata);
            if let Some(list) = &a.methods {
                config.methods = split_methods(list);
            }
            apply(&mut config, &a.run, global.seed)?;
            let data = split_data(&a.data, global.seed)?;
            execute(global, config, data, &a.run, None)
        }
        EvalCommand::Ratio(a) => {
            let mut config = ExperimentConfig::new(Kind::Ratio);
            config.methods = vec![a.method.clone()];
            config.points = a.ratios.clone();
            apply(&mut config, &a.run, global.seed)?;
            let data = split_data(&a.data, global.seed)?;
            execute(global, config, data, &a.run, None)
        }
        EvalCommand::Fewshot(a) => {
            let mut config = ExperimentConfig::new(Kind::Fewshot);
            if let Some(list) = &a.methods {
                config.methods = split_methods(list);
            }
            config.points = a.shots.iter().map(|&k| k as f64).collect();
            apply(&mut config, &a.run, global.seed)?;
            let data = fewshot_data(&a, global.seed)?;
            execute(global, config, data, &a.run, a.learn_concepts)
        }
    }
}

/// Lowdata / ratio data: carved from `--data`, or `--train` with `--eval-data`.
fn split_data(args: &SplitData, seed: u64) -> anyhow::Result<ExperimentData> {
    let options = OpenOptions {
        lenient: false,
        masks: args.masks.clone(),
    };
    let eval = args.eval_data.as_deref().map(open).transpose()?;
    if let Some(train_dir) = &args.train {
        let train = open_dataset(train_dir, &options)
            .with_context(|| format!("cannot open {}", train_dir.display()))?;
        let Some(eval) = eval else {
            return Err(
                UsageError("--train needs --eval-data (the images to evaluate on)".into()).into(),
            );
        };
        let origin = format!("labeled folder {}", train_dir.display());
        return Ok(ExperimentData::new(train, eval, origin, eval_origin(args))?);
    }
    let Some(dir) = &args.data else {
        return Err(UsageError("give --data DIR or --train DIR".into()).into());
    };
    if !(args.fraction > 0.0 && args.fraction <= 1.0) {
        return Err(UsageError(format!("--fraction {} must be in (0, 1]", args.fraction)).into());
    }
    let full =
        open_dataset(dir, &options).with_context(|| format!("cannot open {}", dir.display()))?;
    let spec = CarveSpec {
        labeled: Labeled::Fraction(args.fraction),
        val_per_class: if eval.is_some() {
            0
        } else {
            args.val_per_class
        },
        seed,
        lenient: false,
    };
    let carved = carve(&full, &spec)?;
    let train_origin = format!(
        "carved like `semaug split`: {} % of each class of {}, seed {seed}",
        100.0 * args.fraction,
        dir.display()
    );
    let eval = match eval {
        Some(eval) => eval,
        None if args.val_per_class == 0 => {
            return Err(UsageError(
                "--val-per-class 0 leaves nothing to evaluate on; give --eval-data".into(),
            )
            .into())
        }
        None => carved.val,
    };
    let eval_origin = match &args.eval_data {
        Some(_) => eval_origin(args),
        None => format!(
            "the fixed validation split: {} per class outside the labeled subset, seed {seed}",
            args.val_per_class
        ),
    };
    Ok(ExperimentData::new(
        carved.labeled,
        eval,
        train_origin,
        eval_origin,
    )?)
}

fn eval_origin(args: &SplitData) -> String {
    let dir = args.eval_data.as_deref().unwrap_or(Path::new("?"));
    format!("--eval-data {}", dir.display())
}

/// Few-shot data: the pool subsets are drawn from and the evaluation images.
fn fewshot_data(args: &FewshotArgs, seed: u64) -> anyhow::Result<ExperimentData> {
    let options = OpenOptions {
        lenient: false,
        masks: args.masks.clone(),
    };
    let full = open_dataset(&args.data, &options)
        .with_context(|| format!("cannot open {}", args.data.display()))?;
    let pool_origin = format!(
        "k-shot subsets of {} by classifier seed",
        args.data.display()
    );
    if let Some(dir) = &args.eval_data {
        let eval = open(dir)?;
        let origin = format!("--eval-data {}", dir.display());
        return Ok(ExperimentData::new(full, eval, pool_origin, origin)?);
    }
    if args.val_per_class == 0 {
        return Err(UsageError(
            "--val-per-class 0 leaves nothing to evaluate on; give --eval-data".into(),
        )
        .into());
    }
    let (pool, eval) = full.split_per_class(args.val_per_class, seed)?;
    let origin = format!(
        "{} per class of {} held out before any subset is drawn, seed {seed}",
        args.val_per_class,
        args.data.display()
    );
    Ok(ExperimentData::new(pool, eval, pool_origin, origin)?)
}

fn open(dir: &Path) -> anyhow::Result<Dataset> {
    open_dataset(dir, &OpenOptions::default())
        .with_context(|| format!("cannot open {}", dir.display()))
}

/// Applies the shared arguments to `config`.
fn apply(config: &mut ExperimentConfig, run: &RunArgs, seed: u64) -> Result<(), UsageError> {
    if let Some(n) = run.seeds {
        if n == 0 {
            return Err(UsageError("--seeds must be at least 1".into()));
        }
        config.seeds = (0..n).collect();
    }
    config.arch = run.classifier.arch()?;
    config.width = run.classifier.width;
    config.image_size = run.classifier.image_size;
    config.train.epochs = run.epochs;
    config.train.batch_size = run.classifier.batch;
    config.train.lr = run.classifier.lr;
    config.train.warmup_epochs = config.train.warmup_epochs.min(run.epochs);
    if let Some(text) = &run.selection {
        config.selection = selection(text)?;
    }
    if let Some(steps) = run.min_steps {
        config.min_steps = steps;
    }
    config.synthetic.per_image = run.per_image;
    config.synthetic.probability = run.alpha;
    config.synthetic.generation_seed = seed;
    config.data_seed = seed;
    config.methods = config
        .methods
        .iter()
        .map(|m| with_sampling_defaults(m, run))
        .collect::<Result<_, _>>()?;
    let usage = |e: &dyn std::fmt::Display| UsageError(e.to_string());
    config.validate().map_err(|e| usage(&e))?;
    parse_methods(&config.methods).map_err(|e| usage(&e))?;
    Ok(())
}

fn selection(text: &str) -> Result<Selection, UsageError> {
    let bad = || {
        UsageError(format!(
            "--selection {text}: use holdout[:FRACTION], last, or eval (DA-Fusion's protocol)"
        ))
    };
    match text.split_once(':') {
        None if text == "last" => Ok(Selection::Last),
        None if text == "eval" => Ok(Selection::EvalSplit),
        None if text == "holdout" => Ok(Selection::Holdout { fraction: 0.1 }),
        Some(("holdout", f)) => f
            .parse()
            .map(|fraction| Selection::Holdout { fraction })
            .map_err(|_| bad()),
        _ => Err(bad()),
    }
}

/// `--steps/--solver/--guidance` added to a generative spec that does not set them,
/// so the recorded spec says what ran.
fn with_sampling_defaults(entry: &str, run: &RunArgs) -> Result<String, UsageError> {
    let Ok(spec) = MethodSpec::parse(entry) else {
        return Ok(entry.to_owned()); // not a spec (a baseline); checked later
    };
    if !Method::is_generative_name(&spec.name) {
        return Ok(entry.to_owned());
    }
    let mut text = entry.trim().to_owned();
    for (key, value) in run.sampling.spec_items() {
        if let (Some(value), None) = (value, spec.get(key)) {
            text.push(if text.contains(':') { ',' } else { ':' });
            text.push_str(&format!("{key}={value}"));
        }
    }
    Ok(text)
}

fn execute(
    global: &Global,
    config: ExperimentConfig,
    data: ExperimentData,
    run: &RunArgs,
    learn_concepts: Option<u64>,
) -> anyhow::Result<()> {
    let methods = parse_methods(&config.methods)?;
    let generative = methods.iter().any(|m| m.generative().is_some());
    let mut model = match generative && run.synthetic.is_none() {
        true => Some(model::load(&run.generator)?),
        false => None,
    };
    let mut provenance = BTreeMap::new();
    if let (Some(model), Some(path)) = (model.as_mut(), &run.concepts) {
        provenance.insert(
            "concepts_sha256".into(),
            model.attach_concepts(path)?.into(),
        );
    }
    let conditions = model.as_mut().map(|m| {
        m.conditions(
            &data.train.classes,
            global.quiet || learn_concepts.is_some(),
        )
    });
    let on_device = model.as_ref().map(|m| m.generator());
    let mut fixed;
    let mut learned;
    let source: Option<&mut dyn SyntheticSource> = match (&model, learn_concepts) {
        (Some(model), Some(steps)) => {
            let LoadedModel::Embedded(base) = &model.loaded else {
                return Err(UsageError(
                    "--learn-concepts learns tokens of embedded-format models; for other \
                     models learn them with `semaug learn-concepts` and pass --concepts"
                        .into(),
                )
                .into());
            };
            learned = LearnedConcepts {
                base: base.clone(),
                steps,
                batch: run.gen_batch,
                seed: global.seed,
                warn: !global.quiet,
                quiet: global.quiet,
            };
            Some(&mut learned)
        }
        (Some(_), None) => {
            fixed =
                FixedGenerator {
                    generator: on_device.as_ref().map(|g| g as &dyn Generator).ok_or_else(
                        || anyhow::anyhow!("the generator was loaded but is not available"),
                    )?,
                    conditions: conditions.unwrap_or_default(),
                    batch: run.gen_batch,
                    provenance,
                };
            Some(&mut fixed)
        }
        (None, _) => None,
    };
    let bars = Bars::new(global.quiet);
    let mut experiment = Experiment {
        config,
        data,
        out: run.out.clone(),
        source,
        synthetic_dir: run.synthetic.clone(),
    };
    let results = experiment.run(&bars).map_err(|e| match e {
        ExperimentError::Config { .. } | ExperimentError::Method { .. } => {
            anyhow::Error::new(UsageError(e.to_string()))
        }
        other => anyhow::Error::new(other),
    })?;
    bars.finish();
    if !global.quiet {
        print!("{}", report::table(&results));
        let w = results.wall_seconds;
        let reused = *lock(&bars.reused);
        println!(
            "runs: {} trained now, {reused} reused from {}",
            results.runs.len() as u64 - reused,
            run.out.join("runs").display()
        );
        println!(
            "selection: {}\nwall time: generation {:.0} s, training {:.0} s, evaluation {:.0} s, total {:.0} s",
            results.data.selection, w.generation, w.training, w.evaluation, w.total
        );
        println!(
            "wrote {RESULTS_JSON}, {RESULTS_MD} and {RESULTS_PNG} in {}",
            run.out.display()
        );
    }
    Ok(())
}

/// The novel-concept setting: for every training subset, a token per class the model
/// does not know, learned from that subset's images of the class (model frozen).
struct LearnedConcepts {
    base: EmbeddedGenerator,
    steps: u64,
    batch: usize,
    seed: u64,
    warn: bool,
    quiet: bool,
}

impl SyntheticSource for LearnedConcepts {
    fn describe(&self) -> serde_json::Value {
        let info = self.base.info();
        serde_json::json!({
            "name": info.name,
            "weights_sha256": info.weights_sha256,
            "image_size": [info.image_size.0, info.image_size.1],
            "concepts": {
                "learned_from": "each training subset's images of the classes the model lacks",
                "steps": self.steps,
                "seed": self.seed,
            },
        })
    }

    fn per_subset(&self) -> bool {
        true
    }

    fn with_backend(
        &mut self,
        subset: &Dataset,
        generate: &mut dyn FnMut(&Backend) -> Result<(), ExperimentError>,
    ) -> Result<(), ExperimentError> {
        let concept_error = |e: &dyn std::fmt::Display| ExperimentError::Data {
            what: "learning concepts",
            detail: e.to_string(),
        };
        let mut generator = self.base.clone();
        let size = generator.info().image_size;
        let novel: Vec<(usize, &String)> = subset
            .classes
            .iter()
            .enumerate()
            .filter(|(c, name)| {
                self.base.class_index(name).is_none()
                    && subset.samples.iter().any(|s| s.class == Some(*c))
            })
            .collect();
        // Learning takes minutes per class: say so, or the run looks stalled.
        let bar = progress::bar(novel.len() as u64, "concepts", self.quiet);
        for (done, (c, name)) in novel.into_iter().enumerate() {
            let class = subset.filter(|s| s.class == Some(c));
            bar.set(
                done as u64,
                format!("learning <{name}> from {} images", class.len()),
            );
            let images = TrainImages::load(&class, None, size, &Limits::default())
                .map_err(|e| concept_error(&e))?;
            let config = ConceptConfig {
                steps: self.steps,
                batch_size: self.batch,
                init: ConceptInit::Null,
                seed: self.seed ^ semaug_core::seeds::label(name),
                ..ConceptConfig::default()
            };
            let row = learn(&generator, &images, &config, &mut |_, _| {})
                .map_err(|e| concept_error(&e))?;
            generator.concepts.insert(format!("<{name}>"), row);
        }
        bar.finish();
        // The one class -> condition rule every command uses (concept, class, or null).
        let mut model = LoadedModel::Embedded(generator);
        let found = model.class_conditions(&subset.classes);
        if self.warn {
            model::warn_unknown_classes(&found.unknown);
        }
        // Warn about unknown classes once, not for every subset.
        self.warn = false;
        generate(&Backend {
            generator: model.generator(),
            conditions: found.conditions,
            batch: self.batch,
            provenance: BTreeMap::from([(
                "concepts".to_owned(),
                serde_json::json!({"learned_steps": self.steps}),
            )]),
        })
    }
}

/// Progress: one bar over runs (its message: the current run, epoch, loss) and one over
/// synthetic images while generating.
struct Bars {
    quiet: bool,
    runs: Mutex<Option<Progress>>,
    generation: Mutex<Option<Progress>>,
    current: Mutex<String>,
    /// Runs finished, earlier invocations' included.
    done: Mutex<u64>,
    /// Runs an earlier invocation had finished.
    reused: Mutex<u64>,
}

impl Bars {
    fn new(quiet: bool) -> Self {
        Self {
            quiet,
            runs: Mutex::new(None),
            generation: Mutex::new(None),
            current: Mutex::new(String::new()),
            done: Mutex::new(0),
            reused: Mutex::new(0),
        }
    }

    fn finish(&self) {
        for bar in [&self.generation, &self.runs] {
            if let Some(b) = lock(bar).take() {
                b.finish();
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Observer for Bars {
    fn event(&self, event: Event<'_>) {
        match event {
            Event::Planned { runs, done } => {
                let bar = progress::bar(runs as u64, "runs", self.quiet);
                bar.resume_at(done as u64);
                *lock(&self.done) = done as u64;
                *lock(&self.reused) = done as u64;
                *lock(&self.runs) = Some(bar);
            }
            Event::Generating { method, images } => {
                let bar = progress::bar(images, "images", self.quiet);
                bar.set(0, format!("generating {method}"));
                *lock(&self.generation) = Some(bar);
            }
            Event::Generated { count } => {
                if let Some(bar) = lock(&self.generation).as_ref() {
                    bar.inc(count);
                }
            }
            Event::RunStarted {
                index,
                runs,
                method,
                point,
                seed,
                ..
            } => {
                if let Some(bar) = lock(&self.generation).take() {
                    bar.finish();
                }
                let at = point.map(|p| format!(" at {p}")).unwrap_or_default();
                *lock(&self.current) =
                    format!("run {}/{runs}: {method}{at} seed {seed}", index + 1);
            }
            Event::Step { step, epoch, loss } => {
                if let Some(bar) = lock(&self.runs).as_ref() {
                    let current = lock(&self.current).clone();
                    let done = *lock(&self.done);
                    bar.set(
                        done,
                        format!("{current}, epoch {epoch}, step {step}, loss {loss:.3}"),
                    );
                }
            }
            Event::RunFinished { reused, .. } => {
                if !reused {
                    *lock(&self.done) += 1;
                    if let Some(bar) = lock(&self.runs).as_ref() {
                        bar.inc(1);
                    }
                }
            }
        }
    }
}
