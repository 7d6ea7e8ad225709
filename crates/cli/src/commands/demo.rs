//! `semaug demo`: the README's main job.

use crate::cli::{DemoArgs, Global};

pub fn run(_global: &Global, _args: DemoArgs) -> anyhow::Result<()> {
    anyhow::bail!("the demo is not built yet")
}
