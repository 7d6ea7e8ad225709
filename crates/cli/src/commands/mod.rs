//! One module per subcommand; `run` sets up threads and dispatches.

mod augment;
mod bench;
mod demo;
pub(crate) mod eval;
mod export;
mod info;
pub(crate) mod judge;
mod learn_concepts;
mod model;
mod models;
mod reconstruct;
mod sample;
mod split;
mod train;

use crate::cli::{Cli, Command};

pub fn run(cli: Cli) -> anyhow::Result<()> {
    if let Some(threads) = cli.global.threads {
        if threads == 0 {
            return Err(crate::UsageError("--threads must be at least 1".into()).into());
        }
        // candle and rayon both read this before their pools start.
        std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
    }
    // Keep freed tensor memory mapped: re-faulting fresh pages dominated candle's
    // elementwise ops (see semaug-kernels).
    semaug_kernels::retain_freed_memory();
    match cli.command {
        Command::Demo(args) => demo::run(&cli.global, args),
        Command::Info(args) => info::run(&cli.global, args),
        Command::Augment(args) => augment::run(&cli.global, args),
        Command::Eval(args) => eval::run(&cli.global, args),
        Command::Judge(args) => judge::run(&cli.global, args),
        Command::Split(args) => split::run(&cli.global, args),
        Command::Train(args) => train::run(&cli.global, args),
        Command::Models(args) => models::run(&cli.global, args),
        Command::Bench(args) => bench::run(&cli.global, args),
        Command::Reconstruct(args) => reconstruct::run(&cli.global, args),
        Command::Sample(args) => sample::run(&cli.global, args),
        Command::Export(args) => export::run(&cli.global, args),
        Command::LearnConcepts(args) => learn_concepts::run(&cli.global, args),
    }
}
