//! Model resolution without a network: pipeline and model folders by their diffusers
//! class names, hub ids in a Hugging Face cache laid out in a temp dir (refs, revisions,
//! several snapshots), the cache listing, pickle-only folders, and safetensors headers
//! that are truncated, lie about sizes or claim a huge length (each a one-line error
//! naming the file, never a panic).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::Device;
use semaug_models::pretrained::resolve::{classify_dir, list_models_in, HubId};
use semaug_models::pretrained::{
    check_safetensors, load, resolve, ModelSource, PretrainedError, ResolvedModel,
};

fn fixtures() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/fixtures"
    ))
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let path = entry.expect("entry").path();
        let target = to.join(path.file_name().expect("name"));
        if path.ends_with("golden") {
            continue;
        }
        if path.is_dir() {
            copy_dir(&path, &target);
        } else {
            std::fs::copy(&path, &target).expect("copy");
        }
    }
}

/// The `unet2d-tiny` UNet with a DDPM scheduler, as a flat DDPMPipeline folder (the
/// layout of the old `google/ddpm-*` repositories).
fn flat_ddpm(dir: &Path) {
    copy_dir(&fixtures().join("unet2d-tiny/unet"), dir);
    std::fs::write(
        dir.join("model_index.json"),
        r#"{"_class_name": "DDPMPipeline", "scheduler": ["diffusers", "DDPMScheduler"], "unet": ["diffusers", "UNet2DModel"]}"#,
    )
    .expect("index");
    std::fs::write(
        dir.join("scheduler_config.json"),
        r#"{"_class_name": "DDPMScheduler", "beta_schedule": "linear", "num_train_timesteps": 1000}"#,
    )
    .expect("scheduler");
}

fn one_line(error: &PretrainedError) -> String {
    let text = error.to_string();
    assert!(!text.contains('\n'), "multi-line error: {text}");
    text
}

#[test]
fn folders_resolve_by_their_diffusers_class() {
    let sd = fixtures().join("sd-tiny");
    assert_eq!(
        classify_dir(&sd).expect("sd"),
        ModelSource::StableDiffusion {
            dir: sd.clone(),
            pipeline: "StableDiffusionPipeline".into()
        }
    );
    let unet = fixtures().join("unet2d-tiny/unet");
    assert_eq!(
        classify_dir(&unet).expect("unet"),
        ModelSource::FlowUnet { dir: unet.clone() }
    );
    let root = tempfile::tempdir().expect("tempdir");
    flat_ddpm(root.path());
    assert_eq!(
        classify_dir(root.path()).expect("ddpm"),
        ModelSource::Unet2d {
            unet_dir: root.path().to_path_buf(),
            scheduler_dir: root.path().to_path_buf()
        }
    );
    let spec = sd.to_str().expect("utf-8");
    assert!(matches!(
        resolve(spec).expect("resolve").source,
        ModelSource::StableDiffusion { .. }
    ));
    assert_eq!(
        resolve("embedded").expect("embedded").source,
        ModelSource::Embedded
    );
}

#[test]
fn a_resolved_ddpm_folder_loads_as_a_generator() {
    let root = tempfile::tempdir().expect("tempdir");
    flat_ddpm(root.path());
    let model = ResolvedModel {
        spec: "my-ddpm".into(),
        source: classify_dir(root.path()).expect("classify"),
    };
    let loaded = load(&model, &Device::Cpu).expect("load");
    let info = loaded.generator().info();
    assert_eq!(info.name, "my-ddpm");
    assert_eq!(info.image_size, (32, 32));
}

#[test]
fn unsupported_and_incomplete_folders_say_what_is_wrong() {
    let root = tempfile::tempdir().expect("tempdir");
    let flux = root.path().join("flux");
    std::fs::create_dir_all(&flux).expect("mkdir");
    std::fs::write(
        flux.join("model_index.json"),
        r#"{"_class_name": "FluxPipeline"}"#,
    )
    .expect("index");
    let error = classify_dir(&flux).expect_err("flux");
    assert!(one_line(&error).contains("FluxPipeline"), "{error}");

    let empty = root.path().join("empty");
    std::fs::create_dir_all(&empty).expect("mkdir");
    assert!(one_line(&classify_dir(&empty).expect_err("empty")).contains("model_index.json"));

    let vae = root.path().join("vae");
    copy_dir(&fixtures().join("sd-tiny/vae"), &vae);
    assert!(one_line(&classify_dir(&vae).expect_err("vae")).contains("AutoencoderKL"));

    let error = resolve("no such thing!").expect_err("nonsense");
    assert!(one_line(&error).contains("Hugging Face"), "{error}");
}

#[test]
fn pickle_only_weights_are_refused_with_advice() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("ddpm");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::copy(
        fixtures().join("unet2d-tiny/unet/config.json"),
        dir.join("config.json"),
    )
    .expect("config");
    std::fs::write(
        dir.join("diffusion_pytorch_model.bin"),
        b"PK\x03\x04 pickle",
    )
    .expect("bin");
    let error = classify_dir(&dir).expect_err("pickle");
    let text = one_line(&error);
    assert!(
        matches!(error, PretrainedError::PickleWeights { .. }),
        "{text}"
    );
    assert!(
        text.contains("diffusion_pytorch_model.bin") && text.contains("safetensors"),
        "{text}"
    );

    let sd = root.path().join("sd");
    copy_dir(&fixtures().join("sd-tiny"), &sd);
    std::fs::remove_file(sd.join("text_encoder/model.safetensors")).expect("rm");
    std::fs::write(sd.join("text_encoder/pytorch_model.bin"), b"pickle").expect("bin");
    let text = one_line(&classify_dir(&sd).expect_err("pickle text encoder"));
    assert!(
        text.contains("text_encoder") && text.contains("pytorch_model.bin"),
        "{text}"
    );
}

/// `cache/models--org--name/{refs/main, snapshots/<commit>/...}` as huggingface_hub writes it.
fn cached_repo(
    cache: &Path,
    org: &str,
    name: &str,
    commits: &[&str],
    main: Option<&str>,
) -> PathBuf {
    let repo = cache.join(format!("models--{org}--{name}"));
    for commit in commits {
        flat_ddpm(&repo.join("snapshots").join(commit));
    }
    if let Some(main) = main {
        std::fs::create_dir_all(repo.join("refs")).expect("refs");
        std::fs::write(repo.join("refs/main"), format!("{main}\n")).expect("ref");
    }
    repo
}

#[test]
fn hub_ids_resolve_in_the_local_cache_only() {
    let cache = tempfile::tempdir().expect("tempdir");
    let cache = cache.path();
    let repo = cached_repo(
        cache,
        "google",
        "ddpm-tiny",
        &["aaa111", "bbb222"],
        Some("bbb222"),
    );
    let id = HubId::parse("google/ddpm-tiny").expect("id");
    assert_eq!(
        id.snapshot(cache).expect("main"),
        repo.join("snapshots/bbb222")
    );
    let pinned = HubId::parse("google/ddpm-tiny@aaa111").expect("id");
    assert_eq!(
        pinned.snapshot(cache).expect("pinned"),
        repo.join("snapshots/aaa111")
    );
    let error = HubId::parse("google/ddpm-tiny@v9")
        .expect("id")
        .snapshot(cache)
        .expect_err("no v9");
    assert!(one_line(&error).contains("v9"));

    // No refs/main: the only snapshot is used; with two, the user must pick.
    let single = cached_repo(cache, "me", "single", &["ccc333"], None);
    let id = HubId::parse("me/single").expect("id");
    assert_eq!(
        id.snapshot(cache).expect("single"),
        single.join("snapshots/ccc333")
    );
    cached_repo(cache, "me", "two", &["d1", "d2"], None);
    let error = HubId::parse("me/two")
        .expect("id")
        .snapshot(cache)
        .expect_err("ambiguous");
    assert!(one_line(&error).contains("@<commit>"), "{error}");

    // refs/main pointing at a snapshot that was never downloaded.
    cached_repo(cache, "me", "broken", &["e1"], Some("f2"));
    let error = HubId::parse("me/broken")
        .expect("id")
        .snapshot(cache)
        .expect_err("broken");
    assert!(one_line(&error).contains("f2"), "{error}");

    let error = HubId::parse("nobody/nothing")
        .expect("id")
        .snapshot(cache)
        .expect_err("missing");
    assert!(matches!(error, PretrainedError::NotCached { .. }));
    assert!(one_line(&error).contains("nobody/nothing"));

    for bad in ["noslash", "a/b/c", "../x", "a/..", "a/b@", "/b"] {
        assert!(HubId::parse(bad).is_none(), "{bad} parsed");
    }
}

#[test]
fn the_cache_listing_classifies_every_model() {
    let cache = tempfile::tempdir().expect("tempdir");
    let cache = cache.path();
    cached_repo(cache, "google", "ddpm-tiny", &["abc"], Some("abc"));
    let sd = cache.join("models--tiny--sd/snapshots/c0");
    copy_dir(&fixtures().join("sd-tiny"), &sd);
    std::fs::create_dir_all(cache.join("models--tiny--sd/refs")).expect("refs");
    std::fs::write(cache.join("models--tiny--sd/refs/main"), "c0").expect("ref");
    cached_repo(cache, "me", "two", &["d1", "d2"], None);
    std::fs::create_dir_all(cache.join("datasets--some--data")).expect("dataset");

    let listed = list_models_in(cache);
    let by_id: HashMap<&str, _> = listed.iter().map(|m| (m.id.as_str(), m)).collect();
    assert_eq!(listed.len(), 3, "{listed:?}");
    assert!(matches!(
        by_id["google/ddpm-tiny"].source,
        Ok(ModelSource::Unet2d { .. })
    ));
    let sd_entry = by_id["tiny/sd"];
    assert_eq!(sd_entry.snapshot.as_deref(), Some(sd.as_path()));
    assert_eq!(
        sd_entry.source.as_ref().map(|s| s.kind()).ok().as_deref(),
        Some("StableDiffusionPipeline")
    );
    assert!(by_id["me/two"].source.is_err());
    assert!(list_models_in(&cache.join("missing")).is_empty());
}

// ---- safetensors headers ---------------------------------------------------------------

/// A file made of a header length, a header and `data_len` data bytes.
fn crafted(dir: &Path, name: &str, header_len: u64, header: &str, data_len: usize) -> PathBuf {
    let path = dir.join(name);
    let mut bytes = header_len.to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    bytes.resize(bytes.len() + data_len, 0);
    std::fs::write(&path, bytes).expect("write");
    path
}

/// A well-formed file: `a` F32 [2, 3] then `b` F16 [4].
fn valid_header() -> String {
    r#"{"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},"b":{"dtype":"F16","shape":[4],"data_offsets":[24,32]}}"#.into()
}

fn rejected(path: &Path, needle: &str) {
    let error = check_safetensors(path).expect_err("must be rejected");
    let text = one_line(&error);
    assert!(
        text.contains(&path.display().to_string()),
        "no file name: {text}"
    );
    assert!(text.contains(needle), "expected `{needle}` in: {text}");
}

#[test]
fn a_valid_header_is_read_in_data_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let header = valid_header();
    let path = crafted(
        dir.path(),
        "ok.safetensors",
        header.len() as u64,
        &header,
        32,
    );
    let checked = check_safetensors(&path).expect("valid");
    let names: Vec<&str> = checked.tensors.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
    assert_eq!(checked.tensors[0].shape, [2, 3]);
    assert_eq!(checked.metadata["format"], "pt");
    // The fixtures' real weights pass too.
    check_safetensors(&fixtures().join("sd-tiny/unet/diffusion_pytorch_model.safetensors"))
        .expect("fixture");
}

#[test]
fn truncated_files_are_rejected() {
    let dir = tempfile::tempdir().expect("tempdir");
    let header = valid_header();
    let path = crafted(
        dir.path(),
        "cut.safetensors",
        header.len() as u64,
        &header,
        20,
    );
    rejected(&path, "truncated");
    let path = crafted(dir.path(), "short.safetensors", 0, "", 0);
    std::fs::write(&path, [1u8, 2, 3]).expect("write");
    rejected(&path, "too short");
    // A real checkpoint cut in half.
    let real =
        std::fs::read(fixtures().join("unet2d-tiny/unet/diffusion_pytorch_model.safetensors"))
            .expect("read");
    let path = dir.path().join("half.safetensors");
    std::fs::write(&path, &real[..real.len() / 2]).expect("write");
    rejected(&path, "truncated");
}

#[test]
fn huge_or_overlong_header_lengths_are_rejected() {
    let dir = tempfile::tempdir().expect("tempdir");
    let header = valid_header();
    rejected(
        &crafted(dir.path(), "huge.safetensors", u64::MAX, &header, 32),
        "limit",
    );
    rejected(
        &crafted(dir.path(), "big.safetensors", 200_000_000, &header, 32),
        "limit",
    );
    let past = header.len() as u64 + 1000;
    rejected(
        &crafted(dir.path(), "past.safetensors", past, &header, 32),
        "past the end",
    );
}

#[test]
fn headers_that_lie_are_rejected() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cases = [
        // Shape says 2x4 F32 = 32 bytes, offsets give 24.
        (
            r#"{"a":{"dtype":"F32","shape":[2,4],"data_offsets":[0,24]}}"#,
            24,
            "needs 32 bytes",
        ),
        (
            r#"{"a":{"dtype":"Q4","shape":[2],"data_offsets":[0,1]}}"#,
            1,
            "unknown dtype",
        ),
        (
            r#"{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[4],"data_offsets":[2,6]}}"#,
            6,
            "overlaps",
        ),
        (
            r#"{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[4],"data_offsets":[6,10]}}"#,
            10,
            "no tensor",
        ),
        (
            r#"{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}}"#,
            8,
            "end at byte 4",
        ),
        (
            r#"{"a":{"dtype":"U8","shape":[40],"data_offsets":[0,40]}}"#,
            8,
            "past the 8-byte data section",
        ),
        (
            r#"{"a":{"dtype":"U8","shape":[4],"data_offsets":[4,0]}}"#,
            4,
            "begin <= end",
        ),
        (
            r#"{"a":{"dtype":"F32","shape":[4294967296,4294967296,4],"data_offsets":[0,0]}}"#,
            0,
            "byte size",
        ),
        (
            r#"{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}"#,
            4,
            "list of sizes",
        ),
        (
            r#"{"a":{"dtype":"F32","shape":[1]}}"#,
            4,
            "no `data_offsets`",
        ),
        (r#"{"__metadata__":{"n":1}}"#, 0, "not a string"),
        (r#"{"a": not json"#, 0, "not a JSON object"),
        (r#"[1, 2]"#, 0, "not a JSON object"),
    ];
    for (i, (header, data, needle)) in cases.into_iter().enumerate() {
        let path = crafted(
            dir.path(),
            &format!("lie{i}.safetensors"),
            header.len() as u64,
            header,
            data,
        );
        rejected(&path, needle);
    }
}

#[test]
fn a_lying_weights_file_stops_resolution_before_loading() {
    let root = tempfile::tempdir().expect("tempdir");
    flat_ddpm(root.path());
    let weights = root.path().join("diffusion_pytorch_model.safetensors");
    let header = r#"{"conv_in.weight":{"dtype":"F32","shape":[32,3,3,3],"data_offsets":[0,16]}}"#;
    crafted(
        root.path(),
        "diffusion_pytorch_model.safetensors",
        header.len() as u64,
        header,
        16,
    );
    let error = classify_dir(root.path()).expect_err("lying weights");
    let text = one_line(&error);
    assert!(
        text.contains(&weights.display().to_string()) && text.contains("3456 bytes"),
        "{text}"
    );
}
