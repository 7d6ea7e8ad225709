//! Images per second of one ResNet-20 training step (CIFAR shapes: batch 128 of 32x32),
//! the semaug side of `bench/torch_resnet.py`.
//!
//!     cargo run --release -p semaug-eval --example resnet_bench -- [--batch 128] [--iters 10] [--arch resnet20]
//!
//! The step is forward (train mode), one-hot cross-entropy, backward and SGD (momentum
//! 0.9, Nesterov, weight decay 5e-4 on conv/linear weights, lr 0.1), as the trainer runs
//! it. Thread count follows `RAYON_NUM_THREADS` (candle's default: all cores).

use std::time::Instant;

use candle_core::{Device, Tensor};
use semaug_core::seeds::{label, Stream};
use semaug_eval::loss::{one_hot, soft_cross_entropy};
use semaug_eval::{Arch, Classifier, Mode};
use semaug_train::optim::{Sgd, SgdConfig};

struct Args {
    batch: usize,
    iters: usize,
    warmup: usize,
    size: usize,
    arch: Arch,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        batch: 128,
        iters: 10,
        warmup: 3,
        size: 32,
        arch: Arch::Resnet20,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .ok_or_else(|| anyhow::anyhow!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--batch" => args.batch = value()?.parse()?,
            "--iters" => args.iters = value()?.parse()?,
            "--warmup" => args.warmup = value()?.parse()?,
            "--size" => args.size = value()?.parse()?,
            "--arch" => args.arch = Arch::from_name(&value()?)?,
            other => anyhow::bail!("unknown flag {other}"),
        }
    }
    Ok(args)
}

/// Seconds spent in each phase of the timed steps.
#[derive(Default)]
struct Phases {
    forward: f64,
    backward: f64,
    update: f64,
}

fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    semaug_kernels::retain_freed_memory();
    let device = Device::Cpu;
    let model = Classifier::new(&args.arch.config(10), 0, &device)?;
    println!(
        "{:?}: {} parameters, batch {}, {}x{}, {} threads",
        args.arch,
        model.num_parameters(),
        args.batch,
        args.size,
        args.size,
        candle_core::utils::get_num_threads()
    );
    let shape = (args.batch, 3, args.size, args.size);
    let x = Stream::new(0, 0, label("bench/x"), 0)
        .normal_tensor(shape, &device)?
        .clamp(-1f32, 1f32)?;
    let labels: Vec<usize> = (0..args.batch).map(|i| i % 10).collect();
    let targets = one_hot(&labels, 10, &device)?;
    let (decay, plain) = model.decay_groups();
    let sgd = |weight_decay| SgdConfig {
        momentum: 0.9,
        nesterov: true,
        weight_decay,
    };
    let (mut decay_sgd, mut plain_sgd) = (Sgd::new(&decay, sgd(5e-4)), Sgd::new(&plain, sgd(0.0)));
    let mut phases = Phases::default();
    let mut step = |phases: &mut Phases| -> anyhow::Result<f32> {
        let t0 = Instant::now();
        let loss = soft_cross_entropy(&model.forward(&x, Mode::Train)?, &targets)?;
        let value = loss.to_scalar::<f32>()?;
        let t1 = Instant::now();
        let grads = loss.backward()?;
        let t2 = Instant::now();
        decay_sgd.step(&decay, &decay.gradients(&grads)?, 0.1)?;
        plain_sgd.step(&plain, &plain.gradients(&grads)?, 0.1)?;
        let t3 = Instant::now();
        phases.forward += (t1 - t0).as_secs_f64();
        phases.backward += (t2 - t1).as_secs_f64();
        phases.update += (t3 - t2).as_secs_f64();
        Ok(value)
    };
    for _ in 0..args.warmup {
        step(&mut Phases::default())?;
    }
    let start = Instant::now();
    let mut loss = 0.0;
    for _ in 0..args.iters {
        loss = step(&mut phases)?;
    }
    let seconds = start.elapsed().as_secs_f64() / args.iters.max(1) as f64;
    let per_step = |s: f64| s / args.iters.max(1) as f64 * 1e3;
    println!(
        "forward_ms: {:.1}, backward_ms: {:.1}, update_ms: {:.1}, last loss {loss:.3}",
        per_step(phases.forward),
        per_step(phases.backward),
        per_step(phases.update)
    );
    println!("step_ms: {:.1}", seconds * 1e3);
    println!("images_per_s: {:.1}", args.batch as f64 / seconds);
    let _: &Tensor = &x;
    Ok(())
}
