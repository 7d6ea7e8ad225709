//! The SD3 backend behind the `Generator` seam on the `sd3-tiny` fixture: prompt, null and
//! class conditions embed to the golden `encode_prompt` outputs (packed with the pooled
//! vector), encode equals the golden VAE latent, the velocity equals the transformer's, and
//! the packing and the condition rules fail with clear errors. `resolve` classifies the
//! folder as SD3 and `load` gives the SD3 backend.

mod sd3_common;

use candle_core::{DType, Device, Tensor};
use sd3_common::{atol, case_tensors, check, max_abs_diff, sd3_tiny};
use semaug_core::{Condition, Generator};
use semaug_models::pretrained::resolve::classify_dir;
use semaug_models::pretrained::sd3::{pack_conditioning, unpack_conditioning};
use semaug_models::pretrained::{
    load, resolve, LoadedModel, ModelSource, PretrainedError, Sd3Generator,
};
use semaug_models::sd::SdError;

fn generator() -> Sd3Generator {
    Sd3Generator::load(&sd3_tiny(), &Device::Cpu).expect("sd3-tiny loads")
}

#[test]
fn info_names_the_model_its_size_and_weights_hash() {
    let info = generator().with_name("sd3-tiny").info();
    assert_eq!(info.name, "sd3-tiny");
    assert_eq!(info.image_size, (64, 64));
    let hash = info.weights_sha256.expect("hash");
    assert!(hash.len() == 64 && hash.chars().all(|c| c.is_ascii_hexdigit()));
}

#[test]
fn embeddings_are_the_golden_prompt_encodings() {
    let g = case_tensors("text_encoders");
    let mut sd3 = generator().with_class_names(vec!["dog".into(), "astronaut".into()]);
    sd3.prompt_template = "a photo of an {class}".into();
    let conditions = [
        Condition::Prompt("a photo of an astronaut".into()),
        Condition::Null,
        Condition::Class(1),
    ];
    let packed = sd3.embed(&conditions).expect("embed");
    // 333 text tokens + one row holding the 80-wide pooled vector padded to 96.
    assert_eq!(packed.dims(), [3, 334, 96]);
    let embeds = sd3.unpack(&packed).expect("unpack");
    let (tokens_atol, pooled_atol) = (
        atol("text_encoders", "prompt_embeds"),
        atol("text_encoders", "pooled_prompt_embeds"),
    );
    // Golden rows: 0 = the prompt, 1 = "".
    for (row, golden) in [(0, 0), (1, 1), (2, 0)] {
        let pick = |t: &Tensor| t.narrow(0, row, 1).expect("row");
        let gold = |name: &str| g[name].narrow(0, golden, 1).expect("row");
        let d = max_abs_diff(&pick(&embeds.prompt_embeds), &gold("prompt_embeds"));
        let p = max_abs_diff(&pick(&embeds.pooled), &gold("pooled_prompt_embeds"));
        println!("row {row}: tokens {d:.2e} (atol {tokens_atol:.0e}), pooled {p:.2e}");
        assert!(d <= tokens_atol && p <= pooled_atol, "row {row}: {d} {p}");
    }
    let unknown = sd3.embed(&[Condition::Class(2)]).expect_err("no class 2");
    assert!(unknown.to_string().contains("class 2"), "{unknown}");
    let concept = sd3.embed(&[Condition::Concept("<cat>".into())]);
    assert!(concept
        .expect_err("no concepts")
        .to_string()
        .contains("SD3"));
}

#[test]
fn encode_and_velocity_are_the_vae_and_transformer() {
    let sd3 = generator();
    let vae = case_tensors("vae");
    check(
        "vae",
        "latent",
        &sd3.encode(&vae["image"]).expect("encode"),
        &vae["latent"],
    );
    let g = case_tensors("transformer");
    let embedding = pack_conditioning(&g["cond_embeds"], &g["cond_pooled"]).expect("pack");
    // velocity_1 was computed at sigma 0.693793 (timestep 693.79 = sigma * 1000 in f32).
    let sigma = f64::from(g["timesteps"].to_vec1::<f32>().expect("t")[1]) / 1000.0;
    let v = sd3
        .velocity(&g["latent"], sigma, &embedding)
        .expect("velocity");
    let golden = g["velocity_1"].narrow(0, 1, 1).expect("cond row");
    check("transformer", "velocity_1", &v, &golden);
}

#[test]
fn packing_round_trips_and_refuses_bad_shapes() {
    let tokens = Tensor::arange(0f32, 2.0 * 5.0 * 4.0, &Device::Cpu)
        .and_then(|t| t.reshape((2, 5, 4)))
        .expect("tokens");
    let pooled = Tensor::arange(100f32, 114.0, &Device::Cpu)
        .and_then(|t| t.reshape((2, 7)))
        .expect("pooled");
    let packed = pack_conditioning(&tokens, &pooled).expect("pack");
    assert_eq!(packed.dims(), [2, 7, 4], "ceil(7 / 4) = 2 extra rows");
    let back = unpack_conditioning(&packed, 7).expect("unpack");
    assert_eq!(max_abs_diff(&back.prompt_embeds, &tokens), 0.0);
    assert_eq!(max_abs_diff(&back.pooled, &pooled), 0.0);
    let zeros = |shape: &[usize]| Tensor::zeros(shape, DType::F32, &Device::Cpu).expect("z");
    assert!(matches!(
        pack_conditioning(&tokens, &zeros(&[3, 7])),
        Err(SdError::Input {
            input: "pooled",
            ..
        })
    ));
    assert!(matches!(
        unpack_conditioning(&zeros(&[2, 2, 4]), 8),
        Err(SdError::Input {
            input: "embedding",
            ..
        })
    ));
    let sd3 = generator();
    // Any token count works; a width other than joint_attention_dim does not.
    let nine_tokens = zeros(&[1, 10, 96]);
    assert!(sd3
        .velocity(&zeros(&[1, 16, 8, 8]), 0.5, &nine_tokens)
        .is_ok());
    assert!(sd3
        .velocity(&zeros(&[1, 16, 8, 8]), 0.5, &zeros(&[1, 10, 32]))
        .is_err());
}

#[test]
fn resolve_finds_and_loads_the_sd3_pipeline() {
    let dir = sd3_tiny();
    let spec = dir.to_str().expect("utf-8 path");
    let model = resolve(spec).expect("resolves");
    assert_eq!(
        model.source,
        ModelSource::StableDiffusion3 {
            dir: dir.clone(),
            pipeline: "StableDiffusion3Pipeline".into(),
        }
    );
    assert_eq!(model.source.kind(), "StableDiffusion3Pipeline");
    let mut loaded = load(&model, &Device::Cpu).expect("loads");
    let LoadedModel::StableDiffusion3(sd3) = &loaded else {
        panic!("expected the SD3 backend, got {loaded:?}");
    };
    assert_eq!(
        sd3.sigma_grid(8).expect("grid"),
        sd3.flow_grid(8).expect("grid")
    );
    let info = loaded.generator().info();
    assert_eq!((info.name.as_str(), info.image_size), (spec, (64, 64)));
    // Dataset classes become prompts; concepts are refused with a reason.
    assert!(loaded.is_text_conditioned());
    let classes = loaded.class_conditions(&["dog".into()]);
    assert_eq!(classes.conditions, [Condition::Class(0)]);
    loaded.set_prompt_template("a {class}").expect("template");
    let concepts = [(
        "<dog>".to_string(),
        Tensor::zeros(32, DType::F32, &Device::Cpu).expect("z"),
    )];
    let refused = loaded.attach_concepts(concepts.into_iter().collect());
    assert!(refused
        .expect_err("no concepts")
        .to_string()
        .contains("SD3"));
}

#[test]
fn an_incomplete_sd3_folder_names_the_missing_component() {
    let root = tempfile::tempdir().expect("tempdir");
    std::fs::copy(
        sd3_tiny().join("model_index.json"),
        root.path().join("model_index.json"),
    )
    .expect("copy");
    match classify_dir(root.path()) {
        Err(PretrainedError::MissingWeights { dir, .. }) => assert!(dir.ends_with("transformer")),
        other => panic!("expected MissingWeights, got {other:?}"),
    }
}
