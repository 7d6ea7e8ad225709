//! The CLIP tokenizer against transformers' ids on the `sd-tiny` fixture (`tokenizer` case):
//! padding to 77, truncation with EOS, and an added textual-inversion concept token.

mod sd_common;

use candle_core::Device;
use sd_common::{case_json, case_tensors, id_rows, sd_tiny};
use semaug_models::sd::{ClipTokenizer, SdError};

fn prompts() -> Vec<String> {
    case_json("tokenizer")["params"]["prompts"]
        .as_array()
        .expect("prompts")
        .iter()
        .map(|p| p.as_str().expect("prompt string").to_string())
        .collect()
}

fn encode_all(tok: &ClipTokenizer) -> Vec<Vec<u32>> {
    prompts()
        .iter()
        .map(|p| tok.encode(p).expect("encodes"))
        .collect()
}

#[test]
fn ids_match_transformers() {
    let tok = ClipTokenizer::load(&sd_tiny().join("tokenizer")).expect("tokenizer loads");
    assert_eq!((tok.bos_id(), tok.eos_id(), tok.pad_id()), (998, 999, 999));
    let golden = id_rows(&case_tensors("tokenizer")["input_ids"]);
    assert_eq!(encode_all(&tok), golden);
}

#[test]
fn concept_token_gets_the_next_id_and_matches_transformers() {
    let mut tok = ClipTokenizer::load(&sd_tiny().join("tokenizer")).expect("tokenizer loads");
    let id = tok.add_concept_token("<concept-0>").expect("added");
    assert_eq!(id, 1000);
    assert_eq!(tok.vocab_size(), 1001);
    let golden = id_rows(&case_tensors("tokenizer")["input_ids_with_concept"]);
    assert_eq!(encode_all(&tok), golden);
    // Adding it twice is refused, as diffusers' textual-inversion script does.
    assert!(matches!(
        tok.add_concept_token("<concept-0>"),
        Err(SdError::Input { .. })
    ));
}

#[test]
fn saved_tokenizer_with_concept_reads_the_same_ids() {
    let dir = sd_tiny().join("golden/tokenizer_with_concept");
    let tok = ClipTokenizer::load(&dir).expect("tokenizer loads");
    assert_eq!(tok.token_id("<concept-0>"), Some(1000));
    let golden = id_rows(&case_tensors("tokenizer")["input_ids_with_concept"]);
    assert_eq!(encode_all(&tok), golden);
}

#[test]
fn vocab_and_merges_alone_give_the_same_ids() {
    // Real SD 1.x folders ship only vocab.json + merges.txt.
    let tmp = tempfile::tempdir().expect("tempdir");
    for name in ["vocab.json", "merges.txt", "tokenizer_config.json"] {
        std::fs::copy(
            sd_tiny().join("tokenizer").join(name),
            tmp.path().join(name),
        )
        .expect("copy");
    }
    let tok = ClipTokenizer::load(tmp.path()).expect("classic files load");
    let golden = id_rows(&case_tensors("tokenizer")["input_ids"]);
    assert_eq!(encode_all(&tok), golden);
}

#[test]
fn long_prompts_are_truncated_with_eos_and_batches_are_77_wide() {
    let tok = ClipTokenizer::load(&sd_tiny().join("tokenizer")).expect("tokenizer loads");
    let long = "a photo of a cat ".repeat(40);
    let ids = tok.encode(&long).expect("encodes");
    assert_eq!(ids.len(), 77);
    assert_eq!((ids[0], ids[76]), (998, 999));
    assert!(tok.encode_unpadded(&long).expect("encodes").len() > 77);
    let batch = tok
        .encode_batch(&["", "a cat"], &Device::Cpu)
        .expect("batch");
    assert_eq!(batch.dims(), &[2, 77]);
    let rows = id_rows(&batch);
    assert_eq!(&rows[0][..3], &[998, 999, 999]);
}

#[test]
fn a_missing_folder_is_a_typed_error_naming_the_file() {
    let tmp = tempfile::tempdir().expect("tempdir");
    match ClipTokenizer::load(tmp.path()) {
        Err(SdError::MissingFile { path, .. }) => assert!(path.ends_with("tokenizer.json")),
        other => panic!("expected MissingFile, got {other:?}"),
    }
}
