//! Writers: round trips in both formats, byte-identical output whatever the order, the
//! process split or a kill, and the refusals that keep inputs and settings safe.

// A failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use image::{Rgb, RgbImage};
use semaug_data::image_io::{decode_file, encode_png, Limits};
use semaug_data::writer::atomic::{
    clean_stale_temps, publish, publish_with, temp_path_for_process,
};
use semaug_data::writer::{
    file_name_from_key, read_classes, read_imagefolder, read_imagefolder_metadata, read_metadata,
    read_webdataset, read_webdataset_shard, sample_key, webdataset_shards, DatasetWriter, Format,
    Record, WriterError, STATE_DIR,
};
use serde_json::{json, Value};

const CLASSES: [&str; 3] = ["cat", "dog", "sea turtle"];
const OUTPUTS: usize = 20;
const PER_SHARD: u64 = 8;
const WDS: Format = Format::WebDataset {
    samples_per_shard: PER_SHARD,
};

fn classes() -> Vec<String> {
    CLASSES.iter().map(|c| c.to_string()).collect()
}

fn fingerprint() -> Value {
    json!({ "method": "perturb", "seed": 7, "model_sha256": "00ff" })
}

/// Output `i` of the plan: two variants per source, sources cycling through classes.
fn output(i: usize) -> (Record, RgbImage) {
    let (source, variant) = (i / 2, i % 2);
    let label = source % CLASSES.len();
    let class_name = CLASSES[label].to_string();
    let image = RgbImage::from_fn(6 + (i % 3) as u32, 5, |x, y| {
        Rgb([
            (i * 37 + x as usize * 11) as u8,
            (y as usize * 50 + i) as u8,
            (x * y) as u8 ^ i as u8,
        ])
    });
    let mut extra = BTreeMap::new();
    if i < 5 {
        extra.insert("note".to_string(), json!({ "i": i }));
    }
    let record = Record {
        file_name: format!("{class_name}/{source:04}_perturb_s{variant}.png"),
        label: label as u32,
        class_name,
        source: format!("train/{source:04}.jpg"),
        source_sha256: format!("{source:064x}"),
        method: "perturb".into(),
        params: json!({ "strength": 0.5, "delta": i as f64 / 10.0 }),
        seed: 1000 + i as u64,
        model: Some("embedded".into()),
        model_sha256: (i >= 3).then(|| "ab".repeat(32)),
        tool_version: "0.1.0".into(),
        variant: variant as u32,
        extra,
    };
    (record, image)
}

fn open(out: &Path, format: Format) -> DatasetWriter {
    DatasetWriter::open(out, format, &fingerprint(), None).expect("open writer")
}

fn write(writer: &DatasetWriter, indices: impl IntoIterator<Item = usize>) {
    for i in indices {
        let (record, image) = output(i);
        writer
            .write(&image, &record, i as u64)
            .expect("write output");
    }
}

/// One uninterrupted run writing `order`.
fn run(out: &Path, format: Format, order: impl IntoIterator<Item = usize>) {
    let writer = open(out, format);
    write(&writer, order);
    writer.finish(&classes()).expect("finish");
}

/// A fixed permutation of the plan (7 is coprime with 20).
fn shuffled() -> Vec<usize> {
    (0..OUTPUTS).map(|i| (i * 7 + 3) % OUTPUTS).collect()
}

/// Every file under `root` with its bytes, by relative path.
fn snapshot(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut pending = vec![root.to_owned()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir).expect("list") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let rel = path
                    .strip_prefix(root)
                    .expect("prefix")
                    .to_string_lossy()
                    .into_owned();
                files.insert(rel, fs::read(&path).expect("read"));
            }
        }
    }
    files
}

/// No temp file, staged sample or lock left behind.
fn assert_clean(root: &Path) {
    for name in snapshot(root).keys() {
        assert!(!name.contains(".tmp."), "temp file left: {name}");
        assert!(!name.contains("staging/"), "staged file left: {name}");
        assert!(!name.contains("locks/"), "lock left: {name}");
    }
}

fn assert_same_files(expected: &Path, got: &Path) {
    let (a, b) = (snapshot(expected), snapshot(got));
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (name, bytes) in &a {
        assert!(bytes == &b[name], "{name} differs");
    }
}

/// The pid of a process that has exited (its temp files are abandoned).
fn dead_pid() -> u32 {
    let mut child = std::process::Command::new("true")
        .spawn()
        .expect("spawn true");
    let pid = child.id();
    child.wait().expect("wait");
    pid
}

fn reference(format: Format) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    run(dir.path(), format, 0..OUTPUTS);
    dir
}

#[test]
fn key_rule_examples_and_refusals() {
    assert_eq!(
        sample_key("cat/0001_perturb_s0.png").unwrap(),
        "cat__0001_perturb_s0"
    );
    assert_eq!(
        sample_key("sea turtle/a.b.png").unwrap(),
        "sea~20turtle__a~2eb"
    );
    // `__` and edge underscores are escaped so `__` can only mean `/`.
    assert_eq!(sample_key("a__b.png").unwrap(), "a~5f~5fb");
    assert_eq!(sample_key("a_/b.png").unwrap(), "a~5f__b");
    assert_ne!(
        sample_key("a/b.png").unwrap(),
        sample_key("a__b.png").unwrap()
    );
    for bad in [
        "cat/x.jpg",
        "/abs.png",
        "a//b.png",
        "../x.png",
        "a/./b.png",
        ".png",
        "a\\b.png",
        ".semaug/records/x.png",
        "cat/.hidden.png",
    ] {
        assert!(
            matches!(sample_key(bad), Err(WriterError::BadFileName { .. })),
            "{bad}"
        );
    }
    assert!(sample_key(&format!("{}.png", "x".repeat(300))).is_err());
    for bad in ["a.b", "a/b", "~zz", "~61", "a___b", "_a"] {
        assert!(file_name_from_key(bad).is_err(), "{bad}");
    }
}

proptest::proptest! {
    #[test]
    fn key_rule_is_invertible(parts in proptest::collection::vec("[a-c_.~ é-]{1,5}", 1..4)) {
        proptest::prop_assume!(parts.iter().all(|p| !p.starts_with('.')));
        let file_name = format!("{}.png", parts.join("/"));
        let key = sample_key(&file_name).unwrap();
        proptest::prop_assert!(!key.contains('.') && !key.contains('/'));
        proptest::prop_assert_eq!(file_name_from_key(&key).unwrap(), file_name);
    }
}

#[test]
fn imagefolder_round_trip_keeps_every_record_and_pixel() {
    let out = reference(Format::ImageFolder);
    let mut expected: Vec<(Record, RgbImage)> = (0..OUTPUTS).map(output).collect();
    expected.sort_by(|a, b| a.0.file_name.cmp(&b.0.file_name));
    let got = read_imagefolder(out.path()).unwrap();
    assert_eq!(got.len(), OUTPUTS);
    for ((want_record, want_image), (record, image)) in expected.iter().zip(&got) {
        assert_eq!(record, want_record);
        assert_eq!(image, want_image, "{}", record.file_name);
        let on_disk =
            decode_file(&out.path().join(&want_record.file_name), &Limits::default()).unwrap();
        assert_eq!(&on_disk, want_image);
    }
    let records: Vec<Record> = expected.into_iter().map(|(r, _)| r).collect();
    assert_eq!(read_imagefolder_metadata(out.path()).unwrap(), records);
    assert_eq!(read_classes(out.path()).unwrap(), classes());
    assert_eq!(
        fs::read_to_string(out.path().join("classes.json")).unwrap(),
        "[\"cat\",\"dog\",\"sea turtle\"]\n"
    );
    let text = fs::read_to_string(out.path().join("metadata.jsonl")).unwrap();
    assert_eq!(text.lines().count(), OUTPUTS);
    assert!(text.starts_with("{\"file_name\":\"cat/0000_perturb_s0.png\",\"label\":0,"));
    assert_clean(out.path());
}

#[test]
fn webdataset_round_trip_keeps_every_record_pixel_and_shard() {
    let out = reference(WDS);
    let shards = webdataset_shards(out.path()).unwrap();
    let names: Vec<_> = shards
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["00000.tar", "00001.tar", "00002.tar"]);
    let index_of: BTreeMap<String, usize> =
        (0..OUTPUTS).map(|i| (output(i).0.file_name, i)).collect();
    let mut seen = 0;
    for (shard, path) in shards.iter().enumerate() {
        let samples = read_webdataset_shard(path).unwrap();
        let keys: Vec<String> = samples.iter().map(|(r, _)| r.key().unwrap()).collect();
        assert!(
            keys.windows(2).all(|w| w[0] < w[1]),
            "keys sorted in shard {shard}"
        );
        for (record, image) in samples {
            let i = index_of[&record.file_name];
            assert_eq!(
                i as u64 / PER_SHARD,
                shard as u64,
                "{} in the wrong shard",
                record.file_name
            );
            let (want_record, want_image) = output(i);
            assert_eq!(record, want_record);
            assert_eq!(image, want_image);
            seen += 1;
        }
    }
    assert_eq!(seen, OUTPUTS);
    assert_eq!(read_webdataset(out.path()).unwrap().len(), OUTPUTS);
    assert_eq!(read_classes(out.path()).unwrap(), classes());
    assert_eq!(read_metadata(out.path()).unwrap().len(), OUTPUTS);
    assert_clean(out.path());
}

#[test]
fn tar_members_are_deterministic_and_grouped() {
    let out = reference(WDS);
    let file = fs::File::open(out.path().join("00002.tar")).unwrap();
    let mut archive = tar::Archive::new(file);
    let mut names = Vec::new();
    for entry in archive.entries().unwrap() {
        let entry = entry.unwrap();
        let header = entry.header();
        assert_eq!(header.mtime().unwrap(), 0);
        assert_eq!((header.uid().unwrap(), header.gid().unwrap()), (0, 0));
        assert_eq!(header.mode().unwrap(), 0o644);
        assert_eq!(header.username().unwrap(), Some(""));
        names.push(entry.path().unwrap().to_string_lossy().into_owned());
    }
    // Samples 16..20, sorted by key, members cls/json/png.
    let mut keys: Vec<String> = (16..OUTPUTS).map(|i| output(i).0.key().unwrap()).collect();
    keys.sort();
    let expected: Vec<String> = keys
        .iter()
        .flat_map(|k| ["cls", "json", "png"].map(|e| format!("{k}.{e}")))
        .collect();
    assert_eq!(names, expected);
}

#[test]
fn metadata_is_the_same_in_both_formats() {
    let (folder, wds) = (reference(Format::ImageFolder), reference(WDS));
    for name in ["metadata.jsonl", "classes.json"] {
        assert_eq!(
            fs::read(folder.path().join(name)).unwrap(),
            fs::read(wds.path().join(name)).unwrap()
        );
    }
}

#[test]
fn order_and_process_split_do_not_change_bytes() {
    for format in [Format::ImageFolder, WDS] {
        let expected = reference(format);

        let shuffled_run = tempfile::tempdir().unwrap();
        run(shuffled_run.path(), format, shuffled().into_iter().rev());
        assert_same_files(expected.path(), shuffled_run.path());

        // Two processes one after the other, each with half of the keys.
        let sequential = tempfile::tempdir().unwrap();
        run(
            sequential.path(),
            format,
            shuffled().into_iter().filter(|i| i % 2 == 0),
        );
        run(
            sequential.path(),
            format,
            shuffled().into_iter().filter(|i| i % 2 == 1),
        );
        assert_same_files(expected.path(), sequential.path());

        // Two processes at once, interleaved, the first finishing before the second.
        let together = tempfile::tempdir().unwrap();
        let (a, b) = (open(together.path(), format), open(together.path(), format));
        for i in shuffled() {
            write(if i < OUTPUTS / 2 { &a } else { &b }, [i]);
        }
        a.finish(&classes()).unwrap();
        b.finish(&classes()).unwrap();
        assert_same_files(expected.path(), together.path());
        assert_clean(together.path());
    }
}

#[test]
fn killed_run_resumes_to_the_same_bytes() {
    for format in [Format::ImageFolder, WDS] {
        let expected = reference(format);
        let out = tempfile::tempdir().unwrap();
        let first_half: Vec<usize> = shuffled().into_iter().take(OUTPUTS / 2).collect();
        write(&open(out.path(), format), first_half.iter().copied());
        // Dropped without finish. Now fake what a kill leaves behind:
        let dead = dead_pid();
        let records = out.path().join(STATE_DIR).join("records");
        let strays = [
            temp_path_for_process(&out.path().join("metadata.jsonl"), dead),
            temp_path_for_process(&records.join("x.json"), dead),
        ];
        for stray in &strays {
            fs::write(stray, b"partial").unwrap();
        }
        // ... killed between publishing an image and its record,
        let (interrupted, _) = output(first_half[0]);
        fs::remove_file(records.join(format!("{}.json", interrupted.key().unwrap()))).unwrap();
        // ... killed while holding the metadata lock (long ago),
        let lock = out
            .path()
            .join(STATE_DIR)
            .join("locks")
            .join("metadata.lock");
        let lock_file = fs::File::create(&lock).unwrap();
        lock_file
            .set_modified(SystemTime::now() - Duration::from_secs(3600))
            .unwrap();
        // ... and (WebDataset) killed after publishing a shard, before removing its staging.
        if format == WDS {
            let done: Vec<usize> = first_half
                .iter()
                .copied()
                .filter(|&i| (i as u64) < PER_SHARD)
                .collect();
            assert!(!done.is_empty());
            let (record, image) = output(done[0]);
            let staged = out.path().join(STATE_DIR).join("staging").join("00000");
            fs::create_dir_all(&staged).unwrap();
            fs::write(
                staged.join(format!("{}.png", record.key().unwrap())),
                encode_png(&image).unwrap(),
            )
            .unwrap();
        }

        let writer = open(out.path(), format);
        assert!(
            strays.iter().all(|s| !s.exists()),
            "open removes a dead writer's temps"
        );
        let mut redone = 0;
        for i in 0..OUTPUTS {
            let (record, image) = output(i);
            if !writer.is_done(&record.key().unwrap()) {
                writer.write(&image, &record, i as u64).unwrap();
                redone += 1;
            }
        }
        assert_eq!(redone, OUTPUTS - first_half.len() + 1);
        let summary = writer.finish(&classes()).unwrap();
        assert_eq!(summary.records, OUTPUTS);
        assert_same_files(expected.path(), out.path());
        assert_clean(out.path());
    }
}

#[test]
fn changed_settings_are_refused() {
    let out = reference(Format::ImageFolder);
    let changed = json!({ "method": "perturb", "seed": 8, "model_sha256": "00ff" });
    let err = DatasetWriter::open(out.path(), Format::ImageFolder, &changed, None).unwrap_err();
    let message = err.to_string();
    assert!(
        matches!(err, WriterError::SettingsChanged { .. }),
        "{message}"
    );
    assert!(
        message.contains("was written with different settings: settings.seed: 7 -> 8"),
        "{message}"
    );
    assert!(
        message.contains("use a new --out, or delete it to start over"),
        "{message}"
    );
    let other_format = DatasetWriter::open(out.path(), WDS, &fingerprint(), None);
    assert!(matches!(
        other_format,
        Err(WriterError::SettingsChanged { .. })
    ));
    // The same settings resume, and a resumed run with nothing to do keeps the bytes.
    let before = snapshot(out.path());
    let writer = open(out.path(), Format::ImageFolder);
    assert!((0..OUTPUTS).all(|i| writer.is_done(&output(i).0.key().unwrap())));
    writer.finish(&classes()).unwrap();
    assert_eq!(snapshot(out.path()), before);
}

#[test]
fn writing_inside_the_input_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let input = root.path().join("data");
    fs::create_dir_all(input.join("cat")).unwrap();
    fs::write(input.join("cat/a.jpg"), b"x").unwrap();
    let inside: [PathBuf; 3] = [
        input.clone(),
        input.join("aug/new"),
        root.path().join("other/../data/x"),
    ];
    for out in &inside {
        let err = DatasetWriter::open(out, Format::ImageFolder, &fingerprint(), Some(&input))
            .unwrap_err();
        assert!(
            matches!(err, WriterError::InsideInput { .. }),
            "{}: {err}",
            out.display()
        );
        assert!(err.to_string().contains("is inside the input dataset"));
    }
    assert!(!input.join("aug").exists());
    // Through a symbolic link inside the output folder.
    #[cfg(unix)]
    {
        let out = root.path().join("out");
        let writer =
            DatasetWriter::open(&out, Format::ImageFolder, &fingerprint(), Some(&input)).unwrap();
        std::os::unix::fs::symlink(&input, out.join("cat")).unwrap();
        let (mut record, image) = output(0);
        record.file_name = "cat/new.png".into();
        let err = writer.write(&image, &record, 0).unwrap_err();
        assert!(matches!(err, WriterError::InsideInput { .. }), "{err}");
        assert_eq!(fs::read_dir(input.join("cat")).unwrap().count(), 1);
    }
}

#[test]
fn foreign_folders_and_bad_inputs_are_refused() {
    let out = tempfile::tempdir().unwrap();
    fs::write(out.path().join("holiday.jpg"), b"mine").unwrap();
    let err =
        DatasetWriter::open(out.path(), Format::ImageFolder, &fingerprint(), None).unwrap_err();
    assert!(matches!(err, WriterError::ForeignFolder { .. }), "{err}");

    let fresh = tempfile::tempdir().unwrap();
    let zero = Format::WebDataset {
        samples_per_shard: 0,
    };
    assert!(matches!(
        DatasetWriter::open(fresh.path(), zero, &fingerprint(), None),
        Err(WriterError::EmptyShards)
    ));
    let writer = open(fresh.path(), Format::ImageFolder);
    let (record, _) = output(0);
    let err = writer
        .write_png(b"\xff\xd8\xff\xe0 jpeg", &record, 0)
        .unwrap_err();
    assert!(matches!(err, WriterError::NotPng { .. }), "{err}");
    let (mut record, image) = output(1);
    record.file_name = "../escape.png".into();
    assert!(matches!(
        writer.write(&image, &record, 1),
        Err(WriterError::BadFileName { .. })
    ));
    assert!(!fresh.path().join("../escape.png").exists());
}

#[test]
fn class_list_must_match_the_records() {
    let out = tempfile::tempdir().unwrap();
    let writer = open(out.path(), Format::ImageFolder);
    write(&writer, 0..OUTPUTS);
    let swapped: Vec<String> = ["dog", "cat", "sea turtle"].map(String::from).to_vec();
    let err = writer.finish(&swapped).unwrap_err();
    assert!(
        matches!(err, WriterError::ClassMismatch { label: 0, .. }),
        "{err}"
    );
    assert!(!out.path().join("metadata.jsonl").exists());
}

#[test]
fn publish_replaces_whole_files_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("file.bin");
    publish(&path, b"first").unwrap();
    publish(&path, b"second").unwrap();
    assert_eq!(fs::read(&path).unwrap(), b"second");
    let failed: Result<(), WriterError> = publish_with(&path, |w| {
        w.write_all(b"half of a new").unwrap();
        Err(WriterError::EmptyShards)
    });
    assert!(failed.is_err());
    assert_eq!(fs::read(&path).unwrap(), b"second");
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1, "no temp left");
}

#[test]
fn only_temps_of_dead_writers_are_cleaned() {
    let dir = tempfile::tempdir().unwrap();
    let final_path = dir.path().join("a.png");
    let live = temp_path_for_process(&final_path, std::process::id());
    let dead = temp_path_for_process(&final_path, dead_pid());
    let not_ours = dir.path().join(".a.png.tmp.notours");
    for path in [&live, &dead, &not_ours] {
        fs::write(path, b"x").unwrap();
    }
    assert_eq!(clean_stale_temps(dir.path()).unwrap(), 1);
    assert!(live.exists() && !dead.exists() && not_ours.exists());
}

#[test]
fn real_photos_round_trip_in_both_formats() {
    let root = semaug_testdata::flowers();
    let images = root.join("images");
    let mut sources: Vec<PathBuf> = Vec::new();
    for class in ["daffodil", "tulip"] {
        let dir = fs::read_dir(images.join("train").join(class)).unwrap();
        let mut files: Vec<PathBuf> = dir.map(|e| e.unwrap().path()).collect();
        files.sort();
        sources.extend(files.into_iter().take(2));
    }
    let real: Vec<(Record, RgbImage)> = sources
        .iter()
        .enumerate()
        .map(|(i, path)| {
            let class = path
                .parent()
                .unwrap()
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let (mut record, _) = output(i);
            record.label = (i / 2) as u32;
            record.file_name = format!("{class}/{i:04}.png");
            record.class_name = class;
            (record, decode_file(path, &Limits::default()).unwrap())
        })
        .collect();
    let classes: Vec<String> = ["daffodil", "tulip"].map(String::from).to_vec();
    for format in [
        Format::ImageFolder,
        Format::WebDataset {
            samples_per_shard: 3,
        },
    ] {
        let out = tempfile::tempdir().unwrap();
        let writer = DatasetWriter::open(out.path(), format, &fingerprint(), Some(&root)).unwrap();
        for (i, (record, image)) in real.iter().enumerate() {
            writer.write(image, record, i as u64).unwrap();
        }
        writer.finish(&classes).unwrap();
        let back = match format {
            Format::ImageFolder => read_imagefolder(out.path()).unwrap(),
            Format::WebDataset { .. } => read_webdataset(out.path()).unwrap(),
        };
        assert_eq!(back.len(), real.len());
        for (record, image) in &back {
            let (want_record, want_image) = real
                .iter()
                .find(|(r, _)| r.file_name == record.file_name)
                .unwrap();
            assert_eq!(record, want_record);
            assert_eq!(image.dimensions(), (256, 256));
            assert!(image == want_image, "{} pixels differ", record.file_name);
        }
    }
}

#[test]
fn rewriting_a_key_replaces_it_even_after_its_shard_was_assembled() {
    let out = reference(WDS);
    let (record, image) = output(0);
    let inverted = RgbImage::from_fn(image.width(), image.height(), |x, y| {
        let Rgb([r, g, b]) = *image.get_pixel(x, y);
        Rgb([255 - r, 255 - g, 255 - b])
    });
    let writer = open(out.path(), WDS);
    writer.write(&inverted, &record, 0).unwrap();
    writer.finish(&classes()).unwrap();
    let samples = read_webdataset(out.path()).unwrap();
    assert_eq!(samples.len(), OUTPUTS);
    let (_, got) = samples.iter().find(|(r, _)| r == &record).unwrap();
    assert_eq!(got, &inverted);
    assert_clean(out.path());
}
