//! [`Experiment::run`]: every (method, point, seed) trained and evaluated, resumably.
//!
//! Runs go seed by seed (then point, then method), so an interrupted experiment has a
//! complete table for its first seeds. Each finished run is written to
//! `OUT/runs/<id>.json` and skipped when the experiment is run again with the same
//! settings; a run interrupted mid-training resumes from its checkpoint in
//! `OUT/checkpoints/<id>/` (removed once the run is recorded). `results.json`,
//! `results.md` and the chart are rewritten after every run.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::Device;
use semaug_data::dataset::Dataset;
use semaug_data::writer::atomic::publish;
use sha2::{Digest, Sha256};

use super::config::{ExperimentConfig, Kind, Selection};
use super::data::{set_record, ExperimentData, ImageStore};
use super::error::ExperimentError;
use super::methods::{parse_methods, ExperimentMethod};
use super::report;
use super::results::{
    aggregate, curve_gains, DataRecord, Results, RunRecord, SyntheticUse, Timing, WallTime, SCHEMA,
};
use super::synthetic::{ensure_generated, SetIdentity, SyntheticSource, Variants};
use crate::batches::SyntheticMix;
use crate::data::{LabeledImages, TrainSet};
use crate::evaluate::evaluate;
use crate::models::Classifier;
use crate::trainer::{Control, Progress, TrainConfig, Trainer};

/// What an experiment reports while it works.
#[derive(Debug)]
pub enum Event<'a> {
    /// `done` of `runs` were already recorded by an earlier invocation.
    Planned {
        runs: usize,
        done: usize,
    },
    /// Generation of `images` synthetic images for `method` starts.
    Generating {
        method: &'a str,
        images: u64,
    },
    /// `count` more synthetic images are written.
    Generated {
        count: u64,
    },
    RunStarted {
        index: usize,
        runs: usize,
        method: &'a str,
        point: Option<f64>,
        seed: u64,
        total_steps: u64,
    },
    Step {
        step: u64,
        epoch: usize,
        loss: f32,
    },
    /// `reused`: recorded by an earlier invocation.
    RunFinished {
        record: &'a RunRecord,
        reused: bool,
    },
}

/// Receives [`Event`]s (from worker threads too while generating).
pub trait Observer: Sync {
    fn event(&self, event: Event<'_>);
}

/// An observer that ignores everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct Silent;

impl Observer for Silent {
    fn event(&self, _: Event<'_>) {}
}

/// One experiment: its settings, data, output folder and where synthetic images come
/// from.
pub struct Experiment<'a> {
    pub config: ExperimentConfig,
    pub data: ExperimentData,
    pub out: PathBuf,
    /// The generator for generative methods.
    pub source: Option<&'a mut dyn SyntheticSource>,
    /// An existing augmented ImageFolder to take generative methods' images from
    /// instead of generating them.
    pub synthetic_dir: Option<PathBuf>,
}

/// The images a run trains on and selects its epoch with.
struct Subsets {
    fit: Dataset,
    selection: Option<Dataset>,
}

/// The variants of each training image and where they came from.
type SyntheticImages = (Vec<Vec<image::RgbImage>>, SyntheticUse);

/// Per-invocation state of [`Experiment::run`].
struct Session {
    methods: Vec<ExperimentMethod>,
    store: ImageStore,
    eval: LabeledImages,
    generator: Option<serde_json::Value>,
    /// Decoded synthetic folders, by folder.
    variants: HashMap<PathBuf, Variants>,
    wall: WallTime,
}

impl Experiment<'_> {
    /// Trains and evaluates every run not yet recorded, writes the results and returns
    /// them.
    pub fn run(&mut self, observer: &dyn Observer) -> Result<Results, ExperimentError> {
        let started = Instant::now();
        self.config.validate()?;
        let mut session = self.start()?;
        let keys = self.plan();
        let mut runs = Vec::new();
        let mut todo = Vec::new();
        for (index, key) in keys.iter().enumerate() {
            let settings = self.settings_sha256(&session, key.method_index);
            match self.stored_run(key, &settings)? {
                Some(record) => runs.push(record),
                None => todo.push((index, settings)),
            }
        }
        observer.event(Event::Planned {
            runs: keys.len(),
            done: runs.len(),
        });
        for record in &runs {
            observer.event(Event::RunFinished {
                record,
                reused: true,
            });
        }
        for (index, settings) in todo {
            let record = self.one_run(
                &mut session,
                &keys[index],
                index,
                keys.len(),
                settings,
                observer,
            )?;
            observer.event(Event::RunFinished {
                record: &record,
                reused: false,
            });
            runs.push(record);
            runs.sort_by_key(|r| keys.iter().position(|k| k.id == r.id));
            session.wall.total = started.elapsed().as_secs_f64();
            report::write_all(&self.out, &self.results(&session, &runs))?;
        }
        // Gone when every run finished (each run removes its own).
        let _ = std::fs::remove_dir(self.out.join("checkpoints"));
        session.wall.total = started.elapsed().as_secs_f64();
        let results = self.results(&session, &runs);
        report::write_all(&self.out, &results)?;
        Ok(results)
    }

    fn start(&mut self) -> Result<Session, ExperimentError> {
        let methods = parse_methods(&self.config.methods)?;
        if self.config.kind == Kind::Ratio {
            if let Some(m) = methods.iter().find(|m| m.generative().is_none()) {
                let detail = format!(
                    "`{}` makes no synthetic images; the ratio experiment needs a generative method",
                    m.spec
                );
                return Err(ExperimentError::data("ratio method", detail));
            }
        }
        let can_generate = self.source.is_some() || self.synthetic_dir.is_some();
        if let Some(m) = methods
            .iter()
            .find(|m| m.generative().is_some() && !can_generate)
        {
            return Err(ExperimentError::NoGenerator {
                spec: m.spec.clone(),
            });
        }
        std::fs::create_dir_all(self.out.join("runs"))
            .map_err(|e| ExperimentError::io(&self.out, "create", e))?;
        let mut store = ImageStore::new(self.config.image_size);
        let eval = store.labeled(&self.data.eval)?;
        store.forget(&self.data.eval);
        let generator = self.source.as_ref().map(|s| s.describe());
        Ok(Session {
            methods,
            store,
            eval,
            generator,
            variants: HashMap::new(),
            wall: WallTime::default(),
        })
    }

    /// Every run, seed-major.
    fn plan(&self) -> Vec<RunKey> {
        let mut keys = Vec::new();
        for &seed in &self.config.seeds {
            for point in self.config.run_points() {
                for (method_index, method) in self.config.methods.iter().enumerate() {
                    keys.push(RunKey::new(method, method_index, point, seed));
                }
            }
        }
        keys
    }

    fn run_path(&self, key: &RunKey) -> PathBuf {
        self.out.join("runs").join(format!("{}.json", key.id))
    }

    /// The recorded run, if an earlier invocation finished it with these settings.
    fn stored_run(
        &self,
        key: &RunKey,
        settings: &str,
    ) -> Result<Option<RunRecord>, ExperimentError> {
        let path = self.run_path(key);
        let Ok(text) = std::fs::read_to_string(&path) else {
            return Ok(None);
        };
        // A record from an older schema is simply run again.
        let Ok(record) = serde_json::from_str::<RunRecord>(&text) else {
            return Ok(None);
        };
        if record.settings_sha256 != settings {
            return Err(ExperimentError::SettingsChanged {
                path,
                detail: "the run's settings hash differs".into(),
            });
        }
        Ok(Some(record))
    }

    /// Hash of everything besides (method, point, seed) that decides a run's numbers.
    fn settings_sha256(&self, session: &Session, method_index: usize) -> String {
        let mut config = self.config.clone();
        config.methods.clear();
        config.seeds.clear();
        config.points.clear();
        let generative = session.methods[method_index].generative().is_some();
        let text = serde_json::json!({
            "config": config,
            "classes": self.data.train.classes,
            "train": set_record(&self.data.train, ""),
            "eval": set_record(&self.data.eval, ""),
            "generator": if generative { session.generator.clone() } else { None },
            "synthetic_dir": if generative { self.synthetic_dir.as_ref().map(|d| d.display().to_string()) } else { None },
        })
        .to_string();
        hex::encode(Sha256::digest(text.as_bytes()))
    }

    /// The training and selection images of a run.
    fn subsets(&self, point: Option<f64>, seed: u64) -> Result<Subsets, ExperimentError> {
        let base = match (self.config.kind, point) {
            (Kind::Fewshot, Some(k)) => self.data.train.subset_k_shot(k as usize, seed, false)?,
            _ => self.data.train.clone(),
        };
        match self.config.selection {
            Selection::Holdout { fraction } => {
                let (fit, held) = base.split_fraction(fraction, self.config.data_seed)?;
                if held.is_empty() {
                    let detail = format!(
                        "{} training images leave none to hold out at {fraction}; use --selection last",
                        base.len()
                    );
                    return Err(ExperimentError::data("model selection", detail));
                }
                Ok(Subsets {
                    fit,
                    selection: Some(held),
                })
            }
            Selection::Last | Selection::EvalSplit => Ok(Subsets {
                fit: base,
                selection: None,
            }),
        }
    }

    /// The images a generative method's synthetic set is made for: the run's own
    /// training images when the source depends on them, else every training image the
    /// experiment uses (variants depend only on the image, the method and the seed, so
    /// one set serves all runs).
    fn generation_subset(&self, fit: &Dataset) -> Result<Dataset, ExperimentError> {
        let per_subset = self.source.as_ref().is_some_and(|s| s.per_subset());
        if per_subset || self.config.kind != Kind::Fewshot {
            return Ok(fit.clone());
        }
        let max_k = self.config.points.iter().fold(0.0f64, |a, &b| a.max(b)) as usize;
        let mut ids = HashSet::new();
        for &seed in &self.config.seeds {
            let subset = self.data.train.subset_k_shot(max_k, seed, false)?;
            ids.extend(subset.ids().map(str::to_owned));
        }
        Ok(self.data.train.filter(|s| ids.contains(&s.id)))
    }

    /// The variants of each `fit` image for a generative method, generating them first
    /// when needed; `None` for other methods.
    fn synthetic(
        &mut self,
        session: &mut Session,
        method_index: usize,
        fit: &Dataset,
        size: (u32, u32),
        observer: &dyn Observer,
    ) -> Result<Option<SyntheticImages>, ExperimentError> {
        let Some(method) = session.methods[method_index].generative().cloned() else {
            return Ok(None);
        };
        let (dir, reused, seconds) = match &self.synthetic_dir {
            Some(dir) => (dir.clone(), true, None),
            None => {
                let subset = self.generation_subset(fit)?;
                let generator = session.generator.clone().unwrap_or_default();
                let identity = SetIdentity {
                    method: &method,
                    generator: &generator,
                    subset: &subset,
                    seed: self.config.synthetic.generation_seed,
                    per_image: self.config.synthetic.per_image,
                };
                let Some(source) = self.source.as_deref_mut() else {
                    return Err(ExperimentError::NoGenerator {
                        spec: session.methods[method_index].spec.clone(),
                    });
                };
                let root = self.out.join("synthetic");
                if !identity.dir(&root).with_extension("json").is_file() {
                    observer.event(Event::Generating {
                        method: &session.methods[method_index].spec,
                        images: (subset.len() * self.config.synthetic.per_image) as u64,
                    });
                }
                let made = ensure_generated(&root, &identity, source, &|n| {
                    observer.event(Event::Generated { count: n })
                })?;
                if !made.reused {
                    session.wall.generation += made.seconds;
                }
                (made.dir, made.reused, Some(made.seconds))
            }
        };
        if !session.variants.contains_key(&dir) {
            let strict = self.synthetic_dir.is_some();
            let loaded = Variants::load(&dir, &method, Some(size), strict)?;
            session.variants.insert(dir.clone(), loaded);
        }
        let variants = session.variants[&dir].for_ids(fit.ids());
        let images = variants.iter().map(Vec::len).sum();
        let usage = SyntheticUse {
            dir: dir.display().to_string(),
            reused,
            generation_seconds: seconds,
            images,
        };
        Ok(Some((variants, usage)))
    }

    fn one_run(
        &mut self,
        session: &mut Session,
        key: &RunKey,
        index: usize,
        runs: usize,
        settings: String,
        observer: &dyn Observer,
    ) -> Result<RunRecord, ExperimentError> {
        let subsets = self.subsets(key.point, key.seed)?;
        let real = session.store.labeled(&subsets.fit)?;
        let selection = match &subsets.selection {
            Some(set) => Some(session.store.labeled(set)?),
            None => None,
        };
        let size = real.image_size();
        let generated_before = session.wall.generation;
        let synthetic = self.synthetic(session, key.method_index, &subsets.fit, size, observer)?;
        let generation = (session.wall.generation > generated_before)
            .then_some(session.wall.generation - generated_before);
        let (train_set, synthetic_use) = match synthetic {
            Some((variants, usage)) => (TrainSet::with_synthetic(real, variants)?, Some(usage)),
            None => (TrainSet::real_only(real), None),
        };
        let method = &session.methods[key.method_index];
        let train_config = self.train_config(method, key, train_set.len(), size.0.min(size.1));
        let steps_per_epoch = steps_per_epoch(train_set.len(), train_config.batch_size);
        observer.event(Event::RunStarted {
            index,
            runs,
            method: &key.method,
            point: key.point,
            seed: key.seed,
            total_steps: steps_per_epoch * train_config.epochs as u64,
        });
        let classes = self.data.num_classes();
        let model = Classifier::new(&self.config.resnet(classes), key.seed, &Device::Cpu)?;
        let checkpoints = self.out.join("checkpoints").join(&key.id);
        let validation = match self.config.selection {
            Selection::EvalSplit => Some(&session.eval),
            _ => selection.as_ref(),
        };
        let trained = Instant::now();
        let outcome = Trainer::new(&model, train_config.clone())?
            .with_checkpoints(&checkpoints)
            .run(&train_set, validation, |p| {
                if let Progress::Step {
                    epoch, step, loss, ..
                } = p
                {
                    observer.event(Event::Step {
                        step: *step,
                        epoch: *epoch,
                        loss: *loss,
                    });
                }
                Control::Continue
            })?;
        let training = trained.elapsed().as_secs_f64();
        session.wall.training += training;
        let evaluated = Instant::now();
        let result = evaluate(&model, &session.eval, train_config.eval_batch_size)?;
        let evaluation = evaluated.elapsed().as_secs_f64();
        session.wall.evaluation += evaluation;
        let history = &outcome.history;
        let record = RunRecord {
            id: key.id.clone(),
            method: key.method.clone(),
            point: key.point,
            seed: key.seed,
            accuracy: result.accuracy(),
            balanced_accuracy: result.balanced_accuracy(),
            eval_loss: result.loss,
            confusion: result.confusion,
            selected_epoch: outcome.best.map_or(history.len(), |b| b.epoch),
            selection_accuracy: outcome.best.map(|b| b.validation.accuracy),
            epochs: train_config.epochs,
            steps: outcome.steps,
            train_images: train_set.len(),
            selection_images: selection.as_ref().map_or(0, LabeledImages::len),
            eval_images: session.eval.len(),
            synthetic_fraction: history.iter().map(|h| h.synthetic_fraction).sum::<f64>()
                / history.len().max(1) as f64,
            final_train_loss: history.last().map_or(f64::NAN, |h| h.train_loss),
            synthetic: synthetic_use,
            seconds: Timing {
                generation,
                training,
                evaluation,
            },
            settings_sha256: settings,
        };
        let json = serde_json::to_vec_pretty(&record)
            .map_err(|e| ExperimentError::io(self.run_path(key), "encode", e))?;
        publish(&self.run_path(key), &json)?;
        // The record is safe: the checkpoints are no longer needed.
        let _ = std::fs::remove_dir_all(&checkpoints);
        Ok(record)
    }

    /// The run's trainer settings: the method's augmentation, the seed, the synthetic
    /// mix, and more epochs when the subset is too small for `min_steps`.
    fn train_config(
        &self,
        method: &ExperimentMethod,
        key: &RunKey,
        samples: usize,
        side: u32,
    ) -> TrainConfig {
        let (classical, batch_mix) = method.training(side);
        let mut config = TrainConfig {
            seed: key.seed,
            classical,
            batch_mix,
            synthetic: match (self.config.kind, key.point) {
                (Kind::Ratio, Some(fraction)) => SyntheticMix::Fraction {
                    fraction: fraction as f32,
                },
                _ => SyntheticMix::PerSample {
                    probability: self.config.synthetic.probability,
                },
            },
            ..self.config.train.clone()
        };
        let per_epoch = steps_per_epoch(samples, config.batch_size).max(1);
        let wanted = self.config.min_steps.div_ceil(per_epoch) as usize;
        if wanted > config.epochs {
            let scale = wanted as f64 / config.epochs as f64;
            config.warmup_epochs =
                ((config.warmup_epochs as f64 * scale).round() as usize).min(wanted);
            config.epochs = wanted;
        }
        // About 20 checkpoints a run at most: enough to resume, cheap for tiny epochs.
        config.checkpoint_every = config.checkpoint_every.max(config.epochs / 20).max(1);
        config
    }

    fn results(&self, session: &Session, runs: &[RunRecord]) -> Results {
        let baseline = self
            .config
            .methods
            .iter()
            .find(|m| m.as_str() == "classical");
        let curve_gains = if self.config.kind == Kind::Fewshot {
            curve_gains(&self.config, runs, baseline.map(String::as_str))
        } else {
            Vec::new()
        };
        let mut synthetic_dirs = BTreeMap::new();
        if let Some(dir) = &self.synthetic_dir {
            for m in session.methods.iter().filter(|m| m.generative().is_some()) {
                synthetic_dirs.insert(m.spec.clone(), dir.display().to_string());
            }
        }
        Results {
            schema: SCHEMA.into(),
            experiment: self.config.kind,
            config: self.config.clone(),
            data: DataRecord {
                classes: self.data.train.classes.clone(),
                train: set_record(&self.data.train, &self.data.train_origin),
                eval: set_record(&self.data.eval, &self.data.eval_origin),
                selection: self.config.selection.describe(),
            },
            generator: session.generator.clone(),
            synthetic_dirs,
            versions: BTreeMap::from([
                ("semaug".to_owned(), env!("CARGO_PKG_VERSION").to_owned()),
                ("candle".to_owned(), "0.11.1".to_owned()),
            ]),
            wall_seconds: session.wall,
            aggregates: aggregate(&self.config, runs),
            curve_gains,
            runs: runs.to_vec(),
        }
    }
}

/// Batches per epoch as the trainer counts them (a last batch of one sample is dropped).
fn steps_per_epoch(samples: usize, batch: usize) -> u64 {
    let batch = batch.max(1);
    (samples / batch + usize::from(samples % batch >= 2)) as u64
}

/// Which run: method (entry and position), point and seed, with its file-safe id.
#[derive(Debug, Clone)]
struct RunKey {
    id: String,
    method: String,
    method_index: usize,
    point: Option<f64>,
    seed: u64,
}

impl RunKey {
    fn new(method: &str, method_index: usize, point: Option<f64>, seed: u64) -> Self {
        let slug: String = method
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .take(40)
            .collect();
        let hash = hex::encode(&Sha256::digest(method.as_bytes())[..4]);
        let point_part = point.map(|p| format!("-x{p}")).unwrap_or_default();
        Self {
            id: format!("{slug}-{hash}{point_part}-s{seed}"),
            method: method.to_owned(),
            method_index,
            point,
            seed,
        }
    }
}

/// Where the experiment writes (for callers that print it).
pub fn results_path(out: &Path) -> PathBuf {
    out.join(report::RESULTS_JSON)
}
