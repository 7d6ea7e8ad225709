//! The CLIP text encoder against transformers on the `sd-tiny` fixture (`text_encoder` and
//! `text_encoder_concept` cases), and the textual-inversion gradient through it.

mod sd_common;

use candle_core::{backprop::GradStore, Device, Tensor, Var};
use sd_common::{case_tensors, check, sd_tiny};
use semaug_models::sd::{ClipTextModel, ConceptEmbedding, SdError};

fn encoder() -> ClipTextModel {
    ClipTextModel::load(&sd_tiny().join("text_encoder"), &Device::Cpu).expect("encoder loads")
}

#[test]
fn hidden_states_and_pooled_output_match_transformers() {
    let g = case_tensors("text_encoder");
    let out = encoder().forward(&g["input_ids"]).expect("forward");
    let case = "text_encoder";
    check(
        case,
        "last_hidden_state",
        &out.last_hidden_state,
        &g["last_hidden_state"],
    );
    check(
        case,
        "pooler_output",
        &out.pooler_output,
        &g["pooler_output"],
    );
    check(
        case,
        "penultimate_hidden_state",
        &out.penultimate_hidden_state,
        &g["penultimate_hidden_state"],
    );
}

#[test]
fn a_spliced_concept_row_matches_the_resized_embedding_of_transformers() {
    let g = case_tensors("text_encoder_concept");
    let te = encoder();
    let ids = &g["input_ids"];
    // Id 1000 is past the 1000-row table: only a concept may use it.
    assert!(matches!(
        te.token_embedding(ids),
        Err(SdError::Input { .. })
    ));
    let concept = ConceptEmbedding {
        id: 1000,
        row: &g["concept_embedding"],
    };
    let embeds = te.embed_tokens(ids, &[concept]).expect("embeds");
    let hidden = te.forward_embeddings(&embeds).expect("forward");
    check(
        "text_encoder_concept",
        "last_hidden_state",
        &hidden.last_hidden_state,
        &g["last_hidden_state"],
    );
}

/// `sum(last_hidden_state * weights)` for the concept prompts, with the concept row `row`.
fn loss(te: &ClipTextModel, ids: &Tensor, row: &Tensor, weights: &Tensor) -> Tensor {
    let concept = ConceptEmbedding { id: 1000, row };
    let embeds = te.embed_tokens(ids, &[concept]).expect("embeds");
    let hidden = te.forward_embeddings(&embeds).expect("forward");
    (hidden.last_hidden_state * weights)
        .and_then(|t| t.sum_all())
        .expect("loss")
}

#[test]
fn a_learnable_concept_row_receives_the_true_gradient() {
    let g = case_tensors("text_encoder_concept");
    let te = encoder();
    let ids = &g["input_ids"];
    let row = Var::from_tensor(&g["concept_embedding"]).expect("var");
    // Fixed, non-uniform loss weights (a uniform sum would be ~0 after the final norm).
    let weights = sd_common_weights(ids.dim(0).expect("batch"));
    let l = loss(&te, ids, row.as_tensor(), &weights);
    let grads: GradStore = l.backward().expect("backward");
    let grad = grads
        .get(row.as_tensor())
        .expect("the concept row has a gradient");
    let norm: f32 = grad
        .sqr()
        .and_then(|t| t.sum_all())
        .and_then(|t| t.to_scalar())
        .expect("norm");
    assert!(norm > 1e-6, "gradient norm^2 {norm} is zero");

    // Central finite difference along the gradient direction agrees with it.
    let h = 1e-2f64;
    let dir = (grad / (norm as f64).sqrt()).expect("direction");
    let at = |s: f64| {
        let r = (row.as_tensor() + (&dir * s).expect("step")).expect("row");
        loss(&te, ids, &r, &weights)
            .to_scalar::<f32>()
            .expect("scalar") as f64
    };
    let numeric = (at(h) - at(-h)) / (2.0 * h);
    let analytic = (norm as f64).sqrt();
    println!("directional derivative: analytic {analytic:.5}, numeric {numeric:.5}");
    assert!(
        (numeric - analytic).abs() <= 0.02 * analytic,
        "analytic {analytic} vs numeric {numeric}"
    );
}

/// `[B, 77, 32]` deterministic weights in [-1, 1].
fn sd_common_weights(batch: usize) -> Tensor {
    let n = batch * 77 * 32;
    let values: Vec<f32> = (0..n)
        .map(|i| ((i * 7919 % 2003) as f32 / 1001.5) - 1.0)
        .collect();
    Tensor::from_vec(values, (batch, 77, 32), &Device::Cpu).expect("weights")
}

#[test]
fn loading_errors_name_the_file() {
    let tmp = tempfile::tempdir().expect("tempdir");
    match ClipTextModel::load(tmp.path(), &Device::Cpu) {
        Err(SdError::MissingFile { path, .. }) => assert!(path.ends_with("config.json")),
        other => panic!("expected MissingFile, got {other:?}"),
    }
    std::fs::copy(
        sd_tiny().join("text_encoder/config.json"),
        tmp.path().join("config.json"),
    )
    .expect("copy");
    // A checkpoint missing a weight is reported by name.
    let mut tensors = candle_core::safetensors::load(
        sd_tiny().join("text_encoder/model.safetensors"),
        &Device::Cpu,
    )
    .expect("weights");
    tensors.remove("text_model.final_layer_norm.bias");
    candle_core::safetensors::save(&tensors, tmp.path().join("model.safetensors")).expect("save");
    match ClipTextModel::load(tmp.path(), &Device::Cpu) {
        Err(SdError::MissingWeight { name, origin, .. }) => {
            assert_eq!(name, "text_model.final_layer_norm.bias");
            assert!(origin.ends_with("model.safetensors"));
        }
        other => panic!("expected MissingWeight, got {other:?}"),
    }
}
