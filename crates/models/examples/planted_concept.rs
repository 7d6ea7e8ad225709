//! The planted-answer experiment of textual inversion on the shipped model: a concept
//! learned from images the model itself generated for class `c` should move towards class
//! `c`'s row of the embedding table and end closer to it than to any other class's row.
//! Prints the cosine to every class row for each planted class; about a minute per class
//! on 2 cores, so it is an experiment, not a test:
//!
//!     cargo run --release -p semaug-models --example planted_concept [STEPS]

use candle_core::{Device, Tensor};
use semaug_core::seeds::Stream;
use semaug_core::{integrate, Condition, ConditionedField, Generator, SigmaGrid, Solver};
use semaug_models::concepts::{learn, ConceptBackend, ConceptConfig, ConceptInit};
use semaug_models::embedded::{shipped, EmbeddedGenerator};
use semaug_models::flow_training::TrainImages;

const IMAGES: usize = 16;

fn cosine(a: &Tensor, b: &Tensor) -> f64 {
    let dot = (a * b)
        .expect("tensor op")
        .sum_all()
        .expect("tensor op")
        .to_scalar::<f32>()
        .expect("tensor op") as f64;
    let norm = |t: &Tensor| {
        (t.sqr()
            .expect("tensor op")
            .sum_all()
            .expect("tensor op")
            .to_scalar::<f32>()
            .expect("tensor op") as f64)
            .sqrt()
    };
    dot / (norm(a) * norm(b))
}

/// `n` samples of `class` from noise (Heun, 10 steps), as u8 planes.
fn sampled(gen: &EmbeddedGenerator, class: usize, n: usize) -> TrainImages {
    let noise = Stream::new(5, 0, 0, 0)
        .normal_tensor((n, 3, 32, 32), &Device::Cpu)
        .expect("tensor op");
    let field =
        ConditionedField::new(gen, &vec![Condition::Class(class); n], 1.0).expect("tensor op");
    let grid = SigmaGrid::uniform(10).expect("tensor op");
    let x = integrate(&field, &noise, &grid, &Solver::Heun, None)
        .expect("tensor op")
        .x;
    let x = gen.decode(&x).expect("tensor op");
    TrainImages::from_tensor(&x, Some(class)).expect("tensor op")
}

fn main() {
    let steps = std::env::args()
        .nth(1)
        .map_or(60, |s| s.parse().expect("STEPS"));
    let gen = shipped::load().expect("the shipped model");
    let mut found = 0;
    for planted in 0..gen.classes.len() {
        let images = sampled(&gen, planted, IMAGES);
        let config = ConceptConfig {
            steps,
            learning_rate: 5e-2,
            batch_size: 16,
            init: ConceptInit::Null,
            seed: 0,
        };
        let learned = learn(&gen, &images, &config, &mut |_, _| {}).expect("learn");
        let start = gen.concept_init(&ConceptInit::Null).expect("null row");
        let rows: Vec<Tensor> = (0..gen.classes.len())
            .map(|c| gen.concept_init(&ConceptInit::Class(c)).expect("class row"))
            .collect();
        let similarities: Vec<f64> = rows.iter().map(|r| cosine(&learned, r)).collect();
        let best = (0..rows.len())
            .max_by(|&a, &b| similarities[a].total_cmp(&similarities[b]))
            .expect("classes");
        found += usize::from(best == planted);
        println!(
            "{:<12} cosine to it {:+.3} (null start {:+.3}); closest row {} ({:+.3}); mean to others {:+.3}",
            gen.classes[planted],
            similarities[planted],
            cosine(&start, &rows[planted]),
            gen.classes[best],
            similarities[best],
            (similarities.iter().sum::<f64>() - similarities[planted]) / (rows.len() - 1) as f64,
        );
    }
    println!(
        "planted class found for {found} of {} classes",
        gen.classes.len()
    );
}
