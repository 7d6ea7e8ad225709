//! What `semaug info` prints about a dataset: classes and their counts, the image
//! sizes (from headers only, read in parallel), masks found and missing, and the
//! files skipped. Serializable, so it prints as a table ([`std::fmt::Display`]) or JSON.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::{image_dimensions, Dataset, Skipped, Source};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassCount {
    pub name: String,
    pub count: usize,
}

/// How many images have one size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SizeCount {
    pub width: u32,
    pub height: u32,
    pub count: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaskCounts {
    pub dir: PathBuf,
    pub found: usize,
    pub missing: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub root: PathBuf,
    pub samples: usize,
    /// Per class, in class order (empty for unlabeled data).
    pub classes: Vec<ClassCount>,
    pub unlabeled: usize,
    /// Distinct sizes, most common first (ties by width, then height).
    pub sizes: Vec<SizeCount>,
    pub masks: Option<MaskCounts>,
    /// The dataset's skipped inputs, then any image whose header could not be read.
    pub skipped: Vec<Skipped>,
}

impl Dataset {
    /// The summary, reading every image's header (not its pixels).
    pub fn summary(&self) -> Summary {
        let headers: Vec<_> = self
            .samples
            .par_iter()
            .map(|s| match &s.source {
                Source::File(path) => {
                    image_dimensions(path).map_err(|e| Skipped::sample(s, &self.root, &e))
                }
                Source::Memory(image) => Ok(image.dimensions()),
            })
            .collect();
        let mut histogram: BTreeMap<(u32, u32), usize> = BTreeMap::new();
        let mut skipped = self.skipped.clone();
        for header in headers {
            match header {
                Ok(size) => *histogram.entry(size).or_default() += 1,
                Err(bad) => skipped.push(bad),
            }
        }
        let mut sizes: Vec<SizeCount> = histogram
            .into_iter()
            .map(|((width, height), count)| SizeCount {
                width,
                height,
                count,
            })
            .collect();
        sizes.sort_by_key(|s| std::cmp::Reverse(s.count)); // stable: ties stay in size order
        Summary {
            root: self.root.clone(),
            samples: self.samples.len(),
            classes: self
                .classes
                .iter()
                .zip(self.class_counts())
                .map(|(name, count)| ClassCount {
                    name: name.clone(),
                    count,
                })
                .collect(),
            unlabeled: self.samples.iter().filter(|s| s.class.is_none()).count(),
            sizes,
            masks: self.masks_dir.as_ref().and_then(|dir| {
                let (found, missing) = self.mask_counts()?;
                Some(MaskCounts {
                    dir: dir.clone(),
                    found,
                    missing,
                })
            }),
            skipped,
        }
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "dataset  {}", self.root.display())?;
        writeln!(f, "images   {}", self.samples)?;
        if self.classes.is_empty() {
            writeln!(f, "classes  none (unlabeled)")?;
        } else {
            writeln!(f, "classes  {}", self.classes.len())?;
            let width = self.classes.iter().map(|c| c.name.len()).max().unwrap_or(0);
            for (i, class) in self.classes.iter().enumerate() {
                writeln!(f, "  {i:>4}  {:<width$}  {}", class.name, class.count)?;
            }
        }
        writeln!(f, "sizes")?;
        for size in &self.sizes {
            writeln!(f, "  {}x{}  {}", size.width, size.height, size.count)?;
        }
        if let Some(masks) = &self.masks {
            let dir = masks.dir.display();
            writeln!(
                f,
                "masks    {} found, {} missing ({dir})",
                masks.found, masks.missing
            )?;
        }
        writeln!(f, "skipped  {}", self.skipped.len())?;
        for skipped in &self.skipped {
            writeln!(f, "  {}", skipped.reason)?;
        }
        Ok(())
    }
}
