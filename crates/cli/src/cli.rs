//! The command-line grammar: global flags and one argument struct per subcommand.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

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
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where to write the grid and the report.
    #[arg(long, default_value = "semaug-demo")]
    pub out: PathBuf,
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
    /// docs/methods.md). Repeat to apply several methods; each makes --per-image outputs.
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
