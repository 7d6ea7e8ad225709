//! The embedded backend computes exactly the UNet's class-conditional output.

use candle_core::{Device, Tensor};
use semaug_core::{Condition, Generator};
use semaug_models::embedded::EmbeddedGenerator;

fn fixture() -> std::path::PathBuf {
    semaug_testdata::fixtures_dir().join("unet2d-tiny/unet")
}

#[test]
fn velocity_equals_the_unet_with_class_labels() {
    let gen = EmbeddedGenerator::load(&fixture()).unwrap();
    assert_eq!(
        gen.classes.len(),
        10,
        "classes named by index without classes.json"
    );
    let x = semaug_core::seeds::Stream::new(1, 0, 0, 0)
        .normal_tensor((3, 3, 32, 32), &Device::Cpu)
        .unwrap();
    let conds = [Condition::Class(2), Condition::Null, Condition::Class(9)];
    let v = gen.velocity(&x, 0.25, &gen.embed(&conds).unwrap()).unwrap();
    let labels = Tensor::new(&[2u32, 10, 9], &Device::Cpu).unwrap();
    let t = Tensor::new(&[250f32], &Device::Cpu).unwrap();
    let reference = gen.unet().forward(&x, &t, Some(&labels)).unwrap();
    let diff = (v - reference)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(diff < 1e-5, "{diff}");
}

#[test]
fn unknown_conditions_are_errors_naming_the_fix() {
    let gen = EmbeddedGenerator::load(&fixture()).unwrap();
    let err = gen
        .embed(&[Condition::Concept("<cat>".into())])
        .unwrap_err()
        .to_string();
    assert!(err.contains("<cat>") && err.contains("--concepts"), "{err}");
    assert!(gen.embed(&[Condition::Class(10)]).is_err());
    assert!(gen.embed(&[Condition::Prompt("a cat".into())]).is_err());
}
