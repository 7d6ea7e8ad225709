//! SD3 prompt encoding against transformers / diffusers on the `sd3-tiny` fixture
//! (`text_encoders` case): each CLIP's penultimate hidden states and projected pooled
//! output, T5's last hidden state, and the assembled `prompt_embeds [3, 333, 96]` and
//! `pooled_prompt_embeds [3, 80]` of `StableDiffusion3Pipeline.encode_prompt`.

mod sd3_common;

use candle_core::{DType, Device, Tensor};
use sd3_common::{case_json, case_tensors, check, sd3_tiny};
use semaug_models::sd::SdError;
use semaug_models::sd3::{joint_prompt_embeds, Sd3TextEncoders, T5EncoderModel};

const CASE: &str = "text_encoders";

fn encoders() -> Sd3TextEncoders {
    Sd3TextEncoders::load(&sd3_tiny(), 96, &Device::Cpu).expect("text encoders load")
}

fn prompts() -> Vec<String> {
    case_json(CASE)["params"]["prompts"]
        .as_array()
        .expect("prompts")
        .iter()
        .map(|p| p.as_str().expect("prompt").to_string())
        .collect()
}

#[test]
fn each_clip_matches_transformers() {
    let g = case_tensors(CASE);
    let text = encoders();
    for (clip, name) in [(&text.clip_l, "clip_l"), (&text.clip_g, "clip_g")] {
        let out = clip
            .encoder
            .forward(&g[&format!("{name}_input_ids")])
            .expect("forward");
        let penultimate = format!("{name}_penultimate");
        check(
            CASE,
            &penultimate,
            &out.penultimate_hidden_state,
            &g[&penultimate],
        );
        let embeds = clip
            .encoder
            .text_embeds(&out.pooler_output)
            .expect("projection")
            .expect("has a projection");
        let text_embeds = format!("{name}_text_embeds");
        check(CASE, &text_embeds, &embeds, &g[&text_embeds]);
    }
}

#[test]
fn t5_matches_transformers() {
    let g = case_tensors(CASE);
    let text = encoders();
    let t5 = text.t5.as_ref().expect("the fixture has T5");
    let states = t5.encoder.forward(&g["t5_input_ids"]).expect("forward");
    check(
        CASE,
        "t5_last_hidden_state",
        &states,
        &g["t5_last_hidden_state"],
    );
}

#[test]
fn encode_prompt_matches_the_pipeline() {
    let g = case_tensors(CASE);
    let text = encoders();
    assert_eq!(text.pooled_dim(), 80);
    let prompts = prompts();
    let prompts: Vec<&str> = prompts.iter().map(String::as_str).collect();
    let embeds = text.encode(&prompts).expect("encode");
    check(
        CASE,
        "prompt_embeds",
        &embeds.prompt_embeds,
        &g["prompt_embeds"],
    );
    check(
        CASE,
        "pooled_prompt_embeds",
        &embeds.pooled,
        &g["pooled_prompt_embeds"],
    );
    // The CLIP part is zero-padded from 32 + 48 = 80 to 96 channels.
    let pad = embeds
        .prompt_embeds
        .narrow(1, 0, 77)
        .and_then(|t| t.narrow(2, 80, 16))
        .and_then(|t| t.abs()?.sum_all()?.to_scalar::<f32>())
        .expect("pad");
    assert_eq!(pad, 0.0);
}

#[test]
fn joint_embeds_refuse_a_narrow_t5() {
    let z = |d: usize| Tensor::zeros((1, 4, d), DType::F32, &Device::Cpu).expect("zeros");
    let joined = joint_prompt_embeds(&z(2), &z(3), &z(8)).expect("fits");
    assert_eq!(joined.dims(), [1, 8, 8]);
    assert!(matches!(
        joint_prompt_embeds(&z(4), &z(5), &z(8)),
        Err(SdError::Input { .. })
    ));
}

#[test]
fn t5_folder_problems_are_typed_errors() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let config =
        std::fs::read_to_string(sd3_tiny().join("text_encoder_3/config.json")).expect("config");
    std::fs::write(tmp.path().join("config.json"), &config).expect("write");
    match T5EncoderModel::load(tmp.path(), &Device::Cpu) {
        Err(SdError::MissingFile { path, .. }) => assert!(path.ends_with("model.safetensors")),
        other => panic!("expected MissingFile, got {other:?}"),
    }
    let relu_gated = config.replace("\"gated-gelu\"", "\"gated-tanh\"");
    std::fs::write(tmp.path().join("config.json"), relu_gated).expect("write");
    std::fs::copy(
        sd3_tiny().join("text_encoder_3/model.safetensors"),
        tmp.path().join("model.safetensors"),
    )
    .expect("copy");
    match T5EncoderModel::load(tmp.path(), &Device::Cpu) {
        Err(SdError::UnsupportedConfig { field, .. }) => assert_eq!(field, "feed_forward_proj"),
        other => panic!("expected UnsupportedConfig, got {other:?}"),
    }
    // A non-gated config does not use wi_0 / wi_1: the checkpoint does not match it.
    std::fs::write(
        tmp.path().join("config.json"),
        config.replace("\"gated-gelu\"", "\"relu\""),
    )
    .expect("write");
    assert!(matches!(
        T5EncoderModel::load(tmp.path(), &Device::Cpu),
        Err(SdError::MissingWeight { .. })
    ));
}
