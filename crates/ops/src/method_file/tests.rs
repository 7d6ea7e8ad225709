//! Method files read exactly like the text grammar, and their errors say where.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use super::*;

fn parse(text: &str) -> Result<Vec<FileMethod>, MethodFileError> {
    parse_specs(text, Path::new("runs/methods.toml"))
}

/// What a method records and runs as: equal JSON means equal outputs.
fn fingerprint(method: &Method) -> (String, serde_json::Value) {
    let json = serde_json::to_value(method).expect("methods serialize");
    (method.name().to_string(), json)
}

/// Every method family, as a `[[method]]` table and as the text spec it must equal.
const FAMILIES: [(&str, &str); 10] = [
    (
        "name = \"classical\"\ncrop = 4\nflip = true\njitter = 0.5\nrotate = 10",
        "classical:crop=4,flip,jitter=0.5,rotate=10",
    ),
    ("name = \"randaugment\"\nn = 2\nm = 9", "randaugment:n=2,m=9"),
    ("name = \"trivialaugment\"", "trivialaugment"),
    (
        "name = \"perturb\"\ndelta = 0.3\nsteps = 20\nsolver = \"heun\"\nrenormalize = false\ninvert_to = 0.8",
        "perturb:delta=0.3,steps=20,solver=heun,renormalize=0,invert_to=0.8",
    ),
    (
        "name = \"splice\"\nstrength = 0.4\nguidance = 2.5\nsolver = \"rk4\"",
        "splice:strength=0.4,guidance=2.5,solver=rk4",
    ),
    (
        "name = \"inpaint\"\nregion = \"background\"\ndilate = 8\nstrength = 0.9",
        "inpaint:region=background,dilate=8,strength=0.9",
    ),
    (
        "name = \"compose\"\nlevels = 4\np = [0.4, 0.3, 0.2, 0.1]\nop = \"perturb\"",
        "compose:levels=4,p=0.4,0.3,0.2,0.1,op=perturb",
    ),
    ("name = \"compose\"\nlevels = 2\np = [0.5, 0.5]", "compose:levels=2,p=0.5,0.5"),
    (
        "name = \"real-guidance\"\nstrength = 0.5\nsteps = 12",
        "real-guidance:strength=0.5,steps=12",
    ),
    (
        "name = \"da-fusion\"\nstrengths = [0.25, 0.5, 0.75, 1.0]\nguidance = 3",
        "da-fusion:strengths=0.25,0.5,0.75,1,guidance=3",
    ),
];

#[test]
fn every_family_reads_like_its_text_spec() {
    let file: String = FAMILIES
        .iter()
        .map(|(table, _)| format!("[[method]]\n{table}\n\n"))
        .collect();
    let entries = parse(&file).unwrap();
    assert_eq!(entries.len(), FAMILIES.len());
    for (entry, (_, text)) in entries.iter().zip(FAMILIES) {
        let from_text = MethodSpec::parse(text).unwrap();
        assert_eq!(entry.spec, from_text, "{text}");
        let method = entry.to_method().unwrap();
        assert_eq!(
            fingerprint(&method),
            fingerprint(&Method::from_spec(&from_text).unwrap()),
            "{text}"
        );
    }
    let indexes: Vec<usize> = entries.iter().map(|e| e.origin.index).collect();
    assert_eq!(indexes, (1..=FAMILIES.len()).collect::<Vec<_>>());
}

#[test]
fn numbers_written_differently_give_the_same_method() {
    // `1` vs `1.0` and an integer where the grammar wrote a float: same parameters.
    let entries = parse("[[method]]\nname = \"perturb\"\ndelta = 1\ninvert_to = 1.0\n").unwrap();
    let method = entries[0].to_method().unwrap();
    let text = Method::parse("perturb:delta=1.0,invert_to=1").unwrap();
    assert_eq!(fingerprint(&method), fingerprint(&text));
}

#[test]
fn classical_keys_keep_their_file_order() {
    let entries = parse("[[method]]\nname = \"classical\"\nflip = 1\ncrop = 2\n").unwrap();
    assert_eq!(entries[0].spec.to_string(), "classical:flip=1,crop=2");
    let reversed = parse("[[method]]\nname = \"classical\"\ncrop = 2\nflip = 1\n").unwrap();
    assert_ne!(
        fingerprint(&entries[0].to_method().unwrap()),
        fingerprint(&reversed[0].to_method().unwrap()),
        "the pipeline order must follow the file"
    );
}

#[test]
fn inline_and_single_table_forms_match_array_of_tables() {
    let tables = parse(
        "[[method]]\nname = \"perturb\"\ndelta = 0.3\n[[method]]\nname = \"trivialaugment\"\n",
    )
    .unwrap();
    let inline = parse(
        "method = [\n  { name = \"perturb\", delta = 0.3 },\n  { name = \"trivialaugment\" },\n]\n",
    )
    .unwrap();
    let specs = |e: &[FileMethod]| e.iter().map(|e| e.spec.clone()).collect::<Vec<_>>();
    assert_eq!(specs(&tables), specs(&inline));
    let single = parse("[method]\nname = \"perturb\"\ndelta = 0.3\n").unwrap();
    assert_eq!(specs(&single), specs(&tables)[..1].to_vec());
}

/// The error's text, which must name the file.
fn error_text(result: Result<Vec<FileMethod>, MethodFileError>) -> String {
    let text = match result {
        Ok(entries) => match entries
            .iter()
            .map(FileMethod::to_method)
            .find_map(Result::err)
        {
            Some(e) => e.to_string(),
            None => panic!("expected an error, got {entries:?}"),
        },
        Err(e) => e.to_string(),
    };
    assert!(text.contains("runs/methods.toml"), "{text}");
    assert!(!text.contains('\n'), "one line: {text}");
    text
}

fn assert_mentions(text: &str, parts: &[&str]) {
    for part in parts {
        assert!(text.contains(part), "`{part}` missing from: {text}");
    }
}

#[test]
fn unknown_keys_name_table_line_key_and_valid_keys() {
    let file = "[[method]]\nname = \"perturb\"\n\n[[method]]\nname = \"splice\"\nstrenght = 0.5\n";
    let text = error_text(parse(file));
    assert_mentions(
        &text,
        &["[[method]] 2 (line 6)", "`strenght`", "valid: strength"],
    );
}

#[test]
fn wrong_types_name_the_key_and_what_it_takes() {
    let cases = [
        ("delta = { x = 1 }", "`delta`", "not inline table"),
        ("delta = [[0.1]]", "`delta`", "list of numbers"),
        ("delta = [\"a\"]", "`delta`", "list of numbers"),
        ("delta = []", "`delta`", "empty list"),
        ("delta = 1979-05-27", "`delta`", "not datetime"),
        ("[method.sampling]\nsteps = 3", "`sampling`", "not a table"),
    ];
    for (body, key, problem) in cases {
        let file = format!("[[method]]\nname = \"perturb\"\n{body}\n");
        let text = error_text(parse(&file));
        assert_mentions(&text, &["[[method]] 1 (line 3)", key, problem]);
    }
    let text = error_text(parse("[[method]]\nname = 3\n"));
    assert_mentions(
        &text,
        &["[[method]] 1 (line 2)", "`name`", "must be a string"],
    );
    // Values the grammar itself refuses are refused the same way.
    let text = error_text(parse("[[method]]\nname = \"splice\"\nstrength = 1.5\n"));
    assert_mentions(&text, &["[[method]] 1 (line 3)", "`strength`"]);
}

#[test]
fn missing_name_says_how_to_add_one() {
    let text = error_text(parse(
        "[[method]]\nname = \"perturb\"\n[[method]]\ndelta = 0.2\n",
    ));
    assert_mentions(
        &text,
        &[
            "[[method]] 2 (line 3)",
            "no `name`",
            "name = \"perturb\"",
            "da-fusion",
        ],
    );
    let text = error_text(parse("[[method]]\nname = \"blur\"\n"));
    assert_mentions(&text, &["[[method]] 1", "unknown method `blur`"]);
}

#[test]
fn file_level_problems_are_named() {
    let text = error_text(parse("[[method]]\nname = \"perturb\"\ndelta = \n"));
    assert_mentions(&text, &["line 3", "fix the TOML syntax"]);
    let text = error_text(parse("steps = 4\n[[method]]\nname = \"perturb\"\n"));
    assert_mentions(&text, &["unknown top-level key `steps`"]);
    for empty in ["", "# nothing\n", "method = []\n", "method = 3\n"] {
        assert_mentions(
            &error_text(parse(empty)),
            &["holds no methods", "[[method]]"],
        );
    }
}

#[test]
fn files_load_from_disk_and_missing_ones_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("methods.toml");
    std::fs::write(&path, "[[method]]\nname = \"splice\"\nstrength = 0.25\n").unwrap();
    let methods = load_methods(&path).unwrap();
    assert_eq!(
        fingerprint(&methods[0]),
        fingerprint(&Method::parse("splice:strength=0.25").unwrap())
    );
    let missing = dir.path().join("absent.toml");
    let text = load_specs(&missing).unwrap_err().to_string();
    assert_mentions(&text, &["absent.toml", "check the path"]);
}

#[test]
fn only_toml_paths_are_method_files() {
    assert!(is_method_file("methods.toml"));
    assert!(is_method_file("dir/M.TOML"));
    assert!(!is_method_file("perturb:delta=0.3"));
    assert!(!is_method_file("classical:crop=4,flip"));
    assert!(!is_method_file("toml"));
}

#[test]
fn the_documented_example_loads_and_matches_its_comments() {
    let docs = include_str!("../../../../docs/methods.md");
    let start = docs
        .find("```toml\n")
        .expect("docs/methods.md has a toml example")
        + 8;
    let block = &docs[start..start + docs[start..].find("```").expect("closed block")];
    let entries = parse(block).unwrap();
    assert_eq!(entries.len(), 7);
    // `name = "x"   # spec` lines document the text spec each table equals.
    let comments = block
        .lines()
        .filter(|l| l.starts_with("name = "))
        .map(|l| l.split_once("# ").map(|(_, spec)| spec.trim()));
    for (entry, comment) in entries.iter().zip(comments) {
        let method = entry.to_method().unwrap();
        if let Some(spec) = comment {
            assert_eq!(
                fingerprint(&method),
                fingerprint(&Method::parse(spec).unwrap()),
                "{spec}"
            );
        }
    }
}
