//! `--method methods.toml`: a method file expands in place into its methods, giving the
//! same bytes as the equivalent text specs; a bad file is a one-line usage error naming it.

use std::fs;
use std::path::Path;

use crate::common::{augment, cifar_subset, s, snapshot};

/// Two classical methods, written as the text flags `TEXT_METHODS` spell them.
const METHOD_FILE: &str = r#"
[[method]]
name = "classical"
crop = 4
flip = true
rotate = 10

[[method]]
name = "randaugment"
n = 2
m = 9
"#;
const TEXT_METHODS: [&str; 4] = [
    "--method",
    "classical:crop=4,flip,rotate=10",
    "--method",
    "randaugment:n=2,m=9",
];

fn write_file(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    fs::write(&path, text).unwrap();
    s(&path).to_owned()
}

#[test]
fn method_file_gives_the_same_bytes_as_text_specs() {
    let dir = tempfile::tempdir().unwrap();
    let data = cifar_subset(dir.path(), &["cat", "ship"], 2);
    let file = write_file(dir.path(), "methods.toml", METHOD_FILE);
    let common = ["--per-image", "2", "--seed", "5"];
    let run = |name: &str, methods: &[&str]| {
        let out = dir.path().join(name);
        let args: Vec<&str> = methods.iter().chain(&common).copied().collect();
        augment(&data, &out, &args).assert_success();
        snapshot(&out)
    };
    // The file expands where it stands: between two text flags, in order.
    let from_text = run(
        "text",
        &[
            &["--method", "trivialaugment"],
            &TEXT_METHODS[..],
            &["--method", "classical:jitter"],
        ]
        .concat(),
    );
    let from_file = run(
        "file",
        &[
            "--method",
            "trivialaugment",
            "--method",
            &file,
            "--method",
            "classical:jitter",
        ],
    );
    assert!(
        from_text.keys().any(|k| k.contains("_randaugment_")),
        "{:?}",
        from_text.keys()
    );
    assert_eq!(from_text.len(), from_file.len());
    for (name, bytes) in &from_text {
        assert!(from_file.get(name) == Some(bytes), "{name} differs");
    }
}

#[test]
fn bad_method_files_are_one_line_usage_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let data = cifar_subset(dir.path(), &["frog"], 1);
    let out = dir.path().join("out");
    let cases = [
        (
            "syntax.toml",
            "[[method]]\nname = \"classical\nflip = true\n",
            "line 2",
        ),
        (
            "key.toml",
            "[[method]]\nname = \"perturb\"\ndelat = 0.3\n",
            "`delat`",
        ),
        ("name.toml", "[[method]]\nflip = true\n", "no `name`"),
        (
            "type.toml",
            "[[method]]\nname = \"perturb\"\ndelta = [\"x\"]\n",
            "`delta`",
        ),
    ];
    for (name, text, problem) in cases {
        let file = write_file(dir.path(), name, text);
        let outcome = augment(&data, &out, &["--method", &file]);
        let line = outcome.assert_error_line(2);
        assert!(line.contains(&file) && line.contains(problem), "{line}");
    }
    let missing = dir.path().join("absent.toml");
    let outcome = augment(&data, &out, &["--method", s(&missing)]);
    let line = outcome.assert_error_line(2);
    assert!(line.contains(s(&missing)), "{line}");
    assert!(!out.exists(), "a usage error created the output folder");
}

#[test]
fn run_wide_sampling_flags_reach_file_methods() {
    // `--solver` fills the file's generative method like a text one: a bad solver is
    // refused for it, naming the file and table (before any model is loaded).
    let dir = tempfile::tempdir().unwrap();
    let data = cifar_subset(dir.path(), &["frog"], 1);
    let file = write_file(
        dir.path(),
        "gen.toml",
        "[[method]]\nname = \"classical\"\n\n[[method]]\nname = \"perturb\"\ndelta = 0.3\n",
    );
    let out = dir.path().join("out");
    let outcome = augment(&data, &out, &["--method", &file, "--solver", "magic"]);
    let line = outcome.assert_error_line(2);
    assert!(
        line.contains(&file) && line.contains("[[method]] 2") && line.contains("solver"),
        "{line}"
    );
}
