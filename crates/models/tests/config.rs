//! Config defaults, presets and validation errors.

use candle_core::Device;
use candle_nn::VarMap;
use semaug_models::unet::{ConfigError, UNet2DConfig, UNet2DModel, UnetError};

fn field_of(cfg: &UNet2DConfig) -> String {
    match cfg.validate() {
        Err(ConfigError { field, .. }) => field,
        Ok(()) => panic!("config should be rejected"),
    }
}

#[test]
fn empty_json_gives_diffusers_defaults() {
    let cfg = UNet2DConfig::from_json("{}").expect("parses");
    assert_eq!(cfg, UNet2DConfig::default());
    assert_eq!(cfg.block_out_channels, vec![224, 448, 672, 896]);
    assert_eq!(cfg.attention_head_dim, Some(8));
    assert_eq!(cfg.norm_eps, 1e-5);
    assert_eq!(cfg.mid_block_type.as_deref(), Some("UNetMidBlock2D"));
    assert_eq!(cfg.layers_per_block, 2);
    assert!(cfg.flip_sin_to_cos && cfg.add_attention && !cfg.center_input_sample);
    assert!(cfg.validate().is_ok());
    // An explicit null is not the default.
    let cfg = UNet2DConfig::from_json(r#"{"attention_head_dim": null, "sample_size": [32, 64]}"#)
        .expect("parses");
    assert_eq!(cfg.attention_head_dim, None);
    assert_eq!(cfg.sample_size.map(|s| s.hw()), Some((32, 64)));
}

#[test]
fn presets_validate_and_have_the_null_class_last() {
    for name in ["test", "small", "base"] {
        let cfg = UNet2DConfig::preset(name).expect("preset");
        cfg.validate().expect("valid preset");
        assert_eq!(cfg.num_class_embeds, Some(11));
        assert_eq!(cfg.null_class(), Some(10));
    }
    assert_eq!(UNet2DConfig::small().block_out_channels, vec![64, 128, 128]);
    assert!(UNet2DConfig::preset("huge").is_err());
}

#[test]
fn small_preset_parameter_count() {
    let model = UNet2DModel::trainable(&UNet2DConfig::small(), &VarMap::new(), 0, &Device::Cpu)
        .expect("small builds");
    let n = model.parameter_count();
    println!("small preset: {n} parameters");
    // Independent count of the architecture (see the per-layer sum below).
    let conv = |i: usize, o: usize, k: usize| o * i * k * k + o;
    let lin = |i: usize, o: usize| o * i + o;
    let gn = |c: usize| 2 * c;
    let t = 256;
    let res = |i: usize, o: usize| {
        gn(i)
            + conv(i, o, 3)
            + lin(t, o)
            + gn(o)
            + conv(o, o, 3)
            + if i != o { conv(i, o, 1) } else { 0 }
    };
    let attn = |c: usize| gn(c) + 4 * lin(c, c);
    let expected = conv(3, 64, 3) + lin(64, t) + lin(t, t) + 11 * t
        // down: 64 -> 64 (+down), 64 -> 128 (+down), 128 -> 128
        + res(64, 64) + conv(64, 64, 3) + res(64, 128) + conv(128, 128, 3) + res(128, 128)
        // mid
        + 2 * res(128, 128) + attn(128)
        // skips (pushed): conv_in 64 | 64, 64 | 128, 128 | 128; each up block pops 2.
        + res(128 + 128, 128) + res(128 + 128, 128) + conv(128, 128, 3)
        + res(128 + 128, 128) + res(128 + 64, 128) + conv(128, 128, 3)
        + res(128 + 64, 64) + res(64 + 64, 64)
        + gn(64) + conv(64, 3, 3);
    assert_eq!(n, expected);
}

#[test]
fn unsupported_options_name_their_field() {
    let base = UNet2DConfig::test();
    let cases: Vec<(&str, UNet2DConfig)> = vec![
        (
            "time_embedding_type",
            UNet2DConfig {
                time_embedding_type: "fourier".into(),
                ..base.clone()
            },
        ),
        (
            "resnet_time_scale_shift",
            UNet2DConfig {
                resnet_time_scale_shift: "scale_shift".into(),
                ..base.clone()
            },
        ),
        (
            "class_embed_type",
            UNet2DConfig {
                class_embed_type: Some("timestep".into()),
                ..base.clone()
            },
        ),
        (
            "act_fn",
            UNet2DConfig {
                act_fn: "gelu".into(),
                ..base.clone()
            },
        ),
        (
            "downsample_type",
            UNet2DConfig {
                downsample_type: "resnet".into(),
                ..base.clone()
            },
        ),
        (
            "upsample_type",
            UNet2DConfig {
                upsample_type: "resnet".into(),
                ..base.clone()
            },
        ),
        (
            "mid_block_type",
            UNet2DConfig {
                mid_block_type: Some("UnCLIPUNetMidBlock2D".into()),
                ..base.clone()
            },
        ),
        (
            "_class_name",
            UNet2DConfig {
                class_name: "UNet2DConditionModel".into(),
                ..base.clone()
            },
        ),
        (
            "dropout",
            UNet2DConfig {
                dropout: 1.5,
                ..base.clone()
            },
        ),
        (
            "downsample_padding",
            UNet2DConfig {
                downsample_padding: 2,
                ..base.clone()
            },
        ),
    ];
    for (field, cfg) in cases {
        assert_eq!(field_of(&cfg), field);
    }
    let err = UNet2DConfig {
        time_embedding_type: "fourier".into(),
        ..base
    }
    .validate()
    .expect_err("rejected");
    assert_eq!(err.found, "\"fourier\"");
    assert!(err.to_string().contains("\"positional\""), "{err}");
}

#[test]
fn inconsistent_shapes_name_their_field() {
    let base = UNet2DConfig::test();
    let mut blocks = base.clone();
    blocks.down_block_types[1] = "CrossAttnDownBlock2D".into();
    assert_eq!(field_of(&blocks), "down_block_types[1]");
    let mut up = base.clone();
    up.up_block_types.pop();
    assert_eq!(field_of(&up), "up_block_types");
    let groups = UNet2DConfig {
        norm_num_groups: 7,
        ..base.clone()
    };
    assert_eq!(field_of(&groups), "block_out_channels[0]");
    let size = UNet2DConfig {
        sample_size: Some(semaug_models::unet::SampleSize::Square(30)),
        ..base.clone()
    };
    assert_eq!(field_of(&size), "sample_size");
    let heads = UNet2DConfig {
        attention_head_dim: Some(128),
        ..base.clone()
    };
    assert_eq!(field_of(&heads), "attention_head_dim");
    let empty = UNet2DConfig {
        block_out_channels: vec![],
        down_block_types: vec![],
        up_block_types: vec![],
        ..base.clone()
    };
    assert_eq!(field_of(&empty), "block_out_channels");
    let layers = UNet2DConfig {
        layers_per_block: 0,
        ..base.clone()
    };
    assert_eq!(field_of(&layers), "layers_per_block");
    let eps = UNet2DConfig {
        norm_eps: 0.0,
        ..base.clone()
    };
    assert_eq!(field_of(&eps), "norm_eps");
    let classes = UNet2DConfig {
        num_class_embeds: Some(0),
        ..base
    };
    assert_eq!(field_of(&classes), "num_class_embeds");
}

#[test]
fn building_an_invalid_config_is_a_typed_error() {
    let cfg = UNet2DConfig {
        resnet_time_scale_shift: "scale_shift".into(),
        ..UNet2DConfig::test()
    };
    match UNet2DModel::trainable(&cfg, &VarMap::new(), 0, &Device::Cpu) {
        Err(UnetError::Config(e)) => assert_eq!(e.field, "resnet_time_scale_shift"),
        other => panic!("expected a config error, got {other:?}"),
    }
}
