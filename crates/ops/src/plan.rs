//! The plan of an augment run: every output, its name, its seed stream and its shard,
//! decided up front from the dataset and the settings alone.
//!
//! Output `v` of method `m` for sample `s` has global index
//! `(s * methods + m) * per_image + v` and the seed stream
//! `Stream::new(seed, key(sample id), label("<method tag>/<v>"), 0)`. Nothing depends on
//! batching, threads, restarts or shards, which is why every combination of those
//! produces the same bytes. Shard `i` of `n` takes a contiguous block of samples.

use semaug_core::seeds::{label, Stream};
use semaug_data::dataset::{Dataset, Sample};

/// One planned output.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub global_index: u64,
    pub sample: usize,
    pub method: usize,
    pub variant: u32,
    /// Output path relative to the output root, e.g. `cat/0001_perturb_0.png`.
    pub file_name: String,
}

/// Which part of the work this process does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl Default for Shard {
    fn default() -> Self {
        Self { index: 0, count: 1 }
    }
}

impl Shard {
    /// The samples `[start, end)` of `n` that belong to this shard.
    pub fn range(&self, n: usize) -> std::ops::Range<usize> {
        let start = n * self.index / self.count;
        let end = n * (self.index + 1) / self.count;
        start..end
    }
}

/// A method's tag in file names and seed keys: its name, made unique by a `-<i>`
/// suffix when the same method name appears more than once in a run.
pub fn method_tags(names: &[String]) -> Vec<String> {
    names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            if names.iter().filter(|n| *n == name).count() > 1 {
                format!("{name}-{i}")
            } else {
                name.clone()
            }
        })
        .collect()
}

/// All outputs of this shard, in global-index order.
pub fn plan(dataset: &Dataset, tags: &[String], per_image: usize, shard: Shard) -> Vec<Job> {
    let methods = tags.len();
    let mut jobs = Vec::new();
    for s in shard.range(dataset.samples.len()) {
        let sample = &dataset.samples[s];
        let stem = output_stem(dataset, sample);
        for (m, tag) in tags.iter().enumerate() {
            for v in 0..per_image {
                jobs.push(Job {
                    global_index: ((s * methods + m) * per_image + v) as u64,
                    sample: s,
                    method: m,
                    variant: v as u32,
                    file_name: format!("{stem}_{tag}_{v}.png"),
                });
            }
        }
    }
    jobs
}

/// The seed stream of one output.
pub fn job_stream(seed: u64, sample: &Sample, tag: &str, variant: u32) -> Stream {
    Stream::new(seed, sample.key(), label(&format!("{tag}/{variant}")), 0)
}

/// `<class>/<name>` for a sample: the class folder, then the sample's id without its
/// class folder and extension, with every character other than letters, digits, `-`
/// and `_` replaced by `-` (CIFAR record ids such as `data_batch_1.bin#7` included).
fn output_stem(dataset: &Dataset, sample: &Sample) -> String {
    let class = sample
        .class
        .and_then(|c| dataset.classes.get(c))
        .map_or("unlabeled", String::as_str);
    let id = sample
        .id
        .strip_prefix(&format!("{class}/"))
        .unwrap_or(&sample.id);
    let id = match id.rsplit_once('.') {
        Some((stem, ext)) if !ext.contains('/') && !ext.contains('#') => stem,
        _ => id,
    };
    let name: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("{}/{}", sanitize_folder(class), name)
}

fn sanitize_folder(name: &str) -> String {
    let clean: String = name
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '-' || c == '_' || c == ' ' {
                c
            } else {
                '-'
            }
        })
        .collect();
    if clean.starts_with('.') || clean.is_empty() {
        format!("class-{clean}")
    } else {
        clean
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_partition_the_samples() {
        for n in [0usize, 1, 7, 10, 101] {
            for count in 1..5 {
                let mut covered = Vec::new();
                for index in 0..count {
                    covered.extend(Shard { index, count }.range(n));
                }
                assert_eq!(covered, (0..n).collect::<Vec<_>>());
            }
        }
    }

    #[test]
    fn repeated_method_names_get_unique_tags() {
        let tags = method_tags(&["perturb".into(), "splice".into(), "perturb".into()]);
        assert_eq!(tags, vec!["perturb-0", "splice", "perturb-2"]);
    }
}
