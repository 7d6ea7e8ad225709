//! The command-line grammar: global flags and one argument struct per subcommand.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use semaug_core::Solver;
use semaug_eval::Arch;
use semaug_ops::generative::Sampling;

use crate::UsageError;

#[derive(Debug, Parser)]
#[command(
    name = "semaug",
    version,
    about = "Semantic data augmentation with generative models"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct Global {
    /// Run seed: every random draw is keyed by it, so equal seeds give equal bytes.
    #[arg(long, global = true, default_value_t = 0)]
    pub seed: u64,
    /// Print nothing but errors (no progress bars).
    #[arg(long, short, global = true)]
    pub quiet: bool,
    /// Print more detail (per-file notes, timings).
    #[arg(long, short, global = true, conflicts_with = "quiet")]
    pub verbose: bool,
    /// Worker threads for tensor code and image work (default: all cores).
    #[arg(long, global = true, env = "SEMAUG_THREADS")]
    pub threads: Option<usize>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show what semaug can do on bundled sample images: writes a grid and a report.
    Demo(DemoArgs),
    /// Describe a dataset: classes, counts, image sizes, masks.
    Info(InfoArgs),
    /// Write an augmented copy of a dataset.
    Augment(AugmentArgs),
    /// Run the paper's experiments: classifiers trained with each augmentation (lowdata,
    /// ratio, fewshot); prints a table, writes results.json/.md and a chart.
    Eval(crate::commands::eval::EvalArgs),
    /// Train a judge (a classifier on real images) and measure with it whether augmented
    /// images or a generator's samples keep their labels.
    Judge(crate::commands::judge::JudgeArgs),
    /// Carve a dataset into labeled / validation / unlabeled-pool folders, by seed.
    Split(SplitArgs),
    /// Train the embedded generator by conditional flow matching (resumable).
    Train(TrainArgs),
    /// Generate samples from noise, one row per class, as a grid PNG.
    Sample(SampleArgs),
    /// Invert-then-generate PSNR per solver and step count (inversion quality).
    Reconstruct(ReconstructArgs),
    /// Learn one new token per class folder by textual inversion (model frozen).
    LearnConcepts(LearnConceptsArgs),
    /// Write a training run's newest EMA weights as a model directory.
    Export(ExportArgs),
    /// List the models `--model` can name here: the embedded one and the local Hugging
    /// Face cache (never the network).
    Models(ModelsArgs),
    /// Measure training or inference speed of a model (last line: `images_per_s: N`).
    Bench(BenchArgs),
}

#[derive(Debug, Args)]
pub struct ModelsArgs {
    /// Look in this hub cache instead of $HF_HUB_CACHE / $HF_HOME/hub / ~/.cache/huggingface/hub.
    #[arg(long)]
    pub cache: Option<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Which generative model, where its networks run, and how a text model is prompted.
#[derive(Debug, Clone, Args)]
pub struct ModelArgs {
    /// Generative model: `embedded` (shipped in the binary), a diffusers folder (a pipeline
    /// with model_index.json, or a UNet2DModel folder), or a Hugging Face id
    /// `org/name[@revision]` from the local cache (`semaug models` lists them).
    #[arg(long, default_value = "embedded")]
    pub model: String,
    /// `cpu`, `cuda` or `cuda:N` (CUDA needs a build with `--features cuda`).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Weights of a pretrained model: `f32`, or `f16` / `bf16`, meant for GPUs (half the
    /// memory; on the CPU half precision is slower than f32). The networks compute in it
    /// (norms and softmax in f32); the integration, noise and images stay f32 on the CPU.
    /// The embedded model ignores it and runs in f32 on the CPU.
    #[arg(long, value_enum, default_value_t = WeightsPrecision::F32)]
    pub dtype: WeightsPrecision,
    /// Prompt of a text-conditioned model; `{class}` becomes the class name or its
    /// learned token. Default: `a photo of a {class}`.
    #[arg(long)]
    pub prompt: Option<String>,
}

/// `--dtype`: the dtype a pretrained model's weights are converted to at load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum WeightsPrecision {
    F32,
    F16,
    Bf16,
}

/// Run-wide `--steps/--solver/--guidance` for the generative methods that do not set them
/// (`augment`, `eval`).
#[derive(Debug, Clone, Args)]
pub struct SamplingDefaults {
    /// ODE steps over the full noise range, for generative methods that do not set `steps`.
    #[arg(long)]
    pub steps: Option<usize>,
    /// ODE solver (euler, heun, midpoint, rk4, dopri5) for methods that do not set `solver`.
    #[arg(long)]
    pub solver: Option<String>,
    /// Guidance scale for methods that do not set `guidance`.
    #[arg(long)]
    pub guidance: Option<f64>,
}

impl SamplingDefaults {
    /// `(key, value)` per default, keyed as a method spec names it; `None` where not given.
    pub fn spec_items(&self) -> [(&'static str, Option<String>); 3] {
        [
            ("steps", self.steps.map(|s| s.to_string())),
            ("solver", self.solver.clone()),
            ("guidance", self.guidance.map(|g| g.to_string())),
        ]
    }
}

/// `--steps/--solver/--guidance` of a command that samples from noise itself.
#[derive(Debug, Clone, Args)]
pub struct SamplingArgs {
    #[arg(long, default_value_t = 20)]
    pub steps: usize,
    #[arg(long, default_value = "heun")]
    pub solver: String,
    #[arg(long, default_value_t = 2.0)]
    pub guidance: f64,
}

impl SamplingArgs {
    pub fn sampling(&self) -> Result<Sampling, UsageError> {
        let solver: Solver = self
            .solver
            .parse()
            .map_err(|e| UsageError(format!("--solver {}: {e}", self.solver)))?;
        let sampling = Sampling {
            steps: self.steps,
            solver,
            guidance: self.guidance,
        };
        sampling.validate().map_err(|e| UsageError(e.to_string()))?;
        Ok(sampling)
    }
}

/// The classifier a command trains (`eval`, `judge train`), besides its epochs.
#[derive(Debug, Clone, Args)]
pub struct ClassifierArgs {
    #[arg(long, default_value_t = 128)]
    pub batch: usize,
    #[arg(long, default_value_t = 0.1)]
    pub lr: f64,
    /// Classifier: resnet20, preact18 or small (a ResNet-10 for 64-128 px).
    #[arg(long, default_value = "resnet20")]
    pub arch: String,
    /// First-stage channels instead of the preset's (narrower = faster).
    #[arg(long)]
    pub width: Option<usize>,
    /// Resize every image to this square side (needed when sizes differ).
    #[arg(long)]
    pub image_size: Option<u32>,
}

impl ClassifierArgs {
    pub fn arch(&self) -> Result<Arch, UsageError> {
        Arch::from_name(&self.arch).map_err(|_| {
            UsageError(format!(
                "--arch {}: not one of resnet20, preact18, small",
                self.arch
            ))
        })
    }
}

#[derive(Debug, Args)]
pub struct LearnConceptsArgs {
    /// Images of the new classes, one folder per class (each becomes token `<class>`).
    #[arg(long)]
    pub data: PathBuf,
    #[command(flatten)]
    pub generator: ModelArgs,
    /// Concept file to write (`{token: embedding}` safetensors).
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, default_value_t = 300)]
    pub steps: u64,
    #[arg(long, default_value_t = 5e-3)]
    pub lr: f64,
    #[arg(long, default_value_t = 16)]
    pub batch: usize,
    /// Start from `null` (default), an existing class of the model (by name), or, for a
    /// text model, any word (e.g. `flower`).
    #[arg(long, default_value = "null")]
    pub init: String,
    /// Embedding vectors per token (the embedded model supports 1).
    #[arg(long, default_value_t = 1)]
    pub vectors: usize,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The run folder of `semaug train` (holds `checkpoints/` and `classes.json`).
    #[arg(long)]
    pub run: PathBuf,
    /// Model directory to write (config.json, weights, classes.json).
    #[arg(long)]
    pub out: PathBuf,
    /// Write float32 weights instead of float16.
    #[arg(long)]
    pub f32: bool,
}

#[derive(Debug, Args)]
pub struct SampleArgs {
    #[command(flatten)]
    pub generator: ModelArgs,
    /// The grid PNG to write.
    #[arg(long, default_value = "samples.png")]
    pub out: PathBuf,
    /// Classes to sample, one row each (default: the model's classes; a text model
    /// needs them, e.g. `--classes cat,dog` with `--prompt`).
    #[arg(long, value_delimiter = ',')]
    pub classes: Vec<String>,
    /// Samples per class (columns).
    #[arg(long, default_value_t = 10)]
    pub per_class: usize,
    #[command(flatten)]
    pub sampling: SamplingArgs,
}

#[derive(Debug, Args)]
pub struct ReconstructArgs {
    #[command(flatten)]
    pub generator: ModelArgs,
    /// Labeled images (ImageFolder or CIFAR binary) to round-trip.
    #[arg(long)]
    pub data: PathBuf,
    /// Use a class-balanced seeded subset of this many images.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Solvers to compare (default: euler, heun, rk4).
    #[arg(long, value_delimiter = ',')]
    pub solver: Vec<String>,
    /// Velocity evaluations per direction (default: 10, 20, 50); steps = NFE / evaluations per step.
    #[arg(long, value_delimiter = ',')]
    pub nfe: Vec<usize>,
    /// Or exact step counts instead of NFE budgets.
    #[arg(long, value_delimiter = ',', conflicts_with = "nfe")]
    pub steps: Vec<usize>,
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// One JSON object per (solver, steps) instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// What to time: `train` (one optimiser step) or `infer` (one forward pass).
    #[arg(value_parser = ["train", "infer"])]
    pub what: String,
    /// A model directory (config.json), `embedded`, or a preset name (test, small, base).
    #[arg(long, default_value = "small")]
    pub model: String,
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// Timed repetitions after one warm-up.
    #[arg(long, default_value_t = 5)]
    pub iters: usize,
}

#[derive(Debug, Args)]
pub struct SplitArgs {
    /// The full dataset (ImageFolder or CIFAR binary).
    #[arg(long)]
    pub data: PathBuf,
    /// Output folder: gets `labeled/`, `val/` and `pool/` (each with `ids.txt`).
    #[arg(long)]
    pub out: PathBuf,
    /// Fraction of each class that keeps its label (class-balanced).
    #[arg(long, default_value_t = 0.05, conflicts_with = "shots")]
    pub fraction: f64,
    /// Instead of a fraction: this many labeled images per class.
    #[arg(long)]
    pub shots: Option<usize>,
    /// Validation images per class, drawn from outside the labeled subset.
    #[arg(long, default_value_t = 500)]
    pub val_per_class: usize,
    /// Also write the rest, unlabeled, as `pool/`.
    #[arg(long)]
    pub pool: bool,
    /// Take all images of a class that has fewer than asked, instead of stopping.
    #[arg(long)]
    pub lenient: bool,
}

#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Labeled training images (ImageFolder or CIFAR binary); a folder of images with no
    /// class folders trains an unconditional model.
    #[arg(long)]
    pub data: PathBuf,
    /// Extra images without labels: trained as the null class (semi-supervised).
    #[arg(long)]
    pub unlabeled: Option<PathBuf>,
    /// Train on these classes only (comma-separated names), e.g. to keep the few-shot
    /// experiment's classes novel to the generator.
    #[arg(long, value_delimiter = ',')]
    pub classes: Vec<String>,
    /// Run folder: checkpoints, the exported model (`model/`), the loss curve.
    #[arg(long)]
    pub out: PathBuf,
    /// Network size: test, small (default) or base.
    #[arg(long, default_value = "small")]
    pub preset: String,
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    #[arg(long, default_value_t = 2e-4)]
    pub lr: f64,
    /// Length of the learning-rate schedule in steps.
    #[arg(long, default_value_t = 100_000)]
    pub steps: u64,
    #[arg(long, default_value_t = 200)]
    pub warmup: u64,
    /// Stop (after a checkpoint) when this many minutes have passed; run again to resume.
    #[arg(long)]
    pub max_minutes: Option<f64>,
    #[arg(long, default_value_t = 200)]
    pub checkpoint_every: u64,
    /// Sigma sampling: logit-normal (default) or uniform.
    #[arg(long, default_value = "logit-normal")]
    pub sigma_sampling: String,
    /// Probability of replacing a label by the null class (for guidance).
    #[arg(long, default_value_t = 0.1)]
    pub label_dropout: f64,
    #[arg(long, default_value_t = 0.999)]
    pub ema_decay: f64,
    /// Export the model in float32 instead of float16.
    #[arg(long)]
    pub f32: bool,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where to write the grid and the report.
    #[arg(long, default_value = "semaug-demo")]
    pub out: PathBuf,
    #[command(flatten)]
    pub generator: ModelArgs,
}

#[derive(Debug, Args)]
pub struct InfoArgs {
    /// An ImageFolder (one sub-folder per class) or a CIFAR binary folder.
    pub data: PathBuf,
    /// A masks tree parallel to DATA (`<class>/<name>.png`, 255 = foreground).
    #[arg(long)]
    pub masks: Option<PathBuf>,
    /// Decode every image and mask to find unreadable files.
    #[arg(long)]
    pub check: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct AugmentArgs {
    /// Input dataset: an ImageFolder or a CIFAR binary folder. Never written to.
    #[arg(long)]
    pub data: PathBuf,
    /// Masks tree parallel to --data, for masked methods.
    #[arg(long)]
    pub masks: Option<PathBuf>,
    /// Output folder (created; resumed when it holds an unfinished run of the same command).
    #[arg(long)]
    pub out: PathBuf,
    /// Method spec, e.g. `classical:crop=4,flip` or `randaugment:n=2,m=9` (see
    /// docs/methods.md), or a `.toml` method file. Repeat to apply several methods; each
    /// makes --per-image outputs.
    #[arg(long, required = true)]
    pub method: Vec<String>,
    /// Outputs per source image.
    #[arg(long, default_value_t = 1)]
    pub per_image: usize,
    /// Output layout.
    #[arg(long, value_enum, default_value_t = Format::Imagefolder)]
    pub format: Format,
    /// Skip and record unreadable inputs instead of stopping at the first one.
    #[arg(long)]
    pub lenient: bool,
    #[command(flatten)]
    pub generator: ModelArgs,
    /// Learned concepts (`semaug learn-concepts`): a class whose token `<class>` is in
    /// the file is conditioned on it instead of on the model's class.
    #[arg(long)]
    pub concepts: Option<PathBuf>,
    /// Images per generator batch (changes speed and memory, never the results).
    #[arg(long, default_value_t = 16)]
    pub batch: usize,
    #[command(flatten)]
    pub sampling: SamplingDefaults,
    /// This worker's shard (default from SLURM_ARRAY_TASK_ID or JOB_COMPLETION_INDEX).
    #[arg(long)]
    pub shard_index: Option<usize>,
    /// Number of shards (default from SLURM_ARRAY_TASK_COUNT, else 1).
    #[arg(long)]
    pub num_shards: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Imagefolder,
    Webdataset,
}
