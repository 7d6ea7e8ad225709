//! `semaug`: semantic data augmentation with generative models, from the command line.
//!
//! The binary is thin: each subcommand module maps its clap arguments onto a library
//! config in one place and calls the library. Errors print as their whole cause chain;
//! exit codes are 0 success, 1 failure, 2 usage error (clap's own, and ours for bad
//! argument values).

mod cli;
mod commands;
mod progress;

use std::process::ExitCode;

use clap::Parser;

/// An error the user caused with the arguments themselves: exit code 2.
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            report(&err);
            if err.downcast_ref::<UsageError>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::from(1)
            }
        }
    }
}

/// `error: outer: cause: root cause` on one line, as ripgrep and cargo do.
fn report(err: &anyhow::Error) {
    // One line: decoders' messages may carry their own newlines.
    let chain: Vec<String> = err
        .chain()
        .map(|e| {
            e.to_string()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    let mut line = String::from("error: ");
    for (i, part) in chain.iter().enumerate() {
        // Library errors often repeat their source's text; skip parts already shown.
        if i > 0 && line.contains(part.as_str()) {
            continue;
        }
        if i > 0 {
            line.push_str(": ");
        }
        line.push_str(part);
    }
    eprintln!("{line}");
}
