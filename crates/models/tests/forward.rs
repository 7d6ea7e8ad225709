//! Forward-pass properties: batch invariance, conditioning effects and input validation.

mod common;

use candle_core::{DType, Device, Tensor};
use common::{fixture_model_dir, max_abs_diff, normal};
use semaug_models::unet::{UNet2DModel, UnetError};

fn fixture() -> UNet2DModel {
    UNet2DModel::load(&fixture_model_dir(), &Device::Cpu).expect("fixture loads")
}

#[test]
fn a_sample_does_not_depend_on_its_batch() {
    let model = fixture();
    let x = normal(&[3, 3, 32, 32], 30);
    let t = Tensor::new(&[5f32, 333.3, 987.0], &Device::Cpu).expect("t");
    let y = Tensor::new(&[4i64, 10, 7], &Device::Cpu).expect("labels");
    let batch = model.forward(&x, &t, Some(&y)).expect("batch forward");
    let mut worst = 0f32;
    for i in 0..3 {
        let one = model
            .forward(
                &x.narrow(0, i, 1).expect("x_i"),
                &t.narrow(0, i, 1).expect("t_i"),
                Some(&y.narrow(0, i, 1).expect("y_i")),
            )
            .expect("single forward");
        worst = worst.max(max_abs_diff(&one, &batch.narrow(0, i, 1).expect("row")));
    }
    println!("batch 1 vs batch 3: max abs diff {worst:e} (0 = bitwise identical)");
    // Bitwise: every matmul runs per sample (see `layers::Linear`) and convs tile per sample.
    assert_eq!(worst, 0.0, "batch dependence {worst}");
}

#[test]
fn class_and_time_change_the_output() {
    let model = fixture();
    let x = normal(&[1, 3, 16, 16], 31);
    let t = Tensor::new(&[500f32], &Device::Cpu).expect("t");
    let run = |label: u32, t: &Tensor| {
        let y = Tensor::new(&[label], &Device::Cpu).expect("y");
        model.forward(&x, t, Some(&y)).expect("forward")
    };
    let base = run(3, &t);
    assert!(max_abs_diff(&base, &run(10, &t)) > 1e-3);
    let t2 = Tensor::new(&[100f32], &Device::Cpu).expect("t");
    assert!(max_abs_diff(&base, &run(3, &t2)) > 1e-3);
    // [1] and a scalar broadcast the same way.
    let scalar = Tensor::new(500f32, &Device::Cpu).expect("scalar");
    assert_eq!(max_abs_diff(&base, &run(3, &scalar)), 0.0);
}

fn input_error(result: Result<Tensor, UnetError>) -> &'static str {
    match result {
        Err(UnetError::Input { input, .. }) => input,
        other => panic!("expected an input error, got {other:?}"),
    }
}

#[test]
fn bad_inputs_are_typed_errors() {
    let model = fixture();
    let dev = Device::Cpu;
    let x = normal(&[2, 3, 16, 16], 32);
    let t = Tensor::new(&[1f32, 2.0], &dev).expect("t");
    let y = Tensor::new(&[0u32, 1], &dev).expect("y");
    let wrong_channels = normal(&[2, 4, 16, 16], 33);
    assert_eq!(
        input_error(model.forward(&wrong_channels, &t, Some(&y))),
        "sample"
    );
    let odd_size = normal(&[2, 3, 18, 18], 34);
    assert_eq!(
        input_error(model.forward(&odd_size, &t, Some(&y))),
        "sample"
    );
    let three_t = Tensor::new(&[1f32, 2.0, 3.0], &dev).expect("t");
    assert_eq!(
        input_error(model.forward(&x, &three_t, Some(&y))),
        "timesteps"
    );
    let int_t = Tensor::new(&[1i64, 2], &dev).expect("t");
    assert_eq!(
        input_error(model.forward(&x, &int_t, Some(&y))),
        "timesteps"
    );
    let out_of_range = Tensor::new(&[0u32, 11], &dev).expect("y");
    assert_eq!(
        input_error(model.forward(&x, &t, Some(&out_of_range))),
        "class_labels"
    );
    let float_labels = y.to_dtype(DType::F32).expect("f32");
    assert_eq!(
        input_error(model.forward(&x, &t, Some(&float_labels))),
        "class_labels"
    );
    assert_eq!(input_error(model.forward(&x, &t, None)), "class_labels");
}
