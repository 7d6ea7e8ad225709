//! `semaug models`: what `--model` can name on this machine, without any network access.

use semaug_models::pretrained::resolve::{hub_cache_dir, list_models_in, EMBEDDED};

use crate::cli::{Global, ModelsArgs};

pub fn run(global: &Global, args: ModelsArgs) -> anyhow::Result<()> {
    let cache = args.cache.unwrap_or_else(hub_cache_dir);
    let models = list_models_in(&cache);
    if args.json {
        let rows: Vec<serde_json::Value> = std::iter::once(serde_json::json!({
            "id": EMBEDDED, "kind": "embedded flow model", "usable": true,
        }))
        .chain(models.iter().map(|m| {
            serde_json::json!({
                "id": m.id,
                "snapshot": m.snapshot,
                "kind": m.source.as_ref().map(|s| s.kind()).ok(),
                "usable": m.source.is_ok(),
                "problem": m.source.as_ref().err().map(|e| e.to_string()),
            })
        }))
        .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    println!("{EMBEDDED:<48} embedded flow model (shipped in the binary)");
    for m in &models {
        match &m.source {
            Ok(source) => println!("{:<48} {}", m.id, source.kind()),
            Err(problem) => println!("{:<48} not usable: {problem}", m.id),
        }
    }
    if !global.quiet {
        eprintln!(
            "{} model(s) in the Hugging Face cache {} (set HF_HUB_CACHE or HF_HOME to look \
             elsewhere)",
            models.len(),
            cache.display()
        );
    }
    Ok(())
}
