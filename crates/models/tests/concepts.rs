//! Textual inversion on the embedded backend: gradients reach the concept and nothing
//! else changes, and concept files round-trip.

use std::collections::BTreeMap;

use candle_core::{Device, Tensor, Var};
use semaug_core::seeds::Stream;
use semaug_core::{Condition, Generator, Solver};
use semaug_models::concepts::{learn, load, save, ConceptBackend, ConceptConfig, ConceptInit};
use semaug_models::embedded::EmbeddedGenerator;
use semaug_models::flow_training::TrainImages;

fn fixture() -> EmbeddedGenerator {
    EmbeddedGenerator::load(&semaug_testdata::fixtures_dir().join("unet2d-tiny/unet")).unwrap()
}

fn cosine(a: &Tensor, b: &Tensor) -> f32 {
    let dot = (a * b)
        .unwrap()
        .sum_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    let norm = |t: &Tensor| {
        t.sqr()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
            .sqrt()
    };
    dot / (norm(a) * norm(b))
}

#[test]
fn the_concept_receives_a_nonzero_gradient() {
    let gen = fixture();
    let concept = Var::from_tensor(&gen.concept_init(&ConceptInit::Null).unwrap()).unwrap();
    let x = Stream::new(0, 0, 0, 0)
        .normal_tensor((2, 3, 32, 32), &Device::Cpu)
        .unwrap();
    let sigmas = Tensor::new(&[0.3f32, 0.8], &Device::Cpu).unwrap();
    let v = gen
        .concept_velocity(concept.as_tensor(), &x, &sigmas)
        .unwrap();
    let grads = v.sqr().unwrap().mean_all().unwrap().backward().unwrap();
    let g = grads
        .get(concept.as_tensor())
        .expect("no gradient reached the concept");
    let norm = g
        .sqr()
        .unwrap()
        .sum_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(norm > 0.0 && norm.is_finite(), "gradient norm {norm}");
}

/// Learning moves the concept and nothing else: the model (its class table included)
/// is frozen.
#[test]
fn only_the_concept_changes() {
    let gen = fixture();
    let table_before = gen.unet().class_embedding_table().unwrap().clone();
    let images = sampled(&gen, 3, 4);
    let config = ConceptConfig {
        steps: 5,
        learning_rate: 1e-2,
        batch_size: 4,
        ..Default::default()
    };
    let init = gen.concept_init(&ConceptInit::Class(1)).unwrap();
    let config = ConceptConfig {
        init: ConceptInit::Class(1),
        ..config
    };
    let mut losses = Vec::new();
    let learned = learn(&gen, &images, &config, &mut |_, l| losses.push(l)).unwrap();
    assert_eq!(losses.len(), 5);
    let moved = (&learned - &init)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(moved > 1e-4, "the concept did not move: {moved}");
    let table_after = gen.unet().class_embedding_table().unwrap();
    let diff = (table_after - &table_before)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap();
    assert_eq!(diff.to_scalar::<f32>().unwrap(), 0.0);
    assert!(
        cosine(&learned, &init) > 0.9,
        "a few small steps stay near the start"
    );
}

/// Samples of one class from noise with the generator (Heun, 4 steps), as u8 planes.
fn sampled(gen: &EmbeddedGenerator, class: usize, n: usize) -> TrainImages {
    let noise = Stream::new(9, 0, 0, 0)
        .normal_tensor((n, 3, 32, 32), &Device::Cpu)
        .unwrap();
    let field =
        semaug_core::ConditionedField::new(gen, &vec![Condition::Class(class); n], 1.0).unwrap();
    let grid = semaug_core::SigmaGrid::uniform(4).unwrap();
    let x = semaug_core::integrate(&field, &noise, &grid, &Solver::Heun, None)
        .unwrap()
        .x;
    let x = gen.decode(&x).unwrap();
    TrainImages::from_tensor(&x, Some(class)).unwrap()
}

#[test]
fn concept_files_round_trip_with_the_model_hash() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("concepts.safetensors");
    let row = Tensor::new(&[0.5f32, -1.0, 2.0], &Device::Cpu).unwrap();
    save(
        &path,
        &BTreeMap::from([("<cat>".to_string(), row.clone())]),
        "abc123",
    )
    .unwrap();
    let (concepts, model) = load(&path).unwrap();
    assert_eq!(model.as_deref(), Some("abc123"));
    assert_eq!(
        concepts["<cat>"].to_vec1::<f32>().unwrap(),
        row.to_vec1::<f32>().unwrap()
    );
    std::fs::write(&path, b"not safetensors").unwrap();
    assert!(load(&path)
        .unwrap_err()
        .to_string()
        .contains("concepts.safetensors"));
}
