//! The generative operators against a generator whose flow is known exactly: data of
//! class `c` is `N(c, std^2)` in every element, so transport has a closed form.

use candle_core::{Device, Tensor};
use semaug_core::seeds::Stream;
use semaug_core::{Condition, Generator, GeneratorInfo, Solver, Strength};
use semaug_ops::generative::{
    inpaint, perturb, splice, InpaintConfig, PerturbConfig, Region, Sampling, SpliceConfig,
};

const STD: f64 = 0.5;

/// Class `c` -> mean `c`; null -> mean 0. Velocity per row as `field::analytic::Gaussian`.
struct ClassGaussians;

impl ClassGaussians {
    fn spread(sigma: f64) -> f64 {
        ((1.0 - sigma).powi(2) * STD * STD + sigma * sigma).sqrt()
    }

    /// The exact flow of one row from `from` to `to`.
    fn transport(x: &Tensor, mean: f64, from: f64, to: f64) -> Tensor {
        let ratio = Self::spread(to) / Self::spread(from);
        x.affine(ratio, mean * ((1.0 - to) - ratio * (1.0 - from)))
            .unwrap()
    }
}

impl Generator for ClassGaussians {
    fn info(&self) -> GeneratorInfo {
        GeneratorInfo {
            name: "class-gaussians".into(),
            weights_sha256: None,
            image_size: (4, 4),
        }
    }
    fn encode(&self, images: &Tensor) -> candle_core::Result<Tensor> {
        Ok(images.clone())
    }
    fn decode(&self, latents: &Tensor) -> candle_core::Result<Tensor> {
        Ok(latents.clone())
    }
    fn embed(&self, conditions: &[Condition]) -> semaug_core::Result<Tensor> {
        let means: Vec<f64> = conditions
            .iter()
            .map(|c| match c {
                Condition::Class(k) => *k as f64,
                _ => 0.0,
            })
            .collect();
        Ok(Tensor::from_vec(
            means,
            (conditions.len(), 1, 1, 1),
            &Device::Cpu,
        )?)
    }
    fn velocity(&self, x: &Tensor, sigma: f64, means: &Tensor) -> candle_core::Result<Tensor> {
        let rate = (sigma - (1.0 - sigma) * STD * STD) / Self::spread(sigma).powi(2);
        x.affine(rate, 0.0)?
            .broadcast_add(&means.affine(-(1.0 + rate * (1.0 - sigma)), 0.0)?)
    }
}

fn normal(seed: u64, shape: (usize, usize, usize, usize)) -> Tensor {
    Stream::new(seed, 0, 0, 0)
        .normal_tensor(shape, &Device::Cpu)
        .unwrap()
        .to_dtype(candle_core::DType::F64)
        .unwrap()
}

fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap()
}

fn sampling(steps: usize, solver: Solver, guidance: f64) -> Sampling {
    Sampling {
        steps,
        solver,
        guidance,
    }
}

#[test]
fn perturb_with_zero_delta_reproduces_the_input() {
    let x0 = (normal(1, (2, 3, 4, 4)) * STD)
        .unwrap()
        .affine(1.0, 2.0)
        .unwrap();
    let conds = [Condition::Class(2), Condition::Class(2)];
    let noise = normal(2, (2, 3, 4, 4));
    let mut errors = Vec::new();
    for steps in [5, 10, 20] {
        let config = PerturbConfig {
            delta: 0.0,
            sampling: sampling(steps, Solver::Rk4, 1.0),
            ..Default::default()
        };
        errors.push(max_diff(
            &perturb(&ClassGaussians, &x0, &conds, &config, &noise).unwrap(),
            &x0,
        ));
    }
    assert!(errors[2] < 1e-4, "{errors:?}");
    // Fourth order: halving the step cuts the round-trip error about 16-fold.
    assert!(
        errors[1] < errors[0] / 8.0 && errors[2] < errors[1] / 8.0,
        "{errors:?}"
    );
}

#[test]
fn perturb_moves_further_with_larger_delta_and_stays_on_the_class() {
    let x0 = (normal(3, (8, 3, 4, 4)) * STD)
        .unwrap()
        .affine(1.0, 3.0)
        .unwrap();
    let conds = vec![Condition::Class(3); 8];
    let noise = normal(4, (8, 3, 4, 4));
    let moved = |delta: f64| {
        let config = PerturbConfig {
            delta,
            sampling: sampling(10, Solver::Heun, 1.0),
            ..Default::default()
        };
        let out = perturb(&ClassGaussians, &x0, &conds, &config, &noise).unwrap();
        let change = (&out - &x0)
            .unwrap()
            .sqr()
            .unwrap()
            .mean_all()
            .unwrap()
            .to_scalar::<f64>()
            .unwrap();
        let mean = out.mean_all().unwrap().to_scalar::<f64>().unwrap();
        (change, mean)
    };
    let (small, _) = moved(0.1);
    let (large, mean) = moved(1.0);
    assert!(small > 0.0 && large > 4.0 * small, "{small} {large}");
    assert!(
        (mean - 3.0).abs() < 0.3,
        "perturbed samples stay near their class mean: {mean}"
    );
}

#[test]
fn splice_follows_the_exact_flow_from_its_strength() {
    let x0 = (normal(5, (2, 3, 4, 4)) * STD)
        .unwrap()
        .affine(1.0, 1.0)
        .unwrap();
    let noise = normal(6, (2, 3, 4, 4));
    let conds = [Condition::Class(1), Condition::Class(1)];
    let strength = 0.6;
    let config = SpliceConfig {
        strength: Strength::new(strength).unwrap(),
        sampling: sampling(40, Solver::Rk4, 1.0),
    };
    let out = splice(&ClassGaussians, &x0, &conds, &config, &noise).unwrap();
    let start = semaug_core::time::noised(&x0, &noise, strength).unwrap();
    let exact = ClassGaussians::transport(&start, 1.0, strength, 0.0);
    assert!(max_diff(&out, &exact) < 1e-6);
    // Strength 0 leaves the image exactly as it was.
    let none = SpliceConfig {
        strength: Strength::NONE,
        ..config
    };
    assert_eq!(
        max_diff(
            &splice(&ClassGaussians, &x0, &conds, &none, &noise).unwrap(),
            &x0
        ),
        0.0
    );
}

#[test]
fn guidance_pushes_splices_towards_the_class() {
    let x0 = (normal(7, (4, 3, 4, 4)) * STD).unwrap();
    let noise = normal(8, (4, 3, 4, 4));
    let conds = vec![Condition::Class(2); 4];
    let mean_at = |guidance: f64| {
        let config = SpliceConfig {
            strength: Strength::FULL,
            sampling: sampling(20, Solver::Heun, guidance),
        };
        splice(&ClassGaussians, &x0, &conds, &config, &noise)
            .unwrap()
            .mean_all()
            .unwrap()
            .to_scalar::<f64>()
            .unwrap()
    };
    let (plain, guided) = (mean_at(1.0), mean_at(3.0));
    assert!((plain - 2.0).abs() < 0.2, "{plain}");
    assert!(
        guided > plain + 1.0,
        "guidance 3 extrapolates away from the null class: {plain} -> {guided}"
    );
}

#[test]
fn inpaint_keeps_the_known_region_exactly() {
    let x0 = (normal(9, (2, 3, 4, 4)) * STD).unwrap();
    let noise = normal(10, (2, 3, 4, 4));
    let mask: Vec<f64> = (0..2 * 16)
        .map(|i| if i % 4 < 2 { 1.0 } else { 0.0 })
        .collect();
    let mask = Tensor::from_vec(mask, (2, 1, 4, 4), &Device::Cpu).unwrap();
    let conds = [Condition::Class(4), Condition::Class(4)];
    let config = InpaintConfig {
        region: Region::Foreground,
        sampling: sampling(8, Solver::Heun, 2.0),
        ..Default::default()
    };
    let out = inpaint(&ClassGaussians, &x0, &mask, &conds, &config, &noise).unwrap();
    let keep = mask.affine(-1.0, 1.0).unwrap();
    let kept_diff = max_diff(
        &out.broadcast_mul(&keep).unwrap(),
        &x0.broadcast_mul(&keep).unwrap(),
    );
    assert_eq!(
        kept_diff, 0.0,
        "the known region must equal the source bit for bit"
    );
    let regenerated = (out
        .broadcast_mul(&mask)
        .unwrap()
        .sum_all()
        .unwrap()
        .to_scalar::<f64>()
        .unwrap())
        / 48.0;
    assert!(
        regenerated > 2.0,
        "the masked region moved to class 4: mean {regenerated}"
    );
}
