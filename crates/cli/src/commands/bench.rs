//! `semaug bench train|infer`: images per second of one training step or one forward
//! pass, on random data, after a warm-up. The last line is `images_per_s: <number>`.

use std::time::Instant;

use candle_core::{Device, Tensor};
use semaug_core::seeds::Stream;
use semaug_models::flow_training::{train, Budget, FlowTrainConfig, TrainImages};
use semaug_models::unet::{read_config, UNet2DConfig, UNet2DModel};

use super::model;
use crate::cli::{BenchArgs, Global};
use crate::UsageError;

pub fn run(global: &Global, args: BenchArgs) -> anyhow::Result<()> {
    if args.batch == 0 || args.iters == 0 {
        return Err(UsageError("--batch and --iters must be at least 1".into()).into());
    }
    let config = model_config(&args.model)?;
    let threads = candle_core::utils::get_num_threads();
    let rate = match args.what.as_str() {
        "train" => bench_train(&config, &args, global.seed)?,
        _ => bench_infer(&config, &args)?,
    };
    println!(
        "model {} ({} parameters), batch {}, {} threads, {} x {}",
        args.model,
        parameter_count(&config)?,
        args.batch,
        threads,
        args.iters,
        args.what
    );
    println!("images_per_s: {rate:.2}");
    Ok(())
}

fn model_config(spec: &str) -> anyhow::Result<UNet2DConfig> {
    if let Ok(config) = UNet2DConfig::preset(spec) {
        return Ok(config);
    }
    if spec == "embedded" {
        return Ok(model::load_embedded(spec)?.unet().config().clone());
    }
    Ok(read_config(std::path::Path::new(spec))?)
}

fn parameter_count(config: &UNet2DConfig) -> anyhow::Result<usize> {
    let varmap = candle_nn::VarMap::new();
    Ok(UNet2DModel::trainable(config, &varmap, 0, &Device::Cpu)?.parameter_count())
}

/// Time `iters` optimiser steps (after one warm-up) of the real trainer on random images.
fn bench_train(config: &UNet2DConfig, args: &BenchArgs, seed: u64) -> anyhow::Result<f64> {
    let (h, w) = config.sample_size.map_or((32, 32), |s| s.hw());
    let n = args.batch * 2;
    let mut rng = Stream::new(seed, 0, 0, 0);
    let data = TrainImages {
        pixels: (0..n * 3 * h * w).map(|_| rng.below(256) as u8).collect(),
        labels: (0..n)
            .map(|i| Some(i % config.null_class().unwrap_or(1).max(1)))
            .collect(),
        height: h,
        width: w,
    };
    let mut train_config = FlowTrainConfig::new(config.clone());
    train_config.batch_size = args.batch;
    train_config.checkpoint_every = u64::MAX;
    let dir = tempfile::tempdir()?;
    let mut stamps: Vec<Instant> = Vec::new();
    let budget = Budget {
        deadline: None,
        max_steps: Some(args.iters as u64 + 1),
    };
    train(&train_config, &data, dir.path(), budget, &mut |_, _, _| {
        stamps.push(Instant::now())
    })?;
    let seconds = (stamps[stamps.len() - 1] - stamps[0]).as_secs_f64();
    Ok((stamps.len() - 1) as f64 * args.batch as f64 / seconds)
}

/// Time `iters` forward passes (after one warm-up) at a mid-range sigma.
fn bench_infer(config: &UNet2DConfig, args: &BenchArgs) -> anyhow::Result<f64> {
    let varmap = candle_nn::VarMap::new();
    let trainable = UNet2DModel::trainable(config, &varmap, 0, &Device::Cpu)?;
    // Plain tensors, not variables: inference builds no backward graph.
    let weights = trainable
        .weights()
        .iter()
        .map(|(k, v)| (k.clone(), v.detach()))
        .collect();
    let model = UNet2DModel::from_tensors(config, weights, &Device::Cpu)?;
    let (h, w) = config.sample_size.map_or((32, 32), |s| s.hw());
    let x = Stream::new(1, 0, 0, 0)
        .normal_tensor((args.batch, config.in_channels, h, w), &Device::Cpu)?;
    let t = Tensor::new(&[500f32], &Device::Cpu)?;
    let labels = config
        .null_class()
        .map(|null| Tensor::from_vec(vec![null as u32; args.batch], args.batch, &Device::Cpu))
        .transpose()?;
    let once = || model.forward(&x, &t, labels.as_ref());
    once()?;
    let started = Instant::now();
    for _ in 0..args.iters {
        once()?;
    }
    Ok((args.iters * args.batch) as f64 / started.elapsed().as_secs_f64())
}
