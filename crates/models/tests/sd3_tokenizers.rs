//! The three SD3 tokenizers against transformers on the `sd3-tiny` fixture
//! (`text_encoders` case ids): CLIP-L padded with `<|endoftext|>`, CLIP-G padded with `"!"`
//! (id 0, which a `!` in the prompt also becomes), and the T5 Unigram tokenizer with `</s>`
//! appended and `<pad>` = 0 up to 256. Truncation and unknown characters are checked as
//! properties.

mod sd3_common;

use candle_core::Device;
use sd3_common::{case_json, case_tensors, id_rows, sd3_tiny};
use semaug_models::sd::ClipTokenizer;
use semaug_models::sd3::{T5Tokenizer, T5_MAX_LENGTH};

const CASE: &str = "text_encoders";

fn prompts() -> Vec<String> {
    case_json(CASE)["params"]["prompts"]
        .as_array()
        .expect("prompts")
        .iter()
        .map(|p| p.as_str().expect("prompt").to_string())
        .collect()
}

fn encode_clip(folder: &str) -> Vec<Vec<u32>> {
    let tokenizer = ClipTokenizer::load(&sd3_tiny().join(folder)).expect("tokenizer loads");
    let prompts = prompts();
    let prompts: Vec<&str> = prompts.iter().map(String::as_str).collect();
    id_rows(
        &tokenizer
            .encode_batch(&prompts, &Device::Cpu)
            .expect("encode"),
    )
}

#[test]
fn clip_l_ids_match_transformers() {
    let golden = id_rows(&case_tensors(CASE)["clip_l_input_ids"]);
    assert_eq!(encode_clip("tokenizer"), golden);
    // Padded with <|endoftext|> = 999.
    assert_eq!(golden[1][..3], [998, 999, 999]);
}

#[test]
fn clip_g_ids_match_transformers_with_the_bang_pad() {
    let golden = id_rows(&case_tensors(CASE)["clip_g_input_ids"]);
    let ours = encode_clip("tokenizer_2");
    assert_eq!(ours, golden);
    assert_eq!(
        ours[1][..3],
        [998, 999, 0],
        "empty prompt: BOS, EOS, then pad 0"
    );
    // The third prompt ends in "!": it is the special token 0, right before EOS.
    let eos = ours[2].iter().position(|&id| id == 999).expect("eos");
    assert_eq!(ours[2][eos - 1], 0);
}

#[test]
fn t5_ids_match_transformers() {
    let tokenizer = T5Tokenizer::load(&sd3_tiny().join("tokenizer_3")).expect("loads");
    assert_eq!((tokenizer.eos_id(), tokenizer.pad_id()), (1, 0));
    let prompts = prompts();
    let prompts: Vec<&str> = prompts.iter().map(String::as_str).collect();
    let ours = id_rows(
        &tokenizer
            .encode_batch(&prompts, &Device::Cpu)
            .expect("encode"),
    );
    let golden = id_rows(&case_tensors(CASE)["t5_input_ids"]);
    assert_eq!(ours, golden);
    assert!(ours.iter().all(|row| row.len() == T5_MAX_LENGTH));
    assert_eq!(ours[1][..2], [1, 0], "empty prompt: </s> then pads");
}

#[test]
fn t5_truncates_to_255_ids_plus_eos_and_maps_unknown_characters_to_unk() {
    let tokenizer = T5Tokenizer::load(&sd3_tiny().join("tokenizer_3")).expect("loads");
    let long = "a photo of a dog ".repeat(100);
    let unpadded = tokenizer.encode_unpadded(&long).expect("encode");
    assert!(unpadded.len() > T5_MAX_LENGTH);
    let ids = tokenizer.encode(&long).expect("encode");
    assert_eq!(ids.len(), T5_MAX_LENGTH);
    assert_eq!(ids[..T5_MAX_LENGTH - 1], unpadded[..T5_MAX_LENGTH - 1]);
    assert_eq!(ids[T5_MAX_LENGTH - 1], 1);
    // No normaliser: `é` is outside the vocabulary, so some piece is <unk> = 2.
    let cafe = tokenizer.encode_unpadded("café").expect("encode");
    assert!(cafe.contains(&2), "{cafe:?}");
    assert_eq!(cafe.last(), Some(&1));
    let short = tokenizer
        .with_max_length(4)
        .expect("length")
        .encode("a photo")
        .expect("encode");
    assert_eq!(short.len(), 4);
}
