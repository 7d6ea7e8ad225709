//! Shared helpers for the `semaug` binary's tests: run the real binary, check its exit
//! code and its one-line error, build small datasets from the shared real images, craft
//! broken PNGs byte by byte, and snapshot an output folder to compare runs.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Environment variables that pick a shard; cleared so a test run inside a cluster job
/// does not shard the binary behind the test's back.
const SHARD_VARS: [&str; 4] = [
    "SLURM_ARRAY_TASK_ID",
    "SLURM_ARRAY_TASK_COUNT",
    "SLURM_ARRAY_TASK_MIN",
    "JOB_COMPLETION_INDEX",
];

/// The two methods and the per-image count most augment tests use.
pub const METHODS: [&str; 6] = [
    "--method",
    "classical:crop=4,flip",
    "--method",
    "randaugment:n=2,m=9",
    "--per-image",
    "2",
];
pub const METHOD_NAMES: [&str; 2] = ["classical", "randaugment"];
pub const PER_IMAGE: usize = 2;

/// What one run of the binary did.
#[derive(Debug)]
pub struct Outcome {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `semaug ARGS` with `env` set on top of a clean shard environment.
pub fn semaug_env(args: &[&str], env: &[(&str, &str)]) -> Outcome {
    let mut command = Command::new(env!("CARGO_BIN_EXE_semaug"));
    command.args(args);
    for var in SHARD_VARS {
        command.env_remove(var);
    }
    command.envs(env.iter().copied());
    let output = command.output().expect("start the semaug binary");
    let outcome = Outcome {
        // A signal death has no code: report it as -1 so every assertion fails.
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    assert!(
        !outcome.stderr.contains("panicked"),
        "semaug {args:?} panicked:\n{}",
        outcome.stderr
    );
    outcome
}

pub fn semaug(args: &[&str]) -> Outcome {
    semaug_env(args, &[])
}

/// `semaug augment --data DATA --out OUT EXTRA...`.
pub fn augment(data: &Path, out: &Path, extra: &[&str]) -> Outcome {
    let mut args = vec!["augment", "--data", s(data), "--out", s(out)];
    args.extend_from_slice(extra);
    semaug(&args)
}

/// The path as `&str` (temp dirs are UTF-8 on every platform the tests run on).
pub fn s(path: &Path) -> &str {
    path.to_str().expect("UTF-8 temp path")
}

impl Outcome {
    pub fn assert_success(&self) -> &Self {
        assert_eq!(self.code, 0, "expected success; stderr:\n{}", self.stderr);
        self
    }

    /// Exit `code` with exactly one stderr line, `error: ...`; returns that line.
    pub fn assert_error_line(&self, code: i32) -> &str {
        assert_eq!(
            self.code, code,
            "expected exit {code}; stdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(
            lines.len(),
            1,
            "expected exactly one stderr line, got {}:\n{}",
            lines.len(),
            self.stderr
        );
        assert!(lines[0].starts_with("error: "), "{}", lines[0]);
        lines[0]
    }

    /// A usage error: exit 2 and stderr starting with `error:` (clap adds a usage block).
    pub fn assert_usage_error(&self) -> &str {
        assert_eq!(
            self.code, 2,
            "expected a usage error; stderr:\n{}",
            self.stderr
        );
        assert!(self.stderr.starts_with("error: "), "{}", self.stderr);
        self.stderr.lines().next().unwrap_or_default()
    }
}

/// Copies the first `per_class` images (by name) of each of `classes` from the ImageFolder
/// `source` into `dest/<class>/`.
pub fn copy_subset(source: &Path, dest: &Path, classes: &[&str], per_class: usize) {
    for class in classes {
        let from = source.join(class);
        let to = dest.join(class);
        fs::create_dir_all(&to).expect("create class folder");
        for name in sorted_names(&from).into_iter().take(per_class) {
            fs::copy(from.join(&name), to.join(&name)).expect("copy image");
        }
    }
}

/// A small CIFAR-10 ImageFolder under `dir/cifar`: `per_class` images of each class.
pub fn cifar_subset(dir: &Path, classes: &[&str], per_class: usize) -> PathBuf {
    let data = dir.join("cifar");
    copy_subset(&semaug_testdata::cifar10_train(), &data, classes, per_class);
    data
}

/// A small flowers train subset with its masks: (`dir/flowers/images`, `.../masks`).
pub fn flowers_subset(dir: &Path, classes: &[&str], per_class: usize) -> (PathBuf, PathBuf) {
    let root = semaug_testdata::flowers();
    let (images, masks) = (dir.join("flowers/images"), dir.join("flowers/masks"));
    copy_subset(&root.join("images/train"), &images, classes, per_class);
    for class in classes {
        fs::create_dir_all(masks.join(class)).expect("create mask folder");
        for name in sorted_names(&images.join(class)) {
            let mask = Path::new(&name).with_extension("png");
            let from = root.join("masks/train").join(class).join(&mask);
            fs::copy(&from, masks.join(class).join(&mask)).expect("copy mask");
        }
    }
    (images, masks)
}

/// File names in `dir`, sorted.
pub fn sorted_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .expect("list folder")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Every visible file under `dir` (relative path -> bytes). Hidden entries (the writer's
/// `.semaug/` state) are left out: they record how a run got there, not what it made.
pub fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    collect(dir, dir, &mut files);
    files
}

fn collect(root: &Path, dir: &Path, files: &mut BTreeMap<String, Vec<u8>>) {
    for entry in fs::read_dir(dir).expect("list folder") {
        let path = entry.expect("entry").path();
        if path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        {
            continue;
        }
        if path.is_dir() {
            collect(root, &path, files);
        } else {
            let relative = path.strip_prefix(root).expect("inside root");
            let key = relative.to_string_lossy().replace('\\', "/");
            files.insert(key, fs::read(&path).expect("read file"));
        }
    }
}

/// PNG colour types used by the crafted files.
#[derive(Debug, Clone, Copy)]
pub enum Color {
    Gray = 0,
    Rgb = 2,
}

/// A valid 8-bit PNG of `width` x `height` filled with `value`, built by hand (stored
/// deflate blocks) so the tests need no image crate.
pub fn png(width: u32, height: u32, color: Color, value: u8) -> Vec<u8> {
    let channels = match color {
        Color::Gray => 1,
        Color::Rgb => 3,
    };
    let row = 1 + width as usize * channels;
    let mut raw = Vec::with_capacity(row * height as usize);
    for _ in 0..height {
        raw.push(0); // filter type: none
        raw.extend(std::iter::repeat_n(value, row - 1));
    }
    png_with_header(width, height, color, &raw)
}

/// A PNG whose IHDR claims `width` x `height` but whose IDAT holds only `raw`.
pub fn png_with_header(width: u32, height: u32, color: Color, raw: &[u8]) -> Vec<u8> {
    let mut ihdr = Vec::new();
    ihdr.extend(width.to_be_bytes());
    ihdr.extend(height.to_be_bytes());
    ihdr.extend([8, color as u8, 0, 0, 0]); // depth, colour, compression, filter, interlace
    let mut file = b"\x89PNG\r\n\x1a\n".to_vec();
    chunk(&mut file, b"IHDR", &ihdr);
    chunk(&mut file, b"IDAT", &zlib_stored(raw));
    chunk(&mut file, b"IEND", &[]);
    file
}

fn chunk(file: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    file.extend((data.len() as u32).to_be_bytes());
    let start = file.len();
    file.extend(kind);
    file.extend(data);
    let crc = crc32(&file[start..]);
    file.extend(crc.to_be_bytes());
}

/// A zlib stream of uncompressed (stored) deflate blocks.
fn zlib_stored(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x78, 0x01];
    let blocks: Vec<&[u8]> = if data.is_empty() {
        vec![&[]]
    } else {
        data.chunks(65_535).collect()
    };
    for (i, block) in blocks.iter().enumerate() {
        out.push(u8::from(i + 1 == blocks.len())); // BFINAL, BTYPE = 00
        let len = block.len() as u16;
        out.extend(len.to_le_bytes());
        out.extend((!len).to_le_bytes());
        out.extend(*block);
    }
    out.extend(adler32(data).to_be_bytes());
    out
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn adler32(bytes: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for &byte in bytes {
        a = (a + u32::from(byte)) % 65_521;
        b = (b + a) % 65_521;
    }
    (b << 16) | a
}
